//! `hints image` through the real binary, on a store built in a temporary directory
//! (`--store-root`): reproducible layers, shared digests, the layer cache, the tar rules, the
//! config, and bad input. The registry round trip with real Nix closures is in `nix_e2e.rs`.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

/// A store under `root/nix/store` and the closure graph of what it holds.
struct Store {
    root: PathBuf,
    graph: Vec<Value>,
}

impl Store {
    fn new(root: &Path) -> Store {
        std::fs::create_dir_all(root.join("nix/store")).unwrap();
        Store { root: root.to_path_buf(), graph: vec![] }
    }

    /// Adds a directory path `hash-name` with `files` (relative name, content, executable).
    fn add(&mut self, hash_name: &str, files: &[(&str, &str, bool)], refs: &[&str]) -> String {
        let path = format!("/nix/store/{hash_name}");
        let dir = self.root.join(path.trim_start_matches('/'));
        for (name, content, exec) in files {
            let f = dir.join(name);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, content).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(if *exec { 0o755 } else { 0o644 })).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let size: usize = files.iter().map(|f| f.1.len()).sum::<usize>() + 1000;
        let refs: Vec<String> = refs.iter().map(|r| format!("/nix/store/{r}")).collect();
        self.graph.push(json!({"path": path, "narSize": size, "references": refs}));
        path
    }

    fn write_graph(&self, file: &Path) {
        std::fs::write(file, serde_json::to_string(&self.graph).unwrap()).unwrap();
    }
}

const LIBC: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-libc-2.39";
const APP_A: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-app-a-1.0";
const APP_B: &str = "cccccccccccccccccccccccccccccccc-app-b-1.0";

fn hints(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).envs(env.iter().copied()).output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn two_images(t: &Path) -> Store {
    Store::new(&t.join("root"))
}

/// The graph of libc and `app`, and a store-layers file that puts each in its own layer.
fn image_graph(t: &Path, s: &mut Store, app: &str, file: &str) -> (PathBuf, PathBuf) {
    s.graph.clear();
    s.add(LIBC, &[("lib/libc.so", "libc bytes", true), ("share/locale", "C.UTF-8", false)], &[]);
    let app_path = s.add(app, &[("bin/app", "#!/bin/sh\necho hi\n", true)], &[LIBC]);
    let graph = t.join(format!("{file}.json"));
    s.write_graph(&graph);
    let layers = t.join(format!("{file}.layers.json"));
    std::fs::write(&layers, json!([[format!("/nix/store/{LIBC}")], [app_path]]).to_string()).unwrap();
    (graph, layers)
}

fn write(t: &Path, graph: &Path, layers: &Path, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let root = t.join("root");
    let mut args = vec!["image", "--graph", graph.to_str().unwrap(), "--store-layers", layers.to_str().unwrap(), "--store-root", root.to_str().unwrap(), "--out", out, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(hints(&args, env))).unwrap()
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

fn json_blob(dir: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(dir, digest)).unwrap()
}

#[test]
fn equal_path_sets_give_equal_digests_whatever_the_directory_or_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    let one = write(t, &ga, &la, &format!("oci:{}/one:a", t.display()), &[], &[("RAYON_NUM_THREADS", "1")]);
    let two = write(t, &ga, &la, &format!("oci:{}/two:a", t.display()), &[], &[("RAYON_NUM_THREADS", "4")]);
    assert_eq!(one["manifest_digest"], two["manifest_digest"], "two builds, two directories, 1 and 4 threads");
    let (gb, lb) = image_graph(t, &mut s, APP_B, "b");
    let b = write(t, &gb, &lb, &format!("oci:{}/one:b", t.display()), &[], &[]);
    assert_eq!(one["layers"][0]["digest"], b["layers"][0]["digest"], "the shared libc layer has one digest");
    assert_ne!(one["layers"][1]["digest"], b["layers"][1]["digest"]);
    assert_eq!(b["layers"][0]["reused"], true, "found in the layer cache of the directory");
    assert_eq!(b["layers"][1]["reused"], false);
    // Both tags are in the index, and each manifest lists its layers and its config.
    let index: Value = serde_json::from_str(&std::fs::read_to_string(t.join("one/index.json")).unwrap()).unwrap();
    let tags: Vec<&str> = index["manifests"].as_array().unwrap().iter().map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap()).collect();
    assert_eq!(tags, ["a", "b"]);
    let manifest = json_blob(&t.join("one"), b["manifest_digest"].as_str().unwrap());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
}

