//! Installing one file on a live host, for apply and rollback: all or nothing, nothing when
//! unchanged, and never wider than before.
//!
//! The new content goes to a temporary file (`.netc-tmp-…`, mode 0600 while written) in the
//! same directory, is fsynced, takes the old file's mode and owner, and is renamed over the
//! target (atomic on one filesystem); the directory is fsynced after. A symlink stays a
//! symlink: the file it points to is replaced. The replaced content is kept as a
//! date-stamped backup `<name>.netc-old.<UTC stamp>` beside it, written the same way with
//! the original's mode and owner; the newest [`KEEP_BACKUPS`] are kept. Under another root
//! (`--root`: a chroot, a test) symlinks are followed inside it, as the chroot sees them: an
//! absolute target starts at the root, and `..` stops there. A rollback puts the
//! old content back without a backup ([`Backup::Skip`]): a rejected config never takes the
//! place of a good one. Temporary files a killed run left are removed by [`clean_temps`].

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The prefix of netc's temporary files.
pub const TEMP_PREFIX: &str = ".netc-tmp-";
/// How many backups of one file are kept.
pub const KEEP_BACKUPS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The file already had this content: nothing was written.
    Unchanged,
    /// Written; the previous file, if any, was kept at `backup`.
    Written { backup: Option<PathBuf> },
}

/// Whether to keep the replaced file as a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backup {
    Keep,
    Skip,
}

/// Mode and owner of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
}

impl Perm {
    pub const fn mode(mode: u32) -> Perm {
        Perm { mode, owner: None }
    }

    fn of(m: &fs::Metadata) -> Perm {
        Perm {
            mode: m.permissions().mode() & 0o7777,
            owner: Some((m.uid(), m.gid())),
        }
    }
}

/// The prefix of the backups of `target`: `<name>.netc-old.`.
pub fn backup_prefix(target: &Path) -> String {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    format!("{name}.netc-old.")
}

/// The file `path` names: itself, or what its symlinks lead to (relative targets are read
/// from the link's directory).
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// The file `path` (under `root`) names, with every symlink on the way followed inside
/// `root` as if it were `/`: an absolute target starts again at `root`, and `..` never leaves
/// it. With `/` as the root, or a path outside it, [`resolve`].
pub fn resolve_in(root: &Path, path: &Path) -> io::Result<PathBuf> {
    use std::collections::VecDeque;
    use std::path::Component;
    let Ok(rel) = path.strip_prefix(root) else {
        return resolve(path);
    };
    if root == Path::new("/") {
        return resolve(path);
    }
    let mut todo: VecDeque<PathBuf> = rel.components().map(|c| c.as_os_str().into()).collect();
    let mut out = root.to_path_buf();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match Path::new(&part).components().next() {
            Some(Component::Normal(name)) => {
                let next = out.join(name);
                match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        hops += 1;
                        if hops > 40 {
                            return Err(io::Error::other(format!(
                                "{}: too many levels of symbolic links",
                                path.display()
                            )));
                        }
                        let target = fs::read_link(&next)?;
                        if target.is_absolute() {
                            out = root.to_path_buf();
                        }
                        for c in target.components().rev() {
                            todo.push_front(c.as_os_str().into());
                        }
                    }
                    _ => out = next,
                }
            }
            Some(Component::ParentDir) if out != root => {
                out.pop();
            }
            _ => {} // `.`, `/`, or `..` at the root
        }
    }
    Ok(out)
}

/// A file's bytes, or `None` when there is no such file (nothing there, or a file where a
/// directory of its path should be).
pub fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`read_opt`] for a text file.
pub fn read_text_opt(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file (the one a symlink points to, keeping the link); one that is not there is
/// already removed.
pub fn remove_opt(path: &Path) -> io::Result<()> {
    remove_in(Path::new("/"), path)
}

/// [`remove_opt`] with symlinks followed inside `root` ([`resolve_in`]).
pub fn remove_in(root: &Path, path: &Path) -> io::Result<()> {
    match fs::remove_file(resolve_in(root, path)?) {
        Err(e) if !absent(&e) => Err(e),
        _ => Ok(()),
    }
}

fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Puts `content` at `target`; see the module comment.
pub fn install(target: &Path, content: &[u8], backup: Backup) -> io::Result<Installed> {
    install_in(Path::new("/"), target, content, backup)
}

/// [`install`] with symlinks followed inside `root` ([`resolve_in`]).
pub fn install_in(
    root: &Path,
    target: &Path,
    content: &[u8],
    backup: Backup,
) -> io::Result<Installed> {
    let target = resolve_in(root, target)?;
    let old = read_opt(&target)?;
    if old.as_deref() == Some(content) {
        return Ok(Installed::Unchanged);
    }
    let perm = fs::metadata(&target)
        .ok()
        .map_or(Perm::mode(0o644), |m| Perm::of(&m));
    let backup = match old.filter(|_| backup == Backup::Keep) {
        Some(bytes) => Some(write_backup(&target, &bytes, perm)?),
        None => None,
    };
    write_atomic(&target, content, perm)?;
    Ok(Installed::Written { backup })
}

/// Writes `content` to `target` through a fsynced temporary file and a rename.
pub fn write_atomic(target: &Path, content: &[u8], perm: Perm) -> io::Result<()> {
    let dir = dir_of(target);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(content)?;
    if let Some((uid, gid)) = perm.owner {
        std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid))?;
    }
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(perm.mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

/// Keeps `bytes` as the newest backup of `target` and drops the oldest beyond
/// [`KEEP_BACKUPS`].
fn write_backup(target: &Path, bytes: &[u8], perm: Perm) -> io::Result<PathBuf> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let prefix = backup_prefix(target);
    // Within one second: `<stamp>.1`, `<stamp>.2`, … after the highest taken (a rotated-away
    // name is not reused: it would sort as the oldest).
    let next = backups(target)?
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_prefix(&prefix)?.to_string();
            match name.split_once('.') {
                Some((base, n)) if base == stamp => n.parse::<u32>().ok().map(|n| n + 1),
                None if name == stamp => Some(1),
                _ => None,
            }
        })
        .max();
    let path = match next {
        Some(n) => target.with_file_name(format!("{prefix}{stamp}.{n}")),
        None => target.with_file_name(format!("{prefix}{stamp}")),
    };
    write_atomic(&path, bytes, perm)?;
    let backups = backups(target)?;
    for old in backups
        .iter()
        .take(backups.len().saturating_sub(KEEP_BACKUPS))
    {
        remove_opt(old)?;
    }
    Ok(path)
}

