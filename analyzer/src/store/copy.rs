//! Moving a history between databases: `hints db copy FROM TO`.
//!
//! # Objective
//! Every row of the source arrives in the target unchanged, whichever backends they are, so a
//! team can start with an SQLite file and move to PostgreSQL later (or back, for a backup it
//! can carry).
//!
//! # Algorithm
//! - The target must hold no history (its schema is created if it has none).
//! - The tables are copied in the order their references need (store dirs, names, paths,
//!   images, revisions, snapshots, the service's tokens), every row with its id, in chunks of 20,000 rows by id:
//!   one read transaction on the source, one write transaction on the target. Keeping the ids
//!   keeps every reference list, member list and row check valid as it is. A failure rolls the
//!   whole target back.
//! - Then both are loaded as histories, which checks every row, every snapshot's paths digest
//!   and every path's references digest, and the two summaries (every snapshot's digest, in
//!   order) must be equal.

use super::backend::{Access, Cell, Value};
use super::{Result, Store, StoreError};
use crate::history::History;

/// Rows read and written at a time (the module doc says how many).
const CHUNK: i64 = 20_000;

/// What a column holds, to bind a copied cell as that type (a NULL is typed in PostgreSQL).
#[derive(Clone, Copy)]
enum Kind {
    Int,
    OptInt,
    Text,
    OptText,
    Blob,
    OptBlob,
}

use Kind::*;

/// The tables, in the order their references need, with their columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("store_dirs", &[("id", Int), ("dir", Text)]),
    ("names", &[("id", Int), ("name", Text)]),
    (
        "paths",
        &[("id", Int), ("hash", Blob), ("dir_id", Int), ("name_id", Int), ("nar_size", Int), ("nar_hash", OptText), ("closure_size", OptInt), ("refs", Blob), ("refs_digest", Blob), ("complete", Int)],
    ),
    ("images", &[("id", Int), ("name", Text), ("row_check", OptBlob)]),
    ("revisions", &[("id", Int), ("label", Text), ("commit_id", OptText), ("time", Text), ("branch", OptText), ("dirty", Int), ("row_check", OptBlob)]),
    ("snapshots", &[("id", Int), ("image_id", Int), ("revision_id", Int), ("digest", Blob), ("path_count", Int), ("total_size", Int), ("complete", Int), ("members", Blob), ("row_check", OptBlob)]),
    ("tokens", &[("id", Int), ("project", Text), ("scope", Text), ("hash", Blob), ("created", Text)]),
];

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub snapshots: usize,
    pub paths: usize,
    pub images: usize,
    pub revisions: usize,
    /// The history's summary digest, the same in both.
    pub summary: String,
}

/// Copies the history in `from` into `to`, which must hold none, then checks the copy.
pub fn copy(from: &Store, to: &Store) -> Result<Copied> {
    let held = to.rows("SELECT count(*) FROM snapshots", &[], |r| r.int(0))?.first().copied().unwrap_or(0);
    if held > 0 {
        return Err(StoreError::CopyTargetNotEmpty { to: to.location.clone(), snapshots: held as usize });
    }
    from.read(|from| to.transaction(Access::Write, |to| TABLES.iter().try_for_each(|(table, columns)| copy_table(from, to, table, columns))))?;
    let (source, copy) = (History::load(from, None)?, History::load(to, None)?);
    if source.summary != copy.summary || source.paths != copy.paths || source.revisions != copy.revisions {
        let what = format!("summary {} against {}", copy.summary, source.summary);
        return Err(StoreError::CopyMismatch { from: from.location.clone(), to: to.location.clone(), what });
    }
    Ok(Copied { snapshots: copy.snapshots.len(), paths: copy.paths.len(), images: copy.images.len(), revisions: copy.revisions.len(), summary: copy.summary })
}

/// Copies every row of `table`, by id, in chunks.
fn copy_table(from: &Store, to: &Store, table: &str, columns: &[(&str, Kind)]) -> Result<()> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let select = format!("SELECT {} FROM {table} WHERE id > ?1 ORDER BY id LIMIT {CHUNK}", names.join(", "));
    let placeholders: Vec<String> = (1..=columns.len()).map(|k| format!("?{k}")).collect();
    let insert = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), placeholders.join(", "));
    let mut last = 0;
    loop {
        let rows = from.rows(&select, &[Value::Int(last)], |r| Ok(r.0.clone()))?;
        for cells in &rows {
            let values =
                columns.iter().zip(cells).map(|((name, kind), cell)| value(*kind, cell).ok_or_else(|| from.damaged(format!("{table}.{name}: unexpected {cell:?}")))).collect::<Result<Vec<_>>>()?;
            to.exec(&insert, &values)?;
        }
        match rows.last().map(|cells| &cells[0]) {
            Some(Cell::Int(id)) => last = *id,
            _ => break,
        }
    }
    to.db.ids_inserted(table).map_err(|e| to.db_error(e))
}

/// `cell` as a parameter of a column of kind `kind`; `None` if it cannot be one.
fn value(kind: Kind, cell: &Cell) -> Option<Value<'_>> {
    Some(match (kind, cell) {
        (Int, Cell::Int(i)) => Value::Int(*i),
        (OptInt, Cell::Int(i)) => Value::OptInt(Some(*i)),
        (OptInt, Cell::Null) => Value::OptInt(None),
        (Text, Cell::Text(s)) => Value::Text(s),
        (OptText, Cell::Text(s)) => Value::OptText(Some(s)),
        (OptText, Cell::Null) => Value::OptText(None),
        (Blob, Cell::Blob(b)) => Value::Blob(b),
        (OptBlob, Cell::Blob(b)) => Value::OptBlob(Some(b)),
        (OptBlob, Cell::Null) => Value::OptBlob(None),
        _ => return None,
    })
}
