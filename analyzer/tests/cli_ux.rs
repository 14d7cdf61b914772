//! The CLI as a newcomer meets it: revisions by name, budgets from the hint file, messages that
//! say what to do, help on every flag, quiet batch output, man pages and completions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir(cwd).output().expect("hints runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    out(&o)
}

fn bad_input(o: &Output, says: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", out(o), err(o));
    assert!(err(o).contains(says), "expected `{says}` in: {}", err(o));
}

#[test]
fn an_image_the_file_lays_out_by_size_first_gets_size_firsts_layers_when_named() {
    let tmp = learned_at_12();
    let t = tmp.path();
    let mut file = hints_format::HintFile::parse(&std::fs::read_to_string(t.join("h.yaml")).unwrap()).unwrap();
    file.size_first_images = vec![];
    std::fs::write(t.join("none.yaml"), file.to_canonical_string()).unwrap();
    file.size_first_images = vec!["python3".into()];
    std::fs::write(t.join("listed.yaml"), file.to_canonical_string()).unwrap();
    let graph = repo().join("fixtures/example/graphs/python3/12.json");
    let layers = |extra: &[&str]| ok(run(&[&["layer", "--graph", graph.to_str().unwrap(), "--max-layers", "12"], extra].concat(), t));
    let size_first = layers(&["--strategy", "size-first"]);
    let grouped = layers(&["--hints", "none.yaml"]);
    assert_ne!(grouped, size_first, "the groups lay python3 out");
    assert_eq!(layers(&["--hints", "listed.yaml"]), grouped, "unnamed, the groups apply");
    assert_eq!(layers(&["--hints", "listed.yaml", "--image", "curl"]), grouped, "another image keeps the groups");
    assert_eq!(layers(&["--hints", "listed.yaml", "--image", "python3"]), size_first);
}

/// A directory holding the bundled example's history and `h.yaml`, learned from revisions 0..6
/// at 12 layers.
fn learned_at_12() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    example(tmp.path());
    ok(run(&["emit", "--range", "0..6", "--max-layers", "12", "--out", "h.yaml"], tmp.path()));
    tmp
}

/// The bundled example scanned into `dir/.hints/hints.db` (the default location).
fn example(dir: &Path) -> String {
    ok(run(&["scan", "--dataset", repo().join("fixtures/example").to_str().unwrap()], dir))
}

#[test]
fn a_dataset_scan_is_one_line_keeps_its_labels_and_ignores_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let said = example(t);
    assert_eq!(said.lines().count(), 1, "a 78-snapshot scan prints its summary only: {said}");
    assert!(said.starts_with("78 snapshots: 78 added"), "{said}");
    assert_eq!(std::fs::read_to_string(t.join(".hints/.gitignore")).unwrap().lines().last(), Some("*"), "the database stays out of git");
    // The manifest's labels name the revisions; `ls` shows positions.
    let ls = ok(run(&["ls"], t));
    assert!(ls.contains("POS") && ls.contains(" trixie ") && ls.contains(" forky "), "{ls}");
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["ls", "--json"], t))).unwrap();
    assert_eq!((v["revisions"][0]["label"].as_str(), v["revisions"][0]["position"].as_u64()), (Some("trixie"), Some(0)));
    ok(run(&["emit", "--range", "trixie..6", "--max-layers", "30", "--out", "h.yaml"], t));
    // -q still says what a batch did; -v lists every snapshot.
    let quiet = ok(run(&["-q", "scan", "--dataset", repo().join("fixtures/example").to_str().unwrap()], t));
    assert_eq!(quiet.trim(), "78 snapshots: 0 added, 0 replaced, 78 unchanged; 0 new store paths");
    let verbose = ok(run(&["-v", "scan", "--dataset", repo().join("fixtures/example").to_str().unwrap()], t));
    assert_eq!(verbose.lines().count(), 79);
    // --json: every snapshot's outcome and the batch's counts.
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["scan", "--json", "--dataset", repo().join("fixtures/example").to_str().unwrap()], t))).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 78);
    assert!(v["snapshots"].as_array().unwrap().iter().all(|s| s["result"]["outcome"] == "unchanged"), "{v}");
    assert_eq!(v["tally"]["unchanged"], 78);
}

