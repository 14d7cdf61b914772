//! Writing the image: reproducible OCI images from a closure and its layers (`hints image`).
//!
//! # Objective
//! Turn the layers a strategy chose into an image a registry and a container runtime accept,
//! such that equal path sets always give byte-identical layers (so a layer shared by two
//! images, or by two revisions of one, has one digest and is pulled once), and a rebuild costs
//! what changed, not the image's size.
//!
//! # Definitions
//! - A *layer* is a set of store paths, or for the top (customisation) layer a directory; its
//!   tar is defined by `layer_tar` (fixed order, owner, modes and times; nothing of the host).
//! - The *diff_id* is the SHA-256 of the uncompressed tar, the *digest* that of the blob as
//!   stored (gzip, zstd or plain). Both are computed in one pass while the tar is written
//!   (`ocidir`'s layer writers, or `blob::hash`, hash before and after the compressor), never
//!   by reading back.
//! - The *epoch* is every entry's time and the image's `created`: `SOURCE_DATE_EPOCH`, else 1
//!   (as in the Nix store).
//! - A [`Description`] is the image without its layer bytes: every layer's source, digest, size
//!   and diff_id, and the full config. It is what a Nix build writes (`imageFromHints` in
//!   `nix/lib.nix`): the store is not copied into a tarball at build time, and [`copy`]
//!   materialises the layers from the store later, checking every digest.
//!
//! # Algorithm
//! 1. Every layer is produced by `materialise`: a blob the directory already holds is reused;
//!    a store layer found in the directory's layer cache ([`cache`]: keyed by its sorted paths
//!    and the writing settings) is reused without reading a file of the store; otherwise its tar
//!    is written into a temporary blob that is renamed to its digest, and cached. Layers are
//!    produced in parallel (rayon) and collected in layer order, so the output does not depend
//!    on the thread count.
//! 2. With an expected digest (copying a description), a blob that comes out different is an
//!    error and no manifest is written: the store no longer holds what the description was
//!    made from.
//! 3. The config (`config::image_config`) holds the runtime settings, the diff_ids, one
//!    history entry per layer naming its hint group (or reason) and its store paths, and the
//!    closure graph as the label [`CLOSURE_LABEL`], so the image can be scanned later without
//!    guessing. The manifest and config are canonical JSON; `index.json` is replaced
//!    atomically, tagging the manifest.

pub mod archive;
mod blob;
pub mod cache;
mod config;
mod layer_tar;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

use hints_format::StorePath;
use layering_core::Closure;
use ocidir::oci_spec::image::ImageConfiguration;
use ocidir::{cap_std, OciDir};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use cache::CachedLayer;

/// The config label that holds the closure graph: compact JSON, a list of
/// `[store path, narSize, [indices of references in this list]]`.
pub const CLOSURE_LABEL: &str = "io.github.hints.closure.v1";

/// The version of the [`Description`] format.
pub const DESCRIPTION_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
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
    #[error("{layer}: the description says {expected}, the store now gives {found}; the store paths changed since the description was made")]
    Mismatch { layer: String, expected: String, found: String },
}

impl ImageError {
    pub(crate) fn io(what: impl Display, source: std::io::Error) -> Self {
        ImageError::Io { what: what.to_string(), error: source }
    }
}

/// How layer blobs are compressed. gzip and zstd are deterministic at a fixed level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Where a layer's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Absolute store paths, sorted.
    StorePaths(Vec<String>),
    /// A directory whose contents are the layer (the top layer), permissions kept.
    Directory(PathBuf),
}

/// One layer to produce: its source, and why it exists (a hint group, a strategy's reason).
#[derive(Debug, Clone)]
pub struct LayerPlan {
    pub source: Source,
    pub description: String,
}

/// A produced layer: its plan and its blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribedLayer {
    #[serde(flatten)]
    pub blob: CachedLayer,
    pub description: String,
    pub source: Source,
}

/// An image without its layer bytes (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    pub version: u32,
    pub compression: Compression,
    pub epoch: u64,
    pub layers: Vec<DescribedLayer>,
    pub config: ImageConfiguration,
}

impl LayerPlan {
    fn store(paths: impl IntoIterator<Item = String>, description: String) -> Self {
        let mut paths: Vec<String> = paths.into_iter().collect();
        paths.sort();
        LayerPlan { source: Source::StorePaths(paths), description }
    }

