//! `hints scan` and the database, end to end through the real binary.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hints_analyzer::formats::{self, Format};
use hints_analyzer::store::Store;
use hints_analyzer::synth::{Shape, Synth};
use layering_core::PathInfo;

mod backends;
use backends::databases;

fn hints() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hints"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    hints().args(args).current_dir(cwd).output().expect("hints runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn ls_json(db: &str) -> serde_json::Value {
    let o = run(&["ls", "--json", "--db", db], Path::new("/"));
    assert!(o.status.success(), "{:?}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

const REV: [&str; 4] = ["--rev", "r1", "--time", "2025-01-06T00:00:00Z"];

#[test]
fn every_real_format_reads_the_same_closure() {
    let dir = repo().join("fixtures/real");
    let read = |f: &str| {
        let t = std::fs::read_to_string(dir.join(f)).unwrap();
        let parsed = formats::parse(f, &t, None).unwrap();
        (parsed.format, parsed.records.into_infos(), parsed.warnings)
    };
    let (reference_format, reference, _) = read("toolbox.path-info.json");
    assert_eq!(reference_format, Format::GraphJson);
    let set = |infos: &[PathInfo]| infos.iter().map(|i| (i.record.path.to_string(), i.record.nar_size)).collect::<BTreeSet<_>>();
    let paths = |infos: &[PathInfo]| infos.iter().map(|i| i.record.path.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(reference.len(), 74, "the toolbox closure from nix/tests/toy.nix");
    for (f, format, sized) in [
        ("toolbox.attrs.json", Format::GraphJson, true),
        ("toolbox.path-info-object.json", Format::PathInfo, true),
        ("toolbox.path-info-v2.json", Format::PathInfo, true),
        ("toolbox.graph.txt", Format::GraphText, false),
        ("toolbox.nix2container.json", Format::Nix2container, false),
    ] {
        let (found, infos, warnings) = read(f);
        assert_eq!(found, format, "{f}");
        if sized {
            assert_eq!(set(&infos), set(&reference), "{f}");
        } else {
            assert_eq!(paths(&infos), paths(&reference), "{f}");
            assert!(!warnings.is_empty(), "{f} must warn about missing sizes");
        }
    }
    // References agree too, where the format has them.
    let refs = |infos: &[PathInfo]| {
        infos.iter().map(|i| (i.record.path.to_string(), i.references.iter().map(|r| r.to_string()).filter(|r| *r != i.record.path.to_string()).collect::<BTreeSet<_>>())).collect::<BTreeSet<_>>()
    };
    for f in ["toolbox.attrs.json", "toolbox.path-info-v2.json", "toolbox.graph.txt"] {
        assert_eq!(refs(&read(f).1), refs(&reference), "{f}");
    }
}

#[test]
fn rescan_is_a_noop_and_a_different_closure_replaces() {
    for test_db in databases() {
        rescan_on(&test_db.arg);
    }
}

fn rescan_on(db: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let f = repo().join("fixtures/real/toolbox.path-info.json");
    let f = f.to_str().unwrap();
    let scan = |file: &str| run(&[&["scan", "--db", db, "--image", "toolbox"][..], &REV, &[file]].concat(), tmp.path());
    let (out, err) = text(&scan(f));
    assert!(out.contains("added: 74 paths, 74 new"), "{out}{err}");
    let (out, _) = text(&scan(f));
    assert!(out.contains("unchanged"), "{out}");
    // The same closure in another format is still the same snapshot.
    let attrs = repo().join("fixtures/real/toolbox.attrs.json");
    let (out, _) = text(&scan(attrs.to_str().unwrap()));
    assert!(out.contains("unchanged"), "{out}");
    let other = repo().join("fixtures/anchors/graphs/nginx-12.json");
    let (out, _) = text(&scan(other.to_str().unwrap()));
    assert!(out.contains("replaced the earlier closure: 13 paths, 13 new"), "{out}");
    let v = ls_json(db);
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["snapshots"][0]["paths"], 13);
}

const A: &str = "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a-1";
const B: &str = "/nix/store/0c5b8vw40dy178xlpddw65q9gf1h2186-b-2";

#[test]
fn bad_input_is_rejected_and_nothing_is_stored() {
    for test_db in databases() {
        bad_input_on(&test_db.arg);
    }
}

fn bad_input_on(dbs: &str) {
    let tmp = tempfile::tempdir().unwrap();
    // Something valid first, to check it survives.
    let good = repo().join("fixtures/real/toolbox.path-info.json");
    assert!(run(&[&["scan", "--db", dbs, "--image", "toolbox"][..], &REV, &[good.to_str().unwrap()]].concat(), tmp.path()).status.success());
    let before = ls_json(dbs);
    let rec = |p: &str, size: &str, refs: &str| format!(r#"{{"path":"{p}","narSize":{size},"references":[{refs}]}}"#);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("truncated.json", format!("[{}", &rec(A, "1", "")[..30]), "line 1, column", "invalid JSON"),
        ("wrong-type.json", format!("[{}]", rec(A, "\"12\"", "")), "[0].narSize", "non-negative integer"),
        ("bad-path.json", format!("[{}]", rec("/nix/store/tooshort-a-1", "1", "")), "[0].path", "malformed store path"),
        ("dangling.json", format!("[{}]", rec(A, "1", &format!("\"{B}\""))), "not in the closure", B),
        ("cycle.json", format!("[{},{}]", rec(A, "1", &format!("\"{B}\"")), rec(B, "1", &format!("\"{A}\""))), "cycle", A),
        ("conflict.json", format!("[{},{}]", rec(A, "1", ""), rec(A, "2", "")), "listed twice", A),
        ("empty.json", "[]".to_string(), "empty", ""),
        ("bad-ref.txt", format!("{A}\n\n1\nnot-a-path\n"), "line 4", "malformed store path"),
    ];
    for (name, content, location, keyword) in cases {
        let f = tmp.path().join(name);
        std::fs::write(&f, content).unwrap();
        let o = run(&[&["scan", "--db", dbs, "--image", "bad"][..], &REV, &[f.to_str().unwrap()]].concat(), tmp.path());
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name), "{name}: the error names the file: {err}");
        assert!(err.contains(location) && err.contains(keyword), "{name}: {err}");
    }
    // A contradiction of what is stored: a known path with another size.
    let mut arr: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    let bumped = arr[0]["narSize"].as_u64().unwrap() + 1;
    arr[0]["narSize"] = bumped.into();
    let f = tmp.path().join("contradiction.json");
    std::fs::write(&f, arr.to_string()).unwrap();
    let o = run(&[&["scan", "--db", dbs, "--image", "other"][..], &REV, &[f.to_str().unwrap()]].concat(), tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("immutable"), "{:?}", text(&o));
    assert_eq!(ls_json(dbs), before, "the database is untouched");
}

