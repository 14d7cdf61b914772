//! The SQLite backend: the embedded default, one file.
//!
//! WAL mode, a busy timeout plus retries, and `BEGIN IMMEDIATE` for writers: several processes
//! may scan into one file at once, readers never wait for writers, and a crash at any moment
//! leaves every committed transaction intact and no half of one.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, ToSql};

use super::backend::{Access, Backend, Cell, DbError, DbResult, Row, Value};

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
    r#"
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    scope TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created TEXT NOT NULL
);
"#,
];

/// The first wait before retrying SQLITE_BUSY; it doubles up to [`RETRY_MAX_WAIT`].
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(5);
const RETRY_MAX_WAIT: Duration = Duration::from_millis(500);
/// Tries before giving up: about 22 s of waiting on top of the busy timeout.
const RETRIES: usize = 50;
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens (creating if needed) the database file at `path`, for reading and writing.
    pub fn open(path: &Path) -> DbResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Io(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Switching a new file to WAL takes an exclusive lock, and SQLite may answer BUSY there
        // without consulting the busy handler when several processes open it at once.
        retry(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self::with(conn))
    }

    /// Opens an existing file read-only. A WAL database whose directory is read-only cannot
    /// get its shared-memory index: it is read as immutable instead (nobody can be writing to
    /// it there).
    pub fn open_read_only(path: &Path) -> DbResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::CannotOpen || e.code == rusqlite::ErrorCode::ReadOnly => {
                let conn = Connection::open_with_flags(format!("file:{}?immutable=1", path.display()), flags)?;
                Ok(Self::with(conn))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(Self::with(conn)),
        }
    }

    fn with(conn: Connection) -> Self {
        conn.set_prepared_statement_cache_capacity(64);
        Sqlite { conn }
    }
}

/// Whether `e` says the file is not an SQLite database at all.
pub fn is_not_a_database(e: &DbError) -> bool {
    matches!(e, DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::NotADatabase)
}

fn params<'a>(values: &'a [Value<'a>]) -> Vec<&'a dyn ToSql> {
    values
        .iter()
        .map(|v| -> &dyn ToSql {
            match v {
                Value::Int(i) => i,
                Value::OptInt(i) => i,
                Value::Text(s) => s,
                Value::OptText(s) => s,
                Value::Blob(b) => b,
                Value::OptBlob(b) => b,
            }
        })
        .collect()
}

fn cell(v: ValueRef<'_>) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        // No column of the schema holds a real; a damaged row's is shown as text.
        ValueRef::Real(f) => Cell::Text(f.to_string()),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
    }
}

impl Backend for Sqlite {
    fn begin(&self, access: Access) -> DbResult<()> {
        let sql = match access {
            Access::Read => "BEGIN DEFERRED",
            Access::Write => "BEGIN IMMEDIATE",
        };
        Ok(retry(|| self.conn.execute_batch(sql))?)
    }

    fn commit(&self) -> DbResult<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn rollback(&self) -> DbResult<()> {
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }

    fn execute(&self, sql: &str, values: &[Value<'_>]) -> DbResult<u64> {
        Ok(self.conn.prepare_cached(sql)?.execute(params(values).as_slice())? as u64)
    }

    fn execute_batch(&self, sql: &str) -> DbResult<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn query(&self, sql: &str, values: &[Value<'_>]) -> DbResult<Vec<Row>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(params(values).as_slice())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Row((0..columns).map(|i| r.get_ref(i).map(cell)).collect::<rusqlite::Result<_>>()?));
        }
        Ok(out)
    }

    /// SQLite gives a new row the largest id plus one: nothing to move.
    fn ids_inserted(&self, _table: &str) -> DbResult<()> {
        Ok(())
    }

    fn schema_version(&self) -> DbResult<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn set_schema_version(&self, version: i64) -> DbResult<()> {
        Ok(self.conn.pragma_update(None, "user_version", version)?)
    }

    fn table_count(&self) -> DbResult<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?)
    }

    fn migrations(&self) -> &'static [&'static str] {
        MIGRATIONS
    }

    fn integrity_check(&self) -> DbResult<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

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
