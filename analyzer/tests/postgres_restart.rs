//! A PostgreSQL server restarted in the middle of a scan: the client gives a clear error (or
//! completes), no snapshot is half-written, and a re-run completes the history. It restarts the
//! shared test cluster, so it is a test binary of its own (cargo runs binaries one at a time).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use hints_analyzer::history::History;
use hints_analyzer::synth::{Shape, Synth};

mod backends;
use backends::databases;

#[test]
fn a_server_restart_mid_scan_gives_an_error_or_a_retry_never_a_half_snapshot() {
    let Some(db) = databases().into_iter().find(|d| d.backend == "postgres") else { return };
    let Ok(cluster) = std::env::var("HINTS_TEST_POSTGRES_DIR") else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI restarts the cluster: set HINTS_TEST_POSTGRES_DIR");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    Synth::new(Shape { packages: 4000, base: 300, images: 2, share: 0.5, bump: 0.01, seed: 5 }).write_dataset(&ds, 60, "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hints")).args(["-v", "scan", "--db", &db.arg, "--dataset", ds.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..5 {
        lines.next().unwrap().unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh");
    assert!(Command::new("bash").arg(script).args(["restart", &cluster]).status().unwrap().success());
    lines.for_each(drop);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("connection") && err.contains("a re-run skips them"), "{err}");
    }
    let store = db.open();
    let history = History::load(&store, None).expect("every stored snapshot is whole");
    assert!(history.snapshots.len() >= 5, "the 5 snapshots reported stored are there ({})", history.snapshots.len());
    drop(store);
    let o = Command::new(env!("CARGO_BIN_EXE_hints")).args(["-q", "scan", "--db", &db.arg, "--dataset", ds.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "a rerun completes: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(History::load(&db.open(), None).unwrap().snapshots.len(), 120);
}
