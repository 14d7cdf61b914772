//! Recovering closures from built images, exactly as real Nix records them: a closure built
//! with `nix` that holds the store shapes naive code gets wrong (a store path that is a single
//! file, one that is a symlink, executables, an empty directory, a non-ASCII name, a reference
//! only as a hash inside binary data, one only as a symlink target), written as an image by
//! `hints image` and by GNU tar (plain layers in directory order with the store's owners and
//! times, wrapped by hand in an OCI layout; no embedded graph), and recovered from the layers:
//! every path's `narSize`, `narHash` and `references` equal `nix path-info --json
//! --recursive`. Never skipped under CI.

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
    let b = t.join("b");
    let layers: Vec<(String, u64, String)> = nix
        .keys()
        .map(|path| {
            let tar = t.join("layer.tar");
            ok(Command::new("tar").args(["--format=gnu", "-cf"]).arg(&tar).args(["-C", "/", &path[1..]]));
            let bytes = std::fs::read(&tar).unwrap();
            let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
            write_blob(&b, &bytes);
            (digest, bytes.len() as u64, "application/vnd.oci.image.layer.v1.tar".to_string())
        })
        .collect();
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.0).collect::<Vec<_>>()}});
    let config = write_blob(&b, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, n, m)| json!({"mediaType": m, "digest": d, "size": n})).collect::<Vec<_>>(),
    });
    let manifest = write_blob(&b, manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.0, "size": manifest.1,
        "annotations": {"org.opencontainers.image.ref.name": "shapes"}}]});
    std::fs::write(b.join("index.json"), index.to_string()).unwrap();
    std::fs::write(b.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let recovered = ok(hints().args(["image", "closure", &format!("oci:{}:shapes", b.display())]));
    assert_same(&recovered, &nix, "GNU tar");
}

/// Writes a blob into the OCI layout `dir`; returns its digest and size.
fn write_blob(dir: &std::path::Path, bytes: &[u8]) -> (String, u64) {
    let hex = format!("{:x}", Sha256::digest(bytes));
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}
