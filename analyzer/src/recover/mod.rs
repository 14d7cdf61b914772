//! Recovering the closure graph of a built image (`hints image closure`, `hints scan --oci`).
//!
//! # Objective
//! Learn from images that are already built, whose closures nobody recorded: give each image's
//! store paths with the `narSize`, `narHash` and references `nix path-info` would print.
//!
//! # Definitions
//! - The *embedded graph* is the config label `hints image` writes
//!   ([`crate::image::CLOSURE_LABEL`]): sizes and references, no hashes.
//! - A layer's *store entries* are its tar entries under `nix/store/` (a leading `./` or `/` is
//!   ignored); other entries (a customisation layer's `/etc`) are not part of the closure.
//!
//! # Algorithm
//! 1. Open the image: the OCI directory's manifest for the tag (the only one when no tag is
//!    given), and its config.
//! 2. Each layer is read in parallel with the others, twice side by side: once through SHA-256
//!    (checked against the manifest's digest once both reads end) and once through the
//!    decompressor its media type names. A whiteout, or a store path that a second layer also writes, is an error naming
//!    the layer and the path.
//! 3. Each store path's NAR is written into SHA-256 as its entries come ([`stream`]), for
//!    `narSize` and `narHash`, and its file contents and symlink targets are scanned for
//!    32-character Nix base32 windows ([`refs`]). A path whose entries are not in NAR order
//!    (directory order, as plain `tar` writes), or that holds a hard link, is read again from
//!    the verified blob, as one file tree ([`nar`]; a hard link is a copy of the file it names).
//!    Once every layer is read, the windows that are the hash part of a store path of the image
//!    are its references, as Nix's own scanner finds them.
//! 4. With the embedded graph and without `from_layers`, that graph is the answer; `verify`
//!    recovers from the layers as well and requires the same paths, sizes and references.
//! 5. A closure recovered from the layers is checked against the records its builder left in
//!    the image, where there are any: dockerTools' `store paths:` history comments and a Nix
//!    database ([`crosscheck`]).
//!
//! Memory: a layer in NAR order (what `hints image`, dockerTools and `tar --sort=name` write)
//! is read with a 128 KiB buffer per layer being read, whatever its files' sizes; only the
//! paths of a layer that are read again whole are held, with the files their hard links name.

pub mod crosscheck;
pub mod nar;
pub mod refs;
pub mod registry;
pub mod stream;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use hints_format::StorePath;
use ocidir::oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::image::CLOSURE_LABEL;
use crosscheck::{cross_check, CrossChecks, NIX_DB};
use nar::Node;
use stream::{OutOfOrder, PathStream};

/// The store directory every image path lives under.
pub(crate) const STORE: &str = "/nix/store/";

/// Why an image's closure could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The OCI directory, its index, manifest or config.
    #[error("{dir}: {what}")]
    Image { dir: String, what: String },
    /// A blob that cannot be read as what the manifest says.
    #[error("blob {digest}: {what}")]
    Blob { digest: String, what: String },
    /// A tar entry that cannot be part of a Nix image.
    #[error("layer {digest}: {entry}: {what}")]
    Entry { digest: String, entry: String, what: String },
    /// No store paths at all.
    #[error("{0}: no /nix/store paths in any layer: not an image built from a Nix closure")]
    NotNix(String),
    /// A registry that cannot be read, or a reference to one that is not allowed.
    #[error("{reference}: {what}")]
    Registry { reference: String, what: String },
    /// The embedded graph and the layers disagree.
    #[error("{dir}: the embedded closure graph and the layers disagree: {what}")]
    Disagree { dir: String, what: String },
    /// A record the image's builder left (a history comment, a Nix database) and the layers
    /// disagree.
    #[error("{dir}: {record} disagrees with the layers: {what}")]
    Contradicted { dir: String, record: String, what: String },
}

/// One store path as `nix path-info --json` (Nix 2.8's array form) prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRecord {
    /// The store path.
    pub path: String,
    /// `sha256-…` (SRI), when recovered from the layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nar_hash: Option<String>,
    /// Bytes of the NAR.
    pub nar_size: u64,
    /// Store paths it references (itself included when it holds its own hash), sorted.
    pub references: Vec<String>,
}