#[test]
fn the_tar_has_fixed_order_owner_modes_and_times_and_no_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = Store::new(&t.join("root"));
    let long = format!("share/{}/file", "x".repeat(150));
    let p = s.add(LIBC, &[("lib/libc.so", "libc bytes", true), ("b", "b", false), ("a", "a", false), (&long, "deep", false)], &[]);
    let dir = t.join("root").join(p.trim_start_matches('/'));
    std::fs::hard_link(dir.join("a"), dir.join("a-link")).unwrap();
    std::os::unix::fs::symlink("lib/libc.so", dir.join("libc")).unwrap();
    let graph = t.join("g.json");
    s.write_graph(&graph);
    let layers = t.join("l.json");
    std::fs::write(&layers, json!([[p]]).to_string()).unwrap();
    let w = write(t, &graph, &layers, &format!("oci:{}/oci", t.display()), &["--compression", "none"], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    let layer = &w["layers"][0];
    assert_eq!(layer["digest"], layer["diff_id"], "uncompressed: the blob is the tar");
    let bytes = blob(&t.join("oci"), layer["digest"].as_str().unwrap());
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = vec![];
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()), (0, 0, 1_700_000_000), "{name}");
        let mut content = String::new();
        if h.entry_type().is_file() {
            e.read_to_string(&mut content).unwrap();
        }
        entries.push((name, h.entry_type(), h.mode().unwrap(), content));
    }
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let store = format!("nix/store/{LIBC}");
    let expected: Vec<String> = [
        "nix",
        "nix/store",
        &store,
        &format!("{store}/a"),
        &format!("{store}/a-link"),
        &format!("{store}/b"),
        &format!("{store}/lib"),
        &format!("{store}/lib/libc.so"),
        &format!("{store}/libc"),
        &format!("{store}/share"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(&names[..expected.len()], expected.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), "nix/ and nix/store/ first, then sorted");
    let by_name: BTreeMap<&str, &(String, tar::EntryType, u32, String)> = entries.iter().map(|e| (e.0.as_str(), e)).collect();
    assert_eq!(by_name[format!("{store}/lib").as_str()].2, 0o555);
    assert_eq!(by_name[format!("{store}/lib/libc.so").as_str()].2, 0o555, "executable");
    assert_eq!(by_name[format!("{store}/a").as_str()].2, 0o444);
    let link = by_name[format!("{store}/a-link").as_str()];
    assert!(link.1.is_file() && link.3 == "a", "a hard link is a file with its own bytes");
    assert!(by_name[format!("{store}/libc").as_str()].1.is_symlink());
    assert_eq!(by_name[format!("{store}/{long}").as_str()].3, "deep", "a long name round-trips");
}

#[test]
fn a_rebuild_writes_only_the_layers_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    let out = format!("oci:{}/oci:a", t.display());
    let first = write(t, &ga, &la, &out, &[], &[]);
    let blobs = |d: &Path| std::fs::read_dir(d.join("oci/blobs/sha256")).unwrap().count();
    let before = blobs(t);
    assert_eq!(before, 5, "2 layers, the config, the manifest and ocidir's empty descriptor");
    // The app's new version: libc's layer is reused without reading the store.
    s.graph.clear();
    s.add(LIBC, &[], &[]);
    let app2 = s.add("dddddddddddddddddddddddddddddddd-app-a-1.1", &[("bin/app", "#!/bin/sh\necho hello\n", true)], &[LIBC]);
    s.write_graph(&ga);
    std::fs::write(&la, json!([[format!("/nix/store/{LIBC}")], [app2]]).to_string()).unwrap();
    std::fs::remove_file(t.join("root/nix/store").join(LIBC).join("lib/libc.so")).unwrap();
    let second = write(t, &ga, &la, &out, &[], &[]);
    assert_eq!(second["layers"][0]["reused"], true);
    assert_eq!(second["layers"][0]["digest"], first["layers"][0]["digest"]);
    assert_eq!(second["layers"][1]["reused"], false);
    assert_eq!(blobs(t), before + 3, "one new layer, config and manifest");
}

