//! Writing the image: reproducible OCI images from a closure and its layers (`hints image`).
//!
//! # Objective
//! Turn the layers a strategy chose into an image a registry and a container runtime accept,
//! such that equal path sets always give byte-identical layers (so a layer shared by two
//! images, or by two revisions of one, has one digest and is pulled once), and a rebuild costs
//! what changed, not the image's size.
//!
//! # Definitions
//! - A *layer* is a set of store paths; its tar is defined by [`layer_tar`] (fixed order, owner,
//!   modes and times; nothing of the host).
//! - The *diff_id* is the SHA-256 of the uncompressed tar, the *digest* that of the blob as
//!   stored (gzip, zstd or plain). Both are computed in one pass while the tar is written
//!   (`ocidir`'s layer writers hash before and after the compressor), never by reading back.
//! - The *epoch* is every entry's time and the image's `created`: `SOURCE_DATE_EPOCH`, else 1
//!   (as in the Nix store).
//!
//! # Algorithm
//! 1. For every store layer, look up its key ([`cache::key`]: the sorted paths and the writing
//!    settings) in the directory's layer cache. A hit whose blob is present is reused without
//!    reading a file of the store.
//! 2. Write the misses in parallel (rayon); each writes its blob through a temporary file that
//!    is renamed to its digest, and then its cache entry. The result is collected in layer
//!    order, so the output does not depend on the thread count.
//! 3. The optional top layer (a directory: the image's customisation) is written last, with its
//!    own permission bits and the same fixed owner and times; it is never cached.
//! 4. The config holds the runtime settings, the diff_ids, one history entry per layer naming
//!    its hint group (or reason) and its store paths, and the closure graph as the label
//!    [`CLOSURE_LABEL`], so the image can be scanned later without guessing. The manifest and
//!    config are canonical JSON; `index.json` is replaced atomically, tagging the manifest.

pub mod cache;
mod layer_tar;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hints_format::StorePath;
use layering_core::Closure;
use ocidir::oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfigurationBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use ocidir::{cap_std, OciDir};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use cache::CachedLayer;

/// The config label that holds the closure graph: compact JSON, a list of
/// `[store path, narSize, [indices of references in this list]]`.
pub const CLOSURE_LABEL: &str = "io.github.hints.closure.v1";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}: a socket, device or FIFO cannot be in a layer")]
    SpecialFile(String),
    #[error("OCI directory: {0}")]
    Oci(#[from] ocidir::Error),
    #[error("OCI metadata: {0}")]
    Spec(#[from] ocidir::oci_spec::OciSpecError),
    #[error("config: {0}")]
    Config(String),
    #[error("{file}: {what}")]
    Layers { file: String, what: String },
}

impl ImageError {
    pub(crate) fn io(what: impl Display, source: std::io::Error) -> Self {
        ImageError::Io { what: what.to_string(), source }
    }
}

/// How layer blobs are compressed. gzip and zstd are deterministic at a fixed level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One store layer: its paths, and why it exists (a hint group, a strategy's reason).
#[derive(Debug, Clone)]
pub struct ImageLayer {
    pub paths: Vec<StorePath>,
    pub description: String,
}

impl ImageLayer {
    /// The layers a strategy chose, each described by its reason.
    pub fn from_layers(layers: &[layering_core::Layer]) -> Vec<ImageLayer> {
        layers.iter().map(|l| ImageLayer { paths: l.paths.clone(), description: l.reason.to_string() }).collect()
    }

    /// The layers of a `store_layers` file (a JSON list of lists of store paths, bottom first,
    /// as `hints layer` writes), checked to hold every path of `closure` exactly once.
    pub fn from_store_layers(file: &str, text: &str, closure: &Closure) -> Result<Vec<ImageLayer>, ImageError> {
        let bad = |what: String| ImageError::Layers { file: file.to_string(), what };
        let lists: Vec<Vec<String>> = serde_json::from_str(text).map_err(|e| bad(format!("expected a JSON list of lists of store paths: {e}")))?;
        let mut seen = vec![false; closure.len()];
        let mut layers = vec![];
        for (k, list) in lists.iter().enumerate() {
            if list.is_empty() {
                return Err(bad(format!("layer {} is empty", k + 1)));
            }
            let mut paths = vec![];
            for p in list {
                let n = closure.index_of(p).ok_or_else(|| bad(format!("layer {}: {p} is not in the closure", k + 1)))?;
                if std::mem::replace(&mut seen[n], true) {
                    return Err(bad(format!("layer {}: {p} is in an earlier layer too", k + 1)));
                }
                paths.push(closure.path(n).clone());
            }
            layers.push(ImageLayer { paths, description: format!("layer {} of {file}", k + 1) });
        }
        if let Some(n) = seen.iter().position(|s| !s) {
            return Err(bad(format!("{} is in the closure but in no layer", closure.path(n))));
        }
        Ok(layers)
    }
}

/// The runtime settings of the image, with Docker's config names (a JSON file may hold them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(rename = "Cmd", default)]
    pub cmd: Vec<String>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    /// OCI architecture (`amd64`, `arm64`, …); default: this machine's.
    #[serde(default)]
    pub architecture: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub compression: Compression,
    pub epoch: u64,
    /// Where `/nix/store` is read from (`/` for the real store).
    pub store_root: PathBuf,
    pub tag: String,
    /// A directory whose contents become the top layer.
    pub top_layer: Option<PathBuf>,
}