/// The backups of `target`, oldest first.
pub fn backups(target: &Path) -> io::Result<Vec<PathBuf>> {
    let prefix = backup_prefix(target);
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for e in fs::read_dir(dir_of(target))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stamp) = name.strip_prefix(&prefix) {
            // `<stamp>.<n>` sorts after `<stamp>`, and `.10` after `.9`.
            let (base, n) = stamp.split_once('.').unwrap_or((stamp, "0"));
            found.push((format!("{base}.{n:0>6}"), e.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Removes the temporary files a killed run left in `dir` (netc's `.netc-tmp-…`, and the
/// `.netc-XXXXXX` of versions before it); the paths removed.
pub fn clean_temps(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let old_style = name
            .strip_prefix(".netc-")
            .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
        if (name.starts_with(TEMP_PREFIX) || old_style) && e.file_type()?.is_file() {
            fs::remove_file(e.path())?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn writes_keeps_a_backup_with_the_mode_then_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("agent.properties");
        assert_eq!(
            install(&target, b"one\n", Backup::Keep).unwrap(),
            Installed::Written { backup: None }
        );
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let Installed::Written { backup: Some(b) } =
            install(&target, b"two\n", Backup::Keep).unwrap()
        else {
            panic!("no backup")
        };
        assert_eq!(fs::read(&target).unwrap(), b"two\n");
        assert_eq!(fs::read(&b).unwrap(), b"one\n");
        for f in [&target, &b] {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let mtime = fs::metadata(&target).unwrap().modified().unwrap();
        assert_eq!(
            install(&target, b"two\n", Backup::Keep).unwrap(),
            Installed::Unchanged
        );
        assert_eq!(fs::metadata(&target).unwrap().modified().unwrap(), mtime);
        // No temporary files are left behind.
        assert_eq!(names(dir.path()).len(), 2, "{:?}", names(dir.path()));
    }

    #[test]
    fn backups_rotate_and_a_skipped_backup_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("interfaces");
        for i in 0..=KEEP_BACKUPS + 2 {
            install(&target, format!("v{i}\n").as_bytes(), Backup::Keep).unwrap();
        }
        let kept = backups(&target).unwrap();
        assert_eq!(kept.len(), KEEP_BACKUPS);
        let newest = fs::read(kept.last().unwrap()).unwrap();
        assert_eq!(newest, format!("v{}\n", KEEP_BACKUPS + 1).as_bytes());
        // A rollback puts the old text back without backing up the rejected one.
        install(&target, b"v1\n", Backup::Skip).unwrap();
        assert_eq!(backups(&target).unwrap(), kept);
    }

    #[test]
    fn a_symlink_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("interfaces.real");
        fs::write(&real, "old\n").unwrap();
        let link = dir.path().join("interfaces");
        std::os::unix::fs::symlink("interfaces.real", &link).unwrap();
        install(&link, b"new\n", Backup::Keep).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new\n");
        remove_opt(&link).unwrap();
        assert!(!real.exists());
        assert!(fs::symlink_metadata(&link).is_ok());
    }

    #[test]
    fn a_failed_install_leaves_the_target_alone_and_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-dir").join("file");
        assert!(install(&target, b"x", Backup::Keep).is_err());
        assert!(!target.exists());
        for name in [".netc-tmp-abc123", ".netc-Ab12Cd", ".netc-old", "keep"] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let removed = clean_temps(dir.path()).unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(names(dir.path()), [".netc-old", "keep"]);
    }
}
