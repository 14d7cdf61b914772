//! The history database: what every image contained at every revision, in SQLite.
//!
//! Layout (schema version 1, `PRAGMA user_version`):
//! - `paths`: one row per store path, ever. A store path is immutable, so its size and
//!   references are stored once however many snapshots contain it. The hash is kept as its 20
//!   decoded bytes (unique), the name and store dir are interned, and references are the sorted
//!   ids of the referenced paths as delta varints. `refs_digest` (FNV-1a over the sorted
//!   reference hashes) lets a re-scan check immutability without decoding references.
//! - `snapshots`: (image, revision) → member path ids, sorted, delta varints, plus a SHA-256
//!   digest of the sorted member paths, so an identical re-scan is recognised with one lookup.
//! - `images`, `revisions` (label, commit, time, branch, dirty), `names`, `store_dirs`.
//! - Version 2 adds `row_check` to `images`, `revisions` and `snapshots`: 8 bytes of SHA-256
//!   over the row (its id included), checked whenever the row is read. With the snapshots'
//!   paths digests and totals and the paths' references digests, no single damaged field
//!   turns into a different history: reading fails, naming the row.
//!
//! Safety: WAL mode, a busy timeout plus retries, and one `BEGIN IMMEDIATE` transaction per
//! snapshot. A crash at any moment leaves every committed snapshot intact and no half snapshot;
//! an error rolls the whole snapshot back. Several processes may scan into one file at once.
//!
//! Speed: a per-connection cache of path hash → (id, size, refs digest) avoids most lookups when
//! consecutive revisions share most paths. Entries are facts about immutable rows and enter the
//! cache only after their transaction commits.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use hints_format::nixbase32;
use hints_format::StorePath;
use layering_core::{Closure, PathInfo};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = 2;

/// Forward migrations: `MIGRATIONS[k]` brings a database from version `k` to `k + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE store_dirs (id INTEGER PRIMARY KEY, dir TEXT NOT NULL UNIQUE);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE paths (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    dir_id INTEGER NOT NULL REFERENCES store_dirs(id),
    name_id INTEGER NOT NULL REFERENCES names(id),
    nar_size INTEGER NOT NULL,
    nar_hash TEXT,
    closure_size INTEGER,
    refs BLOB NOT NULL,
    refs_digest BLOB NOT NULL,
    complete INTEGER NOT NULL
);
CREATE TABLE images (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    commit_id TEXT,
    time TEXT NOT NULL,
    branch TEXT,
    dirty INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    revision_id INTEGER NOT NULL REFERENCES revisions(id),
    digest BLOB NOT NULL,
    path_count INTEGER NOT NULL,
    total_size INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    members BLOB NOT NULL,
    UNIQUE (image_id, revision_id)
);
"#,
    r#"
ALTER TABLE images ADD COLUMN row_check BLOB;
ALTER TABLE revisions ADD COLUMN row_check BLOB;
ALTER TABLE snapshots ADD COLUMN row_check BLOB;
"#,
];

/// The schema version that added `row_check` to images, revisions and snapshots.
const ROW_CHECKS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {file}: {error}")]
    Sqlite { file: String, error: rusqlite::Error },
    #[error("database {file} has schema version {found}, newer than this hints understands ({SCHEMA_VERSION}); upgrade hints")]
    TooNew { file: String, found: i64 },
    #[error("store path {path} is already recorded with {what}; a store path is immutable, so this closure contradicts the database")]
    Conflict { path: String, what: String },
    #[error("invalid store path hash in {0}")]
    BadHash(String),
    #[error("no revision matches `{0}` (give a label, a commit id prefix, or a position as `hints ls` shows it)")]
    UnknownRevision(String),
    #[error("`{name}` is the label of the revision at position {labelled} and also position {name}; name the revision at position {name} by its label or commit")]
    AmbiguousRevision { name: String, labelled: usize },
    #[error("--range {spec}: {why}")]
    BadRange { spec: String, why: String },
    #[error("database {file} is damaged: {what}")]
    Damaged { file: String, what: String },
    #[error("database {0} holds no revision yet (run `hints scan` first)")]
    NoRevisions(String),
    #[error("no database at {0} (run `hints scan` first, or give --db)")]
    Missing(String),
    #[error("{file} is not a hints database ({why})")]
    NotHints { file: String, why: String },
}

type Result<T> = std::result::Result<T, StoreError>;

/// A revision: a commit or a labelled point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub label: String,
    pub commit: Option<String>,
    /// RFC 3339.
    pub time: String,
    pub branch: Option<String>,
    pub dirty: bool,
}

/// What an ingest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Added { new_paths: usize },
    Unchanged,
    Replaced { new_paths: usize },
}

