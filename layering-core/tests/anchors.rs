//! Exactness: the baselines reproduce the nixpkgs Python algorithms' output on every case in
//! `../shared/anchors/` and on the copies kept in `fixtures/anchors/`.
//!
//! `popularity` must match byte for byte. `size-first` must match byte for byte except for one
//! thing auto-layer.py itself leaves undefined: layers with *equal closure size* come out in
//! Python's `set` iteration order, which depends on the process's string-hash seed (running the
//! original with PYTHONHASHSEED=0..9 mismatches 5 to 9 of the 110 anchor cases each time). Inside
//! such a run of ties we order by the first path's `(name, hash)`; the test compares those runs
//! as sets, and everything else — membership, in-layer order, order between different sizes —
//! byte for byte.

mod common;

use std::path::Path;

use layering_core::{layer, popularity, store_layers, Budget, Closure, Strategy};
use serde_json::Value;

fn closure_size(c: &Closure, layer: &[String]) -> u64 {
    let mut mark = vec![false; c.len()];
    let mut total = 0;
    for p in layer {
        let i = c.index_of(&hints_format::StorePath::parse(p).unwrap()).unwrap();
        let mut todo = vec![i];
        while let Some(x) = todo.pop() {
            if !mark[x] {
                mark[x] = true;
                total += c.nar_size(x);
                todo.extend(c.refs(x).iter().map(|&r| r as usize));
            }
        }
    }
    total
}

/// Sorts layers inside each run of equal closure size, so tie order does not matter.
fn canonical_ties(c: &Closure, layers: &[Vec<String>]) -> Vec<Vec<String>> {
    let sizes: Vec<u64> = layers.iter().map(|l| closure_size(c, l)).collect();
    let mut out = layers.to_vec();
    let mut start = 0;
    while start < out.len() {
        let end = (start..out.len()).find(|&k| sizes[k] != sizes[start]).unwrap_or(out.len());
        out[start..end].sort();
        start = end;
    }
    out
}

/// Returns (cases checked, size-first cases that matched only up to tie order).
fn check_cases(cases: &[Value], base: &Path) -> (usize, usize) {
    let (mut checked, mut tie_only) = (0, 0);
    let mut failures = vec![];
    for case in cases {
        let name = format!("{}@{}", case["case"].as_str().unwrap(), case["max_layers"]);
        let closure = common::load_closure(&base.join(case["graph"].as_str().unwrap()));
        let budget = Budget::new(case["max_layers"].as_u64().unwrap() as usize, 1).unwrap();

        let order: Vec<String> = popularity::order(&closure).unwrap().into_iter().map(|i| closure.path(i).to_string()).collect();
        if order != serde_json::from_value::<Vec<String>>(case["popularity_order"].clone()).unwrap() {
            failures.push(format!("{name}: popularity order"));
        }
        let pop = store_layers(&layer(&closure, budget, Strategy::Popularity).unwrap());
        if serde_json::to_value(&pop).unwrap() != case["expected"]["popularity"] {
            failures.push(format!("{name}: popularity layers"));
        }
        let sf = store_layers(&layer(&closure, budget, Strategy::SizeFirst).unwrap());
        let want: Vec<Vec<String>> = serde_json::from_value(case["expected"]["size-first"].clone()).unwrap();
        if serde_json::to_string(&sf).unwrap() != serde_json::to_string(&want).unwrap() {
            if canonical_ties(&closure, &sf) == canonical_ties(&closure, &want) {
                tie_only += 1;
            } else {
                failures.push(format!("{name}: size-first layers"));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} mismatches: {failures:#?}", failures.len());
    (checked, tie_only)
}

#[test]
fn fixture_anchor_cases() {
    let dir = common::repo_root().join("fixtures/anchors");
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 4);
    let (checked, tie_only) = check_cases(&cases, &dir);
    assert_eq!(checked, cases.len());
    // The fixture copies include one case whose Python output has a closure-size tie.
    assert!(tie_only <= 1);
}

#[test]
fn all_shared_anchor_cases() {
    let Some(shared) = common::shared_dir() else { return };
    let cases: Vec<Value> = serde_json::from_slice(&std::fs::read(shared.join("anchors/cases.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 110);
    let (checked, tie_only) = check_cases(&cases, &shared);
    assert_eq!(checked, 110);
    eprintln!("size-first: {} of 110 byte-identical, {tie_only} identical up to the order of closure-size ties", 110 - tie_only);
    // Python's own runs differ from the anchors on 5 to 9 cases, all of them tie orders.
    assert!(tie_only <= 10, "{tie_only} cases differ in tie order");
}
