//! Writing the `out/` tree: build it beside the old one, then swap the two in one step.
//!
//! A failed or interrupted build leaves the old tree as it was. netc only ever replaces a
//! directory that carries its marker file (or an empty one), so `-o /etc` cannot wipe /etc.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags, renameat_with};

/// Marks a directory as netc's output; its text explains what the directory is.
pub const MARKER: &str = ".netc-output";
const MARKER_TEXT: &str = "This directory is written by `netc build` and replaced as a whole on each build.\n\
Do not edit files here: edit the topology and rebuild.\n";

/// The whole tree to write: the rendered files plus the marker.
pub fn with_marker(files: BTreeMap<PathBuf, String>) -> BTreeMap<PathBuf, String> {
    let mut files = files;
    files.insert(PathBuf::from(MARKER), MARKER_TEXT.to_string());
    files
}

/// An I/O failure with what netc was doing at the time.
#[derive(Debug)]
pub struct Error {
    pub what: String,
    pub source: io::Error,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Error {}

trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error {
            what: what(),
            source,
        })
    }
}

/// Replaces `dir` with exactly `files` (paths relative to `dir`).
pub fn write(dir: &Path, files: &BTreeMap<PathBuf, String>) -> Result<(), Error> {
    let exists = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(Error {
                what: format!("cannot write output to {}", dir.display()),
                source: io::Error::other("it exists and is not a directory"),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).context(|| format!("cannot inspect {}", dir.display())),
    };
    if exists && !is_ours(dir).context(|| format!("cannot read {}", dir.display()))? {
        return Err(Error {
            what: format!("refusing to replace {}", dir.display()),
            source: io::Error::other(format!(
                "it is not empty and has no {MARKER} file, so netc did not write it; \
                 choose another directory with -o"
            )),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".netc-build-")
        .tempdir_in(parent)
        .context(|| {
            format!(
                "cannot create a temporary directory in {}",
                parent.display()
            )
        })?;
    let mut made = std::collections::HashSet::new();
    for (rel, text) in files {
        let path = tmp.path().join(rel);
        let folder = path.parent().expect("a file path has a parent");
        if !made.contains(folder) {
            fs::create_dir_all(folder).context(|| format!("cannot create {}", folder.display()))?;
            made.insert(folder.to_path_buf());
        }
        write_file(&path, text.as_bytes())
            .context(|| format!("cannot write {}", path.display()))?;
    }
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .context(|| format!("cannot set permissions on {}", tmp.path().display()))?;
    if exists {
        // One atomic step: the new tree takes the old one's name, the old one the temp name,
        // and is then removed when `tmp` drops.
        renameat_with(CWD, tmp.path(), CWD, dir, RenameFlags::EXCHANGE)
            .map_err(io::Error::from)
            .context(|| format!("cannot swap the new tree into {}", dir.display()))?;
    } else {
        let tmp = tmp.keep();
        fs::rename(&tmp, dir)
            .context(|| format!("cannot move the new tree to {}", dir.display()))?;
    }
    sync_dir(parent);
    Ok(())
}

/// Files are not fsynced one by one: the swap makes the tree consistent, and a tree torn by
/// a power cut is what `netc build --check` reports. (Per-file fsync dominated large builds.)
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::File::create(path)?.write_all(bytes)
}

fn sync_dir(dir: &Path) {
    // Best effort: the rename is what matters, and it is already done.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn is_ours(dir: &Path) -> io::Result<bool> {
    Ok(dir.join(MARKER).is_file() || fs::read_dir(dir)?.next().is_none())
}

/// How the existing tree differs from the wanted one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    Missing(PathBuf),
    Changed(PathBuf),
    Extra(PathBuf),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(p) => write!(f, "missing  {}", p.display()),
            Difference::Changed(p) => write!(f, "changed  {}", p.display()),
            Difference::Extra(p) => write!(f, "extra    {}", p.display()),
        }
    }
}

/// Compares `dir` with `files` without writing anything. A missing `dir` is all missing.
pub fn compare(dir: &Path, files: &BTreeMap<PathBuf, String>) -> Result<Vec<Difference>, Error> {
    let mut present = BTreeMap::new();
    if dir.exists() {
        walk(dir, Path::new(""), &mut present)
            .context(|| format!("cannot read {}", dir.display()))?;
    }
    let mut diffs = Vec::new();
    for (rel, text) in files {
        match present.remove(rel) {
            None => diffs.push(Difference::Missing(rel.clone())),
            Some(bytes) if bytes != text.as_bytes() => diffs.push(Difference::Changed(rel.clone())),
            Some(_) => {}
        }
    }
    diffs.extend(present.into_keys().map(Difference::Extra));
    diffs.sort();
    Ok(diffs)
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &rel, out)?;
        } else {
            out.insert(rel.clone(), fs::read(root.join(&rel))?);
        }
    }
    Ok(())
}