#[derive(Debug, Clone, Copy)]
struct Known {
    id: i64,
    nar_size: u64,
    refs_digest: [u8; 8],
    complete: bool,
    /// [`fnv64`] of the full path: the same hash under another name or store dir differs here.
    path_digest: u64,
}

pub struct Store {
    conn: Connection,
    file: String,
    known: HashMap<[u8; 20], Known>,
    /// Interned names and store dirs (ids never change once committed).
    name_ids: HashMap<String, i64>,
    dir_ids: HashMap<String, i64>,
}

/// The pure, per-snapshot part of an ingest, computed before taking the write lock (and in
/// parallel for many snapshots).
pub struct Prepared {
    digest: [u8; 32],
    hashes: Vec<[u8; 20]>,
    refs_digests: Vec<[u8; 8]>,
    /// [`fnv64`] of each full path, to tell a known hash under another name.
    path_digests: Vec<u64>,
    topo: Vec<usize>,
}

impl Prepared {
    pub fn new(closure: &Closure) -> Result<Self> {
        let hashes: Vec<[u8; 20]> = closure.paths().map(hash_bytes).collect::<Result<_>>()?;
        let refs_digests = (0..closure.len()).map(|i| refs_digest(closure, i, &hashes)).collect();
        let path_digests = closure.paths().map(|p| fnv64(p.as_str().as_bytes())).collect();
        Ok(Prepared { digest: snapshot_digest(closure), hashes, refs_digests, path_digests, topo: closure.topo_order() })
    }
}

/// Per-snapshot summary rows for `hints ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRow {
    pub image: String,
    pub revision: String,
    pub time: String,
    pub paths: u64,
    pub bytes: u64,
    pub complete: bool,
}