    /// The layers a strategy chose, each described by its reason, then the top layer.
    pub fn from_layers(layers: &[layering_core::Layer], top_layer: Option<&Path>) -> Vec<LayerPlan> {
        let mut plans: Vec<LayerPlan> = layers.iter().map(|l| Self::store(l.paths.iter().map(|p| p.as_str().to_string()), l.reason.to_string())).collect();
        plans.extend(top_layer.map(Self::top));
        plans
    }

    fn top(dir: &Path) -> LayerPlan {
        LayerPlan { source: Source::Directory(dir.to_path_buf()), description: format!("top layer from {}", dir.display()) }
    }

    /// The layers of a `store_layers` file (a JSON list of lists of store paths, bottom first,
    /// as `hints layer` writes), checked to hold every path of `closure` exactly once; then the
    /// top layer.
    pub fn from_store_layers(file: &str, text: &str, closure: &Closure, top_layer: Option<&Path>) -> Result<Vec<LayerPlan>, ImageError> {
        let bad = |what: String| ImageError::Layers { file: file.to_string(), what };
        let lists: Vec<Vec<String>> = serde_json::from_str(text).map_err(|e| bad(format!("expected a JSON list of lists of store paths: {e}")))?;
        let mut seen = vec![false; closure.len()];
        let mut plans = vec![];
        for (k, list) in lists.iter().enumerate() {
            if list.is_empty() {
                return Err(bad(format!("layer {} is empty", k + 1)));
            }
            let mut paths: Vec<&StorePath> = vec![];
            for p in list {
                let n = StorePath::parse(p).ok().and_then(|p| closure.index_of(&p)).ok_or_else(|| bad(format!("layer {}: {p} is not in the closure", k + 1)))?;
                if std::mem::replace(&mut seen[n], true) {
                    return Err(bad(format!("layer {}: {p} is in an earlier layer too", k + 1)));
                }
                paths.push(closure.path(n));
            }
            plans.push(Self::store(paths.into_iter().map(|p| p.as_str().to_string()), format!("layer {} of {file}", k + 1)));
        }
        if let Some(n) = seen.iter().position(|s| !s) {
            return Err(bad(format!("{} is in the closure but in no layer", closure.path(n))));
        }
        plans.extend(top_layer.map(Self::top));
        Ok(plans)
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

/// How the layers' bytes are made.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub compression: Compression,
    pub epoch: u64,
    /// Where `/nix/store` is read from (`/` for the real store).
    pub store_root: PathBuf,
}

impl WriteOptions {
    /// What shapes a layer's bytes besides its paths, for the cache key.
    fn settings(&self) -> String {
        format!("{:?}\0{}\0{}", self.compression, self.epoch, self.store_root.display())
    }

