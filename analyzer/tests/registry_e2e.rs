//! Real images on a real registry: the toy world (nix/tests/toy.nix) built with real `nix`,
//! three images × four revisions written by `hints image` with hints layers and with size-first
//! layers, pushed with `skopeo` to Debian's `docker-registry` on 127.0.0.1, and pulled back
//! revision by revision into client directories that hold the previous revision. The layer
//! blobs the registry serves, counted from its own access log, must be exactly what `hints eval`
//! predicts: the same number of layers, and bytes within the tar overhead, which is printed.
//! Layers are gzip blobs (skopeo compresses plain tar layers when it pushes, which would change
//! their digests), so the served blobs are decompressed to compare tar bytes with eval's NAR
//! bytes; the compressed bytes served are printed beside them.
//! Also: reproducible digests, one digest for a layer two images share, `umoci unpack` holding
//! exactly the closure, a binary from it running in a chroot, and `imageFromHints`
//! (nix/lib.nix) building a description inside Nix (`nix-build --check` included) that
//! `hints image copy` materialises into the image `hints image` writes directly. Never skipped
//! under CI.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::{ok, repo, Toy};
use serde_json::Value;

fn hints() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hints"));
    c.arg("--quiet");
    c
}

/// A `docker-registry` on a free loopback port, logging to a file; stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("registry.yml");
        let storage = dir.join("registry-data");
        std::fs::write(&config, format!("version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", storage.display()))
            .unwrap();
        let log = dir.join("registry.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry").arg("serve").arg(&config).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
        let r = Registry { child, port, log };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {port}: {}", std::fs::read_to_string(&r.log).unwrap_or_default());
    }

    /// Layer blobs (digest → bytes written) the registry served with 200, from the log's JSON
    /// lines, skipping the first `skip` lines.
    fn served(&self, skip: usize) -> (Vec<(String, u64)>, usize) {
        let lines: Vec<String> = BufReader::new(std::fs::File::open(&self.log).unwrap()).lines().map(Result::unwrap).collect();
        let mut served = vec![];
        for l in &lines[skip.min(lines.len())..] {
            let Ok(v) = serde_json::from_str::<Value>(l) else { continue };
            let uri = v["http.request.uri"].as_str().unwrap_or("");
            if v["http.request.method"] == "GET" && v["http.response.status"] == 200 && uri.contains("/blobs/sha256:") {
                let digest = uri.rsplit('/').next().unwrap().to_string();
                served.push((digest, v["http.response.written"].as_u64().unwrap()));
            }
        }
        (served, lines.len())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifest(oci: &Path, tag: &str) -> Value {
    let index: Value = serde_json::from_str(&std::fs::read_to_string(oci.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap();
    let digest = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(digest)).unwrap()).unwrap()
}

fn layer_digests(m: &Value) -> Vec<String> {
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_registry_serves_exactly_the_layers_eval_predicts() {
    if !common::have_tools(&["nix-build", "skopeo", "umoci", "docker-registry"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let toy = Toy::new(t);
    let bb_store = ok(Command::new("nix-store").arg("--add").arg(toy.busybox())).trim().to_string();

    // Four revisions of three images; each graph also holds busybox, so the image can run it.
    let db = t.join("h.db");
    let images = [("py", "py-app"), ("node", "node-app"), ("tools", "toolbox")];
    let mut graphs = BTreeMap::new();
    for r in 1..=4 {
        for (image, attr) in images {
            let out = toy.build(r, attr);
            let graph = t.join(format!("{image}-r{r}.json"));
            std::fs::write(&graph, ok(Command::new("nix").args(["path-info", "--json", "--recursive", &out, &bb_store]))).unwrap();
            ok(hints().args(["scan", "--db"]).arg(&db).args(["--rev", &format!("r{r}"), "--time", &format!("2025-03-0{r}T00:00:00Z"), "--image", image]).arg(&graph));
            graphs.insert((image, r), graph);
        }
    }
    let hint_file = t.join("layer-hints.yaml");
    ok(hints().args(["emit", "--db"]).arg(&db).args(["--range", "r1..r4", "--max-layers", "20", "--out"]).arg(&hint_file));
    let predicted: Value =
        serde_json::from_str(&ok(hints().args(["eval", "--json", "--db"]).arg(&db).arg("--hints").arg(&hint_file).args(["--range", "r1..r4", "--max-layers", "20", "--allow-overlap"]))).unwrap();

    let registry = Registry::start(t);
    let reg = format!("127.0.0.1:{}", registry.port);
    println!("strategy     layers pulled     update bytes: eval (NAR) / served (tar)   tar overhead   served (gzip)");
    for strategy in ["hints", "size-first"] {
        let oci = t.join(format!("oci-{strategy}"));
        let mut layers_of_images = BTreeSet::new();
        for ((image, r), graph) in &graphs {
            let tag = format!("{image}-r{r}");
            let mut cmd = hints();
            // Named, as `nix/lib.nix` names it: an image the file lays out as size-first gets those layers.
            cmd.args(["image", "--graph"]).arg(graph).args(["--image", image, "--strategy", strategy, "--hints"]).arg(&hint_file);
            cmd.args(["--max-layers", "20", "--out", &format!("oci:{}:{tag}", oci.display())]);
            ok(&mut cmd);
            layers_of_images.extend(layer_digests(&manifest(&oci, &tag)));
            ok(Command::new("skopeo").args(["copy", "--quiet", "--dest-tls-verify=false", &format!("oci:{}:{tag}", oci.display()), &format!("docker://{reg}/{strategy}-{image}:r{r}")]));
        }
        // Each client holds revision r-1 when it pulls r; only the updates are counted.
        let (mut layers, mut bytes, mut tar_bytes) = (0u64, 0u64, 0u64);
        for (image, _) in images {
            let client = t.join(format!("client-{strategy}-{image}"));
            let pull = |r: usize| {
                ok(Command::new("skopeo").args(["copy", "--quiet", "--src-tls-verify=false", &format!("docker://{reg}/{strategy}-{image}:r{r}"), &format!("oci:{}:{image}", client.display())]))
            };
            pull(1);
            for r in 2..=4 {
                let (_, mark) = registry.served(0);
                pull(r);
                let (served, _) = registry.served(mark);
                for (digest, written) in served.into_iter().filter(|(d, _)| layers_of_images.contains(d)) {
                    let blob = oci.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
                    assert_eq!(written, std::fs::metadata(&blob).unwrap().len(), "the registry serves the blob as written");
                    layers += 1;
                    bytes += written;
                    tar_bytes += Command::new("gzip").arg("-dc").arg(&blob).output().unwrap().stdout.len() as u64;
                }
            }
        }
        let row = predicted["results"].as_array().unwrap().iter().find(|m| m["strategy"] == strategy).unwrap();
        let (p_layers, p_bytes) = (row["layers_pulled"].as_u64().unwrap(), row["update_bytes"].as_u64().unwrap());
        let overhead = tar_bytes as f64 / p_bytes as f64 - 1.0;
        println!("{strategy:<12} {p_layers:>8} / {layers:<8} {p_bytes:>11} / {tar_bytes:<11} {:>+8.2}% {bytes:>12}", overhead * 100.0);
        assert_eq!(layers, p_layers, "{strategy}: the registry served the layers eval predicts");
        assert!((-0.05..0.10).contains(&overhead), "{strategy}: {tar_bytes} tar bytes served, {p_bytes} predicted");
    }

    // Learning from the registry: every tag of each size-first repository, closures recovered
    // from the layers, gives the same snapshots and the same hint file as `nix path-info` did.
    let reg_db = t.join("registry").join("h.db");
    for (image, _) in images {
        let mut scan = hints();
        scan.args(["scan", "--db"]).arg(&reg_db).args(["--registry", &format!("docker://{reg}/size-first-{image}"), "--tags", "r*", "--tls-verify=false", "--from-layers", "--image", image]);
        ok(&mut scan);
    }
    let snapshots = |db: &Path| -> BTreeSet<String> {
        let v: Value = serde_json::from_str(&ok(hints().args(["ls", "--json", "--db"]).arg(db))).unwrap();
        v["snapshots"].as_array().unwrap().iter().map(|s| format!("{} {} {} {}", s["image"], s["revision"], s["paths"], s["bytes"])).collect()
    };
    assert_eq!(snapshots(&reg_db), snapshots(&db), "the registry's closures are nix path-info's");
    let groups = |db: &Path, out: &Path| -> String {
        ok(hints().args(["emit", "--db"]).arg(db).args(["--range", "r1..r4", "--max-layers", "20", "--out"]).arg(out));
        let text = std::fs::read_to_string(out).unwrap();
        text[text.find("groups:").unwrap()..].to_string()
    };
    assert_eq!(groups(&reg_db, &t.join("from-registry.yaml")), groups(&db, &t.join("from-nix.yaml")), "the same hint file");
    let refused = |args: &[&str], says: &str| {
        let o = hints().args(["scan", "--db"]).arg(t.join("refused.db")).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{}", String::from_utf8_lossy(&o.stderr));
    };
    refused(&["--registry", "docker://127.0.0.1:1/nothing", "--tls-verify=false", "--image", "x"], "docker://127.0.0.1:1/nothing");
    refused(&["--registry", "docker://registry.example/x", "--tls-verify=false", "--image", "x"], "allowed only for a registry on this machine");
    refused(&["--registry", &format!("docker://{reg}/size-first-py"), "--tags", "v*", "--tls-verify=false", "--image", "x"], "no tag matches `v*`");

    // Reproducible: a second directory gives the same manifest; a layer two images share has
    // one digest in both.
    let again = t.join("oci-again");
    let graph = &graphs[&("py", 4)];
    ok(hints().args(["image", "--graph"]).arg(graph).args(["--max-layers", "20", "--out", &format!("oci:{}:py-r4", again.display())]));
    let (first, second) = (manifest(&t.join("oci-size-first"), "py-r4"), manifest(&again, "py-r4"));
    assert_eq!(layer_digests(&first), layer_digests(&second));
    let node: BTreeSet<String> = layer_digests(&manifest(&t.join("oci-size-first"), "node-r4")).into_iter().collect();
    assert!(layer_digests(&first).iter().any(|d| node.contains(d)), "py and node share a layer digest");

    // skopeo and umoci accept the image; the rootfs is exactly the closure, and busybox runs.
    ok(Command::new("skopeo").args(["inspect", &format!("oci:{}:py-r4", again.display())]));
    // A docker archive of it, scanned from its layers, is revision 4 of py as Nix recorded it.
    let archive = t.join("py.tar");
    ok(Command::new("skopeo").args(["copy", "--quiet", &format!("oci:{}:py-r4", again.display()), &format!("docker-archive:{}:py:r4", archive.display())]));
    let arch_db = t.join("archive").join("h.db");
    ok(hints().args(["scan", "--db"]).arg(&arch_db).arg("--docker-archive").arg(&archive).args(["--image", "py", "--rev", "r4", "--from-layers"]));
    let export = |db: &Path| ok(hints().args(["export", "--db"]).arg(db).args(["--image", "py", "--rev", "r4"]));
    assert_eq!(export(&arch_db), export(&db));
    // hints image writes docker archives too: skopeo reads one back to the same image.
    let direct = t.join("direct.tar");
    ok(hints().args(["image", "--graph"]).arg(graph).args(["--max-layers", "20", "--out", &format!("docker-archive:{}:py:r4", direct.display())]));
    ok(Command::new("skopeo").args(["copy", "--quiet", &format!("docker-archive:{}", direct.display()), &format!("oci:{}:back", t.join("back").display())]));
    let closure_of = |image: String| ok(hints().args(["image", "closure", &image]));
    assert_eq!(closure_of(format!("oci:{}:back", t.join("back").display())), closure_of(format!("oci:{}:py-r4", again.display())));
    // skopeo recompresses what it copies out of an archive, so the blobs differ; the layers'
    // contents (diff_ids) do not.
    let diff_ids = |dir: &Path, tag: &str| -> Value {
        let m = manifest(dir, tag);
        let digest = m["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        serde_json::from_slice::<Value>(&std::fs::read(dir.join("blobs/sha256").join(digest)).unwrap()).unwrap()["rootfs"]["diff_ids"].clone()
    };
    assert_eq!(diff_ids(&t.join("back"), "back"), diff_ids(&again, "py-r4"), "the same layers");
    let bundle = t.join("bundle");
    ok(Command::new("umoci").args(["unpack", "--image", &format!("{}:py-r4", again.display())]).arg(&bundle));
    let store: BTreeSet<String> = std::fs::read_dir(bundle.join("rootfs/nix/store")).unwrap().map(|e| format!("/nix/store/{}", e.unwrap().file_name().to_string_lossy())).collect();
    // `nix path-info --json`: an array of records (Nix 2.8), or an object keyed by path (2.19+).
    let closure: BTreeSet<String> = match serde_json::from_str::<Value>(&std::fs::read_to_string(graph).unwrap()).unwrap() {
        Value::Array(a) => a.iter().map(|p| p["path"].as_str().unwrap().to_string()).collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("unexpected path-info JSON: {other}"),
    };
    assert_eq!(store, closure);
    let said = ok(Command::new("chroot").arg(bundle.join("rootfs")).arg(format!("{bb_store}/bin/busybox")).args(["echo", "hello from the image"]));
    assert_eq!(said.trim(), "hello from the image");

    // Inside Nix: the description, rebuilt identically, then copied out of the store.
    let expr = format!(
        r#"let
          lib = import {lib};
          toy = import {toy} {{ busybox = {bb}; revision = 4; }};
        in lib.imageFromHints {{
          name = "py-app-image";
          roots = [ toy.py-app (builtins.storePath "{bb_store}") ];
          hints = builtins.path {{ path = {hints}; name = "layer-hints.yaml"; }};
          config = {{ Cmd = [ "{bb_store}/bin/busybox" "echo" "hi" ]; Env = [ "LANG=C.UTF-8" ]; }};
          maxLayers = 20;
          hintsTool = builtins.path {{ path = {tool}; name = "hints-tool"; }};
        }}"#,
        lib = repo().join("nix/lib.nix").display(),
        toy = Toy::expr().display(),
        bb = toy.busybox().display(),
        hints = hint_file.display(),
        tool = toy.tool().display(),
    );
    std::fs::write(t.join("image.nix"), expr).unwrap();
    let description = ok(Command::new("nix-build").arg(t.join("image.nix")).arg("--no-out-link")).trim().to_string();
    ok(Command::new("nix-build").arg(t.join("image.nix")).args(["--no-out-link", "--check"]));
    let from_nix = t.join("oci-from-nix");
    ok(hints().args(["image", "copy", &description, "--out", &format!("oci:{}:py-r4", from_nix.display())]));
    let direct = t.join("oci-direct");
    let mut cmd = hints();
    cmd.args(["image", "--graph"]).arg(graph).arg("--hints").arg(&hint_file);
    cmd.args(["--max-layers", "20", "--cmd", &format!("{bb_store}/bin/busybox"), "--cmd", "echo", "--cmd", "hi", "--env", "LANG=C.UTF-8"]);
    ok(cmd.args(["--out", &format!("oci:{}:py-r4", direct.display())]));
    let index_digest = |d: &Path| -> Value { serde_json::from_str::<Value>(&std::fs::read_to_string(d.join("index.json")).unwrap()).unwrap()["manifests"][0]["digest"].clone() };
    let config = |d: &Path| -> Value {
        let m = manifest(d, "py-r4");
        let digest = m["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        serde_json::from_slice(&std::fs::read(d.join("blobs/sha256").join(digest)).unwrap()).unwrap()
    };
    assert_eq!(config(&from_nix), config(&direct), "the same config");
    assert_eq!(layer_digests(&manifest(&from_nix, "py-r4")), layer_digests(&manifest(&direct, "py-r4")), "the same layers");
    assert_eq!(index_digest(&from_nix), index_digest(&direct), "the image from Nix's description is the image hints writes directly");
}
