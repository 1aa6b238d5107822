//! The data dir at rest: only its owner may enter it (0700), the credentials, keys and store
//! files in it are 0600 (also those an older version left readable), and files the server
//! creates later are private (umask 077), like the store's WAL and snapshots.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Locks down `dir` and the files directly in it and in `tls/`.
pub(crate) fn secure(dir: &Path) -> std::io::Result<()> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for sub in [dir.to_path_buf(), dir.join("tls")] {
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = entry.metadata()?;
            let mode = meta.permissions().mode();
            let private = if meta.is_dir() {
                mode & 0o700
            } else {
                mode & 0o600
            };
            if mode & 0o777 != private & 0o777 {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(private))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_files_become_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        secure(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&db), 0o600);
        let later = dir.path().join("later");
        std::fs::write(&later, b"y").unwrap();
        assert_eq!(mode(&later) & 0o077, 0, "new files are private");
    }
}
