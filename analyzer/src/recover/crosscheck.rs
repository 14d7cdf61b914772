//! Cross-checks of a recovered closure against what the image's builder recorded.
//!
//! # Objective
//! A closure recovered from the layers is computed, not read. Where the image also carries its
//! builder's own record of its store paths, the two must agree: a disagreement means a damaged
//! image or a wrong record, and it is an error that names both, never a silent choice.
//!
//! # Definitions
//! - A *store-paths comment* is the history comment nixpkgs' `dockerTools` (its
//!   `stream_layered_image.py`) writes for every layer: `store paths: ['/nix/store/…', …]`, a
//!   Python list. For a layer that holds store paths it lists exactly those. The customisation
//!   layer lists its own build output and base layers list `…/layer.tar`, none of which the layer
//!   holds as a store path, so a layer that holds no store path is not checked.
//! - An image's *Nix database* is `nix/var/nix/db/db.sqlite` in a layer (dockerTools'
//!   `includeNixDB`): Nix's `ValidPaths` (path, `hash` as `sha256:<hex>` or Nix base32, `narSize`)
//!   and `Refs` (referrer, reference) tables. Each row is a claim that the path is in the store
//!   with that content.
//!
//! # Algorithm
//! - Comments: the history entries that are not `empty_layer` are the manifest's layers, in
//!   order. When any of them is a store-paths comment, the counts must match, and every layer
//!   that holds store paths must hold exactly the ones its comment lists.
//! - Database: the file (from the last layer that writes it, as an overlay would show it) is
//!   opened in memory. Every path it registers must be a recovered path with the same `narHash`,
//!   `narSize` (where recorded) and references. A recovered path it does not register is allowed:
//!   a database may register less than the image holds.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use ocidir::oci_spec::image::History;
use rusqlite::{Connection, MAIN_DB};

use super::{sri, LayerPaths, PathRecord, STORE};

/// Where the Nix database sits in an image, relative to its root.
pub const NIX_DB: &str = "nix/var/nix/db/db.sqlite";

const COMMENT_PREFIX: &str = "store paths: ";

/// What a recovered closure was checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrossChecks {
    /// Layers whose store-paths comment was compared with their contents.
    pub comments: usize,
    /// Paths the image's Nix database registers, each compared with its recovery.
    pub registered: Option<usize>,
}

impl std::fmt::Display for CrossChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let comments = match self.comments {
            0 => "no store-paths history comments".to_string(),
            n => format!("the store-paths history comments of {n} layers agree"),
        };
        match self.registered {
            None => write!(f, "{comments}; no Nix database"),
            Some(n) => write!(f, "{comments}; the Nix database's {n} registered paths agree"),
        }
    }
}

/// A record of the image that the layers contradict: the record named, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    /// The record: a layer's history comment, or the Nix database in a layer.
    pub record: String,
    /// The first disagreement.
    pub what: String,
}

/// Checks `records`, recovered from `layers`, against the image's history and Nix database.
pub fn cross_check(layers: &[LayerPaths], history: &[History], records: &[PathRecord]) -> Result<CrossChecks, Contradiction> {
    let comments = check_comments(layers, history)?;
    let registered = match layers.iter().rev().find_map(|l| Some((&l.digest, l.nix_db.as_ref()?))) {
        Some((digest, db)) => Some(check_database(db, records).map_err(|what| Contradiction { record: format!("the Nix database ({NIX_DB}) in layer {digest}"), what })?),
        None => None,
    };
    Ok(CrossChecks { comments, registered })
}

fn check_comments(layers: &[LayerPaths], history: &[History]) -> Result<usize, Contradiction> {
    let entries: Vec<&History> = history.iter().filter(|h| !h.empty_layer().unwrap_or(false)).collect();
    if !entries.iter().any(|h| h.comment().as_deref().is_some_and(|c| c.starts_with(COMMENT_PREFIX))) {
        return Ok(0);
    }
    if entries.len() != layers.len() {
        let record = "the image's history".to_string();
        return Err(Contradiction { record, what: format!("{} entries for layers, but the manifest lists {} layers", entries.len(), layers.len()) });
    }
    let mut checked = 0;
    for (layer, entry) in layers.iter().zip(entries) {
        let Some(listed) = entry.comment().as_deref().and_then(|c| c.strip_prefix(COMMENT_PREFIX)) else { continue };
        let record = format!("the history comment of layer {}", layer.digest);
        let listed = python_list(listed).map_err(|what| Contradiction { record: record.clone(), what })?;
        if layer.paths.is_empty() {
            continue;
        }
        let held: BTreeSet<String> = layer.paths.keys().map(|b| format!("{STORE}{b}")).collect();
        let listed: BTreeSet<String> = listed.into_iter().collect();
        if let Some(p) = held.difference(&listed).next() {
            return Err(Contradiction { record, what: format!("the layer holds {p}, which the comment does not list") });
        }
        if let Some(p) = listed.difference(&held).next() {
            return Err(Contradiction { record, what: format!("the comment lists {p}, which the layer does not hold") });
        }
        checked += 1;
    }
    Ok(checked)
}

