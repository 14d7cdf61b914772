//! The history database: what every image contained at every revision.
//!
//! Two backends hold it behind one interface ([`backend::Backend`]): an SQLite file, the
//! embedded default ([`sqlite`]), and a PostgreSQL database for a fleet ([`postgres`]). This
//! module holds every rule; a backend only runs the SQL. The same history gives the same rows,
//! the same checks and the same hint file in both; `hints db copy` ([`copy`]) moves it.
//!
//! Layout (schema version 1):
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
//! - Version 3 adds `tokens` (`hints serve`): a project, a scope and the SHA-256 of each
//!   access token; the token itself is never stored.
//!
//! Safety: one write transaction per snapshot, which excludes every other writer while it
//! runs. A crash at any moment leaves every committed snapshot intact and no half snapshot; an
//! error rolls the whole snapshot back. Many processes may scan into one history at once. A
//! read ([`Store::read`]) sees one committed state however many writers commit meanwhile.
//!
//! Speed: a per-connection cache of path hash → (id, size, refs digest) avoids most lookups when
//! consecutive revisions share most paths. Entries are facts about immutable rows and enter the
//! cache only after their transaction commits.

use std::collections::{HashMap, HashSet};

use hints_format::nixbase32;
use hints_format::StorePath;
use layering_core::Closure;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub mod backend;
pub mod copy;
pub mod postgres;
pub mod sqlite;

pub use backend::Location;
use backend::{Access, Backend, CellError, DbError, Row, Value};

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = 3;

/// The schema version that added `row_check` to images, revisions and snapshots.
const ROW_CHECKS: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {file}: {error}")]
    Database { file: String, error: DbError },
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
    #[error("database {to} already holds a history ({snapshots} snapshots); `hints db copy` writes only into an empty database")]
    CopyTargetNotEmpty { to: String, snapshots: usize },
    #[error("the copy in {to} does not match {from}: {what}")]
    CopyMismatch { from: String, to: String, what: String },
}

impl StoreError {
    /// Whether the error is in what the user gave or named (exit 2; HTTP 400 from `hints
    /// serve`), not in the database or the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::UnknownRevision(_)
                | StoreError::AmbiguousRevision { .. }
                | StoreError::BadRange { .. }
                | StoreError::Missing(_)
                | StoreError::NoRevisions(_)
                | StoreError::NotHints { .. }
                | StoreError::CopyTargetNotEmpty { .. }
        )
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Added { new_paths: usize },
    Unchanged,
    Replaced { new_paths: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    id: i64,
    nar_size: u64,
    refs_digest: [u8; 8],
    complete: bool,
    /// [`fnv64`] of the full path: the same hash under another name or store dir differs here.
    path_digest: u64,
}