/// Maps an SQLite error on `file` to the store's error.
fn sqlite_error(file: &str) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |error| StoreError::Sqlite { file: file.to_string(), error }
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlite { file: file.clone(), error: rusqlite::Error::InvalidPath(format!("{}: {e}", dir.display()).into()) })?;
        }
        let sq = sqlite_error(&file);
        let conn = Connection::open(path).map_err(sq)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sq)?;
        // Switching a new file to WAL takes an exclusive lock, and SQLite may answer BUSY there
        // without consulting the busy handler when several processes open it at once.
        retry(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(sq)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sq)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sq)?;
        let mut store = Store { conn, file, known: HashMap::new(), name_ids: HashMap::new(), dir_ids: HashMap::new() };
        store.migrate()?;
        Ok(store)
    }

    /// Runs `f` inside one read transaction, so every query in it sees the same committed
    /// state however many writers commit meanwhile (WAL readers never wait for writers).
    pub fn read<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        let tx = self.conn.unchecked_transaction().map_err(self.sq())?;
        let out = f(self)?;
        tx.commit().map_err(self.sq())?;
        Ok(out)
    }

    /// The database file, as messages name it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The error for a database whose rows contradict each other.
    fn damaged(&self, what: impl Into<String>) -> StoreError {
        StoreError::Damaged { file: self.file.clone(), what: what.into() }
    }

    /// Opens an existing database for reading: nothing is created or written (but an older
    /// hints schema, which is upgraded in place once), and a database in a read-only directory
    /// can still be read. A missing file, an empty or foreign one, or a newer schema is an
    /// error.
    pub fn open_existing(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let sq = sqlite_error(&file);
        if !path.is_file() {
            return Err(StoreError::Missing(file));
        }
        let not_hints = |why: String| StoreError::NotHints { file: file.clone(), why };
        if path.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Err(not_hints("the file is empty".into()));
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let version = |conn: &Connection| conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let conn = Connection::open_with_flags(path, flags).map_err(sq)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sq)?;
        // A WAL database whose directory is read-only cannot get its shared-memory index: read
        // it as immutable instead (nobody can be writing to it there).
        let (conn, found) = match version(&conn) {
            Ok(v) => (conn, v),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::CannotOpen || e.code == rusqlite::ErrorCode::ReadOnly => {
                let conn = Connection::open_with_flags(format!("file:{}?immutable=1", path.display()), flags).map_err(sq)?;
                let v = version(&conn).map_err(sq)?;
                (conn, v)
            }
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::NotADatabase => return Err(not_hints("not an SQLite file".into())),
            Err(e) => return Err(sq(e)),
        };
        match found {
            SCHEMA_VERSION => Ok(Store { conn, file, known: HashMap::new(), name_ids: HashMap::new(), dir_ids: HashMap::new() }),
            v if v > SCHEMA_VERSION => Err(StoreError::TooNew { file, found: v }),
            // An older hints database is upgraded in place once (one transaction), then read.
            v if v >= 1 => {
                drop(conn);
                drop(Store::open(path)?);
                Store::open_existing(path)
            }
            v => Err(not_hints(format!("schema version {v}; this hints writes version {SCHEMA_VERSION}"))),
        }
    }

    fn sq(&self) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        sqlite_error(&self.file)
    }

    fn migrate(&mut self) -> Result<()> {
        let file = self.file.clone();
        let sq = sqlite_error(&file);
        let tx = retry(|| rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)).map_err(sq)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sq)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { file, found: version });
        }
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sq)?;
        if version < 0 || (version == 0 && tables > 0) {
            return Err(StoreError::NotHints { file, why: format!("schema version {version} with {tables} tables of its own") });
        }
        for (k, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(sq)?;
            tx.pragma_update(None, "user_version", k as i64 + 1).map_err(sq)?;
        }
        if version < ROW_CHECKS {
            fill_row_checks(&tx).map_err(sq)?;
        }
        tx.commit().map_err(sq)
    }

    /// Records `closure` as image `image` at `revision`. Identical → no-op; different → replaced
    /// atomically. A snapshot added or replaced also records `revision`'s metadata (commit,
    /// time, branch, dirty) for its label.
    pub fn ingest(&mut self, image: &str, revision: &Revision, closure: &Closure, complete: bool) -> Result<Outcome> {
        self.ingest_prepared(image, revision, closure, &Prepared::new(closure)?, complete)
    }

    /// [`Store::ingest`] with the pure part already done.
    pub fn ingest_prepared(&mut self, image: &str, revision: &Revision, closure: &Closure, prep: &Prepared, complete: bool) -> Result<Outcome> {
        let file = self.file.clone();
        let sq = sqlite_error(&file);
        let tx = retry(|| rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)).map_err(sq)?;
        let image_id = upsert_id(&tx, "images", "name", image).map_err(sq)?;
        tx.prepare_cached("UPDATE images SET row_check = ?2 WHERE id = ?1").and_then(|mut s| s.execute(params![image_id, &image_check(image_id, image)[..]])).map_err(sq)?;
        let revision_id = upsert_revision(&tx, revision).map_err(sq)?;
        let existing: Option<Vec<u8>> = tx
            .prepare_cached("SELECT digest FROM snapshots WHERE image_id = ?1 AND revision_id = ?2")
            .and_then(|mut s| s.query_row(params![image_id, revision_id], |r| r.get(0)).optional())
            .map_err(sq)?;
        if existing.as_deref() == Some(&prep.digest[..]) {
            tx.commit().map_err(sq)?;
            return Ok(Outcome::Unchanged);
        }
        // The snapshot is new or replaced: the revision's metadata is this scan's.
        update_revision(&tx, revision_id, revision).map_err(sq)?;
        if let Some(other) = other_store_dir(&tx, closure.path(0).store_dir()).map_err(sq)? {
            return Err(StoreError::Conflict { path: closure.path(0).to_string(), what: format!("another store directory: the database holds paths of {other}") });
        }
        let recorded = self.record_paths(&tx, closure, prep, complete)?;
        write_snapshot(&tx, (image_id, revision_id), &prep.digest, closure, complete, &recorded.ids).map_err(sq)?;
        tx.commit().map_err(sq)?;
        let new_paths = recorded.new_paths;
        self.remember(recorded);
        Ok(if existing.is_some() { Outcome::Replaced { new_paths } } else { Outcome::Added { new_paths } })
    }

    /// Finds or inserts every path of `closure`, dependencies first, checking that a recorded
    /// path has the same name, size and references.
    fn record_paths(&self, tx: &rusqlite::Transaction<'_>, closure: &Closure, prep: &Prepared, complete: bool) -> Result<RecordedPaths> {
        let sq = self.sq();
        let hashes = &prep.hashes;
        let mut r = RecordedPaths { ids: vec![0i64; closure.len()], known: vec![], new_paths: 0, new_names: vec![] };
        for &i in &prep.topo {
            let info = closure.info(i);
            let refs_digest = prep.refs_digests[i];
            let found = match self.known.get(&hashes[i]) {
                Some(k) => Some(*k),
                None => lookup(tx, &hashes[i]).map_err(sq)?,
            };
            if let Some(k) = found.filter(|k| k.path_digest != prep.path_digests[i]) {
                let recorded = path_of(tx, k.id).map_err(sq)?;
                return Err(StoreError::Conflict { path: info.path.to_string(), what: format!("the same hash under another name, as {recorded}") });
            }
            let mut ref_ids: Vec<i64> = closure.refs(i).iter().map(|&x| r.ids[x as usize]).collect();
            ref_ids.sort_unstable();
            let known = match found {
                Some(k) if k.complete && complete => {
                    if k.nar_size != info.nar_size || k.refs_digest != refs_digest {
                        let what = if k.nar_size != info.nar_size { format!("narSize {} (this input says {})", k.nar_size, info.nar_size) } else { "different references".to_string() };
                        return Err(StoreError::Conflict { path: info.path.to_string(), what });
                    }
                    k
                }
                Some(k) if complete => {
                    // The recorded row came from a format without sizes; fill it in.
                    update_path(tx, k.id, info, &ref_ids, &refs_digest).map_err(sq)?;
                    Known { nar_size: info.nar_size, refs_digest, complete, ..k }
                }
                Some(k) => k,
                None => {
                    let dir_id = self.intern(tx, true, info.path.store_dir(), &mut r.new_names).map_err(sq)?;
                    let name_id = self.intern(tx, false, info.path.name(), &mut r.new_names).map_err(sq)?;
                    let id = insert_path(tx, &hashes[i], dir_id, name_id, info, &ref_ids, &refs_digest, complete).map_err(sq)?;
                    r.new_paths += 1;
                    Known { id, nar_size: info.nar_size, refs_digest, complete, path_digest: prep.path_digests[i] }
                }
            };
            r.ids[i] = known.id;
            r.known.push((hashes[i], known));
        }
        Ok(r)
    }

    /// The id of a store directory (`is_dir`) or a name, inserted if new (and then noted in
    /// `new_names`, to cache once the transaction commits).
    fn intern(&self, tx: &rusqlite::Transaction<'_>, is_dir: bool, value: &str, new_names: &mut Vec<(bool, String, i64)>) -> rusqlite::Result<i64> {
        let cache = if is_dir { &self.dir_ids } else { &self.name_ids };
        if let Some(&id) = cache.get(value) {
            return Ok(id);
        }
        let id = upsert_id(tx, if is_dir { "store_dirs" } else { "names" }, if is_dir { "dir" } else { "name" }, value)?;
        new_names.push((is_dir, value.to_string(), id));
        Ok(id)
    }

    /// Caches what a committed ingest found and added.
    fn remember(&mut self, recorded: RecordedPaths) {
        self.known.extend(recorded.known);
        for (is_dir, value, id) in recorded.new_names {
            if is_dir { &mut self.dir_ids } else { &mut self.name_ids }.insert(value, id);
        }
    }

    /// Whether (image, revision label) is recorded with exactly this snapshot digest: the cheap
    /// check that makes re-scanning an unchanged snapshot a no-op without re-validating it.
    pub fn has_snapshot(&self, image: &str, revision: &str, digest: &[u8; 32]) -> Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM snapshots s JOIN images i ON i.id = s.image_id JOIN revisions r ON r.id = s.revision_id
                 WHERE i.name = ?1 AND r.label = ?2 AND s.digest = ?3",
            )
            .and_then(|mut st| st.exists(params![image, revision, &digest[..]]))
            .map_err(self.sq())
    }

    /// Revisions in history order (time, then first recorded).
    pub fn revisions(&self) -> Result<Vec<(i64, Revision)>> {
        let mut s = self.conn.prepare("SELECT id, label, commit_id, time, branch, dirty, row_check FROM revisions ORDER BY time, id").map_err(self.sq())?;
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, Revision { label: r.get(1)?, commit: r.get(2)?, time: r.get(3)?, branch: r.get(4)?, dirty: r.get(5)? }, r.get::<_, Option<Vec<u8>>>(6)?)))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(self.sq())?;
        rows.into_iter()
            .map(|(id, rev, check)| match check.as_deref() == Some(&revision_check(id, &rev)[..]) {
                true => Ok((id, rev)),
                false => Err(self.damaged(format!("revision row {id} (`{}`) fails its check", rev.label))),
            })
            .collect()
    }

    /// The recorded metadata of the revision labelled `label`, if any.
    pub fn revision(&self, label: &str) -> Result<Option<Revision>> {
        self.conn
            .prepare_cached("SELECT label, commit_id, time, branch, dirty FROM revisions WHERE label = ?1")
            .and_then(|mut s| s.query_row([label], |r| Ok(Revision { label: r.get(0)?, commit: r.get(1)?, time: r.get(2)?, branch: r.get(3)?, dirty: r.get(4)? })).optional())
            .map_err(self.sq())
    }

    /// Images by name.
    pub fn images(&self) -> Result<Vec<(i64, String)>> {
        let mut s = self.conn.prepare("SELECT id, name, row_check FROM images ORDER BY name").map_err(self.sq())?;
        let rows =
            s.query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))).and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>()).map_err(self.sq())?;
        rows.into_iter()
            .map(|(id, name, check)| match check.as_deref() == Some(&image_check(id, &name)[..]) {
                true => Ok((id, name)),
                false => Err(self.damaged(format!("image row {id} (`{name}`) fails its check"))),
            })
            .collect()
    }

    /// Every snapshot, for `hints ls`.
    pub fn snapshot_rows(&self) -> Result<Vec<SnapshotRow>> {
        let mut s = self
            .conn
            .prepare(
                "SELECT i.name, r.label, r.time, s.path_count, s.total_size, s.complete
                 FROM snapshots s JOIN images i ON i.id = s.image_id JOIN revisions r ON r.id = s.revision_id
                 ORDER BY i.name, r.time, r.id",
            )
            .map_err(self.sq())?;
        let rows = s
            .query_map([], |r| Ok(SnapshotRow { image: r.get(0)?, revision: r.get(1)?, time: r.get(2)?, paths: r.get::<_, i64>(3)? as u64, bytes: r.get::<_, i64>(4)? as u64, complete: r.get(5)? }))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(self.sq())?;
        Ok(rows)
    }

    /// Every snapshot as stored, or those of the revisions with the ids `revisions`: (image id,
    /// revision id) → members and the figures to check them against.
    pub fn memberships(&self, revisions: Option<&[i64]>) -> Result<HashMap<(i64, i64), StoredSnapshot>> {
        type Row = ((i64, i64), Vec<u8>, Vec<u8>, i64, Option<Vec<u8>>);
        let read = |r: &rusqlite::Row<'_>| Ok(((r.get(0)?, r.get(1)?), r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?));
        const COLUMNS: &str = "SELECT image_id, revision_id, members, digest, total_size, row_check FROM snapshots";
        let rows: Vec<Row> = match revisions {
            None => self.conn.prepare(COLUMNS).and_then(|mut s| s.query_map([], read)?.collect()),
            Some(ids) => self.conn.prepare(&format!("{COLUMNS} WHERE revision_id = ?1")).and_then(|mut s| {
                let mut rows = Vec::new();
                for id in ids {
                    rows.extend(s.query_map([id], read)?.collect::<rusqlite::Result<Vec<Row>>>()?);
                }
                Ok(rows)
            }),
        }
        .map_err(self.sq())?;
        rows.into_iter()
            .map(|(key, members, digest, total_size, check)| {
                let bad = |what: &str| self.damaged(format!("snapshot (image id {}, revision id {}): {what}", key.0, key.1));
                let members = decode_ids(&members).ok_or_else(|| bad("malformed member list"))?;
                let digest: [u8; 32] = digest.try_into().map_err(|_| bad("digest is not 32 bytes"))?;
                let total_size = total_size as u64;
                if check.as_deref() != Some(&snapshot_check(key.0, key.1, &digest, total_size)[..]) {
                    return Err(bad("the row fails its check"));
                }
                Ok((key, StoredSnapshot { members, digest, total_size }))
            })
            .collect()
    }

    /// Every path record, or those with the ids `only`: id → (path, size, reference ids,
    /// references digest).
    pub fn all_paths(&self, only: Option<&HashSet<i64>>) -> Result<HashMap<i64, PathRecord>> {
        let mut s = self
            .conn
            .prepare(
                "SELECT p.id, d.dir, p.hash, n.name, p.nar_size, p.refs, p.refs_digest FROM paths p
                 JOIN names n ON n.id = p.name_id JOIN store_dirs d ON d.id = p.dir_id",
            )
            .map_err(self.sq())?;
        type Row = (i64, String, Vec<u8>, String, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(self.sq())?;
        rows.into_iter()
            .filter(|row| only.is_none_or(|ids| ids.contains(&row.0)))
            .map(|(id, dir, hash, name, nar_size, refs, refs_digest)| {
                let bad = |what: &str| self.damaged(format!("path id {id}: {what}"));
                let hash: [u8; 20] = hash.try_into().map_err(|_| bad("hash is not 20 bytes"))?;
                let base = format!("{}-{name}", nixbase32::encode(&hash));
                let path = StorePath::from_base(&dir, &base).map_err(|e| bad(&format!("not a store path: {e}")))?;
                let nar_size = u64::try_from(nar_size).map_err(|_| bad("negative narSize"))?;
                let refs = decode_ids(&refs).ok_or_else(|| bad("malformed reference list"))?;
                let refs_digest = refs_digest.try_into().map_err(|_| bad("references digest is not 8 bytes"))?;
                Ok((id, PathRecord { path, hash, nar_size, refs, refs_digest }))
            })
            .collect()
    }

    /// A digest of everything recorded: (image, revision, snapshot digest) in order.
    pub fn summary_hash(&self) -> Result<String> {
        let mut s = self
            .conn
            .prepare(
                "SELECT i.name, r.label, s.digest FROM snapshots s JOIN images i ON i.id = s.image_id
                 JOIN revisions r ON r.id = s.revision_id ORDER BY i.name, r.label",
            )
            .map_err(self.sq())?;
        let mut h = Sha256::new();
        let mut rows = s.query([]).map_err(self.sq())?;
        while let Some(r) = rows.next().map_err(self.sq())? {
            h.update(r.get::<_, String>(0).map_err(self.sq())?.as_bytes());
            h.update([0]);
            h.update(r.get::<_, String>(1).map_err(self.sq())?.as_bytes());
            h.update([0]);
            h.update(r.get::<_, Vec<u8>>(2).map_err(self.sq())?);
        }
        Ok(format!("sha256:{}", hex(&h.finalize())))
    }

    /// Runs `PRAGMA integrity_check` and returns its first row: `ok` for a sound file, else
    /// the first problem SQLite found.
    pub fn integrity_check(&self) -> Result<String> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(self.sq())
    }
}