/// The strings of a Python list literal of strings, as `str(list)` prints store paths:
/// `['a', 'b']`. Store paths hold neither quotes nor commas.
fn python_list(text: &str) -> Result<Vec<String>, String> {
    let expected = || format!("expected a list of quoted store paths after `{COMMENT_PREFIX}`, found `{}`", excerpt(text));
    let inner = text.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(expected)?;
    if inner.trim().is_empty() {
        return Ok(vec![]);
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let unquoted = ['\'', '"'].iter().find_map(|&q| item.strip_prefix(q)?.strip_suffix(q));
            unquoted.map(str::to_string).ok_or_else(expected)
        })
        .collect()
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// One registered path: narHash as SRI, narSize where recorded, references.
struct Registered {
    nar_hash: String,
    nar_size: Option<u64>,
    references: Vec<String>,
}

fn check_database(db: &[u8], records: &[PathRecord]) -> Result<usize, String> {
    let registered = read_database(db)?;
    let recovered: BTreeMap<&str, &PathRecord> = records.iter().map(|r| (r.path.as_str(), r)).collect();
    for (path, claim) in &registered {
        let Some(found) = recovered.get(path.as_str()) else { return Err(format!("{path} is registered, but no layer holds it")) };
        if found.nar_hash.as_deref() != Some(claim.nar_hash.as_str()) {
            return Err(format!("{path}: narHash {} registered, {} in the layers", claim.nar_hash, found.nar_hash.as_deref().unwrap_or("none")));
        }
        if let Some(size) = claim.nar_size.filter(|&s| s != found.nar_size) {
            return Err(format!("{path}: narSize {size} registered, {} in the layers", found.nar_size));
        }
        if claim.references != found.references {
            return Err(format!("{path}: references {:?} registered, {:?} in the layers", claim.references, found.references));
        }
    }
    Ok(registered.len())
}

fn read_database(db: &[u8]) -> Result<BTreeMap<String, Registered>, String> {
    let conn = open_in_memory(db).map_err(|e| format!("not a database SQLite reads: {e}"))?;
    let query = |e: rusqlite::Error| format!("not a Nix database (ValidPaths, Refs): {e}");
    let mut by_id: BTreeMap<i64, String> = BTreeMap::new();
    let mut registered: BTreeMap<String, Registered> = BTreeMap::new();
    let mut rows = conn.prepare("SELECT id, path, hash, narSize FROM ValidPaths").map_err(query)?;
    let rows = rows.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<i64>>(3)?))).map_err(query)?;
    for row in rows {
        let (id, path, hash, size) = row.map_err(query)?;
        let nar_hash = as_sri(&hash).ok_or_else(|| format!("{path}: hash `{}` is not a SHA-256 Nix prints", excerpt(&hash)))?;
        let nar_size = size.map(|s| u64::try_from(s).map_err(|_| format!("{path}: narSize {s} is negative"))).transpose()?;
        by_id.insert(id, path.clone());
        registered.insert(path, Registered { nar_hash, nar_size, references: vec![] });
    }
    let mut refs = conn.prepare("SELECT referrer, reference FROM Refs").map_err(query)?;
    let refs = refs.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(query)?;
    for row in refs {
        let (from, to) = row.map_err(query)?;
        let name = |id: i64| by_id.get(&id).ok_or_else(|| format!("Refs names path id {id}, which ValidPaths lacks"));
        let (from, to) = (name(from)?.clone(), name(to)?.clone());
        registered.get_mut(&from).expect("every id names a registered path").references.push(to);
    }
    registered.values_mut().for_each(|r| r.references.sort_unstable());
    Ok(registered)
}

