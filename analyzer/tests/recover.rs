//! `hints image closure` and `hints scan --oci` on images `hints image` wrote from a store in a
//! temporary directory, and on damaged or foreign images. The exactness against real Nix (every
//! field of `nix path-info`) is in `recover_e2e.rs`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn hints(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).args(args).current_dir(cwd).output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

const LIBC: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-libc-2.39";
const APP: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-app-1.0";

/// A two-path store (the app references libc in a script and, by hash only, in binary data)
/// and its image `oci` (tag `t`), one layer per path, `compression` as given.
fn image(t: &Path, compression: &str) {
    let root = t.join("root");
    std::fs::create_dir_all(root.join(&LIBC[1..]).join("lib")).unwrap();
    std::fs::write(root.join(&LIBC[1..]).join("lib/libc.so"), "libc").unwrap();
    std::fs::create_dir_all(root.join(&APP[1..]).join("bin")).unwrap();
    std::fs::write(root.join(&APP[1..]).join("bin/app"), format!("#!{LIBC}/lib/ld.so\n")).unwrap();
    std::fs::write(root.join(&APP[1..]).join("data.bin"), [&[0u8, 1, 2][..], b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &[3]].concat()).unwrap();
    std::fs::write(t.join("g.json"), json!([{"path": LIBC, "narSize": 1, "references": []}, {"path": APP, "narSize": 1, "references": [LIBC]}]).to_string()).unwrap();
    std::fs::write(t.join("l.json"), json!([[LIBC], [APP]]).to_string()).unwrap();
    ok(hints(&["image", "--graph", "g.json", "--store-layers", "l.json", "--store-root", "root", "--compression", compression, "--out", "oci:oci:t"], t));
}

fn closure(t: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["image", "closure", "oci:oci:t"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(hints(&args, t))).unwrap()
}

#[test]
fn the_layers_give_back_paths_sizes_hashes_and_references() {
    for compression in ["gzip", "zstd", "none"] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        image(t, compression);
        let recovered = closure(t, &["--from-layers"]);
        assert_eq!(recovered.len(), 2, "{compression}");
        assert_eq!((recovered[0]["path"].as_str(), recovered[1]["path"].as_str()), (Some(LIBC), Some(APP)));
        assert_eq!(recovered[1]["references"], json!([LIBC]), "{compression}: found by hash inside binary data too");
        assert!(recovered[0]["narHash"].as_str().unwrap().starts_with("sha256-"));
        // The embedded graph holds the sizes the input gave (1 here): --verify says they differ.
        let o = hints(&["image", "closure", "oci:oci:t", "--verify"], t);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("narSize 1 embedded"), "{}", String::from_utf8_lossy(&o.stderr));
        // Scanning from the layers stores the recovered closure.
        ok(hints(&["scan", "--db", "h.db", "--oci", "oci:oci:t", "--image", "app", "--from-layers"], t));
        let ls: Value = serde_json::from_str(&ok(hints(&["ls", "--db", "h.db", "--json"], t))).unwrap();
        assert_eq!(ls["snapshots"][0]["paths"], 2);
        assert_eq!(ls["revisions"][0]["label"], "t", "the tag names the revision");
        // Exported back, the stored snapshot is the recovered closure (less the hashes, which
        // the database does not keep), in both of Nix's shapes; scanning the export changes
        // nothing.
        let exported: Vec<Value> = serde_json::from_str(&ok(hints(&["export", "--db", "h.db", "--image", "app", "--rev", "t", "--format", "path-info-array"], t))).unwrap();
        let without_hash: Vec<Value> = recovered.iter().map(|r| json!({"path": r["path"], "narSize": r["narSize"], "references": r["references"]})).collect();
        assert_eq!(exported, without_hash);
        let object: Value = serde_json::from_str(&ok(hints(&["export", "--db", "h.db", "--image", "app", "--rev", "t"], t))).unwrap();
        assert_eq!(object[APP]["references"], json!([LIBC]));
        std::fs::write(t.join("export.json"), object.to_string()).unwrap();
        let again = ok(hints(&["scan", "--db", "h.db", "--image", "app", "--rev", "t", "--time", "1970-01-01T00:00:01Z", "export.json"], t));
        assert!(again.contains("unchanged"), "{again}");
    }
}

/// Rewrites the image's manifest with `edit`, and the index to point at it.
fn edit_manifest(t: &Path, edit: impl FnOnce(&mut Value)) {
    let oci = t.join("oci");
    let mut index: Value = serde_json::from_str(&std::fs::read_to_string(oci.join("index.json")).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(old)).unwrap()).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let hex = format!("{:x}", Sha256::digest(&bytes));
    std::fs::write(oci.join("blobs/sha256").join(&hex), &bytes).unwrap();
    index["manifests"][0]["digest"] = json!(format!("sha256:{hex}"));
    index["manifests"][0]["size"] = json!(bytes.len());
    std::fs::write(oci.join("index.json"), index.to_string()).unwrap();
}

fn refused(t: &Path, says: &str) {
    let o = hints(&["image", "closure", "oci:oci:t", "--from-layers"], t);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(says), "expected `{says}` in: {err}");
    let o = hints(&["scan", "--db", "h.db", "--oci", "oci:oci:t", "--image", "app", "--from-layers"], t);
    assert_eq!(o.status.code(), Some(2));
    assert!(!t.join("h.db").exists() || ok(hints(&["ls", "--db", "h.db"], t)).starts_with("0 images"), "nothing stored");
}

fn layer_blob(t: &Path, k: usize) -> std::path::PathBuf {
    let index: Value = serde_json::from_str(&std::fs::read_to_string(t.join("oci/index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: Value = serde_json::from_slice(&std::fs::read(t.join("oci/blobs/sha256").join(m)).unwrap()).unwrap();
    t.join("oci/blobs/sha256").join(manifest["layers"][k]["digest"].as_str().unwrap().trim_start_matches("sha256:"))
}

#[test]
fn damaged_and_foreign_images_are_refused_with_the_blob_and_the_entry() {
    // A blob whose bytes changed.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    image(t, "none");
    let blob = layer_blob(t, 1);
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.windows(5).position(|w| w == b"ld.so").unwrap();
    bytes[at] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    refused(t, "the blob is damaged or not the one the manifest names");

    // A truncated compressed blob.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    image(t, "gzip");
    let blob = layer_blob(t, 1);
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    refused(t, "blob sha256:");

    // A store path written by two layers.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    image(t, "gzip");
    edit_manifest(t, |m| {
        let first = m["layers"][0].clone();
        m["layers"].as_array_mut().unwrap().push(first);
    });
    refused(t, "also written by layer");

    // An image with no store paths.
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    image(t, "gzip");
    std::fs::create_dir_all(t.join("top/etc")).unwrap();
    std::fs::write(t.join("top/etc/motd"), "hi").unwrap();
    ok(hints(&["image", "--graph", "g.json", "--store-layers", "l.json", "--store-root", "root", "--top-layer", "top", "--out", "oci:oci:t"], t));
    edit_manifest(t, |m| {
        let top = m["layers"][2].clone();
        m["layers"] = json!([top]);
    });
    refused(t, "no /nix/store paths in any layer");
}