pub struct Store {
    db: Box<dyn Backend>,
    /// The location as messages name it.
    location: String,
    known: foldhash::HashMap<[u8; 20], Known>,
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
        let mut scratch = vec![];
        let refs_digests = (0..closure.len())
            .map(|i| {
                scratch.clear();
                scratch.extend(closure.refs(i).iter().map(|&r| &hashes[r as usize]));
                refs_digest_of(&mut scratch)
            })
            .collect();
        let path_digests = closure.paths().map(|p| fnv64(p.as_str().as_bytes())).collect();
        Ok(Prepared { digest: snapshot_digest(closure), hashes, refs_digests, path_digests, topo: closure.topo_order().to_vec() })
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

impl Store {
    /// Opens the history at `location`, creating and migrating its schema as needed.
    pub fn open(location: impl Into<Location>) -> Result<Self> {
        let location = location.into();
        let name = location.describe();
        let db: Box<dyn Backend> = match &location {
            Location::File(path) => Box::new(sqlite::Sqlite::open(path).map_err(|error| database_error(&name, error))?),
            Location::Postgres(url) => Box::new(postgres::Postgres::connect(url).map_err(|error| database_error(&name, error))?),
        };
        let mut store = Store::with(db, name);
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing history for reading: nothing is created or written (but an older
    /// hints schema, which is upgraded in place once), and an SQLite file in a read-only
    /// directory can still be read. A missing file or database, an empty or foreign one, or a
    /// newer schema is an error.
    pub fn open_existing(location: impl Into<Location>) -> Result<Self> {
        let location = location.into();
        let name = location.describe();
        let not_hints = |why: &str| StoreError::NotHints { file: name.clone(), why: why.to_string() };
        let opened = match &location {
            Location::File(path) if !path.is_file() => return Err(StoreError::Missing(name)),
            Location::File(path) if path.metadata().map(|m| m.len()).unwrap_or(0) == 0 => return Err(not_hints("the file is empty")),
            Location::File(path) => sqlite::Sqlite::open_read_only(path).map(|db| Box::new(db) as Box<dyn Backend>),
            Location::Postgres(url) => postgres::Postgres::connect(url).map(|db| Box::new(db) as Box<dyn Backend>),
        };
        let (db, version) = match opened.and_then(|db| db.schema_version().map(|v| (db, v))) {
            Ok(found) => found,
            Err(e) if sqlite::is_not_a_database(&e) => return Err(not_hints("not an SQLite file")),
            Err(error) => return Err(database_error(&name, error)),
        };
        match version {
            SCHEMA_VERSION => Ok(Store::with(db, name)),
            v if v > SCHEMA_VERSION => Err(StoreError::TooNew { file: name, found: v }),
            // An older hints database is upgraded in place once (one transaction), then read.
            v if v >= 1 => {
                drop(db);
                drop(Store::open(&location)?);
                Store::open_existing(&location)
            }
            0 if matches!(location, Location::Postgres(_)) && db.table_count().map_err(|error| database_error(&name, error))? == 0 => Err(StoreError::Missing(name)),
            v => Err(not_hints(&format!("schema version {v}; this hints writes version {SCHEMA_VERSION}"))),
        }
    }

    fn with(db: Box<dyn Backend>, location: String) -> Self {
        Store { db, location, known: Default::default(), name_ids: HashMap::new(), dir_ids: HashMap::new() }
    }

    /// Runs `f` inside one read transaction, so every query in it sees the same committed
    /// state however many writers commit meanwhile (readers never wait for writers).
    pub fn read<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.transaction(Access::Read, f)
    }

    /// Runs `f` in a transaction: committed if it succeeds, rolled back if anything fails.
    fn transaction<T>(&self, access: Access, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.db.begin(access).map_err(|e| self.db_error(e))?;
        let out = f(self).and_then(|v| self.db.commit().map(|()| v).map_err(|e| self.db_error(e)));
        if out.is_err() {
            // The error that matters is the first; a failed rollback is rolled back by the
            // database when the connection closes.
            let _ = self.db.rollback();
        }
        out
    }

    /// The history's location, as messages name it (a file, or a URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn db_error(&self, error: DbError) -> StoreError {
        database_error(&self.location, error)
    }

    /// The error for a database whose rows contradict each other.
    fn damaged(&self, what: impl Into<String>) -> StoreError {
        damaged(&self.location, what.into())
    }

    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        self.db.execute(sql, params).map_err(|e| self.db_error(e))
    }

    /// Every row of a query, each read by `read`; a cell of the wrong type is damage.
    fn rows<T>(&self, sql: &str, params: &[Value<'_>], read: impl Fn(&mut Row) -> std::result::Result<T, CellError>) -> Result<Vec<T>> {
        let rows = self.db.query(sql, params).map_err(|e| self.db_error(e))?;
        rows.into_iter().map(|mut r| read(&mut r).map_err(|e| self.bad_cell(sql, e))).collect()
    }

    /// The first row of a query, if any.
    fn row<T>(&self, sql: &str, params: &[Value<'_>], read: impl Fn(&mut Row) -> std::result::Result<T, CellError>) -> Result<Option<T>> {
        Ok(self.rows(sql, params, read)?.into_iter().next())
    }

    fn bad_cell(&self, sql: &str, e: CellError) -> StoreError {
        let query: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        self.damaged(format!("column {} of `{query}` is not {}", e.column + 1, e.expected))
    }

    fn migrate(&mut self) -> Result<()> {
        self.transaction(Access::Write, |store| {
            let db = &store.db;
            let version = db.schema_version().map_err(|e| store.db_error(e))?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::TooNew { file: store.location.clone(), found: version });
            }
            let tables = db.table_count().map_err(|e| store.db_error(e))?;
            if version < 0 || (version == 0 && tables > 0) {
                return Err(StoreError::NotHints { file: store.location.clone(), why: format!("schema version {version} with {tables} tables of its own") });
            }
            for (k, sql) in db.migrations().iter().enumerate().skip(version as usize) {
                db.execute_batch(sql).and_then(|()| db.set_schema_version(k as i64 + 1)).map_err(|e| store.db_error(e))?;
            }
            if version < ROW_CHECKS {
                store.fill_row_checks()?;
            }
            Ok(())
        })
    }

    /// Records `closure` as image `image` at `revision`. Identical → no-op; different → replaced
    /// atomically. A snapshot added or replaced also records `revision`'s metadata (commit,
    /// time, branch, dirty) for its label.
    pub fn ingest(&mut self, image: &str, revision: &Revision, closure: &Closure, complete: bool) -> Result<Outcome> {
        self.ingest_prepared(image, revision, closure, &Prepared::new(closure)?, complete)
    }