/// The database file `db`, opened read-only in memory. Nix keeps its database in WAL mode;
/// SQLite cannot use an in-memory copy marked so, and an image holds no `-wal` file whose
/// changes it could miss, so the copy's header is marked as a rollback-journal database
/// (file-format bytes 18 and 19: 2 → 1).
fn open_in_memory(db: &[u8]) -> rusqlite::Result<Connection> {
    let mut bytes = db.to_vec();
    if bytes.len() > 19 && bytes[18] == 2 && bytes[19] == 2 {
        bytes[18] = 1;
        bytes[19] = 1;
    }
    let mut conn = Connection::open_in_memory()?;
    let too_big = || rusqlite::Error::InvalidParameterName(format!("a database of {} bytes (at most {} are read)", bytes.len(), i32::MAX));
    let len = i32::try_from(bytes.len()).map_err(|_| too_big())?;
    conn.deserialize_read_exact(MAIN_DB, &bytes[..], len as usize, true)?;
    Ok(conn)
}

/// `sha256:<hex>`, `sha256:<nix base32>` or SRI `sha256-<base64>` as SRI.
fn as_sri(hash: &str) -> Option<String> {
    let digest = match hash.split_once(':') {
        Some(("sha256", h)) if h.len() == 64 => hex::decode(h).ok()?,
        Some(("sha256", h)) if h.len() == 52 => hints_format::nixbase32::decode(h).ok()?,
        _ => base64::engine::general_purpose::STANDARD.decode(hash.strip_prefix("sha256-")?).ok()?,
    };
    Some(sri(digest.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::Recovered;
    use ocidir::oci_spec::image::HistoryBuilder;

    const A: &str = "0c8vhkd0xjaz0ib9cb7r8i6fb3dn0c1q-libfoo-1.0";

    fn layer(digest: &str, bases: &[&str]) -> LayerPaths {
        let recovered = || Recovered { nar_size: 0, nar_hash: String::new(), windows: Default::default() };
        LayerPaths { digest: digest.into(), paths: bases.iter().map(|b| (b.to_string(), recovered())).collect(), nix_db: None }
    }

    fn entry(comment: &str) -> History {
        HistoryBuilder::default().comment(comment).build().unwrap()
    }

    #[test]
    fn store_paths_comments_are_checked_where_a_layer_holds_store_paths() {
        let layers = [layer("sha256:a", &[A]), layer("sha256:custom", &[])];
        let good = [entry(&format!("store paths: ['/nix/store/{A}']")), entry("store paths: ['/nix/store/00000000000000000000000000000000-customisation-layer']")];
        assert_eq!(check_comments(&layers, &good), Ok(1));
        let unlisted = [entry("store paths: []"), good[1].clone()];
        let e = check_comments(&layers, &unlisted).unwrap_err();
        assert!(e.record.contains("sha256:a") && e.what.contains("does not list"), "{e:?}");
        assert!(check_comments(&layers, &good[..1]).unwrap_err().what.contains("1 entries"));
        assert_eq!(check_comments(&layers, &[entry("built by hand"), entry("")]), Ok(0));
    }

    #[test]
    fn a_python_list_of_store_paths_parses_in_either_quote() {
        assert_eq!(python_list("['/nix/store/a-x', \"/nix/store/b-y\"]").unwrap(), ["/nix/store/a-x", "/nix/store/b-y"]);
        assert!(python_list("[]").unwrap().is_empty());
        let e = python_list("/nix/store/a-x").unwrap_err();
        assert!(e.contains("expected a list"), "{e}");
    }

    #[test]
    fn hashes_in_every_form_nix_prints_are_the_same_sri() {
        let sri_form = "sha256-HQSV/PgXO9v7Qj5uQt71RduDHcAQxi0aEJPTEw2BpFQ=";
        let hex = "sha256:1d0495fcf8173bdbfb423e6e42def545db831dc010c62d1a1093d3130d81a454";
        assert_eq!(as_sri(hex).unwrap(), sri_form);
        assert_eq!(as_sri(sri_form).unwrap(), sri_form);
        let base32 = format!("sha256:{}", hints_format::nixbase32::encode(&hex::decode(&hex[7..]).unwrap()));
        assert_eq!(as_sri(&base32).unwrap(), sri_form);
        assert_eq!(as_sri("md5:abc"), None);
    }
}