#[test]
fn eval_pulls_shows_each_update_of_one_image_and_adds_up_to_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    example(t);
    ok(run(&["emit", "--range", "0..6", "--max-layers", "30", "--out", "h.yaml"], t));
    let text = ok(run(&["eval", "--hints", "h.yaml", "--range", "6..12", "--pulls", "python3"], t));
    assert!(text.starts_with("python3: what each update pulls") && text.contains("\nupdate ") && text.contains("over 6 updates: hints "), "{text}");
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["eval", "--hints", "h.yaml", "--range", "6..12", "--pulls", "python3", "--json"], t))).unwrap();
    let updates = v["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 6);
    // Per layout, the updates' bytes add up to what the replay counts for the image.
    let totals: serde_json::Value = serde_json::from_str(&ok(run(&["eval", "--hints", "h.yaml", "--range", "6..12", "--json"], t))).unwrap();
    for (k, strategy) in ["hints", "size-first"].into_iter().enumerate() {
        let pulled: u64 = updates.iter().map(|u| u["layouts"][k]["bytes"].as_u64().unwrap()).sum();
        let result = totals["results"].as_array().unwrap().iter().find(|r| r["strategy"] == strategy).unwrap();
        let replayed = result["per_image_update_bytes"].as_array().unwrap().iter().find(|p| p[0] == "python3").unwrap()[1].as_u64().unwrap();
        assert_eq!(pulled, replayed, "{strategy}");
        let carried: u64 = updates.iter().flat_map(|u| u["layouts"][k]["layers"].as_array().unwrap()).map(|l| l["carried_bytes"].as_u64().unwrap()).sum();
        assert!(carried < pulled, "{strategy}: some pulled bytes changed");
        // The layout's carried bytes, by why (`carried_by`), are its layers' by their `carry`.
        for (why, field) in [("beside-a-change", "beside_a_change"), ("departure", "departure"), ("relaid", "relaid")] {
            let by_layers: u64 = updates.iter().flat_map(|u| u["layouts"][k]["layers"].as_array().unwrap()).filter(|l| l["carry"] == why).map(|l| l["carried_bytes"].as_u64().unwrap()).sum();
            let by_layout: u64 = updates.iter().map(|u| u["layouts"][k]["carried_by"][field].as_u64().unwrap()).sum();
            assert_eq!(by_layers, by_layout, "{strategy}, {why}");
        }
        // Each pulled layer says what formed it, in the words of `hints layer --explain`.
        let mut origins = std::collections::BTreeSet::new();
        for l in updates.iter().flat_map(|u| u["layouts"][k]["layers"].as_array().unwrap()) {
            let (origin, reason) = (l["origin"].as_str().unwrap(), l["reason"].as_str().unwrap());
            let expected = match origin {
                "group" => "hint group `",
                "merged" => "merged to fit the budget: ",
                "fallback" => "fallback: ",
                "baseline" => "size-first: ",
                other => panic!("{strategy}: no pins in this file, so no {other}"),
            };
            assert!(reason.starts_with(expected), "{strategy}: {origin} layer, reason {reason}");
            origins.insert(origin);
        }
        let expected: &[&str] = if strategy == "hints" { &["group"] } else { &["baseline"] };
        assert!(expected.iter().all(|o| origins.contains(o)), "{strategy}: {origins:?}");
    }
    bad_input(&run(&["eval", "--hints", "h.yaml", "--range", "6..12", "--pulls", "nosuch"], t), "--pulls nosuch: the history has no such image");
}

#[test]
fn revision_and_range_errors_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    example(t);
    bad_input(&run(&["emit", "--range", "6..3"], t), "--range 6..3: the range is backwards: position 6 comes after position 3");
    bad_input(&run(&["emit", "--range", "6"], t), "--range 6: expected A..B");
    bad_input(&run(&["emit", "--range", "0..nosuch"], t), "no revision matches `nosuch`");
    bad_input(&run(&["emit", "--images", "nosuch"], t), "--images: no image `nosuch`");
    bad_input(&run(&["eval", "--hints", "x.yaml", "--range", "6..12", "--images", "nosuch"], t), "--images: no image `nosuch`");
    // A numeric label that is also another revision's position is refused, not guessed.
    let graph = repo().join("fixtures/example/graphs/curl/0.json");
    let db = t.join("n.db");
    for (label, day) in [("a", "01"), ("b", "02"), ("1", "03")] {
        ok(run(&["scan", "--db", db.to_str().unwrap(), "--image", "curl", "--rev", label, "--time", &format!("2025-01-{day}T00:00:00Z"), graph.to_str().unwrap()], t));
    }
    bad_input(&run(&["emit", "--db", db.to_str().unwrap(), "--range", "0..1"], t), "`1` is the label of the revision at position 2 and also position 1");
}

