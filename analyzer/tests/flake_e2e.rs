//! `hints scan --flake` with real `git` and real `nix` (flakes, offline: a flake without inputs
//! built with `builtins.derivation`): three commits scanned, only the image outputs by the naming
//! convention, then only what `hints.toml` lists, and a listed name the flake lacks is an error
//! that names the file. Never skipped under CI.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ok;

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git").args(args).current_dir(dir))
}

fn hints(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir(dir).output().unwrap()
}

/// A flake whose `api-image` references a library that changes at every revision, a
/// `worker-image` that never changes, and a `tool` that is not an image by name.
fn flake(busybox: &str, revision: usize) -> String {
    format!(
        r#"{{
  outputs = {{ self }}:
    let
      system = "x86_64-linux";
      mk = name: script: builtins.derivation {{ inherit name system; builder = "{busybox}"; args = [ "sh" "-c" script ]; }};
      lib = mk "libfoo-1.{revision}" "echo library {revision} > $out";
    in {{
      packages.${{system}} = {{
        api-image = mk "api-1.0" "echo uses ${{lib}} > $out";
        worker-image = mk "worker-1.0" "echo worker > $out";
        tool = mk "tool-1.0" "echo tool > $out";
      }};
    }};
}}
"#
    )
}

#[test]
fn a_flake_s_image_outputs_are_found_built_and_scanned_at_each_commit() {
    if !common::have_tools(&["nix", "git"]) {
        return;
    }
    let system = ok(Command::new("nix").args(["--extra-experimental-features", "nix-command", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem"]));
    if system != "x86_64-linux" {
        eprintln!("the toy flake is written for x86_64-linux; this is {system}");
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).expect("busybox-static");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["config", "user.name", "test"]);
    git(&work, &["config", "user.email", "test@example.invalid"]);
    for revision in 0..3 {
        std::fs::write(work.join("flake.nix"), flake(busybox, revision)).unwrap();
        git(&work, &["add", "flake.nix"]);
        git(&work, &["commit", "-q", "-m", &format!("revision {revision}")]);
        let out = hints(&work, &["scan", "--db", "h.db", "--flake", "."]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let listed: serde_json::Value = serde_json::from_slice(&hints(&work, &["ls", "--db", "h.db", "--json"]).stdout).unwrap();
    let rows = listed["snapshots"].as_array().unwrap();
    let of = |image: &str| rows.iter().filter(|r| r["image"] == image).collect::<Vec<_>>();
    assert_eq!(of("api-image").len(), 3, "{listed}");
    assert_eq!(of("worker-image").len(), 3);
    assert!(of("tool").is_empty(), "not an image by name");
    // The api's closure holds its library, a new one at each commit.
    assert!(of("api-image").iter().all(|r| r["paths"] == 2), "{listed}");
    let head = git(&work, &["rev-parse", "HEAD"]);
    assert!(of("api-image").iter().any(|r| r["revision"] == head.trim()));

    std::fs::write(work.join("hints.toml"), "[scan]\nimages = [\"tool\"]\n").unwrap();
    let out = hints(&work, &["scan", "--db", "h2.db", "--flake", "."]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&hints(&work, &["ls", "--db", "h2.db", "--json"]).stdout).unwrap();
    assert_eq!(listed["images"], serde_json::json!(["tool"]), "{listed}");

    std::fs::write(work.join("hints.toml"), "[scan]\nimages = [\"nope\"]\n").unwrap();
    let out = hints(&work, &["scan", "--db", "h3.db", "--flake", "."]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("hints.toml") && said.contains("`nope` is not an attribute"), "{said}");
}
