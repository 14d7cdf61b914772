//! Reliability: reads during writes, and damaged databases.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hints_analyzer::history::History;
use hints_analyzer::mine::{emit, EmitOptions};
use hints_analyzer::replay::{replay, Replayed};
use hints_analyzer::store::{Revision, Store, StoreError};
use hints_analyzer::synth::store_path;
use hints_format::StorePath;
use layering_core::{Budget, Closure, PathInfo};
use sha2::{Digest, Sha256};

mod backends;
use backends::{databases, TestDb};

const REVISIONS: usize = 12;
const WRITERS: usize = 4;

fn path(name: &str) -> StorePath {
    store_path(&Sha256::digest(name), name)
}

/// Writer `w`'s image at revision `r`: a chain of 30 paths, each new at every revision.
fn closure(w: usize, r: usize) -> Closure {
    let names: Vec<String> = (0..30).map(|k| format!("w{w}lib{k}-{r}.0")).collect();
    Closure::new(names.iter().enumerate().map(|(k, n)| PathInfo::new(path(n), 1000 * (k as u64 + 1), if k > 0 { vec![path(&names[k - 1])] } else { vec![] })).collect()).unwrap()
}

fn revision(r: usize) -> Revision {
    Revision { label: format!("r{r}"), commit: None, time: format!("2025-01-{:02}T00:00:00Z", r + 1), branch: None, dirty: false }
}

/// What a reader saw of writer `w`: the revisions its image has, each with the expected paths.
fn committed_prefix(h: &History, w: usize) -> usize {
    let Some(i) = h.images.iter().position(|x| *x == format!("w{w}")) else { return 0 };
    let mut seen = 0;
    for (k, rev) in h.revisions.iter().enumerate() {
        let r: usize = rev.label[1..].parse().unwrap();
        if let Some(m) = h.snapshots.get(&(i, k)) {
            let got: BTreeSet<&str> = m.iter().map(|&p| h.paths[p as usize].as_str()).collect();
            let want = closure(w, r);
            assert_eq!(got, want.paths().map(|p| p.as_str()).collect(), "w{w} at r{r}: a snapshot is whole or absent");
            seen += 1;
        }
    }
    seen
}

#[test]
fn emit_and_eval_while_four_writers_scan_see_one_committed_state() {
    for db in databases() {
        reads_during_writes_on(&db);
    }
}

fn reads_during_writes_on(test_db: &TestDb) {
    let db = test_db.location();
    test_db.open();
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&db).unwrap();
                for r in 0..REVISIONS {
                    store.ingest(&format!("w{w}"), &revision(r), &closure(w, r), true).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let mut loads = 0;
            while !done.load(Ordering::SeqCst) || loads < 3 {
                let store = Store::open(&db).unwrap();
                let h = History::load(&store, None).unwrap();
                for w in 0..WRITERS {
                    committed_prefix(&h, w);
                }
                if h.revisions.len() >= 2 {
                    let last = h.revisions.len() - 1;
                    let opts = EmitOptions { max_layers: 10, reserve: 1, first: 0, last, min_gain: 0.02, registry_weight: 1.0, db_summary: h.summary.clone() };
                    let f = emit(&h, &opts, None).unwrap().file;
                    replay(&h, 0, last, Budget::new(10, 1).unwrap(), Replayed::Hints(&f)).unwrap();
                }
                loads += 1;
            }
            loads
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let loads = reader.join().expect("no reader panicked");
    assert!(loads >= 3);
    let h = History::load(&test_db.open(), None).unwrap();
    assert!((0..WRITERS).all(|w| committed_prefix(&h, w) == REVISIONS), "{}", test_db.backend);
}

/// A database of one writer's history, and a copy of it damaged by `sql`.
fn damaged(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.db");
    let mut store = Store::open(&db).unwrap();
    for r in 0..3 {
        store.ingest("w0", &revision(r), &closure(0, r), true).unwrap();
    }
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(sql).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok", "the damage passes SQLite's own check");
    (tmp, db)
}

fn load_error(db: &Path) -> String {
    match History::load(&Store::open(db).unwrap(), None) {
        Err(e @ StoreError::Damaged { .. }) => e.to_string(),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a damaged database loaded"),
    }
}