/// One layer of the written image.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenLayer {
    #[serde(flatten)]
    pub blob: CachedLayer,
    pub description: String,
    pub paths: usize,
    /// Found in the layer cache: nothing was read or written.
    pub reused: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub manifest_digest: String,
    pub tag: String,
    pub layers: Vec<WrittenLayer>,
}

/// The epoch from `SOURCE_DATE_EPOCH`, else 1.
pub fn source_date_epoch() -> Result<u64, ImageError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse().map_err(|_| ImageError::Config(format!("SOURCE_DATE_EPOCH: expected seconds since 1970, got `{v}`"))),
        Err(_) => Ok(1),
    }
}

/// Writes the image of `closure`, laid out as `layers` (bottom first), into the OCI layout
/// directory `oci` (created if missing) under `opts.tag`.
pub fn write_oci(oci: &Path, closure: &Closure, layers: &[ImageLayer], runtime: &RuntimeConfig, opts: &WriteOptions) -> Result<Written, ImageError> {
    let arch = architecture(runtime)?;
    std::fs::create_dir_all(oci).map_err(|e| ImageError::io(oci.display(), e))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(oci, cap_std::ambient_authority()).map_err(|e| ImageError::io(oci.display(), e))?;
    let dir = OciDir::ensure(dir)?;
    let settings = format!("{:?}\0{}\0{}", opts.compression, opts.epoch, opts.store_root.display());
    let mut written: Vec<WrittenLayer> = layers
        .par_iter()
        .map(|l| {
            let content: Vec<String> = sorted_paths(&l.paths);
            let key = cache::key(&content, &settings);
            let (blob, reused) = match cache::lookup(oci, &key) {
                Some(hit) => (hit, true),
                None => {
                    let blob = write_blob(&dir, opts.compression, |w| layer_tar::write_store_layer(w, &l.paths, &opts.store_root, opts.epoch).map(drop))?;
                    cache::store(oci, &key, &blob)?;
                    (blob, false)
                }
            };
            Ok(WrittenLayer { blob, description: l.description.clone(), paths: l.paths.len(), reused })
        })
        .collect::<Result<_, ImageError>>()?;
    if let Some(top) = &opts.top_layer {
        let blob = write_blob(&dir, opts.compression, |w| layer_tar::write_dir_layer(w, top, opts.epoch).map(drop))?;
        written.push(WrittenLayer { blob, description: format!("top layer from {}", top.display()), paths: 0, reused: false });
    }
    let manifest_digest = write_manifest(&dir, closure, layers, &written, runtime, arch, opts)?;
    Ok(Written { manifest_digest, tag: opts.tag.clone(), layers: written })
}

