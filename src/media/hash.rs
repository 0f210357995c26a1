//! Streaming digests: MD5 names a chunk, SHA-256 confirms it (MD5 collisions can be crafted).

use md5::{Digest, Md5};
use sha2::Sha256;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    pub md5: String,
    pub sha256: String,
    pub size: u64,
}

/// Hashes a file once, feeding both digests from the same buffer. Blocking.
pub fn digest_file(path: &Path) -> std::io::Result<FileDigest> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigest {
        md5: hex::encode(md5.finalize()),
        sha256: hex::encode(sha.finalize()),
        size,
    })
}

/// MD5 of a file alone, for whole-input identity. Blocking.
pub fn md5_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut md5 = Md5::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(md5.finalize()));
        }
        md5.update(&buf[..n]);
    }
}

/// SHA-256 of a file alone (blobs moved between machines, the audio Whisper hears). Blocking.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    std::io::copy(&mut file, &mut sha)?;
    Ok(hex::encode(sha.finalize()))
}

/// SHA-256 of a byte string (fingerprints of encode settings).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc")?;
        let d = digest_file(&p)?;
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
        assert_eq!(md5_file(&p)?, d.md5);
        Ok(())
    }
}