    /// [`Store::ingest`] with the pure part already done.
    pub fn ingest_prepared(&mut self, image: &str, revision: &Revision, closure: &Closure, prep: &Prepared, complete: bool) -> Result<Outcome> {
        let (outcome, recorded) = self.transaction(Access::Write, |store| store.write(image, revision, closure, prep, complete))?;
        if let Some(recorded) = recorded {
            self.remember(recorded);
        }
        Ok(outcome)
    }

    /// The body of an ingest's transaction; returns what to cache once it commits.
    fn write(&self, image: &str, revision: &Revision, closure: &Closure, prep: &Prepared, complete: bool) -> Result<(Outcome, Option<RecordedPaths>)> {
        let image_id = self.upsert_id("images", "name", image)?;
        self.exec("UPDATE images SET row_check = ?2 WHERE id = ?1", &[Value::Int(image_id), Value::Blob(&image_check(image_id, image))])?;
        let revision_id = self.upsert_revision(revision)?;
        let existing = self.row("SELECT digest FROM snapshots WHERE image_id = ?1 AND revision_id = ?2", &[Value::Int(image_id), Value::Int(revision_id)], |r| r.blob(0))?;
        if existing.as_deref() == Some(&prep.digest[..]) {
            return Ok((Outcome::Unchanged, None));
        }
        // The snapshot is new or replaced: the revision's metadata is this scan's.
        self.update_revision(revision_id, revision)?;
        let dir = closure.path(0).store_dir();
        if let Some(other) = self.row("SELECT dir FROM store_dirs WHERE dir != ?1 LIMIT 1", &[Value::Text(dir)], |r| r.text(0))? {
            return Err(StoreError::Conflict { path: closure.path(0).to_string(), what: format!("another store directory: the database holds paths of {other}") });
        }
        let recorded = self.record_paths(closure, prep, complete)?;
        self.write_snapshot((image_id, revision_id), &prep.digest, closure, complete, &recorded.ids)?;
        let new_paths = recorded.new_paths;
        let outcome = if existing.is_some() { Outcome::Replaced { new_paths } } else { Outcome::Added { new_paths } };
        Ok((outcome, Some(recorded)))
    }