#[test]
fn config_top_layer_and_closure_label() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    std::fs::create_dir_all(t.join("top/etc")).unwrap();
    std::fs::write(t.join("top/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    let config = t.join("config.json");
    std::fs::write(&config, r#"{"Cmd": ["old"], "Env": ["PATH=/bin", "LANG=C"], "Labels": {"a": "1"}}"#).unwrap();
    let top = t.join("top");
    let w = write(
        t,
        &ga,
        &la,
        &format!("oci:{}/oci", t.display()),
        &["--config", config.to_str().unwrap(), "--cmd", "/bin/app", "--cmd", "-v", "--env", "LANG=C.UTF-8", "--label", "b=2", "--workdir", "/srv", "--top-layer", top.to_str().unwrap()],
        &[],
    );
    let dir = t.join("oci");
    let manifest = json_blob(&dir, w["manifest_digest"].as_str().unwrap());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3, "two store layers and the top layer");
    let c = json_blob(&dir, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(c["config"]["Cmd"], json!(["/bin/app", "-v"]), "flags override the file");
    assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "LANG=C.UTF-8"]));
    assert_eq!(c["config"]["WorkingDir"], "/srv");
    assert_eq!((c["config"]["Labels"]["a"].as_str(), c["config"]["Labels"]["b"].as_str()), (Some("1"), Some("2")));
    assert_eq!(c["created"], "1970-01-01T00:00:01Z");
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    let history = c["history"].as_array().unwrap();
    assert!(history[1]["comment"].as_str().unwrap().contains(APP_A), "history names each layer's paths");
    // The closure graph, for scanning the image later.
    let graph: Value = serde_json::from_str(c["config"]["Labels"]["io.github.hints.closure.v1"].as_str().unwrap()).unwrap();
    assert_eq!(graph, json!([[format!("/nix/store/{LIBC}"), 1017, []], [format!("/nix/store/{APP_A}"), 1018, [0]]]));
}

