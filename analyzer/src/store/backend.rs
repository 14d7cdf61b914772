//! The one interface the history store has to a database, and where a database is.
//!
//! The store ([`super::Store`]) holds every rule: what a row means, its checks, the ingest and
//! its conflicts. A backend only runs SQL: it begins and ends transactions, runs statements with
//! parameters and returns rows of plain cells. Both backends take the same SQL text, written
//! with SQLite's numbered parameters (`?1`), which the PostgreSQL backend turns into `$1`; the
//! schemas differ only in their column types, and flags are integers 0/1 in both, so no
//! statement needs a dialect of its own. The schema version is kept where each database keeps
//! such a number (`PRAGMA user_version`; a `hints_schema` table in PostgreSQL).

use std::path::{Path, PathBuf};

/// A parameter of a statement.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Blob(&'a [u8]),
    OptBlob(Option<&'a [u8]>),
}

/// A cell of a returned row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A returned row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Cell>);

/// A cell that does not hold what the schema says its column holds: the database is damaged.
#[derive(Debug, Clone, Copy)]
pub struct CellError {
    pub column: usize,
    pub expected: &'static str,
}

type CellResult<T> = Result<T, CellError>;

impl Row {
    fn cell(&self, i: usize, expected: &'static str) -> CellResult<&Cell> {
        self.0.get(i).ok_or(CellError { column: i, expected })
    }

    fn cell_mut(&mut self, i: usize, expected: &'static str) -> CellResult<&mut Cell> {
        self.0.get_mut(i).ok_or(CellError { column: i, expected })
    }

    pub fn int(&self, i: usize) -> CellResult<i64> {
        match self.cell(i, "an integer")? {
            Cell::Int(v) => Ok(*v),
            _ => Err(CellError { column: i, expected: "an integer" }),
        }
    }

    pub fn opt_int(&self, i: usize) -> CellResult<Option<i64>> {
        match self.cell(i, "an integer or NULL")? {
            Cell::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }

    /// A flag, stored as the integer 0 or 1.
    pub fn flag(&self, i: usize) -> CellResult<bool> {
        match self.int(i) {
            Ok(0) => Ok(false),
            Ok(1) => Ok(true),
            _ => Err(CellError { column: i, expected: "0 or 1" }),
        }
    }

    /// Moves the text out of column `i` (read each text or bytes column once).
    pub fn text(&mut self, i: usize) -> CellResult<String> {
        match self.cell_mut(i, "text")? {
            Cell::Text(s) => Ok(std::mem::take(s)),
            _ => Err(CellError { column: i, expected: "text" }),
        }
    }

    pub fn opt_text(&mut self, i: usize) -> CellResult<Option<String>> {
        match self.cell(i, "text or NULL")? {
            Cell::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// Moves the bytes out of column `i` (read each text or bytes column once).
    pub fn blob(&mut self, i: usize) -> CellResult<Vec<u8>> {
        match self.cell_mut(i, "bytes")? {
            Cell::Blob(b) => Ok(std::mem::take(b)),
            _ => Err(CellError { column: i, expected: "bytes" }),
        }
    }

    pub fn opt_blob(&mut self, i: usize) -> CellResult<Option<Vec<u8>>> {
        match self.cell(i, "bytes or NULL")? {
            Cell::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }
}

/// What a backend reports when the database itself fails (not when a row is wrong).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error, already put in words ([`super::postgres::describe_error`]).
    #[error("{0}")]
    Postgres(String),
    #[error("{0}")]
    Io(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// The kind of transaction to begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Sees one committed state throughout, writes nothing.
    Read,
    /// Excludes every other writer until it ends (so two writers never interleave).
    Write,
}

/// A database the store can live in.
pub trait Backend: Send {
    /// Begins a transaction.
    fn begin(&self, access: Access) -> DbResult<()>;
    fn commit(&self) -> DbResult<()>;
    fn rollback(&self) -> DbResult<()>;
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value<'_>]) -> DbResult<u64>;
    /// Runs several statements without parameters (a migration).
    fn execute_batch(&self, sql: &str) -> DbResult<()>;
    /// Runs a query; returns every row.
    fn query(&self, sql: &str, params: &[Value<'_>]) -> DbResult<Vec<Row>>;
    /// Moves the id generator of `table` past its largest id, after rows were inserted with
    /// their ids given (a copy).
    fn ids_inserted(&self, table: &str) -> DbResult<()>;
    /// The schema version recorded in the database (0 for a database hints never wrote to).
    fn schema_version(&self) -> DbResult<i64>;
    fn set_schema_version(&self, version: i64) -> DbResult<()>;
    /// How many tables the database holds (to tell an empty database from a foreign one).
    fn table_count(&self) -> DbResult<i64>;
    /// `MIGRATIONS[k]` brings this backend's schema from version `k` to `k + 1`.
    fn migrations(&self) -> &'static [&'static str];
    /// The database's own consistency check: `ok`, or the first problem found.
    fn integrity_check(&self) -> DbResult<String>;
}

/// Where a history lives: an SQLite file, or a PostgreSQL database given by a `postgres://` URL
/// (libpq's URL form and parameters: `sslmode`, `connect_timeout`, ...; the password from the
/// URL, `PGPASSWORD`, or the password file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl Location {
    /// Reads a `--db` value: a `postgres://` or `postgresql://` URL, or a file name. Any other
    /// URL is an error, not a file name.
    pub fn parse(db: &str) -> Result<Self, String> {
        match db.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(Location::Postgres(db.to_string())),
            Some((scheme, _)) => Err(format!("{db}: `{scheme}://` is not a database hints knows (give an SQLite file name or a postgres:// URL)")),
            None => Ok(Location::File(PathBuf::from(db))),
        }
    }

    /// The location as messages name it: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => super::postgres::redact(url),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Self {
        Location::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Self {
        Location::File(path.clone())
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Self {
        location.clone()
    }
}