    /// Finds or inserts every path of `closure`, checking that a recorded path has the same
    /// name, size and references. Paths the cache does not know are looked up, and new ones
    /// inserted, in batches ([`batches`]): a round trip to a database server costs more than
    /// the row. New paths take the ids after the largest, in dependency order (the write lock
    /// makes those ids this transaction's), so every reference list is known before the insert.
    fn record_paths(&self, closure: &Closure, prep: &Prepared, complete: bool) -> Result<RecordedPaths> {
        let hashes = &prep.hashes;
        let unknown: Vec<&[u8; 20]> = hashes.iter().filter(|h| !self.known.contains_key(*h)).collect();
        let looked_up = self.lookup(&unknown)?;
        let mut next_id = self.row("SELECT coalesce(max(id), 0) FROM paths", &[], |r| r.int(0))?.unwrap_or(0) + 1;
        let mut r = RecordedPaths { ids: vec![0i64; closure.len()], known: vec![], new_paths: 0, new_names: vec![] };
        let mut inserts: Vec<(usize, Vec<i64>)> = vec![];
        for &i in &prep.topo {
            let info = closure.record(i);
            let refs_digest = prep.refs_digests[i];
            let cached = self.known.get(&hashes[i]).copied();
            let found = cached.or_else(|| looked_up.get(&hashes[i]).copied());
            if let Some(k) = found.filter(|k| k.path_digest != prep.path_digests[i]) {
                let recorded = self.path_of(k.id)?;
                return Err(StoreError::Conflict { path: info.path.to_string(), what: format!("the same hash under another name, as {recorded}") });
            }
            // The reference ids, sorted; needed only for a row written now.
            let ref_ids = |ids: &[i64]| {
                let mut v: Vec<i64> = closure.refs(i).iter().map(|&x| ids[x as usize]).collect();
                v.sort_unstable();
                v
            };
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
                    self.update_path(k.id, info, &ref_ids(&r.ids), &refs_digest)?;
                    Known { nar_size: info.nar_size, refs_digest, complete, ..k }
                }
                Some(k) => k,
                None => {
                    let id = next_id;
                    next_id += 1;
                    inserts.push((i, ref_ids(&r.ids)));
                    Known { id, nar_size: info.nar_size, refs_digest, complete, path_digest: prep.path_digests[i] }
                }
            };
            r.ids[i] = known.id;
            // The cache learns what it did not hold as it is now.
            if cached != Some(known) {
                r.known.push((hashes[i], known));
            }
        }
        r.new_paths = inserts.len();
        self.insert_paths(closure, prep, complete, &inserts, &mut r)?;
        Ok(r)
    }

    /// Inserts the new paths `inserts` (closure index, sorted reference ids), with the ids in
    /// `r.ids`, interning their names and store directories first.
    fn insert_paths(&self, closure: &Closure, prep: &Prepared, complete: bool, inserts: &[(usize, Vec<i64>)], r: &mut RecordedPaths) -> Result<()> {
        let dirs = self.intern(true, inserts.iter().map(|(i, _)| closure.path(*i).store_dir()), &mut r.new_names)?;
        let names = self.intern(false, inserts.iter().map(|(i, _)| closure.path(*i).name()), &mut r.new_names)?;
        let refs: Vec<Vec<u8>> = inserts.iter().map(|(_, ids)| encode_ids(ids)).collect();
        let complete = i64::from(complete);
        for batch in batches(inserts.len()) {
            let mut params = Vec::with_capacity(batch.len() * 10);
            for k in batch.clone() {
                let (i, info) = (inserts[k].0, closure.record(inserts[k].0));
                params.extend([
                    Value::Int(r.ids[i]),
                    Value::Blob(&prep.hashes[i]),
                    Value::Int(dirs[info.path.store_dir()]),
                    Value::Int(names[info.path.name()]),
                    Value::Int(info.nar_size as i64),
                    Value::OptText(info.nar_hash.as_deref()),
                    Value::OptInt(info.closure_size.map(|c| c as i64)),
                    Value::Blob(&refs[k]),
                    Value::Blob(&prep.refs_digests[i]),
                    Value::Int(complete),
                ]);
            }
            let sql = format!("INSERT INTO paths (id, hash, dir_id, name_id, nar_size, nar_hash, closure_size, refs, refs_digest, complete) VALUES {}", placeholders(batch.len(), 10));
            self.exec(&sql, &params)?;
        }
        Ok(())
    }

    /// The ids of store directories (`is_dir`) or names, inserting those that are new (and
    /// noting them in `new_names`, to cache once the transaction commits).
    fn intern<'a>(&self, is_dir: bool, values: impl Iterator<Item = &'a str>, new_names: &mut Vec<(bool, String, i64)>) -> Result<HashMap<&'a str, i64>> {
        let (table, column) = if is_dir { ("store_dirs", "dir") } else { ("names", "name") };
        let cache = if is_dir { &self.dir_ids } else { &self.name_ids };
        let mut ids: HashMap<&str, i64> = HashMap::new();
        let (mut missing, mut asked): (Vec<&str>, HashSet<&str>) = Default::default();
        for value in values {
            match cache.get(value) {
                Some(&id) => drop(ids.insert(value, id)),
                None if asked.insert(value) => missing.push(value),
                None => {}
            }
        }
        for batch in batches(missing.len()) {
            let params: Vec<Value<'_>> = missing[batch.clone()].iter().map(|v| Value::Text(v)).collect();
            self.exec(&format!("INSERT INTO {table} ({column}) VALUES {} ON CONFLICT ({column}) DO NOTHING", placeholders(batch.len(), 1)), &params)?;
            let found = self.rows(&format!("SELECT {column}, id FROM {table} WHERE {column} IN ({})", list(batch.len())), &params, |r| Ok((r.text(0)?, r.int(1)?)))?;
            for (value, id) in found {
                let value = asked.get(value.as_str()).copied().ok_or_else(|| self.damaged(format!("{table}: an id for `{value}`, which was not asked for")))?;
                ids.insert(value, id);
                new_names.push((is_dir, value.to_string(), id));
            }
        }
        match missing.iter().find(|v| !ids.contains_key(**v)) {
            Some(v) => Err(self.damaged(format!("{table}: the row for `{v}` vanished as it was written"))),
            None => Ok(ids),
        }
    }

    /// Caches what a committed ingest found and added.
    fn remember(&mut self, recorded: RecordedPaths) {
        self.known.extend(recorded.known);
        for (is_dir, value, id) in recorded.new_names {
            if is_dir { &mut self.dir_ids } else { &mut self.name_ids }.insert(value, id);
        }
    }

    /// The id of the row of `table` whose `column` is `value`, inserted if there is none.
    fn upsert_id(&self, table: &str, column: &str, value: &str) -> Result<i64> {
        self.exec(&format!("INSERT INTO {table} ({column}) VALUES (?1) ON CONFLICT ({column}) DO NOTHING"), &[Value::Text(value)])?;
        let id = self.row(&format!("SELECT id FROM {table} WHERE {column} = ?1"), &[Value::Text(value)], |r| r.int(0))?;
        id.ok_or_else(|| self.damaged(format!("{table}: the row for `{value}` vanished as it was written")))
    }

    /// The id of the revision labelled `r.label`, recorded with `r`'s metadata if it is new.
    fn upsert_revision(&self, r: &Revision) -> Result<i64> {
        if let Some(id) = self.row("SELECT id FROM revisions WHERE label = ?1", &[Value::Text(&r.label)], |row| row.int(0))? {
            return Ok(id);
        }
        let inserted = self.row("INSERT INTO revisions (label, time) VALUES (?1, ?2) RETURNING id", &[Value::Text(&r.label), Value::Text(&r.time)], |row| row.int(0))?;
        let id = inserted.ok_or_else(|| self.damaged("revisions: an insert returned no id"))?;
        self.update_revision(id, r)?;
        Ok(id)
    }

    fn update_revision(&self, id: i64, r: &Revision) -> Result<()> {
        let sql = "UPDATE revisions SET commit_id = ?2, time = ?3, branch = ?4, dirty = ?5, row_check = ?6 WHERE id = ?1";
        let check = revision_check(id, r);
        self.exec(sql, &[Value::Int(id), Value::OptText(r.commit.as_deref()), Value::Text(&r.time), Value::OptText(r.branch.as_deref()), Value::Int(r.dirty.into()), Value::Blob(&check)])?;
        Ok(())
    }

    /// Inserts or replaces the snapshot row of (image id, revision id).
    fn write_snapshot(&self, (image_id, revision_id): (i64, i64), digest: &[u8; 32], closure: &Closure, complete: bool, ids: &[i64]) -> Result<()> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let total = closure.total_size();
        let check = snapshot_check(image_id, revision_id, digest, total);
        let sql = "INSERT INTO snapshots (image_id, revision_id, digest, path_count, total_size, complete, members, row_check)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (image_id, revision_id) DO UPDATE SET digest = excluded.digest,
               path_count = excluded.path_count, total_size = excluded.total_size,
               complete = excluded.complete, members = excluded.members, row_check = excluded.row_check";
        let members = encode_ids(&sorted);
        let params = [
            Value::Int(image_id),
            Value::Int(revision_id),
            Value::Blob(digest),
            Value::Int(closure.len() as i64),
            Value::Int(total as i64),
            Value::Int(complete.into()),
            Value::Blob(&members),
            Value::Blob(&check),
        ];
        self.exec(sql, &params)?;
        Ok(())
    }

    /// The recorded facts of the paths with these hashes that are recorded.
    fn lookup(&self, hashes: &[&[u8; 20]]) -> Result<HashMap<[u8; 20], Known>> {
        let mut out = HashMap::new();
        for batch in batches(hashes.len()) {
            let sql = format!(
                "SELECT p.hash, p.id, p.nar_size, p.refs_digest, p.complete, d.dir, n.name FROM paths p
                 JOIN names n ON n.id = p.name_id JOIN store_dirs d ON d.id = p.dir_id WHERE p.hash IN ({})",
                list(batch.len())
            );
            let params: Vec<Value<'_>> = hashes[batch].iter().map(|h| Value::Blob(&h[..])).collect();
            for (hash, id, nar_size, refs_digest, complete, dir, name) in self.rows(&sql, &params, |r| Ok((r.blob(0)?, r.int(1)?, r.int(2)?, r.blob(3)?, r.flag(4)?, r.text(5)?, r.text(6)?)))? {
                let bad = |what: &str| self.damaged(format!("path id {id}: {what}"));
                let hash: [u8; 20] = hash.try_into().map_err(|_| bad("hash is not 20 bytes"))?;
                let refs_digest: [u8; 8] = refs_digest.try_into().map_err(|_| bad("references digest is not 8 bytes"))?;
                let path = format!("{dir}/{}-{name}", nixbase32::encode(&hash));
                out.insert(hash, Known { id, nar_size: nar_size as u64, refs_digest, complete, path_digest: fnv64(path.as_bytes()) });
            }
        }
        Ok(out)
    }

    /// The recorded path of a path id, for messages.
    fn path_of(&self, id: i64) -> Result<String> {
        let sql = "SELECT d.dir, p.hash, n.name FROM paths p JOIN names n ON n.id = p.name_id JOIN store_dirs d ON d.id = p.dir_id WHERE p.id = ?1";
        let found = self.row(sql, &[Value::Int(id)], |r| Ok(format!("{}/{}-{}", r.text(0)?, nixbase32::encode(&r.blob(1)?), r.text(2)?)))?;
        found.ok_or_else(|| self.damaged(format!("path id {id} is missing")))
    }

    fn update_path(&self, id: i64, info: &layering_core::PathRecord, ref_ids: &[i64], refs_digest: &[u8; 8]) -> Result<()> {
        let sql = "UPDATE paths SET nar_size = ?2, nar_hash = ?3, closure_size = ?4, refs = ?5, refs_digest = ?6, complete = 1 WHERE id = ?1";
        let refs = encode_ids(ref_ids);
        let params = [
            Value::Int(id),
            Value::Int(info.nar_size as i64),
            Value::OptText(info.nar_hash.as_deref()),
            Value::OptInt(info.closure_size.map(|c| c as i64)),
            Value::Blob(&refs),
            Value::Blob(refs_digest),
        ];
        self.exec(sql, &params)?;
        Ok(())
    }

    /// Computes `row_check` for every image, revision and snapshot (migration to version 2).
    fn fill_row_checks(&self) -> Result<()> {
        for (id, name) in self.rows("SELECT id, name FROM images", &[], |r| Ok((r.int(0)?, r.text(1)?)))? {
            self.exec("UPDATE images SET row_check = ?2 WHERE id = ?1", &[Value::Int(id), Value::Blob(&image_check(id, &name))])?;
        }
        for (id, r) in self.rows("SELECT id, label, commit_id, time, branch, dirty FROM revisions", &[], |r| Ok((r.int(0)?, revision_of(r, 1)?)))? {
            self.update_revision(id, &r)?;
        }
        let snapshots = self.rows("SELECT id, image_id, revision_id, digest, total_size FROM snapshots", &[], |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.blob(3)?, r.int(4)?)))?;
        for (id, image, revision, digest, total) in snapshots {
            let digest: [u8; 32] = digest.as_slice().try_into().unwrap_or([0; 32]);
            self.exec("UPDATE snapshots SET row_check = ?2 WHERE id = ?1", &[Value::Int(id), Value::Blob(&snapshot_check(image, revision, &digest, total as u64))])?;
        }
        Ok(())
    }

    /// The snapshot digest recorded for (image, revision label), if any: compared with a
    /// re-scanned snapshot's paths digest, the cheap check that makes re-scanning an unchanged
    /// snapshot a no-op without re-validating it.
    pub fn snapshot_digest(&self, image: &str, revision: &str) -> Result<Option<[u8; 32]>> {
        let sql = "SELECT s.digest FROM snapshots s JOIN images i ON i.id = s.image_id JOIN revisions r ON r.id = s.revision_id
                 WHERE i.name = ?1 AND r.label = ?2";
        let digest = self.row(sql, &[Value::Text(image), Value::Text(revision)], |r| r.blob(0))?;
        digest.map(|d| d.try_into().map_err(|_| self.damaged(format!("the snapshot of {image} at {revision}: digest is not 32 bytes")))).transpose()
    }

    /// Revisions in history order (time, then first recorded).
    pub fn revisions(&self) -> Result<Vec<(i64, Revision)>> {
        let sql = "SELECT id, label, commit_id, time, branch, dirty, row_check FROM revisions ORDER BY time, id";
        let rows = self.rows(sql, &[], |r| Ok((r.int(0)?, revision_of(r, 1)?, r.opt_blob(6)?)))?;
        rows.into_iter()
            .map(|(id, rev, check)| match check.as_deref() == Some(&revision_check(id, &rev)[..]) {
                true => Ok((id, rev)),
                false => Err(self.damaged(format!("revision row {id} (`{}`) fails its check", rev.label))),
            })
            .collect()
    }

    /// The recorded metadata of the revision labelled `label`, if any.
    pub fn revision(&self, label: &str) -> Result<Option<Revision>> {
        self.row("SELECT label, commit_id, time, branch, dirty FROM revisions WHERE label = ?1", &[Value::Text(label)], |r| revision_of(r, 0))
    }

    /// Images by name.
    pub fn images(&self) -> Result<Vec<(i64, String)>> {
        let rows = self.rows("SELECT id, name, row_check FROM images ORDER BY name", &[], |r| Ok((r.int(0)?, r.text(1)?, r.opt_blob(2)?)))?;
        rows.into_iter()
            .map(|(id, name, check)| match check.as_deref() == Some(&image_check(id, &name)[..]) {
                true => Ok((id, name)),
                false => Err(self.damaged(format!("image row {id} (`{name}`) fails its check"))),
            })
            .collect()
    }

    /// Every snapshot, for `hints ls`.
    pub fn snapshot_rows(&self) -> Result<Vec<SnapshotRow>> {
        let sql = "SELECT i.name, r.label, r.time, s.path_count, s.total_size, s.complete
                 FROM snapshots s JOIN images i ON i.id = s.image_id JOIN revisions r ON r.id = s.revision_id
                 ORDER BY i.name, r.time, r.id";
        self.rows(sql, &[], |r| Ok(SnapshotRow { image: r.text(0)?, revision: r.text(1)?, time: r.text(2)?, paths: r.int(3)? as u64, bytes: r.int(4)? as u64, complete: r.flag(5)? }))
    }

    /// Every snapshot as stored, or those of the revisions with the ids `revisions`: (image id,
    /// revision id) → members and the figures to check them against.
    pub fn memberships(&self, revisions: Option<&[i64]>) -> Result<HashMap<(i64, i64), StoredSnapshot>> {
        const COLUMNS: &str = "SELECT image_id, revision_id, members, digest, total_size, row_check FROM snapshots";
        let read = |r: &mut Row| Ok(((r.int(0)?, r.int(1)?), r.blob(2)?, r.blob(3)?, r.int(4)?, r.opt_blob(5)?));
        let rows = match revisions {
            None => self.rows(COLUMNS, &[], read)?,
            Some(ids) => {
                let sql = format!("{COLUMNS} WHERE revision_id = ?1");
                let mut rows = Vec::new();
                for &id in ids {
                    rows.extend(self.rows(&sql, &[Value::Int(id)], read)?);
                }
                rows
            }
        };
        let file = self.location.as_str();
        rows.into_par_iter()
            .map(|(key, members, digest, total_size, check)| {
                let bad = |what: &str| damaged(file, format!("snapshot (image id {}, revision id {}): {what}", key.0, key.1));
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

    /// Every path record, or those with the ids `only`, with its id, in no particular order.
    /// Store directories and names are read once each, not joined into every path's row.
    pub fn all_paths(&self, only: Option<&HashSet<i64>>) -> Result<Vec<(i64, PathRecord)>> {
        let texts = |sql: &str| -> Result<HashMap<i64, String>> { Ok(self.rows(sql, &[], |r| Ok((r.int(0)?, r.text(1)?)))?.into_iter().collect()) };
        let (dirs, names) = (texts("SELECT id, dir FROM store_dirs")?, texts("SELECT id, name FROM names")?);
        let sql = "SELECT id, dir_id, hash, name_id, nar_size, refs, refs_digest FROM paths";
        let rows = self.rows(sql, &[], |r| Ok((r.int(0)?, r.int(1)?, r.blob(2)?, r.int(3)?, r.int(4)?, r.blob(5)?, r.blob(6)?)))?;
        let file = self.location.as_str();
        rows.into_par_iter()
            .filter(|row| only.is_none_or(|ids| ids.contains(&row.0)))
            .map(|(id, dir_id, hash, name_id, nar_size, refs, refs_digest)| {
                let bad = |what: &str| damaged(file, format!("path id {id}: {what}"));
                let dir = dirs.get(&dir_id).ok_or_else(|| bad(&format!("store directory id {dir_id} is missing")))?;
                let name = names.get(&name_id).ok_or_else(|| bad(&format!("name id {name_id} is missing")))?;
                let hash: [u8; 20] = hash.try_into().map_err(|_| bad("hash is not 20 bytes"))?;
                let base = format!("{}-{name}", nixbase32::encode(&hash));
                let path = StorePath::from_base(dir, &base).map_err(|e| bad(&format!("not a store path: {e}")))?;
                let nar_size = u64::try_from(nar_size).map_err(|_| bad("negative narSize"))?;
                let refs = decode_ids(&refs).ok_or_else(|| bad("malformed reference list"))?;
                let refs_digest = refs_digest.try_into().map_err(|_| bad("references digest is not 8 bytes"))?;
                Ok((id, PathRecord { path, hash, nar_size, refs, refs_digest }))
            })
            .collect()
    }

    /// A digest of everything recorded: (image, revision, snapshot digest) in order.
    pub fn summary_hash(&self) -> Result<String> {
        let sql = "SELECT i.name, r.label, s.digest FROM snapshots s JOIN images i ON i.id = s.image_id
                 JOIN revisions r ON r.id = s.revision_id ORDER BY i.name, r.label";
        let mut h = Sha256::new();
        for (image, label, digest) in self.rows(sql, &[], |r| Ok((r.text(0)?, r.text(1)?, r.blob(2)?)))? {
            h.update(image.as_bytes());
            h.update([0]);
            h.update(label.as_bytes());
            h.update([0]);
            h.update(digest);
        }
        Ok(format!("sha256:{}", hex(&h.finalize())))
    }

    /// Records an access token of `project` with `scope`, by its SHA-256 only.
    pub fn add_token(&self, project: &str, scope: &str, hash: &[u8; 32], created: &str) -> Result<()> {
        self.transaction(Access::Write, |store| {
            store.exec("INSERT INTO tokens (project, scope, hash, created) VALUES (?1, ?2, ?3, ?4)", &[Value::Text(project), Value::Text(scope), Value::Blob(hash), Value::Text(created)])?;
            Ok(())
        })
    }

    /// Every token as (project, scope, SHA-256).
    pub fn tokens(&self) -> Result<Vec<(String, String, Vec<u8>)>> {
        self.rows("SELECT project, scope, hash FROM tokens ORDER BY id", &[], |r| Ok((r.text(0)?, r.text(1)?, r.blob(2)?)))
    }

    /// The database's own consistency check: `ok` for a sound database, else the first
    /// problem found (SQLite's `integrity_check`).
    pub fn integrity_check(&self) -> Result<String> {
        self.db.integrity_check().map_err(|e| self.db_error(e))
    }
}

/// The most rows one statement writes or asks for.
const MAX_BATCH: usize = 256;

/// `0..n` in consecutive ranges whose lengths are powers of two up to [`MAX_BATCH`]: few
/// round trips, and few distinct statements to prepare and cache.
fn batches(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = n - start;
        (left > 0).then(|| {
            let len = MAX_BATCH.min(1 << left.ilog2());
            start += len;
            start - len..start
        })
    })
}

