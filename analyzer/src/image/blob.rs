//! A layer's blob: written into an OCI directory, or only hashed (for a description built
//! where the bytes must not be kept, as in a Nix build).
//!
//! Both run the same encoders at the same settings (`flate2` gzip at its default level, `zstd`
//! at level 0 = its default, one thread), so a blob hashed here has the digest the blob
//! written later gets.

use std::io::{self, Write};

use ocidir::OciDir;
use sha2::{Digest, Sha256};

use super::cache::CachedLayer;
use super::{Compression, ImageError};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";

/// Writes the tar `fill` produces as a blob of `dir`, hashing the tar and the blob as it goes.
pub(super) fn write(dir: &OciDir, compression: Compression, fill: impl FnOnce(&mut dyn Write) -> Result<(), ImageError>) -> Result<CachedLayer, ImageError> {
    let layer = match compression {
        Compression::Gzip => {
            let mut w = dir.create_gzip_layer(None)?;
            fill(&mut w)?;
            w.complete()?
        }
        Compression::Zstd => {
            let mut w = dir.create_layer_zstd(None)?;
            fill(&mut w)?;
            w.complete()?
        }
        Compression::None => {
            let mut w = dir.create_uncompressed_layer()?;
            fill(&mut w)?;
            w.complete()?
        }
    };
    let desc = layer.descriptor().build()?;
    Ok(CachedLayer { digest: desc.digest().to_string(), size: desc.size(), media_type: desc.media_type().to_string(), diff_id: layer.uncompressed_sha256_as_digest().to_string() })
}

/// The blob `write` would write, without writing it.
pub(super) fn hash(compression: Compression, fill: impl FnOnce(&mut dyn Write) -> Result<(), ImageError>) -> Result<CachedLayer, ImageError> {
    let finish = |e| ImageError::io("compressing a layer", e);
    let (tar, blob, media_type) = match compression {
        Compression::None => {
            let mut tar = Hashing::new(io::sink());
            fill(&mut tar)?;
            (tar.done(), None, PLAIN)
        }
        Compression::Gzip => {
            let mut tar = Hashing::new(flate2::write::GzEncoder::new(Hashing::new(io::sink()), flate2::Compression::default()));
            fill(&mut tar)?;
            let (diff, encoder) = tar.split();
            (diff, Some(encoder.finish().map_err(finish)?.done()), GZIP)
        }
        Compression::Zstd => {
            let encoder = zstd::Encoder::new(Hashing::new(io::sink()), 0).map_err(finish)?;
            let mut tar = Hashing::new(encoder);
            fill(&mut tar)?;
            let (diff, encoder) = tar.split();
            (diff, Some(encoder.finish().map_err(finish)?.done()), ZSTD)
        }
    };
    let (digest, size) = blob.unwrap_or_else(|| tar.clone());
    Ok(CachedLayer { digest, size, media_type: media_type.to_string(), diff_id: tar.0 })
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, sha: Sha256::new(), size: 0 }
    }

    /// `sha256:…` and the byte count.
    fn done(self) -> (String, u64) {
        self.split().0
    }

    /// What `done` gives, and the inner writer.
    fn split(self) -> ((String, u64), W) {
        ((format!("sha256:{:x}", self.sha.finalize()), self.size), self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
