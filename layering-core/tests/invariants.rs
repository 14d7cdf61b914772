//! Invariants of every strategy, on generated closures and on the fixtures:
//! each path in exactly one layer, no empty layer, within budget, bytes preserved, and output
//! identical whatever the order of input records and references.

mod common;

use std::collections::BTreeSet;

use hints_format::{BudgetHeader, Group, HintFile, Pin, PinRule, StorePath};
use layering_core::{layer, store_layers, Budget, Closure, PathInfo, Strategy};
use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig, TestCaseError};
use proptest::strategy::Strategy as _;

fn path(i: usize, version: usize) -> StorePath {
    let alphabet = hints_format::nixbase32::ALPHABET;
    let mut h = (i as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15) ^ (version as u64) << 7;
    let hash: String = (0..32)
        .map(|_| {
            h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            alphabet[(h >> 59) as usize] as char
        })
        .collect();
    StorePath::parse(&format!("/nix/store/{hash}-pkg{}-{version}.0", i % 40)).unwrap()
}

/// A random DAG: node i may reference nodes < i.
fn arb_infos() -> impl proptest::strategy::Strategy<Value = Vec<PathInfo>> {
    (1usize..60).prop_flat_map(|n| {
        let sizes = proptest::collection::vec(prop_oneof![Just(4096u64), 1u64..5_000_000], n);
        let refs = proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), n);
        (sizes, refs).prop_map(move |(sizes, refs)| {
            (0..n)
                .map(|i| {
                    let mut r: Vec<StorePath> = refs[i].iter().filter(|_| i > 0).map(|ix| path(ix.index(i), 1)).collect();
                    r.push(path(i, 1)); // self-reference, as Nix writes it
                    PathInfo::new(path(i, 1), sizes[i], r)
                })
                .collect()
        })
    })
}

fn hint_file(groups: usize, pins: bool) -> HintFile {
    let mut f = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
    f.groups = (0..groups)
        .map(|g| Group { id: format!("g{g}"), members: (0..40).filter(|k| k % (groups + 1) == g).map(|k| format!("pkg{k}")).collect(), stats: Default::default() })
        .filter(|g| !g.members.is_empty())
        .collect();
    // A plan joining groups pairwise, then the pairs: exercised whenever a budget is tight.
    f.merges = (0..f.groups.len()).flat_map(|g| [(g, g ^ 1), (g, g ^ 2)]).filter(|&(a, b)| a < b && b < f.groups.len()).map(|(a, b)| [f.groups[b].id.clone(), f.groups[a].id.clone()]).collect();
    // Half the files carry a learned hazard: the fallback then ranks primaries by stability.
    if groups % 2 == 1 {
        f.learned_from.path_hazard = Some(0.05);
    }
    if pins {
        f.pins = vec![
            Pin { id: "own".into(), rule: PinRule::OwnLayer, members: vec!["pkg3".into()] },
            Pin { id: "deep".into(), rule: PinRule::Bottom, members: vec!["pkg5".into()] },
            Pin { id: "nca".into(), rule: PinRule::NotCatchAll, members: vec!["pkg39".into()] },
        ];
    }
    f.validate().unwrap();
    f
}

fn check(infos: &[PathInfo], budget: Budget, strategy: Strategy<'_>, seed: u64) -> Result<(), TestCaseError> {
    let closure = Closure::new(infos.to_vec()).unwrap();
    let layers = layer(&closure, budget, strategy).unwrap();
    prop_assert!(layers.len() <= budget.store_layers(), "{} layers > {}", layers.len(), budget.store_layers());
    prop_assert!(layers.iter().all(|l| !l.paths.is_empty()), "empty layer");
    let flat: Vec<&StorePath> = layers.iter().flat_map(|l| &l.paths).collect();
    let unique: BTreeSet<&StorePath> = flat.iter().copied().collect();
    prop_assert_eq!(flat.len(), unique.len(), "a path is in two layers");
    prop_assert_eq!(unique.len(), closure.len(), "a path is missing");
    prop_assert_eq!(layers.iter().map(|l| l.size).sum::<u64>(), closure.total_size());

    // Shuffle records and references deterministically from the seed: same bytes out.
    let mut shuffled = infos.to_vec();
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    for info in &mut shuffled {
        for i in (1..info.references.len()).rev() {
            info.references.swap(i, (next() % (i as u64 + 1)) as usize);
        }
    }
    let again = layer(&Closure::new(shuffled).unwrap(), budget, strategy).unwrap();
    prop_assert_eq!(store_layers(&layers), store_layers(&again));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn baselines_hold_invariants(infos in arb_infos(), max in 2usize..12, seed in any::<u64>()) {
        let budget = Budget::new(max, 1).unwrap();
        check(&infos, budget, Strategy::Popularity, seed)?;
        check(&infos, budget, Strategy::SizeFirst, seed)?;
    }

    #[test]
    fn hints_hold_invariants(infos in arb_infos(), max in 2usize..12, groups in 0usize..20, pins in any::<bool>(), seed in any::<u64>()) {
        let file = hint_file(groups, pins);
        check(&infos, Budget::new(max, 1).unwrap(), Strategy::Hints(&file), seed)?;
    }
}

#[test]
fn fixtures_hold_invariants() {
    let dir = common::repo_root().join("fixtures/anchors/graphs");
    let file = hint_file(13, true);
    for entry in std::fs::read_dir(dir).unwrap() {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let infos = common::infos_from_json(&v);
        for max in [2, 5, 30, 100] {
            let budget = Budget::new(max, 1).unwrap();
            for strategy in [Strategy::Popularity, Strategy::SizeFirst, Strategy::Hints(&file)] {
                check(&infos, budget, strategy, max as u64).unwrap();
            }
        }
    }
}