#[test]
fn layer_takes_the_hint_files_budget_and_says_when_told_otherwise() {
    let tmp = learned_at_12();
    let t = tmp.path();
    let graph = repo().join("fixtures/example/graphs/python3/12.json");
    let layers = |extra: &[&str]| {
        let mut args = vec!["layer", "--graph", graph.to_str().unwrap(), "--hints", "h.yaml"];
        args.extend_from_slice(extra);
        let o = run(&args, t);
        let n = serde_json::from_str::<Vec<Vec<String>>>(&ok(o.clone())).unwrap().len();
        (n, err(&o))
    };
    let (n, warned) = layers(&[]);
    assert!(n <= 11, "the file's 12 layers, one reserved: {n}");
    assert!(!warned.contains("learned for"), "{warned}");
    let (n, warned) = layers(&["--max-layers", "100"]);
    assert!(n <= 99 && warned.contains("the hint file was learned for 12 layers (1 reserved); laying out for 100 (1 reserved)"), "{n} {warned}");
    let (n, warned) = layers(&["--max-layers", "6"]);
    assert!(n <= 5 && warned.contains("laying out for 6 (1 reserved)"), "{n} {warned}");
    // Without --image the file's groups apply as for a trusted image; it says which images it
    // lays out otherwise.
    assert!(warned.contains("its own way") && warned.contains("without --image"), "{warned}");
    assert!(!warned.contains("\u{1b}["), "no colour codes when stderr is not a terminal: {warned:?}");
    // -v says how long reading and laying out took, and how many paths.
    let paths = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&graph).unwrap()).unwrap().as_array().map_or(0, |a| a.len());
    let (_, said) = layers(&["-v"]);
    assert!(said.contains(&format!(" {paths} paths read in ")) && said.contains(" ms, laid out in "), "{paths}: {said}");
    assert!(!layers(&[]).1.contains("laid out in"), "only with -v");
}

#[test]
fn layer_explain_says_which_member_a_renamed_package_is_a_rename_of() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut file = hints_format::HintFile::new(hints_format::BudgetHeader { max_layers: 4, reserve: 1 });
    file.groups = vec![hints_format::Group { id: "perl".into(), members: vec!["libperl5.40".into()], stats: Default::default() }];
    std::fs::write(t.join("h.yaml"), file.to_canonical_string()).unwrap();
    let graph = |perl: &str| {
        let path = |hash: char, name: &str| format!("/nix/store/{}-{name}", hash.to_string().repeat(32));
        let records = serde_json::json!({ path('a', "a-1.0"): {"narSize": 10_000_000, "references": []}, path('b', perl): {"narSize": 500_000, "references": []} });
        std::fs::write(t.join("g.json"), records.to_string()).unwrap();
        ok(run(&["layer", "--graph", "g.json", "--hints", "h.yaml", "--explain"], t))
    };
    let renamed = graph("libperl5.42-5.42.3-1");
    assert!(renamed.contains("hint group `perl`\n    libperl5.42-5.42.3-1  (a rename of `libperl5.40`, in a layer of its own beside its group's)\n"), "{renamed}");
    let older = graph("libperl5.38-5.38.2-3");
    assert!(older.contains("fallback") && !older.contains("a rename of"), "an older name succeeds no member: {older}");
}

#[test]
fn emit_says_when_it_keeps_a_previous_file_and_can_learn_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    example(t);
    let first = ok(run(&["emit", "--range", "0..6", "--max-layers", "30", "--out", "h.yaml"], t));
    assert!(!first.contains("previous file:"), "{first}");
    let again = ok(run(&["emit", "--range", "0..6", "--max-layers", "30", "--out", "h.yaml"], t));
    assert!(again.contains("previous file: h.yaml"), "{again}");
    let fresh = ok(run(&["emit", "--range", "0..6", "--max-layers", "30", "--out", "h.yaml", "--no-previous"], t));
    assert!(!fresh.contains("previous file:"), "{fresh}");
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["eval", "--hints", "h.yaml", "--range", "6..12", "--json"], t))).unwrap();
    let m = &v["results"][0];
    assert!(m["avg_layers"].as_f64().is_some() && m.get("avg_layers_x10").is_none(), "{m}");
    assert_eq!(v["max_layers"], 30, "eval takes the file's budget");
    // explain without a hint file says what to pass.
    bad_input(&run(&["explain", "--hints", "nosuch.yaml", "libssl3t64"], t), "no hint file at nosuch.yaml: give --hints FILE");
    let said = ok(run(&["explain", "--hints", "h.yaml", "libssl3t64"], t));
    assert!(said.contains("in the file, bottom-up"), "{said}");
    // With an image: the layer it lands in there, as `hints layer` lays that snapshot out.
    let said = ok(run(&["explain", "--hints", "h.yaml", "libssl3t64", "--image", "curl", "--rev", "12"], t));
    let line = said.lines().find(|l| l.trim_start().starts_with("libssl3t64-")).unwrap_or_else(|| panic!("{said}"));
    let k: usize = line.split("layer ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let layers: Vec<Vec<String>> = serde_json::from_str(&ok(run(&["layer", "--graph", repo().join("fixtures/example/graphs/curl/12.json").to_str().unwrap(), "--hints", "h.yaml"], t))).unwrap();
    assert!(layers[k - 1].iter().any(|p| p.contains("-libssl3t64-")), "layer {k} of `hints layer` holds it: {line}");
    // The same facts as JSON.
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["explain", "--hints", "h.yaml", "libssl3t64", "--image", "curl", "--rev", "12", "--json"], t))).unwrap();
    let placement = &v["explanation"]["placement"];
    assert_eq!(placement["kind"], "group", "{v}");
    assert!(said.contains(&format!("layer: group `{}`", placement["id"].as_str().unwrap())), "{said}");
    assert_eq!(v["in_image"][0]["layer"].as_u64(), Some(k as u64), "{v}");
    assert_eq!(v["explanation"]["name"], "libssl3t64");
    bad_input(&run(&["explain", "--hints", "h.yaml", "libssl3t64", "--image", "nosuch"], t), "--image: no image `nosuch`");
}