/// A path as stored.
#[derive(Debug, Clone)]
pub struct PathRecord {
    pub path: StorePath,
    /// The hash part, decoded.
    pub hash: [u8; 20],
    pub nar_size: u64,
    pub refs: Vec<i64>,
    /// [`refs_digest_of`] the references' hashes, as recorded at ingest.
    pub refs_digest: [u8; 8],
}

/// A snapshot as stored.
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    /// Member path ids, sorted.
    pub members: Vec<i64>,
    /// [`paths_digest`] of the member paths, as recorded at ingest.
    pub digest: [u8; 32],
    pub total_size: u64,
}

/// What recording a closure's paths found and added, cached once the transaction commits.
struct RecordedPaths {
    /// Row id of each closure path.
    ids: Vec<i64>,
    known: Vec<([u8; 20], Known)>,
    new_paths: usize,
    /// (is a store directory, value, id) inserted.
    new_names: Vec<(bool, String, i64)>,
}

/// Inserts or replaces the snapshot row of (image id, revision id).
fn write_snapshot(tx: &rusqlite::Transaction<'_>, (image_id, revision_id): (i64, i64), digest: &[u8; 32], closure: &Closure, complete: bool, ids: &[i64]) -> rusqlite::Result<()> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let total = closure.total_size();
    let check = snapshot_check(image_id, revision_id, digest, total);
    tx.prepare_cached(
        "INSERT INTO snapshots (image_id, revision_id, digest, path_count, total_size, complete, members, row_check)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (image_id, revision_id) DO UPDATE SET digest = excluded.digest,
           path_count = excluded.path_count, total_size = excluded.total_size,
           complete = excluded.complete, members = excluded.members, row_check = excluded.row_check",
    )?
    .execute(params![image_id, revision_id, &digest[..], closure.len() as i64, total as i64, complete, encode_ids(&sorted), &check[..]])?;
    Ok(())
}