/// An image's closure, and what it was checked against.
#[derive(Debug)]
pub struct ImageClosure {
    /// Its store paths, sorted.
    pub records: Vec<PathRecord>,
    /// The builder's records the layers were checked against; `None` when the embedded graph
    /// was taken without reading the layers.
    pub checked: Option<CrossChecks>,
}

/// An OCI image opened for reading.
pub struct Image {
    dir: PathBuf,
    manifest: ImageManifest,
    config: ImageConfiguration,
}

impl Image {
    /// The image tagged `tag` in the OCI directory `dir` (its only image when `tag` is `None`).
    pub fn open(dir: &Path, tag: Option<&str>) -> Result<Image, RecoverError> {
        let bad = |what: String| RecoverError::Image { dir: dir.display().to_string(), what };
        let index: ImageIndex = read_json(&dir.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
        let tagged = |d: &&Descriptor| d.annotations().as_ref().and_then(|a| a.get("org.opencontainers.image.ref.name")).map(String::as_str) == tag;
        let manifests: Vec<&Descriptor> = index.manifests().iter().filter(|d| tag.is_none() || tagged(d)).collect();
        let desc = match (manifests.as_slice(), tag) {
            ([one], _) => *one,
            ([], Some(t)) => return Err(bad(format!("no image tagged `{t}`"))),
            ([], None) => return Err(bad("the index lists no image".into())),
            (_, _) => return Err(bad(format!("{} images; name one as oci:DIR:TAG", manifests.len()))),
        };
        let manifest: ImageManifest = read_json(&blob_path(dir, desc.digest().as_ref())?).map_err(|e| bad(format!("manifest {}: {e}", desc.digest())))?;
        let config: ImageConfiguration = read_json(&blob_path(dir, manifest.config().digest().as_ref())?).map_err(|e| bad(format!("config {}: {e}", manifest.config().digest())))?;
        Ok(Image { dir: dir.to_path_buf(), manifest, config })
    }

    /// The image's creation time, RFC 3339, where its config says.
    pub fn created(&self) -> Option<&str> {
        self.config.created().as_deref()
    }

    /// The closure: the embedded graph unless `from_layers`; with `verify`, checked against the
    /// layers.
    pub fn closure(&self, from_layers: bool, verify: bool) -> Result<ImageClosure, RecoverError> {
        let embedded = if from_layers { None } else { self.embedded()? };
        match embedded {
            Some(graph) if verify => {
                let layers = self.from_layers()?;
                let strip = |v: &[PathRecord]| v.iter().map(|p| PathRecord { nar_hash: None, ..p.clone() }).collect::<Vec<_>>();
                if strip(&layers.records) != graph {
                    return Err(RecoverError::Disagree { dir: self.dir.display().to_string(), what: first_difference(&graph, &strip(&layers.records)) });
                }
                Ok(layers)
            }
            Some(records) => Ok(ImageClosure { records, checked: None }),
            None => self.from_layers(),
        }
    }

    /// The graph `hints image` embedded, if any.
    fn embedded(&self) -> Result<Option<Vec<PathRecord>>, RecoverError> {
        let labels = self.config.config().as_ref().and_then(|c| c.labels().as_ref());
        let Some(text) = labels.and_then(|l| l.get(CLOSURE_LABEL)) else { return Ok(None) };
        let bad = |what: String| RecoverError::Image { dir: self.dir.display().to_string(), what: format!("label {CLOSURE_LABEL}: {what}") };
        let rows: Vec<(String, u64, Vec<usize>)> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let paths: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        rows.iter()
            .map(|(path, size, refs)| {
                let references = refs.iter().map(|&r| paths.get(r).map(|p| p.to_string()).ok_or_else(|| bad(format!("{path} references index {r}, past the end")))).collect::<Result<_, _>>()?;
                Ok(PathRecord { path: path.clone(), nar_hash: None, nar_size: *size, references })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Recovers the closure from the layers' files and checks it against the builder's records
    /// (see the module doc).
    pub fn from_layers(&self) -> Result<ImageClosure, RecoverError> {
        let layers: Vec<LayerPaths> = self.manifest.layers().par_iter().map(|d| read_layer(&self.dir, d)).collect::<Result<_, _>>()?;
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for layer in &layers {
            for base in layer.paths.keys() {
                if let Some(first) = owner.insert(base, &layer.digest) {
                    return Err(RecoverError::Entry { digest: layer.digest.clone(), entry: format!("nix/store/{base}"), what: format!("also written by layer {first}: a store path is written once") });
                }
            }
        }
        if owner.is_empty() {
            return Err(RecoverError::NotNix(self.dir.display().to_string()));
        }
        let mut bases: Vec<&str> = owner.keys().copied().collect();
        bases.sort_unstable();
        let hash_of = |b: &str| b.split_once('-').map_or(b, |(h, _)| h).to_string();
        let by_hash: HashMap<String, &str> = bases.iter().map(|b| (hash_of(b), *b)).collect();
        let records = layers.iter().flat_map(|l| l.paths.iter()).map(|(base, p)| {
            let mut references: Vec<String> = p.windows.iter().filter_map(|w| by_hash.get(std::str::from_utf8(w).ok()?)).map(|b| format!("{STORE}{b}")).collect();
            references.sort_unstable();
            PathRecord { path: format!("{STORE}{base}"), nar_hash: Some(p.nar_hash.clone()), nar_size: p.nar_size, references }
        });
        let mut records: Vec<PathRecord> = records.collect();
        records.sort_by(|a, b| a.path.cmp(&b.path));
        let history = self.config.history().as_deref().unwrap_or_default();
        let checked = cross_check(&layers, history, &records).map_err(|c| RecoverError::Contradicted { dir: self.dir.display().to_string(), record: c.record, what: c.what })?;
        Ok(ImageClosure { records, checked: Some(checked) })
    }
}

/// The tag a converted docker archive gets in its OCI directory.
pub const ARCHIVE_TAG: &str = "archive";

/// Converts a docker archive into the OCI directory `dir` (tag [`ARCHIVE_TAG`]) with skopeo;
/// returns `dir`.
pub fn from_docker_archive(archive: &Path, dir: &Path) -> Result<PathBuf, RecoverError> {
    let err = |what: String| RecoverError::Image { dir: archive.display().to_string(), what };
    if !archive.is_file() {
        return Err(err("no such file".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", &format!("docker-archive:{}", archive.display()), &format!("oci:{}:{ARCHIVE_TAG}", dir.display())])
        .output()
        .map_err(|e| err(format!("cannot run skopeo ({e}); install it (Debian: skopeo)")))?;
    if !out.status.success() {
        return Err(err(format!("not a docker archive skopeo reads: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(dir.to_path_buf())
}

fn first_difference(a: &[PathRecord], b: &[PathRecord]) -> String {
    if a.len() != b.len() {
        return format!("{} paths embedded, {} in the layers", a.len(), b.len());
    }
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) if x.path != y.path => format!("{} embedded where the layers hold {}", x.path, y.path),
        Some((x, y)) if x.nar_size != y.nar_size => format!("{}: narSize {} embedded, {} in the layers", x.path, x.nar_size, y.nar_size),
        Some((x, _)) => format!("{}: different references", x.path),
        None => "nothing".into(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, String> {
    let text = std::fs::read(file).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, RecoverError> {
    let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let hex = hex.ok_or_else(|| RecoverError::Blob { digest: digest.to_string(), what: "not a sha256 digest".into() })?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// One store path of a layer, hashed and scanned.
pub struct Recovered {
    /// Bytes of its NAR serialisation.
    pub nar_size: u64,
    /// `sha256-<base64>` of its NAR serialisation, as Nix writes narHash.
    pub nar_hash: String,
    /// Every 32-character Nix base32 window of its contents and symlink targets.
    pub windows: HashSet<[u8; 32]>,
}

/// The store paths of one layer.
pub struct LayerPaths {
    /// The layer blob's digest.
    pub digest: String,
    /// Store path base name (`HASH-name`) → what its files give.
    pub paths: BTreeMap<String, Recovered>,
    /// The Nix database file ([`NIX_DB`]), if this layer writes one.
    pub nix_db: Option<Vec<u8>>,
}

fn read_layer(dir: &Path, desc: &Descriptor) -> Result<LayerPaths, RecoverError> {
    let digest = desc.digest().to_string();
    let blob_err = |what: String| RecoverError::Blob { digest: digest.clone(), what };
    let open = || -> Result<io::BufReader<std::fs::File>, RecoverError> {
        let file = std::fs::File::open(blob_path(dir, &digest)?).map_err(|e| blob_err(e.to_string()))?;
        Ok(io::BufReader::with_capacity(1 << 17, file))
    };
    // The blob's digest and its entries are two reads of the same bytes, side by side: a layer
    // takes the time of the slower one, not of both.
    let (found, streamed) = rayon::join(
        || -> Result<String, RecoverError> {
            let mut sha = Sha256::new();
            io::copy(&mut open()?, &mut sha).map_err(|e| blob_err(e.to_string()))?;
            Ok(format!("sha256:{:x}", sha.finalize()))
        },
        || stream_entries(decoder(desc.media_type(), &mut open()?, &digest)?, &digest),
    );
    let found = found?;
    if found != digest {
        return Err(blob_err(format!("its bytes hash to {found}: the blob is damaged or not the one the manifest names")));
    }
    let mut again = None;
    streamed?.complete(&digest, || {
        let reader = again.insert(open()?);
        decoder(desc.media_type(), reader, &digest)
    })
}

/// The decompressor a layer's media type names, over its blob's bytes.
fn decoder<'r>(media_type: &MediaType, blob: &'r mut dyn Read, digest: &str) -> Result<Box<dyn Read + 'r>, RecoverError> {
    let blob_err = |what: String| RecoverError::Blob { digest: digest.to_string(), what };
    Ok(match media_type {
        // Several gzip members (parallel compressors write them) are one stream.
        MediaType::ImageLayerGzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        MediaType::ImageLayerZstd => Box::new(zstd::Decoder::new(blob).map_err(|e| blob_err(e.to_string()))?),
        MediaType::ImageLayer => Box::new(blob),
        other => return Err(blob_err(format!("media type {other} is not a layer this reads (tar, tar+gzip, tar+zstd)"))),
    })
}

/// The store paths an uncompressed layer tar writes, each with its NAR size and hash and the
/// hash-part windows of its contents; `digest` names the blob in errors.
pub fn read_layer_tar(tar: &[u8], digest: &str) -> Result<LayerPaths, RecoverError> {
    stream_entries(tar, digest)?.complete(digest, || Ok(Box::new(tar)))
}

/// A layer's first read: every store path whose entries came in NAR order, hashed as they
/// came ([`stream`]), and those that must be read again, whole.
struct Streamed {
    paths: BTreeMap<String, Recovered>,
    /// Paths out of NAR order, or holding a hard link.
    whole: BTreeSet<String>,
    /// The files hard links of those paths name (paths from the image root).
    link_targets: HashSet<Vec<u8>>,
    nix_db: Option<Vec<u8>>,
}

impl Streamed {
    /// The layer's paths, reading the tar `again` for the paths that did not stream.
    fn complete<'r>(mut self, digest: &str, again: impl FnOnce() -> Result<Box<dyn Read + 'r>, RecoverError>) -> Result<LayerPaths, RecoverError> {
        if !self.whole.is_empty() {
            let mut trees = Trees::default();
            buffer_entries(again()?, digest, &self.whole, &self.link_targets, &mut trees)?;
            self.paths.extend(trees.roots.into_par_iter().map(|(base, node)| (base, recovered(&node))).collect::<Vec<_>>());
        }
        Ok(LayerPaths { digest: digest.to_string(), paths: self.paths, nix_db: self.nix_db })
    }
}

thread_local! {
    /// The buffer file contents stream through, one per thread (layers are read in parallel).
    static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 17]);
}

/// Reads a layer once, streaming each store path's NAR (see [`stream`]).
fn stream_entries(r: impl Read, digest: &str) -> Result<Streamed, RecoverError> {
    let mut streams: BTreeMap<String, PathStream> = BTreeMap::new();
    let mut whole: BTreeSet<String> = BTreeSet::new();
    let mut link_targets = HashSet::new();
    let nix_db = for_each_store_entry(r, digest, |e, name, base, at| {
        if whole.contains(&base) {
            return Ok(());
        }
        let stream = streams.entry(base.clone()).or_default();
        let kind = e.header().entry_type();
        let in_order = match kind {
            tar::EntryType::Directory => stream.directory(&at).map(Ok),
            tar::EntryType::Symlink => stream.symlink(&at, &link_target(e, name, digest)?).map(Ok),
            // The target's bytes were not kept: the path is read again, whole.
            tar::EntryType::Link => {
                link_targets.insert(from_root(&link_target(e, name, digest)?).to_vec());
                Err(OutOfOrder)
            }
            _ => {
                let size = e.size();
                stream.file(&at, executable(e, name, digest)?, size).map(|()| -> Result<(), RecoverError> {
                    // The header's size is only a claim until the bytes are read.
                    CHUNK.with_borrow_mut(|chunk| {
                        let mut read = 0u64;
                        while read < size {
                            let n = e.read(chunk).map_err(|err| truncated(name, digest, err))?;
                            if n == 0 {
                                return Err(truncated(name, digest, io::ErrorKind::UnexpectedEof.into()));
                            }
                            stream.contents(&chunk[..n]);
                            read += n as u64;
                        }
                        Ok(())
                    })?;
                    stream.end_file(&at, size);
                    Ok(())
                })
            }
        };
        match in_order {
            Ok(read) => read,
            Err(OutOfOrder) => {
                streams.remove(&base);
                whole.insert(base);
                Ok(())
            }
        }
    })?;
    let paths = streams.into_iter().map(|(base, s)| (base, s.finish())).collect();
    Ok(Streamed { paths, whole, link_targets, nix_db })
}

/// Reads the trees of the store paths `wanted` whole, and the files `link_targets` name.
fn buffer_entries(r: impl Read, digest: &str, wanted: &BTreeSet<String>, link_targets: &HashSet<Vec<u8>>, trees: &mut Trees) -> Result<(), RecoverError> {
    let mut targets: HashMap<Vec<u8>, Node> = HashMap::new();
    for_each_store_entry(r, digest, |e, name, base, at| {
        let kind = e.header().entry_type();
        let target_of_link = kind.is_file() && link_targets.contains(from_root(name));
        if !wanted.contains(&base) && !target_of_link {
            return Ok(());
        }
        let entry_err = |what: String| entry_error(digest, name, what);
        let node = match kind {
            tar::EntryType::Directory => Node::Directory(BTreeMap::new()),
            tar::EntryType::Symlink => Node::Symlink { target: link_target(e, name, digest)? },
            tar::EntryType::Link => {
                let target = link_target(e, name, digest)?;
                let (tb, tc) = store_entry(&target).ok_or_else(|| entry_err("a hard link to a file outside the store".into()))?;
                match trees.get(&tb, &tc).or_else(|| targets.get(from_root(&target))) {
                    Some(file @ Node::File { .. }) => file.clone(),
                    _ => return Err(entry_err("a hard link to something not a file earlier in this layer".into())),
                }
            }
            _ => Node::File { executable: executable(e, name, digest)?, contents: read_contents(e, name, digest)? },
        };
        if target_of_link {
            targets.insert(from_root(name).to_vec(), node.clone());
        }
        if wanted.contains(&base) {
            trees.insert(&base, &at, node).map_err(entry_err)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The store paths' trees of one layer, as its entries come.
#[derive(Default)]
struct Trees {
    roots: BTreeMap<String, Node>,
}

impl Trees {
    /// Inserts `node` at `components` under the store path `base` (empty: the path itself).
    fn insert(&mut self, base: &str, components: &[&[u8]], node: Node) -> Result<(), String> {
        if components.is_empty() {
            return match (self.roots.get_mut(base), node) {
                // A directory entry after its children (some writers order so): keep the children.
                (Some(Node::Directory(_)), Node::Directory(_)) => Ok(()),
                (Some(_), _) => Err("written twice in one layer".into()),
                (None, node) => {
                    self.roots.insert(base.to_string(), node);
                    Ok(())
                }
            };
        }
        let mut at = self.roots.entry(base.to_string()).or_insert_with(|| Node::Directory(BTreeMap::new()));
        for (k, c) in components.iter().enumerate() {
            let Node::Directory(entries) = at else { return Err("inside something that is not a directory".into()) };
            if k + 1 == components.len() {
                match (entries.get(*c), &node) {
                    (Some(Node::Directory(_)), Node::Directory(_)) => {}
                    (Some(_), _) => return Err("written twice in one layer".into()),
                    (None, _) => {
                        entries.insert(c.to_vec(), node);
                    }
                }
                return Ok(());
            }
            at = entries.entry(c.to_vec()).or_insert_with(|| Node::Directory(BTreeMap::new()));
        }
        Ok(())
    }

    /// The node at a store-relative path (for hard links).
    fn get(&self, base: &str, components: &[&[u8]]) -> Option<&Node> {
        let mut at = self.roots.get(base)?;
        for c in components {
            let Node::Directory(entries) = at else { return None };
            at = entries.get(*c)?;
        }
        Some(at)
    }
}

/// An entry's path relative to the image root (a leading `./` or `/` dropped).
fn from_root(path: &[u8]) -> &[u8] {
    path.strip_prefix(b"./").or_else(|| path.strip_prefix(b"/")).unwrap_or(path)
}

/// `nix/store/BASE/REST…` as (BASE, REST components); `None` for entries outside the store and
/// for `nix/` and `nix/store/` themselves.
fn store_entry(path: &[u8]) -> Option<(String, Vec<&[u8]>)> {
    let rest = from_root(path).strip_prefix(b"nix/store/")?;
    let mut parts = rest.split(|&b| b == b'/').filter(|c| !c.is_empty());
    let base = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((base, parts.collect()))
}

/// Calls `each` for every entry of a layer tar under `nix/store/` with its store path base name
/// and components below it, after the checks every read makes: a whiteout, a name that is not a
/// store path, an entry kind a store cannot hold. Returns the Nix database file the layer
/// writes, if any.
fn for_each_store_entry<R: Read>(r: R, digest: &str, mut each: impl FnMut(&mut tar::Entry<'_, R>, &[u8], String, Vec<&[u8]>) -> Result<(), RecoverError>) -> Result<Option<Vec<u8>>, RecoverError> {
    let entry_err = |entry: &[u8], what: String| entry_error(digest, entry, what);
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(|e| RecoverError::Blob { digest: digest.to_string(), what: format!("not a tar: {e}") })?;
    let mut nix_db = None;
    for e in entries {
        let mut e = e.map_err(|e| RecoverError::Blob { digest: digest.to_string(), what: format!("truncated or malformed tar: {e}") })?;
        let name = e.path_bytes().into_owned();
        if name.rsplit(|&b| b == b'/').next().is_some_and(|last| last.starts_with(b".wh.")) {
            return Err(entry_err(&name, "a whiteout: this layer deletes a path, which a Nix image never does".into()));
        }
        if from_root(&name) == NIX_DB.as_bytes() && e.header().entry_type().is_file() {
            nix_db = Some(read_contents(&mut e, &name, digest)?);
            continue;
        }
        let Some((base, components)) = store_entry(&name) else { continue };
        if StorePath::parse(&format!("{STORE}{base}")).is_err() {
            return Err(entry_err(&name, format!("`{base}` is not a store path name")));
        }
        match e.header().entry_type() {
            tar::EntryType::Directory | tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Symlink | tar::EntryType::Link => {}
            other => return Err(entry_err(&name, format!("a {other:?} entry: a store holds only files, directories and symlinks"))),
        }
        each(&mut e, &name, base, components)?;
    }
    Ok(nix_db)
}

/// A regular file entry's bytes.
fn read_contents<R: Read>(e: &mut tar::Entry<'_, R>, name: &[u8], digest: &str) -> Result<Vec<u8>, RecoverError> {
    // The header's size is only a claim until the bytes are read.
    let mut contents = Vec::with_capacity(e.size().min(1 << 20) as usize);
    e.read_to_end(&mut contents).map_err(|err| truncated(name, digest, err))?;
    Ok(contents)
}

/// An error about the entry `entry` of the layer `digest`.
fn entry_error(digest: &str, entry: &[u8], what: String) -> RecoverError {
    RecoverError::Entry { digest: digest.to_string(), entry: String::from_utf8_lossy(entry).into_owned(), what }
}

fn truncated(name: &[u8], digest: &str, err: io::Error) -> RecoverError {
    entry_error(digest, name, format!("truncated: {err}"))
}

/// Whether a file entry has any execute bit.
fn executable<R: Read>(e: &tar::Entry<'_, R>, name: &[u8], digest: &str) -> Result<bool, RecoverError> {
    let mode = e.header().mode().map_err(|err| entry_error(digest, name, err.to_string()))?;
    Ok(mode & 0o111 != 0)
}

/// A symlink's or hard link's target.
fn link_target<R: Read>(e: &tar::Entry<'_, R>, name: &[u8], digest: &str) -> Result<Vec<u8>, RecoverError> {
    let kind = if e.header().entry_type() == tar::EntryType::Symlink { "a symlink" } else { "a hard link" };
    let target = e.link_name_bytes().ok_or_else(|| entry_error(digest, name, format!("{kind} without a target")))?;
    Ok(target.into_owned())
}

fn recovered(node: &Node) -> Recovered {
    let (nar_size, sha) = nar::nar_size_and_hash(node);
    let mut windows = HashSet::new();
    node.for_each_scanned(&mut |bytes| refs::windows(bytes, &mut windows));
    Recovered { nar_size, nar_hash: sri(sha), windows }
}

/// `sha256-<base64>`, as Nix writes narHash.
pub(crate) fn sri(sha: [u8; 32]) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0c8vhkd0xjaz0ib9cb7r8i6fb3dn0c1q-libfoo-1.0";
    const B: &str = "1q7sd4wskl3f8vlrafmgyyf7rmbyhs5q-app-2.1";

    /// The fuzz target's seed, as `fuzz/make-tar-seeds.py` writes it.
    #[test]
    fn a_layer_tar_gives_its_paths_and_the_hashes_inside_them() {
        let layer = read_layer_tar(&include_bytes!("../../../fuzz/corpus/layer_tar/two-paths.tar")[..], "sha256:seed").unwrap();
        assert_eq!(layer.paths.keys().collect::<Vec<_>>(), [A, B]);
        let windows = &layer.paths[B].windows;
        assert!(windows.contains(&A.as_bytes()[..32]), "app's script names libfoo");
        assert!(!layer.paths[A].windows.contains(&B.as_bytes()[..32]));
        // The hard link is a second copy of the script: app's NAR holds it twice.
        let script = "#!/bin/sh\nexec /nix/store/0c8vhkd0xjaz0ib9cb7r8i6fb3dn0c1q-libfoo-1.0/lib/libfoo.so\n".len() as u64;
        assert!(layer.paths[B].nar_size > 2 * script);
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(0);
            h.set_mode(0o555);
            match *link {
                "" => b.append_data(&mut h, name, &[][..]).unwrap(),
                link => b.append_link(&mut h, name, link).unwrap(),
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_path_whose_entries_are_not_in_nar_order_is_read_again_whole_to_the_same_hash() {
        let file = |name: &str, contents: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(contents.len() as u64);
            h.set_mode(0o444);
            (format!("nix/store/{A}/{name}"), h, contents.to_string())
        };
        let tar_of = |entries: &[(String, tar::Header, String)]| {
            let mut b = tar::Builder::new(Vec::new());
            for (name, h, contents) in entries {
                b.append_data(&mut h.clone(), name, contents.as_bytes()).unwrap();
            }
            b.into_inner().unwrap()
        };
        let (a, z) = (file("a", B), file("share/z", "zzz"));
        let sorted = read_layer_tar(&tar_of(&[a.clone(), z.clone()]), "sha256:s").unwrap();
        let unsorted = read_layer_tar(&tar_of(&[z, a]), "sha256:u").unwrap();
        let (x, y) = (&sorted.paths[A], &unsorted.paths[A]);
        assert_eq!((x.nar_size, &x.nar_hash, &x.windows), (y.nar_size, &y.nar_hash, &y.windows));
        assert!(x.windows.contains(&B.as_bytes()[..32]));
    }

    #[test]
    fn a_hard_link_to_a_directory_is_refused() {
        let dir = format!("nix/store/{A}/share");
        let tar = tar_of(&[(&dir, tar::EntryType::Directory, ""), (&format!("nix/store/{A}/again"), tar::EntryType::Link, &dir)]);
        let e = read_layer_tar(&tar[..], "sha256:x").err().unwrap();
        assert!(e.to_string().contains("not a file"), "{e}");
    }

    #[test]
    fn a_size_the_bytes_do_not_back_is_an_error_not_an_allocation() {
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("nix/store/{A}")).unwrap();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1 << 40);
        h.set_mode(0o444);
        h.set_cksum();
        let e = read_layer_tar(&h.as_bytes()[..], "sha256:x").err().unwrap();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