#[test]
fn bad_input_is_named_once_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("empty.json"), "[]").unwrap();
    let o = run(&["layer", "--graph", "empty.json"], t);
    bad_input(&o, "empty.json: the closure is empty");
    assert_eq!(err(&o).matches("the closure is empty").count(), 1, "{}", err(&o));
    std::fs::write(t.join("binary.json"), [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
    bad_input(&run(&["layer", "--graph", "binary.json"], t), "binary.json: not text (UTF-8)");
    // A file that is not there is the user's to fix, as a database that is not there is.
    bad_input(&run(&["layer", "--graph", "absent.json"], t), "absent.json: no such file");
    bad_input(&run(&["validate", "absent.yaml"], t), "absent.yaml: no such file");
    bad_input(&run(&["scan", "--dataset", "x", "--image", "y"], t), "cannot be used with");
    // A manifest naming a graph that is missing: scanned without it, and said.
    let ds = t.join("ds");
    std::fs::create_dir_all(ds.join("graphs/curl")).unwrap();
    std::fs::copy(repo().join("fixtures/example/graphs/curl/0.json"), ds.join("graphs/curl/0.json")).unwrap();
    let manifest = r#"{"images": [{"name": "curl"}], "revisions": [
        {"index": 0, "label": "one", "commit": "c0", "time": "2025-01-01T00:00:00Z"},
        {"index": 1, "label": "two", "commit": "c1", "time": "2025-01-02T00:00:00Z"}]}"#;
    std::fs::write(ds.join("manifest.json"), manifest).unwrap();
    let o = run(&["scan", "--db", "d.db", "--dataset", "ds"], t);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("1 graph files the manifest lists are missing (the first: ds/graphs/curl/1.json)"), "{}", err(&o));
}

#[test]
fn every_flag_has_help_and_man_pages_and_completions_come_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let top = ok(run(&["--help"], t));
    assert!(top.contains("Exit status: 0 on success; 2 for bad input"), "{top}");
    let commands = ["scan", "ls", "layer", "image", "export", "diff", "emit", "eval", "explain", "fmt", "validate", "schema", "completions", "man"];
    for c in commands {
        let help = ok(run(&[c, "--help"], t));
        // Every option and argument has a description: on its line after two spaces, or on
        // the next line, indented further (clap's long layout).
        let lines: Vec<&str> = help.lines().collect();
        let mut section = "";
        for (k, line) in lines.iter().enumerate() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
                continue;
            }
            let item = line.trim_start();
            let is_item = match section {
                "Options:" => item.starts_with('-'),
                "Arguments:" => item.starts_with('<') || item.starts_with('['),
                _ => false,
            };
            if is_item && line.len() - item.len() <= 6 {
                let indent = line.len() - item.len();
                let described = item.contains("  ") || lines.get(k + 1).is_some_and(|n| n.len() - n.trim_start().len() > indent && !n.trim().is_empty());
                assert!(described, "`hints {c}`: no help for `{item}`");
            }
        }
        let page = ok(run(&["man", c], t));
        assert!(page.contains(&format!(".TH hints-{c} 1")), "{c}: {}", &page[..page.len().min(200)]);
    }
    assert!(ok(run(&["man"], t)).contains(".TH hints 1"));
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(run(&["completions", shell], t));
        assert!(script.contains("emit") && script.contains("max-layers"), "{shell}");
    }
    bad_input(&run(&["man", "nosuch"], t), "no command `nosuch`");
}