#[test]
fn a_damaged_database_is_an_error_naming_the_damage_never_a_panic_or_another_history() {
    let cases = [
        ("DELETE FROM paths WHERE id = (SELECT MIN(id) FROM paths);", "missing"),
        ("UPDATE paths SET refs = x'80' WHERE id = (SELECT MAX(id) FROM paths);", "malformed reference list"),
        ("UPDATE snapshots SET members = x'0100' WHERE id = 1;", "malformed member list"),
        ("UPDATE paths SET nar_size = nar_size + 1 WHERE id = 5;", "add up to"),
        ("UPDATE paths SET refs = x'01' WHERE id = 7;", "references"),
        ("UPDATE paths SET name_id = (SELECT MAX(id) FROM names) WHERE id = 3;", "paths differ"),
        ("UPDATE snapshots SET members = substr(members, 1, length(members) - 1) WHERE id = 2;", "paths differ"),
        ("UPDATE paths SET hash = x'00' WHERE id = 4;", "20 bytes"),
        ("UPDATE revisions SET label = 'r9' WHERE id = 1;", "revision row 1 (`r9`) fails its check"),
        ("UPDATE revisions SET time = '2030-01-01T00:00:00Z' WHERE id = 2;", "fails its check"),
        ("UPDATE images SET name = 'w9' WHERE id = 1;", "image row 1 (`w9`) fails its check"),
        ("DELETE FROM snapshots WHERE id = 3; UPDATE snapshots SET revision_id = 3 WHERE id = 2;", "the row fails its check"),
    ];
    for (sql, what) in cases {
        let (_t, db) = damaged(sql);
        let e = load_error(&db);
        assert!(e.contains(what) && e.contains("h.db is damaged"), "{sql}: {e}");
    }
}

#[test]
fn one_hash_under_two_names_or_a_second_store_directory_is_refused() {
    for db in databases() {
        two_names_on(&mut db.open());
    }
}

fn two_names_on(store: &mut Store) {
    let recorded = path("foo-1.0");
    let one = |p: &StorePath| Closure::new(vec![PathInfo::new(p.clone(), 10, vec![])]).unwrap();
    store.ingest("a", &revision(0), &one(&recorded), true).unwrap();
    let renamed = StorePath::parse(&recorded.as_str().replace("foo-1.0", "bar-2.0")).unwrap();
    let e = store.ingest("a", &revision(1), &one(&renamed), true).unwrap_err().to_string();
    assert!(e.contains("bar-2.0") && e.contains("foo-1.0") && e.contains("another name"), "{e}");
    let elsewhere = StorePath::parse(&path("baz-1.0").as_str().replace("/nix/store", "/other/store")).unwrap();
    let e = store.ingest("a", &revision(1), &one(&elsewhere), true).unwrap_err().to_string();
    assert!(e.contains("another store directory") && e.contains("/nix/store"), "{e}");
    // Nothing of the refused closures was stored.
    let h = History::load(store, None).unwrap();
    assert_eq!(h.paths, [recorded]);
}

fn hints(args: &[&str], cwd: &Path) -> (i32, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir(cwd).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn read_only_commands_never_create_or_change_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (code, err) = hints(&["ls", "--db", "typo/x.db"], t);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no database at typo/x.db"), "{err}");
    assert!(!t.join("typo").exists(), "no directory is created");
    std::fs::write(t.join("empty.db"), b"").unwrap();
    for cmd in [&["ls", "--db", "empty.db"][..], &["emit", "--db", "empty.db", "--out", "x.yaml"], &["eval", "--db", "empty.db", "--hints", "x.yaml", "--range", "0..1"]] {
        let (code, err) = hints(cmd, t);
        assert_eq!(code, 2, "{cmd:?}: {err}");
        assert!(err.contains("empty.db is not a hints database (the file is empty)"), "{err}");
    }
    assert_eq!(std::fs::metadata(t.join("empty.db")).unwrap().len(), 0, "the empty file stays empty");
    let (code, err) = hints(&["ls", "--db", "mysql://me@localhost/hints"], t);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--db mysql://me@localhost/hints: `mysql://` is not a database hints knows"), "{err}");
    assert!(!t.join("mysql:").exists());
}

#[test]
fn a_foreign_schema_version_is_refused_by_readers_and_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (file, version) in [("neg.db", -1), ("zero.db", 0)] {
        let conn = rusqlite::Connection::open(t.join(file)).unwrap();
        conn.execute_batch(&format!("CREATE TABLE mine (x); PRAGMA user_version = {version};")).unwrap();
        drop(conn);
        let (code, err) = hints(&["ls", "--db", file], t);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("is not a hints database") && err.contains(&format!("schema version {version}")), "{err}");
        let e = Store::open(&t.join(file)).err().expect("a writer refuses it too").to_string();
        assert!(e.contains("is not a hints database") && !e.contains("CREATE TABLE"), "{e}");
    }
}

#[test]
fn a_snapshot_that_replaces_another_records_the_new_revision_metadata() {
    for db in databases() {
        replaced_metadata_on(&mut db.open());
    }
    let tmp = tempfile::tempdir().unwrap();
    cli_revision_time(tmp.path());
}

fn replaced_metadata_on(store: &mut Store) {
    store.ingest("a", &revision(0), &closure(0, 0), true).unwrap();
    let dirty = Revision { dirty: true, time: "2025-02-01T00:00:00Z".into(), commit: Some("abc".into()), ..revision(0) };
    // Identical closure: nothing changes, not even the metadata.
    store.ingest("a", &dirty, &closure(0, 0), true).unwrap();
    assert_eq!(store.revision("r0").unwrap(), Some(revision(0)));
    store.ingest("a", &dirty, &closure(0, 1), true).unwrap();
    assert_eq!(store.revision("r0").unwrap(), Some(dirty));
}

