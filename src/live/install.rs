//! Installing one file on a live host, for apply: all or nothing, and nothing when unchanged.
//!
//! The new content goes to a temporary file in the same directory, is fsynced, takes the old
//! file's mode and owner, and is renamed over the target (atomic on one filesystem); the old
//! file is kept as `<name>.netc-old` (unless skipped). If the content is already there,
//! nothing is written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The file already had this content: nothing was written.
    Unchanged,
    /// Written; the previous file, if any, was kept at `backup`.
    Written { backup: Option<PathBuf> },
}

/// The path of the backup of `target`.
pub fn backup_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".netc-old");
    target.with_file_name(name)
}

/// Whether to keep the replaced file as `<name>.netc-old`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backup {
    Keep,
    Skip,
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

/// Removes a file; one that is not there is already removed.
pub fn remove_opt(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
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

/// Puts `content` at `target`; see the module comment.
pub fn install(target: &Path, content: &[u8], backup: Backup) -> io::Result<Installed> {
    let old = read_opt(target)?;
    if old.as_deref() == Some(content) {
        return Ok(Installed::Unchanged);
    }
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".netc-").tempfile_in(dir)?;
    tmp.write_all(content)?;
    let meta = fs::metadata(target).ok();
    let mode = meta
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))?;
    if let Some(m) = &meta {
        std::os::unix::fs::chown(tmp.path(), Some(m.uid()), Some(m.gid()))?;
    }
    tmp.as_file().sync_all()?;
    let backup = match old.filter(|_| backup == Backup::Keep) {
        Some(bytes) => {
            let path = backup_path(target);
            fs::write(&path, bytes)?;
            Some(path)
        }
        None => None,
    };
    tmp.persist(target).map_err(|e| e.error)?;
    if let Ok(d) = fs::File::open(dir) {
        d.sync_all()?;
    }
    Ok(Installed::Written { backup })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_keeps_a_backup_and_the_mode_then_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("interfaces");
        assert_eq!(
            install(&target, b"one\n", Backup::Keep).unwrap(),
            Installed::Written { backup: None }
        );
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let r = install(&target, b"two\n", Backup::Keep).unwrap();
        assert_eq!(
            r,
            Installed::Written {
                backup: Some(backup_path(&target))
            }
        );
        assert_eq!(fs::read(&target).unwrap(), b"two\n");
        assert_eq!(fs::read(backup_path(&target)).unwrap(), b"one\n");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mtime = fs::metadata(&target).unwrap().modified().unwrap();
        assert_eq!(
            install(&target, b"two\n", Backup::Keep).unwrap(),
            Installed::Unchanged
        );
        assert_eq!(fs::metadata(&target).unwrap().modified().unwrap(), mtime);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_install_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-dir").join("file");
        assert!(install(&target, b"x", Backup::Keep).is_err());
        assert!(!target.exists());
    }
}
