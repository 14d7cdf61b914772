//! The periodic job (`scripts/hints-update.sh`) with real `git` and real `nix`: a repository
//! with a bare remote, three revisions of the toy world built and scanned at three commits, a
//! branch pushed with the new hint file and a summary whose figures are `hints eval`'s, and a
//! second run with no new history that says "no change". Also: the CI recipes in `ci/` parse.
//! Never skipped under CI.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ok, repo, Toy};

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git").args(args).current_dir(dir).env("GIT_AUTHOR_DATE", "2025-03-01T00:00:00Z").env("GIT_COMMITTER_DATE", "2025-03-01T00:00:00Z"))
}

fn update(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash").arg(repo().join("scripts/hints-update.sh")).args(args).current_dir(dir).env("HINTS", env!("CARGO_BIN_EXE_hints")).output().unwrap()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

#[test]
fn the_update_job_proposes_a_branch_then_says_no_change() {
    if !common::have_tools(&["nix-build"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let toy = Toy::new(t);
    let (work, remote) = (t.join("work"), t.join("remote.git"));
    std::fs::create_dir_all(&work).unwrap();
    ok(Command::new("git").args(["init", "-q", "--bare"]).arg(&remote));
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["config", "user.name", "test"]);
    git(&work, &["config", "user.email", "test@example.invalid"]);
    git(&work, &["remote", "add", "origin", remote.to_str().unwrap()]);
    for r in 1..=3 {
        std::fs::write(work.join("revision"), r.to_string()).unwrap();
        git(&work, &["add", "revision"]);
        git(&work, &["commit", "-q", "-m", &format!("revision {r}")]);
        let images: Vec<String> = [("py", "py-app"), ("node", "node-app"), ("tools", "toolbox")].iter().map(|(n, a)| format!("{n}={}", toy.build(r, a))).collect();
        let mut args = vec!["--max-layers", "20", "--push", "origin"];
        args.extend(images.iter().map(String::as_str));
        let o = update(&work, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("pushed hints/update to origin"));
        git(&work, &["switch", "-q", "main"]);
    }
    // The remote has the branch with the file, and its message is the summary.
    let message = git(&remote, &["log", "-1", "--format=%B", "hints/update"]);
    assert!(message.starts_with("hints: update layer-hints.yaml"), "{message}");
    let file = git(&remote, &["show", "hints/update:layer-hints.yaml"]);
    assert!(file.contains("groups:"), "{file}");
    // Its figure for the new file is eval's over the history's updates (2 here), per update.
    std::fs::write(t.join("proposed.yaml"), &file).unwrap();
    let eval = ok(Command::new(env!("CARGO_BIN_EXE_hints"))
        .args(["eval", "--json", "--allow-overlap", "--range", "0..2", "--db"])
        .arg(work.join(".hints/hints.db"))
        .arg("--hints")
        .arg(t.join("proposed.yaml")));
    let v: serde_json::Value = serde_json::from_str(&eval).unwrap();
    let hinted = v["results"].as_array().unwrap().iter().find(|m| m["strategy"] == "hints").unwrap()["update_bytes"].as_u64().unwrap();
    assert!(message.contains(&format!("{} with the new one", mib(hinted / 2))), "{message}");
    // With the file checked in and no new history, nothing is proposed.
    git(&work, &["switch", "-q", "hints/update"]);
    let o = update(&work, &["--max-layers", "20"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "no change");
    assert_eq!(git(&work, &["status", "--porcelain"]).trim(), "", "the file is left as checked in");
}

#[test]
fn the_ci_recipes_are_well_formed_yaml() {
    for f in ["ci/github/hints-update.yml", "ci/gitlab/hints-update.yml"] {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        let script = serde_json::to_string(&v).unwrap();
        assert!(script.contains("hints-update.sh"), "{f} runs the update script");
    }
    let gh: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("ci/github/hints-update.yml")).unwrap()).unwrap();
    assert!(gh["jobs"]["update"]["steps"].as_sequence().is_some_and(|s| s.len() >= 5), "a GitHub Actions job with its steps");
    assert!(gh["on"]["schedule"].as_sequence().is_some(), "on a schedule");
}