fn sorted_paths(paths: &[StorePath]) -> Vec<String> {
    let mut v: Vec<String> = paths.iter().map(|p| p.as_str().to_string()).collect();
    v.sort();
    v
}

/// Writes one layer blob, hashing the tar and the blob as `fill` writes the tar.
fn write_blob(dir: &OciDir, compression: Compression, fill: impl FnOnce(&mut dyn Write) -> Result<(), ImageError>) -> Result<CachedLayer, ImageError> {
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
    Ok(CachedLayer {
        digest: desc.digest().to_string(),
        size: desc.size(),
        media_type: desc.media_type().to_string(),
        diff_id: layer.uncompressed_sha256_as_digest().to_string(),
    })
}

fn descriptor(b: &CachedLayer) -> Result<Descriptor, ImageError> {
    Ok(DescriptorBuilder::default().media_type(MediaType::from(b.media_type.as_str())).digest(Digest::from_str(&b.digest)?).size(b.size).build()?)
}

fn write_manifest(dir: &OciDir, closure: &Closure, layers: &[ImageLayer], written: &[WrittenLayer], runtime: &RuntimeConfig, arch: Arch, opts: &WriteOptions) -> Result<String, ImageError> {
    let created = chrono::DateTime::from_timestamp(opts.epoch as i64, 0)
        .ok_or_else(|| ImageError::Config(format!("epoch {} is out of range", opts.epoch)))?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut manifest = dir.new_empty_manifest()?.build()?;
    let mut history = vec![];
    for (k, w) in written.iter().enumerate() {
        manifest.layers_mut().push(descriptor(&w.blob)?);
        let comment = layers.get(k).map(|l| sorted_paths(&l.paths).join(" "));
        history.push(HistoryBuilder::default().created(created.clone()).created_by(format!("hints: {}", w.description)).comment(comment.unwrap_or_default()).build()?);
    }
    let diff_ids: Vec<String> = written.iter().map(|w| w.blob.diff_id.clone()).collect();
    let mut labels: HashMap<String, String> = runtime.labels.clone().into_iter().collect();
    labels.insert(CLOSURE_LABEL.to_string(), closure_graph(closure));
    let mut config = ConfigBuilder::default().labels(labels).env(runtime.env.clone());
    if !runtime.cmd.is_empty() {
        config = config.cmd(runtime.cmd.clone());
    }
    if !runtime.entrypoint.is_empty() {
        config = config.entrypoint(runtime.entrypoint.clone());
    }
    if let Some(wd) = &runtime.working_dir {
        config = config.working_dir(wd.clone());
    }
    let image_config = ImageConfigurationBuilder::default()
        .architecture(arch.clone())
        .os(Os::Linux)
        .created(created)
        .config(config.build()?)
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build()?)
        .history(history)
        .build()?;
    let platform = PlatformBuilder::default().architecture(arch).os(Os::Linux).build()?;
    let desc = dir.insert_manifest_and_config(manifest, image_config, Some(&opts.tag), platform)?;
    Ok(desc.digest().to_string())
}

fn architecture(runtime: &RuntimeConfig) -> Result<Arch, ImageError> {
    let name = match runtime.architecture.as_deref() {
        Some(a) => a,
        None => match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        },
    };
    match Arch::from(name) {
        Arch::Other(o) => Err(ImageError::Config(format!("architecture: `{o}` is not an OCI architecture (amd64, arm64, …)"))),
        a => Ok(a),
    }
}

/// The closure as compact JSON: `[[path, narSize, [reference indices]], …]` in the closure's
/// index order, which is path order.
fn closure_graph(closure: &Closure) -> String {
    let rows: Vec<serde_json::Value> = (0..closure.len()).map(|n| serde_json::json!([closure.path(n).as_str(), closure.nar_size(n), closure.refs(n)])).collect();
    serde_json::to_string(&rows).expect("plain JSON")
}