#[test]
fn newer_schema_is_refused() {
    for db in databases() {
        drop(db.open());
        db.execute(if db.backend == "sqlite" { "PRAGMA user_version = 99" } else { "UPDATE hints_schema SET version = 99" });
        let want = format!("schema version 99, newer than this hints understands ({})", hints_analyzer::store::SCHEMA_VERSION);
        for command in ["ls", "scan"] {
            let o = run(&[command, "--db", &db.arg, "--image", "x", &repo().join("fixtures/real/toolbox.path-info.json").to_string_lossy()][..if command == "ls" { 3 } else { 6 }], Path::new("/"));
            assert_eq!(o.status.code(), Some(1), "{}: {command}", db.backend);
            assert!(text(&o).1.contains(&want), "{}: {:?}", db.backend, text(&o));
        }
    }
}

fn small_shape(seed: u64) -> Shape {
    Shape { packages: 120, base: 20, images: 1, share: 0.5, bump: 0.05, seed }
}

#[test]
fn sixteen_concurrent_scanners_lose_nothing_and_duplicate_nothing() {
    const WRITERS: u64 = 16;
    const SNAPSHOTS: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    // Every writer scans its own image at the same 100 revisions; all share their base paths.
    let dirs: Vec<PathBuf> = (0..WRITERS)
        .map(|k| {
            let d = tmp.path().join(format!("ds{k}"));
            Synth::new(small_shape(k)).write_dataset(&d, SNAPSHOTS, &format!("p{k}-")).unwrap();
            d
        })
        .collect();
    let distinct_paths: BTreeSet<String> = dirs.iter().flat_map(|d| dataset_paths(d)).collect();
    let mut files = vec![];
    for db in databases() {
        let children: Vec<_> =
            dirs.iter().map(|d| hints().args(["-q", "scan", "--db", &db.arg, "--dataset", d.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}: {}", db.backend, String::from_utf8_lossy(&o.stderr));
        }
        let v = ls_json(&db.arg);
        assert_eq!(v["snapshots"].as_array().unwrap().len(), WRITERS as usize * SNAPSHOTS, "{}", db.backend);
        let store = db.open();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        let history = hints_analyzer::history::History::load(&store, None).unwrap();
        assert_eq!(history.paths.iter().map(|p| p.to_string()).collect::<BTreeSet<_>>(), distinct_paths, "{}: every path once", db.backend);
        let out = tmp.path().join(format!("{}.yaml", db.backend));
        let o = run(&["-q", "emit", "--db", &db.arg, "--no-previous", "--max-layers", "20", "--out", out.to_str().unwrap()], tmp.path());
        assert!(o.status.success(), "{:?}", text(&o));
        files.push(std::fs::read_to_string(out).unwrap());
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]), "the same history gives the same hint file in every backend");
}