/// The first wait before retrying SQLITE_BUSY; it doubles up to [`RETRY_MAX_WAIT`].
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(5);
const RETRY_MAX_WAIT: Duration = Duration::from_millis(500);
/// Tries before giving up: about 22 s of waiting on top of the busy timeout.
const RETRIES: usize = 50;

/// Retries SQLITE_BUSY beyond the busy timeout (a writer holding the lock for long).
fn retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut wait = RETRY_FIRST_WAIT;
    for _ in 0..RETRIES {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(RETRY_MAX_WAIT);
            }
            r => return r,
        }
    }
    f()
}

fn upsert_id(tx: &rusqlite::Transaction<'_>, table: &str, col: &str, value: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached(&format!("INSERT INTO {table} ({col}) VALUES (?1) ON CONFLICT ({col}) DO NOTHING"))?.execute([value])?;
    tx.prepare_cached(&format!("SELECT id FROM {table} WHERE {col} = ?1"))?.query_row([value], |r| r.get(0))
}

/// The id of the revision labelled `r.label`, recorded with `r`'s metadata if it is new.
fn upsert_revision(tx: &rusqlite::Transaction<'_>, r: &Revision) -> rusqlite::Result<i64> {
    let known: Option<i64> = tx.prepare_cached("SELECT id FROM revisions WHERE label = ?1")?.query_row([&r.label], |row| row.get(0)).optional()?;
    if let Some(id) = known {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO revisions (label, commit_id, time, branch, dirty) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![r.label, r.commit, r.time, r.branch, r.dirty])?;
    let id = tx.last_insert_rowid();
    update_revision(tx, id, r)?;
    Ok(id)
}

