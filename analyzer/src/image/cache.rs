//! The layer cache: what a layer's path set was written as, so that a rebuild hashes and
//! writes only new layers.
//!
//! Store paths are immutable, so a layer's bytes follow from its path set and the writing
//! settings (compression, epoch, store root). The key is the SHA-256 of those; the entry is
//! the blob's digest, size and media type and the uncompressed diff_id, kept in
//! `hints-cache/<key>.json` inside the OCI directory. An entry counts only while its blob is in
//! the directory with the size recorded; entries are written through a temporary file and a
//! rename, so a crash leaves no half entry.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ImageError;

const DIR: &str = "hints-cache";

/// A layer as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// `sha256:…` of the blob (compressed as written).
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
}

/// The cache key of a layer: its content identity and everything that shapes its bytes.
pub fn key(content: &[String], settings: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"hints-layer-v1\0");
    h.update(settings.as_bytes());
    for c in content {
        h.update(b"\0");
        h.update(c.as_bytes());
    }
    format!("{:x}", h.finalize())
}

fn entry_path(oci: &Path, key: &str) -> PathBuf {
    oci.join(DIR).join(format!("{key}.json"))
}

/// The cached layer, if its entry is readable and its blob is present with the size recorded.
pub fn lookup(oci: &Path, key: &str) -> Option<CachedLayer> {
    let text = fs::read_to_string(entry_path(oci, key)).ok()?;
    let entry: CachedLayer = serde_json::from_str(&text).ok()?;
    has_blob(oci, &entry).then_some(entry)
}

/// Whether the OCI directory `oci` holds the layer's blob, with its size.
pub fn has_blob(oci: &Path, layer: &CachedLayer) -> bool {
    let Some(hex) = layer.digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) else {
        return false;
    };
    fs::metadata(oci.join("blobs/sha256").join(hex)).is_ok_and(|m| m.len() == layer.size)
}

pub fn store(oci: &Path, key: &str, entry: &CachedLayer) -> Result<(), ImageError> {
    let dir = oci.join(DIR);
    fs::create_dir_all(&dir).map_err(|e| ImageError::io(dir.display(), e))?;
    let path = entry_path(oci, key);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_string(entry).expect("plain struct");
    fs::write(&tmp, text).map_err(|e| ImageError::io(tmp.display(), e))?;
    fs::rename(&tmp, &path).map_err(|e| ImageError::io(path.display(), e))
}
