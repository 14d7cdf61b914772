//! Recovering closures from built images, exactly as real Nix records them: a closure built
//! with `nix` that holds the store shapes naive code gets wrong (a store path that is a single
//! file, one that is a symlink, executables, an empty directory, a non-ASCII name, a reference
//! only as a hash inside binary data, one only as a symlink target), written as an image by
//! `hints image` and by GNU tar (plain layers in directory order with the store's owners and
//! times, wrapped by hand in an OCI layout; no embedded graph), and recovered from the layers:
//! every path's `narSize`, `narHash` and `references` equal `nix path-info --json
//! --recursive`. The GNU tar image is also written as dockerTools writes one, with `store
//! paths:` history comments and a Nix database registered by real Nix: both agree, and a wrong
//! comment or a wrong database row is refused. Never skipped under CI.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{ok, Toy};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SHAPES: &str = r#"{ busybox }:
let
  bb = builtins.path { path = busybox; name = "busybox-static"; };
  mk = name: script: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${bb}/bin/sh";
    PATH = "${bb}/bin";
    args = [ "-c" script ];
  };
  single = builtins.toFile "single-file" "just one file\n";
  target = mk "link-target-1.0" "mkdir -p $out/share; echo target > $out/share/t";
  aSymlink = mk "a-symlink-1.0" "ln -s ${target}/share/t $out";
  hidden = mk "hidden-dep-1.0" "mkdir -p $out; echo hidden > $out/h";
  viaLink = mk "via-link-1.0" "mkdir -p $out; echo data > $out/d";
in mk "shapes-1.0" ''
  mkdir -p $out/bin $out/empty $out/share
  printf '#!/bin/sh\necho hi\n' > $out/bin/run
  chmod +x $out/bin/run
  echo unicode > "$out/share/ünïcode-näme"
  h=$(basename ${hidden})
  printf '\000\001\002%s\003\004' "''${h%%-*}" > $out/share/blob.bin
  ln -s ${viaLink}/d $out/share/link
  echo ${single} > $out/share/single-ref
  echo ${aSymlink} > $out/share/symlink-ref
''
"#;

/// `nix path-info --json` records by path, in either of its shapes.
fn by_path(json: &str) -> BTreeMap<String, Value> {
    match serde_json::from_str::<Value>(json).unwrap() {
        Value::Array(a) => a.into_iter().map(|r| (r["path"].as_str().unwrap().to_string(), r)).collect(),
        Value::Object(m) => m
            .into_iter()
            .map(|(p, mut r)| {
                r["path"] = Value::String(p.clone());
                (p, r)
            })
            .collect(),
        other => panic!("unexpected path-info JSON: {other}"),
    }
}

fn assert_same(recovered: &str, nix: &BTreeMap<String, Value>, writer: &str) {
    let recovered = by_path(recovered);
    assert_eq!(recovered.keys().collect::<Vec<_>>(), nix.keys().collect::<Vec<_>>(), "{writer}: the same paths");
    for (path, want) in nix {
        let got = &recovered[path];
        for field in ["narSize", "narHash", "references"] {
            assert_eq!(got[field], want[field], "{writer}: {path}: {field}");
        }
    }
}