fn update_revision(tx: &rusqlite::Transaction<'_>, id: i64, r: &Revision) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE revisions SET commit_id = ?2, time = ?3, branch = ?4, dirty = ?5, row_check = ?6 WHERE id = ?1")?.execute(params![
        id,
        r.commit,
        r.time,
        r.branch,
        r.dirty,
        &revision_check(id, r)[..]
    ])?;
    Ok(())
}

/// 8 bytes of SHA-256 over the fields, each ended by a 0 byte.
fn row_check(fields: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    for f in fields {
        h.update(f);
        h.update([0]);
    }
    h.finalize()[..8].try_into().expect("8 of 32 bytes")
}

fn image_check(id: i64, name: &str) -> [u8; 8] {
    row_check(&[b"image", id.to_string().as_bytes(), name.as_bytes()])
}

fn revision_check(id: i64, r: &Revision) -> [u8; 8] {
    let opt = |o: &Option<String>| o.as_deref().map_or(b"\xff".to_vec(), |s| s.as_bytes().to_vec());
    row_check(&[b"revision", id.to_string().as_bytes(), r.label.as_bytes(), &opt(&r.commit), r.time.as_bytes(), &opt(&r.branch), &[r.dirty as u8]])
}

fn snapshot_check(image_id: i64, revision_id: i64, digest: &[u8; 32], total_size: u64) -> [u8; 8] {
    row_check(&[b"snapshot", image_id.to_string().as_bytes(), revision_id.to_string().as_bytes(), digest, total_size.to_string().as_bytes()])
}

