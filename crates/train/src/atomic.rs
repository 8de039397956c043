//! Atomic file writes: write to a temporary file in the same directory,
//! `fsync` it, then rename it over the destination.
//!
//! Readers therefore see either the old file or the complete new one, never a
//! half-written file, even if the process dies mid-write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

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
/// The temporary file is `.<name>.tmp-<pid>-<counter>` next to `path`.
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
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    // The counter keeps concurrent writes to one path from the same process
    // apart.
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    temp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    let temp = dir.join(temp_name);

    let err = |action: &'static str, source: io::Error| AtomicWriteError::Io {
        path: path.to_path_buf(),
        temp: temp.clone(),
        action,
        source,
    };

    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| err("creating", e))?;

    if let Err((action, source)) = fill_and_rename(file, &temp, path, write) {
        // Best effort: the temporary file may or may not exist at this point.
        let _ = fs::remove_file(&temp);
        return Err(err(action, source));
    }

    // Make the rename itself durable. Opening a directory is not supported on
    // every platform, so failures here are not fatal.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes through `write` into `file`, syncs it and renames `temp` to `path`.
fn fill_and_rename<F>(
    file: File,
    temp: &Path,
    path: &Path,
    write: F,
) -> Result<(), (&'static str, io::Error)>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut writer = BufWriter::new(file);
    write(&mut writer).map_err(|e| ("writing", e))?;
    let file = writer
        .into_inner()
        .map_err(|e| ("writing", e.into_error()))?;
    file.sync_all().map_err(|e| ("syncing", e))?;
    drop(file);
    fs::rename(temp, path).map_err(|e| ("renaming", e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(err, AtomicWriteError::NoFileName { .. }));
    }
}