#[test]
fn closures_recovered_from_layers_equal_nix_path_info() {
    if !common::have_tools(&["nix-build"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let toy = Toy::new(t);
    std::fs::write(t.join("shapes.nix"), SHAPES).unwrap();
    let out = ok(Command::new("nix-build").arg(t.join("shapes.nix")).args(["--arg", "busybox"]).arg(toy.busybox()).arg("--no-out-link")).trim().to_string();
    let graph = ok(Command::new("nix").args(["path-info", "--json", "--recursive", &out]));
    std::fs::write(t.join("g.json"), &graph).unwrap();
    let nix = by_path(&graph);
    assert_eq!(nix.len(), 6, "shapes, the single file, the symlink, its target, the hidden and the linked dependency");
    assert!(nix.values().any(|r| r["references"].as_array().unwrap().iter().any(|x| x.as_str().unwrap().contains("hidden-dep"))), "Nix found the hash in binary data");

    // Written by hints image (graph embedded, removed from consideration with --from-layers).
    let hints = || Command::new(env!("CARGO_BIN_EXE_hints"));
    ok(hints().args(["image", "--graph"]).arg(t.join("g.json")).args(["--out", &format!("oci:{}:shapes", t.join("a").display())]));
    let recovered = ok(hints().args(["image", "closure", &format!("oci:{}:shapes", t.join("a").display()), "--from-layers"]));
    assert_same(&recovered, &nix, "hints image");

    // Written by GNU tar: one plain layer per store path, in directory order.
    let tar_of = |root: &str, entry: &str| {
        let tar = t.join("layer.tar");
        ok(Command::new("tar").args(["--format=gnu", "-cf"]).arg(&tar).args(["-C", root, entry]));
        std::fs::read(&tar).unwrap()
    };
    let mut layers: Vec<Vec<u8>> = nix.keys().map(|path| tar_of("/", &path[1..])).collect();
    let b = write_oci(&t.join("b"), &layers, &[]);
    let recovered = ok(hints().args(["image", "closure", &b]));
    assert_same(&recovered, &nix, "GNU tar");

    // As dockerTools writes it: a `store paths:` history comment per layer, and a last layer
    // (the customisation layer, which lists its own output) holding the Nix database of the
    // closure, registered by real Nix.
    let mut comments: Vec<String> = nix.keys().map(|p| format!("store paths: ['{p}']")).collect();
    comments.push("store paths: ['/nix/store/0000000000000000000000000000000c-customisation-layer']".into());
    let root = t.join("root");
    let dump = ok(Command::new("nix-store").arg("--dump-db").args(nix.keys()));
    let store = format!("local?root={}", root.display());
    let mut load = Command::new("nix-store").args(["--store", &store, "--load-db"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(load.stdin.as_mut().unwrap(), dump.as_bytes()).unwrap();
    assert!(load.wait().unwrap().success(), "nix-store --load-db");
    layers.push(tar_of(root.to_str().unwrap(), "nix/var/nix/db/db.sqlite"));
    let c = write_oci(&t.join("c"), &layers, &comments);
    let out = Command::new(env!("CARGO_BIN_EXE_hints")).args(["image", "closure", &c]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same(&String::from_utf8(out.stdout).unwrap(), &nix, "dockerTools' records");
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(said.contains("comments of 6 layers agree") && said.contains("database's 6 registered paths agree"), "{said}");

    // A comment that lists another layer's path, and a database with a wrong narSize, are
    // refused, naming the record and the path.
    let paths: Vec<&String> = nix.keys().collect();
    let mut wrong = comments.clone();
    wrong[0] = format!("store paths: ['{}', '{}']", paths[0], paths[1]);
    let refused = |dir: String, wants: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hints")).args(["image", "closure", &dir]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(wants.iter().all(|w| err.contains(w)), "{err}");
    };
    refused(write_oci(&t.join("d"), &layers, &wrong), &["history comment of layer sha256:", &format!("lists {}, which the layer does not hold", paths[1])]);
    let db = root.join("nix/var/nix/db/db.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE ValidPaths SET narSize = narSize + 1 WHERE path = ?1", [paths[2]]).unwrap();
    drop(conn);
    *layers.last_mut().unwrap() = tar_of(root.to_str().unwrap(), "nix/var/nix/db/db.sqlite");
    refused(write_oci(&t.join("e"), &layers, &comments), &["the Nix database (nix/var/nix/db/db.sqlite) in layer sha256:", &format!("{}: narSize", paths[2])]);
}

/// Writes an OCI layout of plain-tar `layers` tagged `shapes`, with one history entry per
/// comment; returns it as `oci:DIR:shapes`.
fn write_oci(dir: &std::path::Path, layers: &[Vec<u8>], comments: &[String]) -> String {
    let layers: Vec<(String, u64)> = layers.iter().map(|bytes| write_blob(dir, bytes)).collect();
    let history: Vec<Value> = comments.iter().map(|c| json!({"created": "1970-01-01T00:00:01Z", "comment": c})).collect();
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.0).collect::<Vec<_>>()}, "history": history});
    let config = write_blob(dir, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, n)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})).collect::<Vec<_>>(),
    });
    let manifest = write_blob(dir, manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.0, "size": manifest.1,
        "annotations": {"org.opencontainers.image.ref.name": "shapes"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:shapes", dir.display())
}

/// Writes a blob into the OCI layout `dir`; returns its digest and size.
fn write_blob(dir: &std::path::Path, bytes: &[u8]) -> (String, u64) {
    let hex = format!("{:x}", Sha256::digest(bytes));
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}
