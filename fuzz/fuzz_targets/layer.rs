//! `layer` on arbitrary (graph, hint file, budget) triples: every strategy returns layers that
//! hold each path exactly once, none empty, within the budget, with the bytes preserved, or a
//! match error for an ambiguous file; never a panic.
#![no_main]

use hints_format::nixbase32;
use hints_format::{BudgetHeader, Group, GroupStats, HintFile, LearnedFrom, Pin, PinRule, StorePath};
use layering_core::{layer, Budget, Closure, PathInfo, Strategy};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &["libc", "zlib", "ssl", "python", "numpy", "app", "gcc", "perl", "curl", "data"];
const RULES: &[PinRule] = &[PinRule::OwnLayer, PinRule::Together, PinRule::Bottom, PinRule::NotCatchAll];

fn name(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(format!("{}-{}.{}", NAMES[u.choose_index(NAMES.len())?], u.int_in_range(0..=2u8)?, u.int_in_range(0..=9u8)?))
}

/// A closure of up to 48 paths whose references point only to earlier paths (a DAG).
fn closure(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<PathInfo>> {
    let n = u.int_in_range(1..=48usize)?;
    let mut infos: Vec<PathInfo> = vec![];
    for i in 0..n {
        let path = StorePath::parse(&format!("/nix/store/{}-{}", nixbase32::encode(&[i as u8; 20]), name(u)?)).expect("valid path");
        let mut references = vec![];
        for _ in 0..u.int_in_range(0..=3usize)? {
            if i > 0 {
                references.push(infos[u.choose_index(i)?].record.path.clone());
            }
        }
        let nar_size = u.int_in_range(0..=1u64 << 40)?;
        infos.push(PathInfo::new(path, nar_size, references));
    }
    Ok(infos)
}

fn member(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let base = NAMES[u.choose_index(NAMES.len())?];
    Ok(match u.int_in_range(0..=3u8)? {
        0 => base.to_string(),
        1 => format!("{base}@{}*", u.int_in_range(0..=2u8)?),
        2 => format!("{base}:*"),
        _ => format!("{}*", &base[..1]),
    })
}

fn hint_file(u: &mut Unstructured<'_>) -> arbitrary::Result<HintFile> {
    let mut f = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
    f.learned_from = LearnedFrom { path_hazard: Some(u.int_in_range(0..=100u8)? as f64 / 50.0), ..LearnedFrom::default() };
    f.learned_from.revisions.count = u.int_in_range(0..=8u32)?;
    for g in 0..u.int_in_range(0..=6usize)? {
        let members = (0..u.int_in_range(1..=3usize)?).map(|_| member(u)).collect::<arbitrary::Result<_>>()?;
        let stats = GroupStats { size: 0, change_rate: u.int_in_range(0..=100u8)? as f64 / 100.0, images: 1 };
        f.groups.push(Group { id: format!("g{g}"), members, stats });
    }
    for p in 0..u.int_in_range(0..=2usize)? {
        let members = (0..u.int_in_range(1..=2usize)?).map(|_| member(u)).collect::<arbitrary::Result<_>>()?;
        f.pins.push(Pin { id: format!("p{p}"), rule: RULES[u.choose_index(RULES.len())?], members });
    }
    if f.groups.len() >= 2 && bool::arbitrary(u)? {
        f.merges.push([f.groups[0].id.clone(), f.groups[1].id.clone()]);
    }
    Ok(f)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(infos), Ok(file), Ok(max_layers)) = (closure(&mut u), hint_file(&mut u), u.int_in_range(2..=12usize)) else { return };
    if file.validate().is_err() {
        return;
    }
    let Ok(c) = Closure::new(infos) else { return };
    let budget = Budget::new(max_layers, 1).expect("reserve below max");
    for strategy in [Strategy::Popularity, Strategy::SizeFirst, Strategy::Hints(&file)] {
        let layers = match layer(&c, budget, strategy) {
            Ok(l) => l,
            Err(layering_core::LayerError::Match(_)) => continue,
            Err(e) => panic!("{e}"),
        };
        assert!(layers.len() <= budget.store_layers(), "{} layers", layers.len());
        let mut seen: Vec<&str> = layers.iter().inspect(|l| assert!(!l.paths.is_empty())).flat_map(|l| l.paths.iter().map(|p| p.as_str())).collect();
        seen.sort_unstable();
        let all: Vec<&str> = c.paths().map(|p| p.as_str()).collect();
        assert_eq!(seen, all, "each path exactly once");
        let bytes: u64 = layers.iter().map(|l| l.size).sum();
        assert_eq!(bytes, c.total_size());
    }
});