/// Through the CLI, a new --time for a known label is applied and said.
fn cli_revision_time(t: &Path) {
    for (k, time) in ["2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"].iter().enumerate() {
        let file = t.join(format!("g{k}.json"));
        let p = path(&format!("x-{k}.0"));
        std::fs::write(&file, format!(r#"[{{"path": "{p}", "narSize": 1, "references": []}}]"#)).unwrap();
        let (code, err) = hints(&["scan", "--db", "cli.db", "--image", "a", "--rev", "v1", "--time", time, file.to_str().unwrap()], t);
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.contains("warning: revision v1: time 2025-01-01T00:00:00+00:00 -> 2025-03-01T00:00:00+00:00"), k == 1, "{err}");
    }
    assert_eq!(Store::open_existing(&t.join("cli.db")).unwrap().revision("v1").unwrap().unwrap().time, "2025-03-01T00:00:00+00:00");
}

/// The example dataset's history, scanned into a single-file database (no WAL beside it).
fn example_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("example.db");
    let ds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/example");
    let (code, err) = hints(&["scan", "-q", "--db", db.to_str().unwrap(), "--dataset", ds.to_str().unwrap()], dir);
    assert_eq!(code, 0, "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;").unwrap();
    db
}

/// What `emit` writes from the database at `db`, or the error.
fn emitted(db: &Path) -> Result<String, String> {
    let store = Store::open_existing(db).map_err(|e| e.to_string())?;
    let h = History::load(&store, None).map_err(|e| e.to_string())?;
    let opts = EmitOptions { max_layers: 20, reserve: 1, first: 0, last: 6, min_gain: 0.02, registry_weight: 1.0, db_summary: h.summary.clone() };
    emit(&h, &opts, None).map(|e| e.file.to_canonical_string()).map_err(|e| e.to_string())
}

#[test]
fn flipped_bytes_give_the_same_file_or_an_error_never_another_file() {
    let tmp = tempfile::tempdir().unwrap();
    let db = example_db(tmp.path());
    let clean = std::fs::read(&db).unwrap();
    let want = emitted(&db).unwrap();
    let (mut same, mut refused, mut different) = (0, 0, vec![]);
    let mut seed = 0x9e3779b97f4a7c15u64;
    for k in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed % clean.len() as u64) as usize;
        let mut bytes = clean.clone();
        bytes[at] ^= 1 << (k % 8);
        let copy = tmp.path().join(format!("flip{k}.db"));
        std::fs::write(&copy, &bytes).unwrap();
        match std::panic::catch_unwind(|| emitted(&copy)) {
            Ok(Ok(text)) if text == want => same += 1,
            Ok(Ok(_)) => different.push(at),
            Ok(Err(e)) => {
                assert!(e.contains("example.db") || e.contains("flip"), "the error names the database: {e}");
                refused += 1;
            }
            Err(_) => panic!("flipping byte {at} made emit panic"),
        }
        std::fs::remove_file(&copy).unwrap();
    }
    assert!(different.is_empty(), "silently different files from flips at {different:?} ({same} same, {refused} refused)");
}

#[test]
fn sizes_that_would_wrap_a_total_are_refused_and_large_ones_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (a, b) = (path("a-1"), path("b-1"));
    let graph = |sa: u64, sb: u64| format!(r#"[{{"path": "{a}", "narSize": {sa}, "references": []}}, {{"path": "{b}", "narSize": {sb}, "references": ["{a}"]}}]"#);
    for (sa, sb) in [(u64::MAX, 1), (u64::MAX / 2 + 1, u64::MAX / 2 + 1), (i64::MAX as u64, 1)] {
        std::fs::write(t.join("g.json"), graph(sa, sb)).unwrap();
        for cmd in [&["layer", "--graph", "g.json"][..], &["scan", "--db", "h.db", "--image", "x", "--rev", "r", "--time", "2025-01-01T00:00:00Z", "g.json"]] {
            let (code, err) = hints(cmd, t);
            assert_eq!(code, 2, "{sa} + {sb}, {cmd:?}: {err}");
            assert!(err.contains("more than 2^63 − 1 bytes"), "{err}");
        }
    }
    std::fs::write(t.join("g.json"), graph(i64::MAX as u64 - 1, 1)).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hints")).args(["layer", "--graph", "g.json", "--explain"]).current_dir(t).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_input_larger_than_memory_allows_is_refused_before_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("zeros.bin"), vec![0u8; 3 << 20]).unwrap();
    for cmd in [&["layer", "--graph", "zeros.bin"][..], &["validate", "zeros.bin"], &["scan", "--db", "h.db", "--image", "x", "--rev", "r", "--time", "2025-01-01T00:00:00Z", "zeros.bin"]] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hints")).args(cmd).env("HINTS_MAX_INPUT_BYTES", "1048576").current_dir(t).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("zeros.bin: 3145728 bytes is more than this machine can parse (1048576 bytes"), "{err}");
        assert!(err.len() < 400, "no input is echoed: {err}");
    }
}
