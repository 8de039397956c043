//! Atomic file writes: `tempfile`'s `NamedTempFile` in the destination's directory,
//! `fsync`, then `persist` (a rename over the destination).
//!
//! Readers therefore see either the old file or the complete new one, never a
//! half-written file, even if the process dies mid-write. What is torchlet's own here is only
//! the error naming the destination and the step that failed, and the directory `fsync`
//! that makes the rename durable.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Error raised when a file cannot be written atomically.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    /// The destination path has no file name component (e.g. `/` or `..`).
    #[error("cannot write {path}: the path has no file name")]
    NoFileName {
        /// The destination path.
        path: PathBuf,
    },
    /// An I/O operation on the temporary or destination file failed.
    #[error("cannot write {path}: {action} {temp}: {source}")]
    Io {
        /// The destination path.
        path: PathBuf,
        /// The temporary file in use when the error happened.
        temp: PathBuf,
        /// What was being done (e.g. "creating", "renaming").
        action: &'static str,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// Writes `bytes` to `path` atomically (temporary file, `fsync`, rename).
///
/// The temporary file is `.<name>.tmp-<random>` next to `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Streams data produced by `write` into `path` atomically.
///
/// If `write` returns an error, the temporary file is removed and an existing
/// file at `path` is left untouched.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<(), AtomicWriteError>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let name = path
        .file_name()
        .ok_or_else(|| AtomicWriteError::NoFileName {
            path: path.to_path_buf(),
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let err = |action: &'static str, temp: &Path, source: io::Error| AtomicWriteError::Io {
        path: path.to_path_buf(),
        temp: temp.to_path_buf(),
        action,
        source,
    };
    // Dropped on every error path, the temporary file is then removed.
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).rand_bytes(8);
    // A normal file's permissions (0666 less the umask), not a temporary file's 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder.tempfile_in(&dir).map_err(|e| {
        let pattern = format!("{}*", prefix.to_string_lossy());
        err("creating", &dir.join(pattern), e)
    })?;
    let temp = fill(temp, write).map_err(|(action, temp, e)| err(action, &temp, e))?;
    let temp_path = temp.path().to_path_buf();
    temp.persist(path)
        .map_err(|e| err("renaming", &temp_path, e.error))?;
    // Make the rename itself durable. Opening a directory is not supported on
    // every platform, so failures here are not fatal.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes through `write` into `temp` and syncs it.
fn fill<F>(
    temp: NamedTempFile,
    write: F,
) -> Result<NamedTempFile, (&'static str, PathBuf, io::Error)>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = temp.path().to_path_buf();
    let mut writer = BufWriter::new(temp);
    write(&mut writer).map_err(|e| ("writing", path.clone(), e))?;
    let temp = writer
        .into_inner()
        .map_err(|e| ("writing", path.clone(), e.into_error()))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| ("syncing", path, e))?;
    Ok(temp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::fs;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"hello\x00world").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello\x00world");
        // Overwrite with shorter content: no leftovers from the old file.
        write_atomic(&path, b"hi").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hi");
        assert_eq!(entries(dir.path()), vec!["out.bin".to_string()]);
    }

    #[test]
    fn streaming_writer_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.txt");
        write_atomic_with(&path, |w| {
            for i in 0..3 {
                writeln!(w, "line {i}")?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "line 0\nline 1\nline 2\n"
        );
        assert_eq!(entries(dir.path()), vec!["stream.txt".to_string()]);
    }

    #[test]
    fn failing_writer_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        write_atomic(&path, b"original").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"partial new content")?;
            Err(io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("keep.txt"), "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"original");
        assert_eq!(entries(dir.path()), vec!["keep.txt".to_string()]);
    }

    #[test]
    fn missing_directory_error_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no_such_dir").join("x.txt");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(matches!(
            err,
            AtomicWriteError::Io {
                action: "creating",
                ..
            }
        ));
        assert!(err.to_string().contains("x.txt"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn files_get_normal_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        write_atomic(&path, b"x").unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // 0666 less the umask, as a file written the usual way: not a temporary file's 0600.
        assert_eq!(mode(&path), mode(&plain));
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(err, AtomicWriteError::NoFileName { .. }));
    }
}
