//! The whole loop with a real Nix store (Debian's nix-bin, installed by `.ci/run`):
//! build four revisions of a toy world (nix/tests/toy.nix), scan them with `hints scan --nix`,
//! emit hints from revisions 1..3, build revision 4's layers inside Nix with `layersFromHints`
//! (nix/lib.nix), and check them against `hints layer` run outside Nix. Never skipped under CI.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{ok, repo, Toy};

fn hints(_db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hints"));
    c.arg("--quiet");
    c
}

#[test]
fn layers_from_hints_inside_nix_match_hints_layer_outside() {
    if !common::have_tools(&["nix-build"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let toy = Toy::new(t);
    let build = |revision: usize, attr: &str| toy.build(revision, attr);

    // 1-2. Four revisions of three images, each scanned from the live store.
    let db = t.join("h.db");
    let images = [("py", "py-app"), ("node", "node-app"), ("tools", "toolbox")];
    let mut union = BTreeSet::new();
    for r in 1..=4 {
        let mut scan = hints(&db);
        scan.args(["scan", "--db"]).arg(&db).args(["--rev", &format!("r{r}"), "--time", &format!("2025-03-0{r}T00:00:00Z")]);
        for (image, attr) in images {
            let out = build(r, attr);
            if r == 4 {
                union.extend(ok(Command::new("nix-store").args(["-qR", &out])).lines().map(str::to_string));
            }
            scan.arg("--nix").arg(format!("{image}={out}"));
        }
        ok(&mut scan);
    }
    assert!((150..=300).contains(&union.len()), "{} paths in revision 4", union.len());

    // 3. Learn from revisions 1..3, then layer revision 4 inside Nix.
    let hint_file = t.join("layer-hints.yaml");
    ok(hints(&db).args(["emit", "--db"]).arg(&db).args(["--range", "r1..r3", "--max-layers", "20", "--out"]).arg(&hint_file));
    let expr = format!(
        r#"let
          lib = import {lib};
          toy = import {toy} {{ busybox = {bb}; revision = 4; }};
          hintsTool = builtins.path {{ path = {tool}; name = "hints-tool"; }};
        in lib.layersFromHints {{
          name = "py-app-layers";
          roots = [ toy.py-app ];
          hints = builtins.path {{ path = {hints}; name = "layer-hints.yaml"; }};
          maxLayers = 20;
          inherit hintsTool;
        }}"#,
        lib = repo().join("nix/lib.nix").display(),
        toy = Toy::expr().display(),
        bb = toy.busybox().display(),
        tool = toy.tool().display(),
        hints = hint_file.display(),
    );
    std::fs::write(t.join("layers.nix"), expr).unwrap();
    let built = ok(Command::new("nix-build").arg(t.join("layers.nix")).arg("--no-out-link")).trim().to_string();
    let inside = std::fs::read_to_string(&built).unwrap();

    // The layers partition revision 4's closure of the image.
    let py4 = build(4, "py-app");
    let closure: BTreeSet<String> = ok(Command::new("nix-store").args(["-qR", &py4])).lines().map(str::to_string).collect();
    let layers: Vec<Vec<String>> = serde_json::from_str(&inside).unwrap();
    assert!(layers.len() <= 19 && layers.iter().all(|l| !l.is_empty()));
    let flat: Vec<&String> = layers.iter().flatten().collect();
    assert_eq!(flat.len(), closure.len(), "no path twice");
    assert_eq!(flat.into_iter().cloned().collect::<BTreeSet<_>>(), closure, "every path once");

    // Byte-identical to `hints layer` outside Nix, on the same closure from `nix path-info`.
    let graph = t.join("py4.json");
    std::fs::write(&graph, ok(Command::new("nix").args(["path-info", "--json", "--recursive", &py4]))).unwrap();
    let outside = ok(hints(&db).args(["layer", "--graph"]).arg(&graph).arg("--hints").arg(&hint_file).args(["--max-layers", "20"]));
    assert_eq!(inside, outside);

    // Building again gives the same store path, and a forced rebuild the same bytes.
    let again = ok(Command::new("nix-build").arg(t.join("layers.nix")).arg("--no-out-link")).trim().to_string();
    assert_eq!(again, built);
    ok(Command::new("nix-build").arg(t.join("layers.nix")).args(["--no-out-link", "--check"]));

    // 4. Replay 3 -> 4 under every strategy.
    let table = ok(hints(&db).args(["eval", "--db"]).arg(&db).arg("--hints").arg(&hint_file).args(["--range", "r3..r4", "--max-layers", "20"]));
    println!("{table}");
    let row = |name: &str| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&ok(hints(&db).args(["eval", "--json", "--db"]).arg(&db).arg("--hints").arg(&hint_file).args(["--range", "r3..r4", "--max-layers", "20"]))).unwrap();
        v["results"].as_array().unwrap().iter().find(|m| m["strategy"] == name).unwrap()["update_bytes"].as_u64().unwrap()
    };
    let (hinted, size_first, floor) = (row("hints"), row("size-first"), row("floor"));
    println!("update bytes 3->4: hints {hinted}, size-first {size_first}, floor {floor}");
    assert!(floor <= hinted && floor <= size_first);
}

/// The expressions that need nixpkgs cannot be built here; they must at least parse.
#[test]
fn every_nix_file_parses() {
    if Command::new("nix-instantiate").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have nix (see .ci/run)");
        return;
    }
    for f in ["flake.nix", "nix/lib.nix", "nix/adapters.nix", "nix/package.nix", "nix/module.nix", "nix/tests/toy.nix"] {
        ok(Command::new("nix-instantiate").arg("--parse").arg(repo().join(f)));
    }
}
