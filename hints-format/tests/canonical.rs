//! Canonical output: a golden file written by an independent writer must come back byte for
//! byte, and generated hint sets must round-trip.

use std::collections::BTreeSet;

use hints_format::{BudgetHeader, Group, GroupStats, HintFile, LearnedFrom, Pin, PinRule, RevisionRange};
use proptest::prelude::*;

#[test]
fn golden_file_is_reproduced_byte_for_byte() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/hints/golden.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let file = HintFile::parse(&text).unwrap();
    assert_eq!(file.groups.len(), 80);
    assert_eq!(file.groups.iter().map(|g| g.members.len()).sum::<usize>(), 1500);
    assert_eq!(file.pins.len(), 3);
    assert_eq!(file.merges.len(), 20);
    assert_eq!(file.merges[0], [file.groups[39].id.clone(), file.groups[38].id.clone()], "the plan keeps its order");
    let written = file.to_canonical_string();
    if written != text {
        let first = written.lines().zip(text.lines()).position(|(a, b)| a != b);
        panic!("differs at line {:?}", first.map(|k| k + 1));
    }
}

fn ident() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9+._-]{0,20}", Just("yes".to_string()), Just("null".to_string()), Just("1.5".to_string()), "[0-9][a-z]{1,5}",]
        .prop_filter("no trailing dash-digit ambiguity needed", |s| !s.is_empty())
}

fn member() -> impl Strategy<Value = String> {
    (ident(), prop_oneof![Just(""), Just(":lib"), Just(":*"), Just(":bin")], prop_oneof![Just(""), Just("@1.2"), Just("@2.*")]).prop_map(|(p, o, v)| format!("{p}{o}{v}"))
}

fn hint_file() -> impl Strategy<Value = HintFile> {
    let groups = proptest::collection::btree_set(member(), 1..60).prop_flat_map(|members| {
        let members: Vec<String> = members.into_iter().collect();
        let n = members.len();
        (Just(members), proptest::collection::vec(1usize..6, n), proptest::collection::vec((any::<u64>(), 0u32..1001, 0u32..40), n))
    });
    (groups, 1u32..200, proptest::collection::vec("[a-z0-9~ /.-]{0,12}", 0..4), "[ -~]{0,20}").prop_map(|((members, cuts, stats), max, images, label)| {
        let mut groups: Vec<Group> = vec![];
        let mut k = 0;
        let mut g = 0;
        while k < members.len() {
            let take = cuts[g].min(members.len() - k);
            let mut m: Vec<String> = members[k..k + take].to_vec();
            m.sort();
            let (size, rate, images) = stats[g];
            groups.push(Group { id: format!("g{g}-{}", m[0].replace(['*', ':', '@'], "_")), members: m, stats: GroupStats { size, change_rate: rate as f64 / 1000.0, images } });
            k += take;
            g += 1;
        }
        let pins = vec![Pin { id: "pinned".into(), rule: PinRule::Bottom, members: vec![members[0].clone()] }];
        // A plan joining every third group with its successor (file order is meaningful).
        let merges = groups.chunks(3).filter(|c| c.len() > 1).map(|c| [c[1].id.clone(), c[0].id.clone()]).collect();
        let mut size_first_images: Vec<String> = images.iter().take(2).cloned().collect();
        size_first_images.sort();
        size_first_images.dedup();
        // The last image opts out of every other group (ids sorted, as written).
        let mut ids: Vec<String> = groups.iter().step_by(2).map(|g| g.id.clone()).collect();
        ids.sort();
        let opt_outs = images.last().map(|image| (image.clone(), ids)).into_iter().collect();
        HintFile {
            version: 2,
            budget: BudgetHeader { max_layers: max + 1, reserve: max.min(1) },
            learned_from: LearnedFrom {
                images,
                revisions: RevisionRange { first: label.clone(), last: label, count: max },
                db_summary: "sha256:00".into(),
                path_hazard: (max % 3 != 0).then_some(max as f64 / 997.0),
            },
            groups,
            merges,
            size_first_images,
            opt_outs,
            pins,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn roundtrip(file in hint_file()) {
        file.validate().unwrap();
        let text = file.to_canonical_string();
        let back = HintFile::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &file);
        prop_assert_eq!(back.to_canonical_string(), text);
    }

    /// Member order in the input does not change the output.
    #[test]
    fn member_order_is_canonical(file in hint_file(), seed in any::<u64>()) {
        let mut shuffled = file.clone();
        for g in &mut shuffled.groups {
            let n = g.members.len();
            g.members.rotate_left((seed as usize) % n.max(1));
        }
        prop_assert_eq!(shuffled.to_canonical_string(), file.to_canonical_string());
        let ids: BTreeSet<&str> = file.groups.iter().map(|g| g.id.as_str()).collect();
        prop_assert_eq!(ids.len(), file.groups.len());
    }
}