    fn fill(&self, source: &Source, w: &mut dyn Write) -> Result<(), ImageError> {
        match source {
            Source::StorePaths(paths) => layer_tar::write_store_layer(w, paths, &self.store_root, self.epoch).map(drop),
            Source::Directory(dir) => layer_tar::write_dir_layer(w, dir, self.epoch).map(drop),
        }
    }
}

/// One layer of the written image.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenLayer {
    #[serde(flatten)]
    pub blob: CachedLayer,
    pub description: String,
    /// Store paths in the layer (0 for a directory layer).
    pub paths: usize,
    /// Already in the directory (its blob, or its layer cache entry): nothing was read or written.
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

/// Writes the image of `closure`, laid out as `plans` (bottom first), into the OCI layout
/// directory `oci` (created if missing) under `tag`.
pub fn write_oci(oci: &Path, tag: &str, closure: &Closure, plans: &[LayerPlan], runtime: &RuntimeConfig, opts: &WriteOptions) -> Result<Written, ImageError> {
    config::architecture(runtime)?;
    let dir = open(oci)?;
    let produced: Vec<(DescribedLayer, bool)> = plans.par_iter().map(|p| materialise(oci, &dir, &p.source, &p.description, None, opts)).collect::<Result<_, _>>()?;
    let layers: Vec<DescribedLayer> = produced.iter().map(|(l, _)| l.clone()).collect();
    let config = config::image_config(closure, &layers, runtime, opts.epoch)?;
    let manifest_digest = config::finish(&dir, config, &layers, tag)?;
    Ok(written(manifest_digest, tag, produced))
}

/// The description of that image: every layer hashed, nothing written.
pub fn describe(closure: &Closure, plans: &[LayerPlan], runtime: &RuntimeConfig, opts: &WriteOptions) -> Result<Description, ImageError> {
    config::architecture(runtime)?;
    let layers: Vec<DescribedLayer> = plans
        .par_iter()
        .map(|p| Ok(DescribedLayer { blob: blob::hash(opts.compression, |w| opts.fill(&p.source, w))?, description: p.description.clone(), source: p.source.clone() }))
        .collect::<Result<_, ImageError>>()?;
    let config = config::image_config(closure, &layers, runtime, opts.epoch)?;
    Ok(Description { version: DESCRIPTION_VERSION, compression: opts.compression, epoch: opts.epoch, layers, config })
}

/// Materialises a description into `oci` under `tag`, reading the layers from the store under
/// `store_root` and checking every digest.
pub fn copy(desc: &Description, oci: &Path, tag: &str, store_root: &Path) -> Result<Written, ImageError> {
    if desc.version != DESCRIPTION_VERSION {
        return Err(ImageError::Config(format!("description version {} (this hints reads version {DESCRIPTION_VERSION})", desc.version)));
    }
    for (k, l) in desc.layers.iter().enumerate() {
        let Source::StorePaths(paths) = &l.source else { continue };
        if let Some(p) = paths.iter().find(|p| StorePath::parse(p).is_err()) {
            return Err(ImageError::Config(format!("layer {}: `{p}` is not a store path", k + 1)));
        }
    }
    let opts = WriteOptions { compression: desc.compression, epoch: desc.epoch, store_root: store_root.to_path_buf() };
    let dir = open(oci)?;
    let produced: Vec<(DescribedLayer, bool)> = desc.layers.par_iter().map(|l| materialise(oci, &dir, &l.source, &l.description, Some(&l.blob), &opts)).collect::<Result<_, _>>()?;
    let manifest_digest = config::finish(&dir, desc.config.clone(), &desc.layers, tag)?;
    Ok(written(manifest_digest, tag, produced))
}

fn open(oci: &Path) -> Result<OciDir, ImageError> {
    std::fs::create_dir_all(oci).map_err(|e| ImageError::io(oci.display(), e))?;
    let dir = cap_std::fs::Dir::open_ambient_dir(oci, cap_std::ambient_authority()).map_err(|e| ImageError::io(oci.display(), e))?;
    Ok(OciDir::ensure(dir)?)
}

/// One layer into `dir` (see the module doc, steps 1 and 2); true when it was reused.
fn materialise(oci: &Path, dir: &OciDir, source: &Source, description: &str, expected: Option<&CachedLayer>, opts: &WriteOptions) -> Result<(DescribedLayer, bool), ImageError> {
    let described = |blob: CachedLayer| DescribedLayer { blob, description: description.to_string(), source: source.clone() };
    if let Some(e) = expected.filter(|e| cache::has_blob(oci, e)) {
        return Ok((described(e.clone()), true));
    }
    let key = match source {
        Source::StorePaths(paths) => Some(cache::key(paths, &opts.settings())),
        Source::Directory(_) => None,
    };
    if let Some(hit) = key.as_deref().and_then(|k| cache::lookup(oci, k)).filter(|hit| expected.is_none_or(|e| e == hit)) {
        return Ok((described(hit), true));
    }
    let blob = blob::write(dir, opts.compression, |w| opts.fill(source, w))?;
    if let Some(e) = expected.filter(|e| **e != blob) {
        return Err(ImageError::Mismatch { layer: description.to_string(), expected: e.digest.clone(), found: blob.digest });
    }
    if let Some(k) = &key {
        cache::store(oci, k, &blob)?;
    }
    Ok((described(blob), false))
}

fn written(manifest_digest: String, tag: &str, produced: Vec<(DescribedLayer, bool)>) -> Written {
    let layers = produced
        .into_iter()
        .map(|(l, reused)| {
            let paths = match &l.source {
                Source::StorePaths(p) => p.len(),
                Source::Directory(_) => 0,
            };
            WrittenLayer { blob: l.blob, description: l.description, paths, reused }
        })
        .collect();
    Written { manifest_digest, tag: tag.to_string(), layers }
}