/// Computes `row_check` for every image, revision and snapshot (migration to version 2).
fn fill_row_checks(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let images: Vec<(i64, String)> = tx.prepare("SELECT id, name FROM images")?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    for (id, name) in images {
        tx.execute("UPDATE images SET row_check = ?2 WHERE id = ?1", params![id, &image_check(id, &name)[..]])?;
    }
    let revisions: Vec<(i64, Revision)> = tx
        .prepare("SELECT id, label, commit_id, time, branch, dirty FROM revisions")?
        .query_map([], |r| Ok((r.get(0)?, Revision { label: r.get(1)?, commit: r.get(2)?, time: r.get(3)?, branch: r.get(4)?, dirty: r.get(5)? })))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, r) in revisions {
        update_revision(tx, id, &r)?;
    }
    let snapshots: Vec<(i64, i64, i64, Vec<u8>, i64)> = tx
        .prepare("SELECT id, image_id, revision_id, digest, total_size FROM snapshots")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, image, revision, digest, total) in snapshots {
        let digest: [u8; 32] = digest.as_slice().try_into().unwrap_or([0; 32]);
        tx.execute("UPDATE snapshots SET row_check = ?2 WHERE id = ?1", params![id, &snapshot_check(image, revision, &digest, total as u64)[..]])?;
    }
    Ok(())
}

fn lookup(tx: &rusqlite::Transaction<'_>, hash: &[u8; 20]) -> rusqlite::Result<Option<Known>> {
    tx.prepare_cached(
        "SELECT p.id, p.nar_size, p.refs_digest, p.complete, d.dir, n.name FROM paths p
         JOIN names n ON n.id = p.name_id JOIN store_dirs d ON d.id = p.dir_id WHERE p.hash = ?1",
    )?
    .query_row([&hash[..]], |r| {
        let d: Vec<u8> = r.get(2)?;
        let mut refs_digest = [0u8; 8];
        refs_digest.copy_from_slice(&d[..8]);
        let path = format!("{}/{}-{}", r.get::<_, String>(4)?, nixbase32::encode(hash), r.get::<_, String>(5)?);
        Ok(Known { id: r.get(0)?, nar_size: r.get::<_, i64>(1)? as u64, refs_digest, complete: r.get(3)?, path_digest: fnv64(path.as_bytes()) })
    })
    .optional()
}

/// The recorded path of a path id, for messages.
fn path_of(tx: &rusqlite::Transaction<'_>, id: i64) -> rusqlite::Result<String> {
    tx.prepare_cached("SELECT d.dir, p.hash, n.name FROM paths p JOIN names n ON n.id = p.name_id JOIN store_dirs d ON d.id = p.dir_id WHERE p.id = ?1")?
        .query_row([id], |r| Ok(format!("{}/{}-{}", r.get::<_, String>(0)?, nixbase32::encode(&r.get::<_, Vec<u8>>(1)?), r.get::<_, String>(2)?)))
}

/// A store directory the database holds paths of, other than `dir`.
fn other_store_dir(tx: &rusqlite::Transaction<'_>, dir: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT dir FROM store_dirs WHERE dir != ?1 LIMIT 1")?.query_row([dir], |r| r.get(0)).optional()
}

#[allow(clippy::too_many_arguments)]
fn insert_path(tx: &rusqlite::Transaction<'_>, hash: &[u8; 20], dir_id: i64, name_id: i64, info: &PathInfo, ref_ids: &[i64], refs_digest: &[u8; 8], complete: bool) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO paths (hash, dir_id, name_id, nar_size, nar_hash, closure_size, refs, refs_digest, complete)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![&hash[..], dir_id, name_id, info.nar_size as i64, info.nar_hash, info.closure_size.map(|c| c as i64), encode_ids(ref_ids), &refs_digest[..], complete])?;
    Ok(tx.last_insert_rowid())
}

