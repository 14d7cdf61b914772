//! The hint-file commands (`fmt`, `validate`, `schema`) and the replay cross-check, through the
//! real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn hints(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn fmt_validate_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = std::fs::read_to_string(repo().join("fixtures/hints/golden.yaml")).unwrap();
    let f = tmp.path().join("h.yaml");
    std::fs::write(&f, &golden).unwrap();
    let fs = f.to_str().unwrap();
    assert!(hints(&["fmt", "--check", fs], tmp.path()).status.success(), "golden is canonical");
    let o = hints(&["validate", fs], tmp.path());
    assert!(o.status.success());
    assert!(text(&o).contains("80 groups with 1500 members") && text(&o).contains("3 pins"), "{}", text(&o));

    // A hand edit out of order: --check fails, fmt rewrites, then --check passes.
    let messy = golden.replacen("      - ", "      - zzz-added\n      - ", 1).replace("# Layer hints", "#   hand-written comment\n# Layer hints");
    std::fs::write(&f, &messy).unwrap();
    let o = hints(&["fmt", "--check", fs], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not in canonical form"));
    assert!(hints(&["fmt", fs], tmp.path()).status.success());
    assert!(hints(&["fmt", "--check", fs], tmp.path()).status.success());
    assert!(std::fs::read_to_string(&f).unwrap().contains("zzz-added"));

    // Errors name the file, line and column, and exit 2.
    std::fs::write(&f, "version: 3\nbudget: {max_layers: 10, reserve: 1}\n").unwrap();
    let o = hints(&["validate", fs], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains(&format!("{fs}: line 1, column 10: this file is version 3; this hints understands up to 2")), "{}", text(&o));

    let o = hints(&["schema"], tmp.path());
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema["title"], "HintFile");
    assert!(schema["required"].as_array().unwrap().iter().any(|r| r == "budget"));
}

/// `hints eval` and the independent `shared/tools/replay.py` agree to the byte on the same
/// layers (replay.py gets them from `hints layer`).
#[test]
fn eval_agrees_with_replay_py() {
    let shared = repo().join("../shared");
    if !shared.join("tools/replay.py").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must have ../shared");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let db = t.join("h.db");
    let dbs = db.to_str().unwrap();
    let ds = shared.join("data/dev-history");
    assert!(hints(&["-q", "scan", "--db", dbs, "--dataset", ds.to_str().unwrap()], t).status.success());
    let hf = t.join("h.yaml");
    let hfs = hf.to_str().unwrap();
    let bad = hints(&["emit", "--db", dbs, "--range", "0..6", "--registry-weight", "-1", "--out", hfs], t);
    assert!(!bad.status.success() && text(&bad).contains("registry weight must be a finite number ≥ 0, got -1"), "{}", text(&bad));
    assert!(!hf.exists(), "nothing written on bad input");
    assert!(hints(&["-q", "emit", "--db", dbs, "--range", "0..6", "--max-layers", "30", "--out", hfs], t).status.success());
    let images = "nginx,curl,perl,python3,git";
    let file = hints_format::HintFile::parse(&std::fs::read_to_string(&hf).unwrap()).unwrap();
    assert!(images.split(',').any(|i| file.opt_outs.contains_key(i)), "some image replayed opts out of groups: {:?}", file.opt_outs);
    let o = hints(&["eval", "--json", "--db", dbs, "--hints", hfs, "--range", "6..12", "--max-layers", "30", "--images", images], t);
    assert!(o.status.success(), "{}", text(&o));
    let ours: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bin = env!("CARGO_BIN_EXE_hints");
    let out = t.join("replay.json");
    let py = Command::new("python3")
        .arg(shared.join("tools/replay.py"))
        .arg(&ds)
        .args(["--from", "6", "--max-layers", "30", "--images", images, "--strategy", "lower-bound", "--strategy", "single"])
        .args(["--strategy", &format!("cmd:size-first={bin} layer --graph {{graph}} --strategy size-first --max-layers 30")])
        // Each image as the file says for it (graphs/IMAGE/REV.json): its opt-outs, or size-first.
        .args(["--strategy", &format!("cmd:hints={bin} layer --graph {{graph}} --hints {hfs} --max-layers 30 --image \"$(basename \"$(dirname {{graph}})\")\"")])
        .arg("--json")
        .arg(&out)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
    let theirs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for (py_name, our_name) in [("lower-bound", "floor"), ("single", "single"), ("cmd:size-first", "size-first"), ("cmd:hints", "hints")] {
        let a = &theirs["results"][py_name];
        let b = ours["results"].as_array().unwrap().iter().find(|m| m["strategy"] == our_name).unwrap();
        for k in ["update_bytes", "fleet_bytes", "storage_bytes", "layers_pulled"] {
            assert_eq!(a[k], b[k], "{our_name} {k}");
        }
    }
}