/// `(?1, ?2), (?3, ?4)`: the VALUES of `rows` rows of `columns` parameters.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows).map(|r| format!("({})", (1..=columns).map(|c| format!("?{}", r * columns + c)).collect::<Vec<_>>().join(", "))).collect::<Vec<_>>().join(", ")
}

/// `?1, ?2, …, ?n`.
fn list(n: usize) -> String {
    (1..=n).map(|k| format!("?{k}")).collect::<Vec<_>>().join(", ")
}

/// The store's error for a failure of the database at `location`.
fn database_error(location: &str, error: DbError) -> StoreError {
    StoreError::Database { file: location.to_string(), error }
}

/// The revision in the columns label, commit_id, time, branch, dirty from `first` on.
fn revision_of(r: &mut Row, first: usize) -> std::result::Result<Revision, CellError> {
    Ok(Revision { label: r.text(first)?, commit: r.opt_text(first + 1)?, time: r.text(first + 2)?, branch: r.opt_text(first + 3)?, dirty: r.flag(first + 4)? })
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
    /// Cache entries that are new or changed, to remember once the transaction commits.
    known: Vec<([u8; 20], Known)>,
    new_paths: usize,
    /// (is a store directory, value, id) inserted.
    new_names: Vec<(bool, String, i64)>,
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

fn hash_bytes(p: &StorePath) -> Result<[u8; 20]> {
    nixbase32::decode_path_hash(p.hash()).ok_or_else(|| StoreError::BadHash(p.to_string()))
}

/// FNV-1a, 64-bit.
fn fnv64<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    bytes.into_iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// The references digest of a path whose references (self excluded) have these hashes: FNV-1a
/// (64-bit) over them sorted (the slice is sorted in place). Not cryptographic: it only has to
/// notice a contradicting re-scan, and it is cheap enough to run on every path.
pub fn refs_digest_of(refs: &mut [&[u8; 20]]) -> [u8; 8] {
    refs.sort_unstable();
    fnv64(refs.iter().copied().flatten()).to_le_bytes()
}

/// SHA-256 over the sorted member paths: equal exactly when the closures are (paths are
/// immutable).
pub fn snapshot_digest(closure: &Closure) -> [u8; 32] {
    paths_digest(closure.paths().map(StorePath::as_str))
}

/// The database at `file` holds something no correct write leaves.
fn damaged(file: &str, what: String) -> StoreError {
    StoreError::Damaged { file: file.to_string(), what }
}

/// [`snapshot_digest`] of a list of paths, before any validation: sorted and deduplicated here
/// unless they already are (a closure's paths and a loaded snapshot's come sorted; checking
/// that also brings scattered paths into the cache before they are hashed).
pub fn paths_digest<'a>(paths: impl Iterator<Item = &'a str>) -> [u8; 32] {
    let mut v: Vec<&str> = paths.collect();
    if !v.is_sorted_by(|a, b| a < b) {
        v.sort_unstable();
        v.dedup();
    }
    sorted_paths_digest(v.into_iter().map(str::as_bytes), &mut Vec::new())
}

/// [`paths_digest`] of paths given in strictly increasing order: each path and a newline, in
/// that order, hashed from one buffer (one call into SHA-256 per snapshot, not two per path).
/// The buffer is `text`, cleared first, which a caller digesting many snapshots reuses.
pub fn sorted_paths_digest<'a>(paths: impl Iterator<Item = &'a [u8]>, text: &mut Vec<u8>) -> [u8; 32] {
    text.clear();
    for p in paths {
        text.extend_from_slice(p);
        text.push(b'\n');
    }
    Sha256::digest(&text).into()
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
    use layering_core::PathInfo;
    use rusqlite::Connection;

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
        let closure = Closure::new(vec![PathInfo::new(p("a-1"), 5, vec![])]).unwrap();
        let rev = Revision { label: "r1".into(), commit: None, time: "2025-01-01T00:00:00Z".into(), branch: None, dirty: false };
        Store::open(&db).unwrap().ingest("img", &rev, &closure, true).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE images DROP COLUMN row_check; ALTER TABLE revisions DROP COLUMN row_check;
             ALTER TABLE snapshots DROP COLUMN row_check; DROP TABLE tokens; PRAGMA user_version = 1;",
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
