//! Checked downloads: torchvision's `download=True`, with the size and md5 verified.
//!
//! The body is streamed to `<name>.part` while it is hashed, checked, synced and only then
//! renamed to `<name>`. A cached file is reused only after its size and md5 check out; a
//! half-written `.part` or a file with the wrong checksum is never trusted.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{DataError, Result};

/// The official CIFAR-10 binary archive.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of the official archive.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// Size in bytes of the official archive.
pub const CIFAR10_SIZE: u64 = 170_052_171;
/// File name the archive is stored under.
pub const CIFAR10_FILE: &str = "cifar-10-binary.tar.gz";

/// A file to fetch: where from, what to call it, and how to know it is the right one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// The URL to fetch (`http://` or `https://`).
    pub url: String,
    /// File name in the target folder.
    pub file_name: String,
    /// Expected md5, lower-case hex.
    pub md5: String,
    /// Expected size in bytes, when known.
    pub size: Option<u64>,
}

impl Download {
    /// The official CIFAR-10 binary archive, with its published md5 and size.
    pub fn cifar10() -> Self {
        Self {
            url: CIFAR10_URL.to_string(),
            file_name: CIFAR10_FILE.to_string(),
            md5: CIFAR10_MD5.to_string(),
            size: Some(CIFAR10_SIZE),
        }
    }

    /// The same file from another URL (a mirror, or a local server in tests).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Another expected md5 and size (for a mirror that serves a rebuilt archive).
    pub fn with_checksum(mut self, md5: impl Into<String>, size: Option<u64>) -> Self {
        self.md5 = md5.into().to_ascii_lowercase();
        self.size = size;
        self
    }

    /// Path the verified file has (or will have) in `dir`.
    pub fn target(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file_name)
    }

    /// Returns the verified file in `dir`, downloading it first unless a verified copy is there.
    pub fn fetch(&self, dir: &Path) -> Result<PathBuf> {
        let target = self.target(dir);
        if target.is_file() {
            match self.verify(&target) {
                Ok(()) => {
                    tracing::info!(path = %target.display(), "using verified cached download");
                    return Ok(target);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cached file failed verification; downloading again");
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let part = dir.join(format!("{}.part", self.file_name));
        let result = self.download_to(&part);
        if let Err(e) = result {
            // Never leave a half-written file behind to be mistaken for a good one.
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, &target).map_err(|e| DataError::io(&target, e))?;
        tracing::info!(path = %target.display(), "download verified");
        Ok(target)
    }

    /// Checks the size and md5 of an existing file.
    pub fn verify(&self, path: &Path) -> Result<()> {
        let len = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        self.check_size(path, len)?;
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(|e| DataError::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.check_md5(path, &hex(&hasher.finalize()))
    }

    fn check_size(&self, path: &Path, len: u64) -> Result<()> {
        match self.size {
            Some(size) if size != len => Err(DataError::Checksum {
                path: path.to_path_buf(),
                what: "size",
                expected: size.to_string(),
                actual: len.to_string(),
            }),
            _ => Ok(()),
        }
    }

    fn check_md5(&self, path: &Path, actual: &str) -> Result<()> {
        if actual.eq_ignore_ascii_case(&self.md5) {
            Ok(())
        } else {
            Err(DataError::Checksum {
                path: path.to_path_buf(),
                what: "md5",
                expected: self.md5.clone(),
                actual: actual.to_string(),
            })
        }
    }

    fn download_to(&self, part: &Path) -> Result<()> {
        let fail = |reason: String| DataError::Download {
            url: self.url.clone(),
            reason,
        };
        tracing::info!(url = %self.url, "downloading");
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let response = agent
            .get(&self.url)
            .call()
            .map_err(|e| fail(e.to_string()))?;
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut body = response.into_body().into_reader();
        let mut file = File::create(part).map_err(|e| DataError::io(part, e))?;
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut received: u64 = 0;
        loop {
            let n = match body.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(fail(format!(
                        "connection failed after {received} bytes: {e}"
                    )));
                }
            };
            if n == 0 {
                break;
            }
            received += n as u64;
            if let Some(size) = self.size
                && received > size
            {
                return Err(fail(format!(
                    "server sent more than the expected {size} bytes"
                )));
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| DataError::io(part, e))?;
        }
        if let Some(declared) = declared
            && declared != received
        {
            return Err(fail(format!(
                "body ended after {received} of {declared} bytes"
            )));
        }
        self.check_size(part, received)?;
        self.check_md5(part, &hex(&hasher.finalize()))?;
        file.sync_all().map_err(|e| DataError::io(part, e))?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// md5 of a byte slice as lower-case hex (handy for fixtures).
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_known_vector() {
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn verify_reports_size_then_md5() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let d = Download::cifar10().with_checksum(md5_hex(b"abc"), Some(3));
        d.verify(&p).unwrap();
        let wrong_size = d.clone().with_checksum(md5_hex(b"abc"), Some(4));
        assert!(matches!(
            wrong_size.verify(&p),
            Err(DataError::Checksum { what: "size", .. })
        ));
        let wrong_md5 = d.with_checksum("00", None);
        assert!(matches!(
            wrong_md5.verify(&p),
            Err(DataError::Checksum { what: "md5", .. })
        ));
    }
}