#[test]
fn bad_input_exits_2_and_names_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    let root = t.join("root");
    let run = |layers: &str, extra: &[&str], out: &str| {
        std::fs::write(t.join("bad.json"), layers).unwrap();
        let mut args = vec!["image", "--graph", ga.to_str().unwrap(), "--store-layers", t.join("bad.json").to_str().unwrap().to_string().leak(), "--store-root", root.to_str().unwrap(), "--out"];
        args.push(format!("oci:{}/{out}", t.display()).leak());
        args.extend_from_slice(extra);
        let o = hints(&args, &[]);
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let libc = format!("/nix/store/{LIBC}");
    let app = format!("/nix/store/{APP_A}");
    for (layers, expected) in [
        (json!([[libc]]).to_string(), "but in no layer"),
        (json!([[libc], [libc, app]]).to_string(), "in an earlier layer too"),
        (json!([[libc], [app, "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"]]).to_string(), "is not in the closure"),
        (json!([[libc], [], [app]]).to_string(), "layer 2 is empty"),
        ("{".to_string(), "expected a JSON list of lists"),
    ] {
        let (code, err) = run(&layers, &[], "oci");
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("bad.json") && err.contains(expected), "{err}");
    }
    let good = std::fs::read_to_string(&la).unwrap();
    let (code, err) = run(&good, &["--env", "NOEQUALS"], "oci");
    assert_eq!(code, Some(2));
    assert!(err.contains("--env NOEQUALS: expected KEY=VALUE"), "{err}");
    let (code, err) = run(&good, &["--arch", "pdp11"], "oci");
    assert_eq!(code, Some(2));
    assert!(err.contains("pdp11"), "{err}");
    let o = hints(&["image", "--graph", ga.to_str().unwrap(), "--out", "dir:/tmp/x"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected oci:DIR"));
    assert!(!t.join("oci/blobs").exists(), "nothing is written before the input is known to be good");
    // A FIFO cannot be in a layer (a fresh directory: its cache has not seen these paths).
    let fifo = root.join("nix/store").join(APP_A).join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (code, err) = run(&good, &[], "fresh");
    assert_eq!(code, Some(2));
    assert!(err.contains("pipe") && err.contains("FIFO"), "{err}");
}

#[test]
fn a_description_copies_to_the_image_written_directly_and_a_changed_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    let root = t.join("root");
    std::fs::create_dir_all(t.join("top/etc")).unwrap();
    std::fs::write(t.join("top/etc/motd"), "hi\n").unwrap();
    let top = t.join("top");
    for compression in ["none", "gzip", "zstd"] {
        let extra = ["--compression", compression, "--cmd", "/bin/app", "--top-layer", top.to_str().unwrap()];
        let direct = write(t, &ga, &la, &format!("oci:{}/direct-{compression}", t.display()), &extra, &[]);
        let desc = t.join(format!("desc-{compression}.json"));
        let mut args = vec!["image", "--graph", ga.to_str().unwrap(), "--store-layers", la.to_str().unwrap(), "--store-root", root.to_str().unwrap(), "--describe", desc.to_str().unwrap()];
        args.extend_from_slice(&extra);
        ok(hints(&args, &[]));
        let copy = |out: &str| -> Value { serde_json::from_str(&ok(hints(&["image", "copy", desc.to_str().unwrap(), "--store-root", root.to_str().unwrap(), "--out", out, "--json"], &[]))).unwrap() };
        let copied = copy(&format!("oci:{}/copied-{compression}", t.display()));
        assert_eq!(copied["manifest_digest"], direct["manifest_digest"], "{compression}: the description materialises to the same image");
        let again = copy(&format!("oci:{}/copied-{compression}", t.display()));
        assert!(again["layers"].as_array().unwrap().iter().all(|l| l["reused"] == true), "a second copy writes no layer");
    }
    // The store changed under the description: the copy stops, naming the layer.
    let desc = t.join("desc-gzip.json");
    std::fs::write(root.join("nix/store").join(APP_A).join("bin/app"), "changed").unwrap();
    let o = hints(&["image", "copy", desc.to_str().unwrap(), "--store-root", root.to_str().unwrap(), "--out", &format!("oci:{}/changed", t.display())], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("layer 2 of") && err.contains("the store paths changed"), "{err}");
    assert!(!t.join("changed/index.json").exists(), "no manifest for a mismatched layer");
    // A description naming something other than a store path is refused before reading it.
    let text = std::fs::read_to_string(&desc).unwrap().replace(&format!("/nix/store/{APP_A}"), "/etc/passwd");
    std::fs::write(&desc, text).unwrap();
    let o = hints(&["image", "copy", desc.to_str().unwrap(), "--out", &format!("oci:{}/evil", t.display())], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`/etc/passwd` is not a store path"));
}

#[test]
fn a_docker_archive_holds_the_oci_image_and_dockers_manifest_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut s = two_images(t);
    let (ga, la) = image_graph(t, &mut s, APP_A, "a");
    let first = write(t, &ga, &la, &format!("docker-archive:{}/a.tar:app:1.0", t.display()), &[], &[]);
    let bytes = std::fs::read(t.join("a.tar")).unwrap();
    std::fs::remove_dir_all(t.join("a.tar.oci")).unwrap();
    let again = write(t, &ga, &la, &format!("docker-archive:{}/a.tar:app:1.0", t.display()), &[], &[]);
    assert_eq!(first["manifest_digest"], again["manifest_digest"]);
    assert_eq!(std::fs::read(t.join("a.tar")).unwrap(), bytes, "the same archive, byte for byte");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut content = vec![];
        e.read_to_end(&mut content).unwrap();
        entries.insert(name, content);
    }
    let docker: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"], json!(["app:1.0"]));
    let layers = docker[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for path in layers.iter().chain([&docker[0]["Config"]]) {
        assert!(entries.contains_key(path.as_str().unwrap()), "{path} is in the archive");
    }
    assert!(entries.contains_key("oci-layout") && entries.contains_key("index.json"));
}