/// Every store path of a dataset's graphs.
fn dataset_paths(dir: &Path) -> Vec<String> {
    let graphs = dir.join("graphs");
    let files = std::fs::read_dir(&graphs).unwrap().flat_map(|image| std::fs::read_dir(image.unwrap().path()).unwrap());
    let mut out = vec![];
    for f in files {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.unwrap().path()).unwrap()).unwrap();
        out.extend(v.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap().to_string()));
    }
    out
}

#[test]
fn kill_during_a_large_scan_loses_nothing_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    let shape = Shape { packages: 4000, base: 300, images: 2, share: 0.5, bump: 0.01, seed: 3 };
    Synth::new(shape).write_dataset(&ds, 120, "").unwrap();
    for db in databases() {
        kill_during_scan_on(&db, &ds);
    }
}

fn kill_during_scan_on(db: &backends::TestDb, ds: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    // -v: a line per snapshot, printed once it is committed.
    let mut child = hints().args(["-v", "scan", "--db", &db.arg, "--dataset", ds.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut committed = vec![];
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some((image, rest)) = line.split_once(" @ ") {
            committed.push((image.to_string(), rest.split(':').next().unwrap().to_string()));
        }
        if committed.len() == 25 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    let store = db.open();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    hints_analyzer::history::History::load(&store, None).expect("every snapshot whole");
    let rows: BTreeSet<(String, String)> = store.snapshot_rows().unwrap().into_iter().map(|r| (r.image, r.revision)).collect();
    assert!(rows.len() < 240, "killed before the end ({} snapshots)", rows.len());
    for c in &committed {
        assert!(rows.contains(c), "{c:?} was reported committed");
    }
    drop(store);
    let o = run(&["-q", "scan", "--db", &db.arg, "--dataset", ds.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(ls_json(&db.arg)["snapshots"].as_array().unwrap().len(), 240);
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git").args(args).current_dir(dir).env("GIT_AUTHOR_DATE", "2025-02-01T00:00:00Z").env("GIT_COMMITTER_DATE", "2025-02-01T00:00:00Z").output().unwrap();
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn git_history_and_work_tree_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let wt = tmp.path().join("repo");
    std::fs::create_dir_all(wt.join("closures")).unwrap();
    git(&wt, &["init", "-q", "-b", "main"]);
    git(&wt, &["config", "user.email", "ci@example.invalid"]);
    git(&wt, &["config", "user.name", "ci"]);
    let mut synth = Synth::new(Shape { images: 2, ..small_shape(9) });
    for r in 0..3 {
        if r > 0 {
            synth.advance();
        }
        std::fs::write(wt.join("closures/api.json"), synth.closure_json(0)).unwrap();
        std::fs::write(wt.join("closures/worker.json"), synth.closure_json(1)).unwrap();
        git(&wt, &["add", "."]);
        git(&wt, &["commit", "-q", "-m", &format!("rev {r}")]);
    }
    let db = tmp.path().join("h.db");
    let o = run(&["scan", "--db", db.to_str().unwrap(), "--git-history", "closures/*.json"], &wt);
    assert!(o.status.success(), "{:?}", text(&o));
    let v = ls_json(db.to_str().unwrap());
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 6);
    assert_eq!(v["revisions"].as_array().unwrap().len(), 3);
    let images: Vec<&str> = v["images"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(images, ["api", "worker"]);
    // Files as they stood at each commit: three distinct closures of `api`.
    let store = Store::open(&db).unwrap();
    let sizes: BTreeSet<u64> = store.snapshot_rows().unwrap().iter().filter(|r| r.image == "api").map(|r| r.bytes).collect();
    assert!(!sizes.is_empty());
    drop(store);

    // The work tree's HEAD names the revision of a plain scan, and a dirty tree says so.
    std::fs::write(wt.join("closures/api.json"), synth.closure_json(1)).unwrap();
    let db2 = tmp.path().join("h2.db");
    let f = wt.join("closures/api.json");
    let o = run(&["scan", "--db", db2.to_str().unwrap(), "--image", "api", f.to_str().unwrap()], &wt);
    assert!(o.status.success(), "{:?}", text(&o));
    let v = ls_json(db2.to_str().unwrap());
    let rev = &v["revisions"][0];
    assert_eq!(rev["branch"], "main");
    assert_eq!(rev["dirty"], true);
    assert_eq!(rev["label"].as_str().unwrap().len(), 40);
    assert_eq!(rev["time"], "2025-02-01T00:00:00+00:00");

    // Outside a repository, --rev and --time are required.
    let o = run(&["scan", "--db", db2.to_str().unwrap(), "--image", "api", f.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--rev"), "{:?}", text(&o));
}

/// A real `nix path-info --json --recursive` run. Never skipped under CI (`.ci/run` installs
/// Debian's nix-bin and busybox-static).
#[test]
fn real_nix_path_info() {
    let have_nix = Command::new("nix").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_nix {
        assert!(std::env::var_os("CI").is_none(), "CI must have nix (see .ci/run)");
        eprintln!("nix not installed; skipping outside CI");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bb = tmp.path().join("bb/bin");
    std::fs::create_dir_all(&bb).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).expect("busybox-static installed");
    std::fs::copy(busybox, bb.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bb.join("sh")).unwrap();
    let out = Command::new("nix-build")
        .arg(repo().join("nix/tests/toy.nix"))
        .args(["--arg", "busybox"])
        .arg(tmp.path().join("bb"))
        .args(["--arg", "revision", "1", "-A", "toolbox", "--no-out-link"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let db = tmp.path().join("h.db");
    let spec = format!("toolbox={path}");
    let o = run(&[&["scan", "--db", db.to_str().unwrap(), "--nix", &spec][..], &REV].concat(), tmp.path());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("toolbox @ r1: added: 74 paths"), "{stdout}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_bad_snapshot_in_a_batch_says_what_was_stored_and_a_rerun_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    copy_dir(&repo().join("fixtures/example"), &ds);
    let bad = ds.join("graphs/redis-server/5.json");
    let good = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    let db = tmp.path().join("h.db");
    let (dbs, dss) = (db.to_str().unwrap(), ds.to_str().unwrap());
    let o = run(&["scan", "-q", "--db", dbs, "--dataset", dss], tmp.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let total = ls_json(dbs)["snapshots"].as_array().unwrap().len();
    assert!(err.contains("redis-server/5.json") && err.contains("invalid JSON"), "{err}");
    assert!(err.contains(&format!("{total} of the 78 snapshots of this scan were stored before it")), "{err}");
    assert!(err.contains(&format!("it and the {} after it were not", 78 - total - 1)), "{err}");
    std::fs::write(&bad, good).unwrap();
    let o = run(&["scan", "--db", dbs, "--dataset", dss], tmp.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(&format!("78 snapshots: {} added, 0 replaced, {total} unchanged", 78 - total)), "{out}");
}