#[test]
fn diff_explains_a_regenerated_file_with_the_figures_eval_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    example(t);
    ok(run(&["emit", "--range", "0..4", "--max-layers", "30", "--out", "old.yaml"], t));
    ok(run(&["emit", "--range", "0..8", "--max-layers", "30", "--out", "new.yaml", "--no-previous", "--summary", "pr.md"], t));
    let md = ok(run(&["diff", "old.yaml", "new.yaml"], t));
    assert!(md.starts_with("### Hint file changes: `old.yaml` → `new.yaml`"), "{md}");
    assert!(md.contains("per update with the old file") && md.contains("once"), "{md}");
    let same = ok(run(&["diff", "new.yaml", "new.yaml"], t));
    assert!(same.contains("No group changed"), "{same}");
    // The saving is eval's: the last 6 updates, summed over images, per update.
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["diff", "old.yaml", "new.yaml", "--json"], t))).unwrap();
    let per_update = |file: &str| {
        let e: serde_json::Value = serde_json::from_str(&ok(run(&["eval", "--hints", file, "--range", "6..12", "--allow-overlap", "--json"], t))).unwrap();
        e["results"].as_array().unwrap().iter().find(|m| m["strategy"] == "hints").unwrap()["update_bytes"].as_u64().unwrap() / 6
    };
    assert_eq!(v["costs"]["old_per_update"].as_u64().unwrap(), per_update("old.yaml"));
    assert_eq!(v["costs"]["new_per_update"].as_u64().unwrap(), per_update("new.yaml"));
    // emit --summary: the same kind of summary against the previous file, with the backtest.
    let pr = std::fs::read_to_string(t.join("pr.md")).unwrap();
    assert!(pr.contains("`(none)` → `new.yaml`") && pr.contains("backtest:"), "{pr}");
}

#[test]
fn blank_files_strings_and_byte_order_marks_get_plain_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("ws.json"), "   \n").unwrap();
    bad_input(&run(&["layer", "--graph", "ws.json"], t), "ws.json: line 1: the file is empty; expected a closure graph");
    std::fs::write(t.join("str.json"), "\"foo\"").unwrap();
    bad_input(&run(&["layer", "--graph", "str.json"], t), "found string \"foo\"; expected a closure graph");
    let graph = std::fs::read_to_string(repo().join("fixtures/example/graphs/curl/0.json")).unwrap();
    std::fs::write(t.join("bom.json"), format!("\u{feff}{graph}")).unwrap();
    ok(run(&["layer", "--graph", "bom.json"], t));
    let golden = std::fs::read_to_string(repo().join("fixtures/hints/golden.yaml")).unwrap();
    std::fs::write(t.join("bom.yaml"), format!("\u{feff}{golden}")).unwrap();
    assert!(ok(run(&["validate", "bom.yaml"], t)).contains("80 groups"));
    let v: serde_json::Value = serde_json::from_str(&ok(run(&["validate", "bom.yaml", "--json"], t))).unwrap();
    assert_eq!((v["valid"].as_bool(), v["groups"].as_u64(), v["pins"].as_u64()), (Some(true), Some(80), Some(3)));
}

#[test]
fn a_reviewers_pin_comments_survive_fmt_and_emit() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    example(t);
    ok(run(&["emit", "--range", "0..6", "--max-layers", "30", "--out", "h.yaml"], t));
    let text = std::fs::read_to_string(t.join("h.yaml")).unwrap();
    let pinned = text.replace("pins: []\n", "pins:\n  # libc6 changes rarely and every image has it: bottom (reviewed 2026-11)\n  - id: base\n    rule: bottom\n    members: [libc6]\n");
    std::fs::write(t.join("h.yaml"), &pinned).unwrap();
    ok(run(&["fmt", "h.yaml"], t));
    assert!(std::fs::read_to_string(t.join("h.yaml")).unwrap().contains("# libc6 changes rarely"), "fmt keeps it");
    ok(run(&["emit", "--range", "0..8", "--max-layers", "30", "--out", "h.yaml"], t));
    let regenerated = std::fs::read_to_string(t.join("h.yaml")).unwrap();
    assert!(regenerated.contains("# libc6 changes rarely") && regenerated.contains("rule: bottom"), "{regenerated}");
    assert!(run(&["fmt", "--check", "h.yaml"], t).status.success(), "and it is canonical");
}
