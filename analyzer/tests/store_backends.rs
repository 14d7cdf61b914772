//! The two store backends side by side: one history gives the same hint file in both, `hints
//! db copy` moves it either way losslessly, and a PostgreSQL server that refuses or is
//! unreachable gives one clear line (a restart mid-scan: `postgres_restart.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hints_analyzer::history::History;

mod backends;
use backends::databases;

fn hints(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir("/").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fleet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fleet")
}

/// The hint file emitted from `db`'s revisions 0..6.
fn emitted(db: &str, dir: &Path) -> String {
    let out = dir.join("out.yaml");
    let o = hints(&["-q", "emit", "--db", db, "--range", "0..6", "--no-previous", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{db}: {}", stderr(&o));
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn one_history_gives_one_hint_file_in_every_backend_and_copies_losslessly_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let dbs = databases();
    let mut files = vec![];
    for db in &dbs {
        let o = hints(&["-q", "scan", "--db", &db.arg, "--dataset", fleet().to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", db.backend, stderr(&o));
        files.push(emitted(&db.arg, tmp.path()));
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]), "byte-identical hint files");
    // Every backend into every other (and into itself), then back into SQLite.
    for from in &dbs {
        for to in databases() {
            let o = hints(&["db", "copy", &from.arg, &to.arg, "--json"]);
            assert!(o.status.success(), "{} -> {}: {}", from.backend, to.backend, stderr(&o));
            let copied: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(copied["snapshots"], 91);
            let back = tmp.path().join(format!("back-{}-{}.db", from.backend, to.backend));
            assert!(hints(&["db", "copy", &to.arg, back.to_str().unwrap()]).status.success());
            let (a, b) = (History::load(&from.open(), None).unwrap(), History::load(&to.open(), None).unwrap());
            assert_eq!((&a.summary, &a.paths, &a.sizes, &a.refs, &a.revisions), (&b.summary, &b.paths, &b.sizes, &b.refs, &b.revisions));
            assert_eq!(emitted(&to.arg, tmp.path()), files[0], "{} -> {}", from.backend, to.backend);
            assert_eq!(emitted(back.to_str().unwrap(), tmp.path()), files[0]);
            // A second copy into a database that holds a history is refused, and changes nothing.
            let o = hints(&["db", "copy", &from.arg, &to.arg]);
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(stderr(&o).contains("already holds a history (91 snapshots)"), "{}", stderr(&o));
        }
    }
}

#[test]
fn a_refused_or_unreachable_server_is_one_clear_line() {
    let Some(db) = databases().into_iter().find(|d| d.backend == "postgres") else { return };
    let wrong = db.arg.replacen("://hints:", "://hints:wrong", 1);
    let o = hints(&["ls", "--db", &wrong]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("password authentication failed for user \"hints\"") && !err.contains("wrong") && !err.contains("db error"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = hints(&["ls", "--db", &format!("postgres://hints@127.0.0.1:{closed}/hints?connect_timeout=5")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error connecting to server: Connection refused"), "{}", stderr(&o));
}
