//! Test helpers: reading exportReferencesGraph JSON and locating fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

use hints_format::StorePath;
use layering_core::{Closure, PathInfo, PathRecord};
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `../shared` beside the repository, when present. Under CI it must be there.
pub fn shared_dir() -> Option<PathBuf> {
    let d = repo_root().join("../shared");
    if d.join("anchors/cases.json").exists() {
        Some(d)
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI must have ../shared beside the repository");
        eprintln!("../shared not found; skipping (allowed outside CI only)");
        None
    }
}

pub fn infos_from_json(v: &Value) -> Vec<PathInfo> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|n| PathInfo {
            record: PathRecord {
                path: StorePath::parse(n["path"].as_str().unwrap()).unwrap(),
                nar_size: n["narSize"].as_u64().unwrap(),
                nar_hash: n["narHash"].as_str().map(str::to_string),
                closure_size: n["closureSize"].as_u64(),
            },
            references: n["references"].as_array().unwrap().iter().map(|r| StorePath::parse(r.as_str().unwrap()).unwrap()).collect(),
        })
        .collect()
}

pub fn load_closure(path: &std::path::Path) -> Closure {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    Closure::new(infos_from_json(&v)).unwrap()
}