fn update_path(tx: &rusqlite::Transaction<'_>, id: i64, info: &PathInfo, ref_ids: &[i64], refs_digest: &[u8; 8]) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE paths SET nar_size = ?2, nar_hash = ?3, closure_size = ?4, refs = ?5, refs_digest = ?6, complete = 1 WHERE id = ?1")?.execute(params![
        id,
        info.nar_size as i64,
        info.nar_hash,
        info.closure_size.map(|c| c as i64),
        encode_ids(ref_ids),
        &refs_digest[..]
    ])?;
    Ok(())
}

fn hash_bytes(p: &StorePath) -> Result<[u8; 20]> {
    let v = nixbase32::decode(p.hash()).map_err(|_| StoreError::BadHash(p.to_string()))?;
    v.try_into().map_err(|_| StoreError::BadHash(p.to_string()))
}

/// FNV-1a (64-bit) over the sorted reference hashes (self excluded). Not cryptographic: it
/// only has to notice a contradicting re-scan, and it is cheap enough to run on every path.
fn refs_digest(closure: &Closure, i: usize, hashes: &[[u8; 20]]) -> [u8; 8] {
    refs_digest_of(closure.refs(i).iter().map(|&r| &hashes[r as usize]).collect())
}

/// FNV-1a, 64-bit.
fn fnv64<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    bytes.into_iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The references digest of a path whose references (self excluded) have these hashes.
pub fn refs_digest_of(mut refs: Vec<&[u8; 20]>) -> [u8; 8] {
    refs.sort_unstable();
    fnv64(refs.into_iter().flatten()).to_le_bytes()
}

/// SHA-256 over the sorted member paths: equal exactly when the closures are (paths are
/// immutable).
pub fn snapshot_digest(closure: &Closure) -> [u8; 32] {
    paths_digest(closure.paths().map(StorePath::as_str))
}

/// [`snapshot_digest`] of a list of paths, before any validation: sorted and deduplicated here.
pub fn paths_digest<'a>(paths: impl Iterator<Item = &'a str>) -> [u8; 32] {
    let mut v: Vec<&str> = paths.collect();
    v.sort_unstable();
    v.dedup();
    let mut h = Sha256::new();
    for p in v {
        h.update(p.as_bytes());
        h.update([b'\n']);
    }
    h.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sorted ids as LEB128 deltas.
fn encode_ids(sorted: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sorted.len() * 2);
    let mut prev = 0i64;
    for &id in sorted {
        let mut d = (id - prev) as u64;
        prev = id;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    out
}

/// Sorted ids from LEB128 deltas; `None` when the bytes are not such a list (a truncated or
/// overlong varint, a zero delta after the first, or an id past `i64::MAX`).
fn decode_ids(bytes: &[u8]) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut acc, mut shift, mut prev) = (0u64, 0u32, 0i64);
    for &b in bytes {
        if shift >= 64 || (shift == 63 && b & 0x7e != 0) {
            return None;
        }
        acc |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            if acc == 0 && !out.is_empty() {
                return None;
            }
            prev = prev.checked_add(i64::try_from(acc).ok()?)?;
            out.push(prev);
            acc = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    (shift == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_encoding_roundtrips() {
        for ids in [vec![], vec![1], vec![1, 2, 3, 200, 100_000, 1 << 40]] {
            assert_eq!(decode_ids(&encode_ids(&ids)), Some(ids));
        }
    }

    #[test]
    fn a_version_1_database_gets_row_checks_and_still_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("h.db");
        let p = |n: &str| StorePath::parse(&format!("/nix/store/{}-{n}", "0".repeat(32).replacen('0', &n.len().to_string(), 1))).unwrap();
        let closure = Closure::new(vec![PathInfo { path: p("a-1"), nar_size: 5, nar_hash: None, closure_size: None, references: vec![] }]).unwrap();
        let rev = Revision { label: "r1".into(), commit: None, time: "2025-01-01T00:00:00Z".into(), branch: None, dirty: false };
        Store::open(&db).unwrap().ingest("img", &rev, &closure, true).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE images DROP COLUMN row_check; ALTER TABLE revisions DROP COLUMN row_check;
             ALTER TABLE snapshots DROP COLUMN row_check; PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let store = Store::open_existing(&db).unwrap();
        let h = crate::history::History::load(&store, None).unwrap();
        assert_eq!((h.images.as_slice(), h.revisions.as_slice()), (&["img".to_string()][..], &[rev][..]));
    }

    #[test]
    fn malformed_id_lists_are_refused() {
        assert_eq!(decode_ids(&[0x80]), None, "truncated varint");
        assert_eq!(decode_ids(&[1, 0]), None, "a repeated id");
        assert_eq!(decode_ids(&[0xff; 11]), None, "overlong varint");
        assert_eq!(decode_ids(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None, "past i64::MAX");
    }
}
