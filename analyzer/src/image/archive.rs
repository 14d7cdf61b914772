//! A docker archive (`docker load`, `skopeo copy docker-archive:…`) of an image an OCI
//! directory holds: the OCI layout of that one image plus Docker's `manifest.json`
//! (`[{Config, RepoTags, Layers}]`, paths to the blobs), as Docker 25 and later write them.
//! Entries come in a fixed order with fixed owner, mode and time, so the archive is as
//! reproducible as the image; it is written to a temporary file renamed into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{json, Value};
use tar::{Builder, Header};

use super::ImageError;

/// Writes the archive of the manifest `manifest_digest` of the OCI directory `oci` to `file`,
/// tagged `reference` (`name:tag`), with every entry dated `epoch`.
pub fn write(oci: &Path, manifest_digest: &str, reference: &str, file: &Path, epoch: u64) -> Result<(), ImageError> {
    let blob = |digest: &str| oci.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let read_json = |digest: &str| -> Result<Value, ImageError> {
        let bytes = std::fs::read(blob(digest)).map_err(|e| ImageError::io(digest, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Config(format!("manifest {digest}: {e}")))
    };
    let manifest = read_json(manifest_digest)?;
    let config = manifest["config"]["digest"].as_str().ok_or_else(|| ImageError::Config(format!("manifest {manifest_digest} has no config")))?.to_string();
    let layers: Vec<String> = manifest["layers"].as_array().into_iter().flatten().filter_map(|l| l["digest"].as_str().map(str::to_string)).collect();
    let path_of = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker = json!([{"Config": path_of(&config), "RepoTags": [reference], "Layers": layers.iter().map(|d| path_of(d)).collect::<Vec<_>>()}]);
    let size = std::fs::metadata(blob(manifest_digest)).map_err(|e| ImageError::io(manifest_digest, e))?.len();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": reference, "io.containerd.image.name": reference}}]});

    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let out = File::create(&tmp).map_err(|e| ImageError::io(tmp.display(), e))?;
    let mut b = Builder::new(BufWriter::new(out));
    let io_err = |e: io::Error| ImageError::io(file.display(), e);
    append_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, epoch).map_err(io_err)?;
    append_bytes(&mut b, "index.json", index.to_string().as_bytes(), epoch).map_err(io_err)?;
    append_bytes(&mut b, "manifest.json", docker.to_string().as_bytes(), epoch).map_err(io_err)?;
    let mut blobs: Vec<&str> = [manifest_digest, config.as_str()].into_iter().chain(layers.iter().map(String::as_str)).collect();
    blobs.sort_unstable();
    blobs.dedup();
    for d in blobs {
        let f = File::open(blob(d)).map_err(|e| ImageError::io(d, e))?;
        let mut h = header(f.metadata().map_err(|e| ImageError::io(d, e))?.len(), epoch);
        b.append_data(&mut h, path_of(d), io::BufReader::new(f)).map_err(io_err)?;
    }
    b.into_inner().and_then(|mut w| w.flush()).map_err(io_err)?;
    std::fs::rename(&tmp, file).map_err(|e| ImageError::io(file.display(), e))
}

fn header(size: u64, epoch: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_size(size);
    h
}

fn append_bytes<W: Write>(b: &mut Builder<W>, name: &str, bytes: &[u8], epoch: u64) -> io::Result<()> {
    let mut h = header(bytes.len() as u64, epoch);
    b.append_data(&mut h, name, bytes)
}
