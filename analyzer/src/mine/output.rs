//! The file's groups from the greedy's states: ids, members as patterns, and statistics; and
//! what the backtest's verdict does to them (groups only untrusted images hold, size-first
//! singles).

use std::collections::{BTreeSet, HashMap};

use hints_format::{Group, GroupStats, Matcher, MemberPattern, Placement, StorePath};
use layering_core::{Closure, Layer};

use super::backtest::Mirror;
use super::bits::Bits;
use super::model::{GroupState, Model};
use super::stats::NameStats;

pub(super) fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Change rates are written with 3 decimals: finer digits are noise from a few transitions and
/// would churn the checked-in file.
const RATE_SCALE: f64 = 1000.0;

/// Named after the largest member (ties: the first label).
pub(super) fn group_id(stats: &NameStats, members: &[u32]) -> String {
    let top = members.iter().max_by(|&&a, &&b| stats.size[a as usize].cmp(&stats.size[b as usize]).then(stats.labels[b as usize].cmp(&stats.labels[a as usize]))).expect("groups are not empty");
    stats.labels[*top as usize].replace(':', "-")
}

/// A group's statistics; its `change_rate` is the model's probability that the group changes
/// at an update (what the layerer weighs when it must merge layers).
fn group_stats(stats: &NameStats, members: &[u32], prob: f64) -> GroupStats {
    let mut images = Bits::new(stats.image_names.len());
    for &m in members {
        images.or(&stats.images[m as usize]);
    }
    GroupStats { size: bytes(stats, members), change_rate: (prob * RATE_SCALE).round() / RATE_SCALE, images: images.count() as u32 }
}

pub(super) fn to_group(stats: &NameStats, id: &str, g: &GroupState) -> Group {
    let mut labels: Vec<String> = g.members.iter().map(|&m| stats.patterns[m as usize].clone()).collect();
    labels.sort();
    Group { id: id.to_string(), members: labels, stats: group_stats(stats, &g.members, g.prob) }
}

/// Recomputes the statistics of kept groups.
pub(super) fn refresh_stats(model: &Model<'_>, groups: &mut [Group]) {
    let stats = model.stats;
    let index: HashMap<&str, u32> = stats.patterns.iter().enumerate().map(|(k, l)| (l.as_str(), k as u32)).collect();
    for g in groups {
        let members: Vec<u32> = g
            .members
            .iter()
            .filter_map(|m| index.get(m.as_str()).copied())
            // Present names the model knows (not those a pin places).
            .filter(|&m| model.class_of[m as usize] != u32::MAX)
            .collect();
        g.stats = if members.is_empty() { GroupStats::default() } else { group_stats(stats, &members, model.group(&members).prob) };
    }
}

/// The file's groups, bottom-up: least likely to change first, then larger first, then by id.
pub(super) fn file_groups(stats: &NameStats, groups: &[GroupState]) -> Vec<Group> {
    let mut order: Vec<(f64, u64, String, usize)> = groups.iter().enumerate().map(|(k, g)| (g.prob, bytes(stats, &g.members), group_id(stats, &g.members), k)).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    order.into_iter().map(|(_, _, id, k)| to_group(stats, &id, &groups[k])).collect()
}

/// `groups` less those that place no name a trusted image (one not in `untrusted`) contains at
/// the last revision of `stats`, as the layerer's matcher places them. Every image that holds
/// such a group is laid out as size-first, so it would lay out nothing.
pub(super) fn held_by_trusted(stats: &NameStats, groups: Vec<Group>, untrusted: &Bits) -> Vec<Group> {
    if untrusted.count() == 0 {
        return groups;
    }
    let held = held_by(stats, &groups, |i| !untrusted.get(i));
    groups.into_iter().zip(held).filter_map(|(g, held)| held.then_some(g)).collect()
}

/// Per group of `groups`, whether it places a name that an image `of` contains at the last
/// revision of `stats`, as the layerer's matcher places it.
fn held_by(stats: &NameStats, groups: &[Group], of: impl Fn(usize) -> bool) -> Vec<bool> {
    let matcher = Matcher::of(groups, &[]);
    let mut held = vec![false; groups.len()];
    for n in (0..stats.labels.len()).filter(|&n| stats.images[n].ones().any(&of)) {
        if let Ok(Placement { group: Some(g), .. }) = matcher.place(&stats.samples[n]) {
            held[g] = true;
        }
    }
    held
}

/// The layers of size-first's layout, with `store_layers` layers, of each of `closures` (the
/// untrusted images'): where [`with_size_first_singles`] takes its singles from.
pub(super) fn size_first_layers(closures: &[Closure], store_layers: usize) -> Vec<Layer> {
    closures.iter().flat_map(|c| layering_core::size_first::layers(c, store_layers)).collect()
}

/// `groups` with the members that place each of `layers` that `mirror` repeats moved to a group
/// of their own, right after the first group they leave: the *size-first singles*.
///
/// An untrusted image is laid out as size-first, which gives its largest paths a layer each,
/// with what only they use there ([`size_first_layers`]). Where a trusted image holds such a
/// layer's paths in groups with other names, the two images store and pull those bytes in
/// different layers; as a group of its own, the layer is the same blob in both (a trusted image
/// that holds a path holds its dependencies, so it holds the whole layer). A layer is skipped
/// when a path of it has no group, when a group an image in `whole` holds places one (a trusted
/// image the singles cost too much), or when an earlier layer took one of its members; one that
/// is a group already stays. A single's `change_rate` is the highest of the groups it leaves
/// (the model's probability for the whole group, at least its members' own), and every group
/// changed gets its members' size and image count. Also gives the number of singles.
pub(super) fn with_size_first_singles(layers: &[Layer], mirror: Mirror, whole: &Bits, stats: &NameStats, groups: Vec<Group>) -> (Vec<Group>, usize) {
    let held_whole = held_by(stats, &groups, |i| whole.get(i));
    let singles = singles(layers.iter().filter(|l| mirror.repeats(l)), &held_whole, &groups);
    let count = singles.len();
    let mut after: Vec<Vec<Single>> = (0..groups.len()).map(|_| vec![]).collect();
    for single in singles {
        after[single.after].push(single);
    }
    let leaving: BTreeSet<&String> = after.iter().flatten().flat_map(|s| &s.members).collect();
    let index: HashMap<&str, u32> = stats.patterns.iter().enumerate().map(|(n, p)| (p.as_str(), n as u32)).collect();
    let known = |members: &[String]| -> Vec<u32> { members.iter().filter_map(|m| index.get(m.as_str()).copied()).collect() };
    let restated = |id: &str, members: Vec<String>, rate: f64| {
        let n = known(&members);
        let (id, stats) = if n.is_empty() { (id.to_string(), GroupStats { change_rate: rate, ..GroupStats::default() }) } else { (group_id(stats, &n), group_stats(stats, &n, rate)) };
        Group { id, members, stats }
    };
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    for (group, singles) in groups.iter().zip(&after) {
        let rest: Vec<String> = group.members.iter().filter(|m| !leaving.contains(m)).cloned().collect();
        if rest.len() == group.members.len() {
            out.push(group.clone());
        } else if !rest.is_empty() {
            out.push(restated(&group.id, rest, group.stats.change_rate));
        }
        out.extend(singles.iter().map(|s| restated(&s.members[0], s.members.clone(), s.rate)));
    }
    unique_ids(&mut out);
    (out, count)
}

/// A layer repeated as a group: its members (sorted), the position of the first group they
/// leave, and the highest change rate of those groups.
struct Single {
    members: Vec<String>,
    after: usize,
    rate: f64,
}

/// The singles of [`with_size_first_singles`], first come first served (`held_whole`: per
/// group, whether an image kept whole holds it).
fn singles<'l>(layers: impl Iterator<Item = &'l Layer>, held_whole: &[bool], groups: &[Group]) -> Vec<Single> {
    let matcher = Matcher::of(groups, &[]);
    let place = |path: &StorePath| -> Option<(usize, &String)> {
        let Ok(Placement { group: Some(g), .. }) = matcher.place(path.name()) else { return None };
        Some((g, groups[g].members.iter().find(|m| MemberPattern::parse(m).is_ok_and(|p| p.matches(&path.name_key())))?))
    };
    let mut taken: BTreeSet<&String> = BTreeSet::new();
    let mut out = vec![];
    for layer in layers {
        let Some(placed) = layer.paths.iter().map(place).collect::<Option<Vec<_>>>() else { continue };
        let members: BTreeSet<&String> = placed.iter().map(|&(_, m)| m).collect();
        if placed.iter().any(|&(g, _)| held_whole[g]) || members.iter().any(|m| taken.contains(m)) {
            continue;
        }
        taken.extend(&members);
        let after = placed.iter().map(|&(g, _)| g).min().expect("a layer holds a path");
        if groups[after].members.len() == members.len() && placed.iter().all(|&(g, _)| g == after) {
            continue;
        }
        let rate = placed.iter().map(|&(g, _)| groups[g].stats.change_rate).fold(0.0, f64::max);
        out.push(Single { members: members.into_iter().cloned().collect(), after, rate });
    }
    out
}

/// Gives every group whose id an earlier group has the first free `<id>-<k>`, `k` from 2: ids
/// made from names can meet an id written by hand (a previous file's, kept by hysteresis).
fn unique_ids(groups: &mut [Group]) {
    let mut used: BTreeSet<String> = BTreeSet::new();
    let taken: BTreeSet<String> = groups.iter().map(|g| g.id.clone()).collect();
    for g in groups.iter_mut() {
        if !used.insert(g.id.clone()) {
            let id = (2..).map(|k| format!("{}-{k}", g.id)).find(|id| !taken.contains(id) && !used.contains(id)).expect("some suffix is free");
            used.insert(id.clone());
            g.id = id;
        }
    }
}

/// The positions in `groups` of every group that would place one of `names`, as the layerer's
/// matcher places it. Without a group its names can go to another group whose pattern is less
/// specific (`gcc` once `gcc@14-base-[0-9]*` is gone), which then counts too, until none does.
pub(super) fn placing_groups(groups: &[Group], names: &[&str]) -> BTreeSet<usize> {
    let (mut kept, mut left): (Vec<Group>, Vec<usize>) = (groups.to_vec(), (0..groups.len()).collect());
    let mut placing = BTreeSet::new();
    loop {
        let matcher = Matcher::of(&kept, &[]);
        let more: BTreeSet<usize> = names.iter().filter_map(|name| matcher.place(name).ok()?.group).collect();
        if more.is_empty() {
            return placing;
        }
        placing.extend(more.iter().map(|&j| left[j]));
        (kept, left) = kept.into_iter().zip(left).enumerate().filter(|(j, _)| !more.contains(j)).map(|(_, pair)| pair).unzip();
    }
}

/// The bytes of `members` (each at its largest over the images), saturating.
fn bytes(stats: &NameStats, members: &[u32]) -> u64 {
    members.iter().fold(0u64, |t, &m| t.saturating_add(stats.size[m as usize]))
}

#[cfg(test)]
mod tests {
    use hints_format::{Group, GroupStats};

    use layering_core::{Closure, PathInfo};
    use sha2::{Digest, Sha256};

    use super::{held_by_trusted, size_first_layers, with_size_first_singles, Mirror};
    use crate::mine::bits::Bits;
    use crate::mine::greedy::tests::stats;
    use crate::synth::store_path;

    fn group(id: &str, members: &[&str]) -> Group {
        Group { id: id.into(), members: members.iter().map(|m| m.to_string()).collect(), stats: GroupStats::default() }
    }

    #[test]
    fn a_group_stays_while_a_trusted_image_holds_it() {
        // n0 in images 0 and 1, n1 in image 1 only, n2 in image 2 only; image 1 is untrusted.
        let s = stats(&[(1, &[0, 1]), (1, &[1]), (1, &[2])], 3);
        let groups = vec![group("shared", &["n0"]), group("untrusted-only", &["n1"]), group("mixed", &["n1", "n2"])];
        let mut untrusted = Bits::new(3);
        untrusted.set(1);
        let kept: Vec<String> = held_by_trusted(&s, groups.clone(), &untrusted).into_iter().map(|g| g.id).collect();
        assert_eq!(kept, ["shared", "mixed"]);
        assert_eq!(held_by_trusted(&s, groups.clone(), &Bits::new(3)), groups, "nothing untrusted: every group stays");
        let mut all = Bits::new(3);
        (0..3).for_each(|i| all.set(i));
        assert!(held_by_trusted(&s, groups, &all).is_empty(), "nothing trusted: no group stays");
    }

    /// A closure of paths `n{k}-1.0` of the given sizes, each referencing the listed others.
    fn closure_with(paths: &[(usize, u64, &[usize])]) -> Closure {
        let path = |k: usize| store_path(&Sha256::digest(format!("{k}")), &format!("n{k}-1.0"));
        Closure::new(paths.iter().map(|&(k, size, refs)| PathInfo::new(path(k), size, refs.iter().map(|&r| path(r)).collect())).collect()).unwrap()
    }

    /// A closure of unrelated paths `n{k}-1.0` of the given sizes.
    fn closure(paths: &[(usize, u64)]) -> Closure {
        closure_with(&paths.iter().map(|&(k, size)| (k, size, &[][..])).collect::<Vec<_>>())
    }

    fn members(groups: &[Group]) -> Vec<(&str, Vec<&str>)> {
        groups.iter().map(|g| (g.id.as_str(), g.members.iter().map(String::as_str).collect())).collect()
    }

    fn singled(layers: &[Closure], store_layers: usize, mirror: Mirror, whole: &Bits, s: &crate::mine::NameStats, groups: &[Group]) -> Vec<Group> {
        with_size_first_singles(&size_first_layers(layers, store_layers), mirror, whole, s, groups.to_vec()).0
    }

    #[test]
    fn a_path_an_untrusted_image_keeps_alone_gets_a_group_of_its_own() {
        // n0 and n2 are big and in images 0 and 1; n1, n3, n4 and n5 only in the trusted image 0;
        // the trusted image 2 holds n2 and n3.
        let s = stats(&[(50 << 20, &[0, 1]), (1 << 20, &[0]), (40 << 20, &[0, 1, 2]), (2 << 20, &[0, 2]), (30 << 20, &[0, 1]), (3 << 20, &[0])], 3);
        let none = Bits::new(3);
        let groups = vec![group("n0", &["n0", "n1"]), group("n2", &["n2", "n3"]), group("n4", &["n4", "n5"])];
        // Image 1 at 3 store layers: n0 and n2 alone, n4 with the small path n6.
        let untrusted = closure(&[(0, 50 << 20), (2, 40 << 20), (4, 30 << 20), (6, 1 << 10)]);
        let one = std::slice::from_ref(&untrusted);
        let split = singled(one, 3, Mirror::Paths, &none, &s, &groups);
        assert_eq!(members(&split), [("n1", vec!["n1"]), ("n0", vec!["n0"]), ("n3", vec!["n3"]), ("n2", vec!["n2"]), ("n4", vec!["n4", "n5"])]);
        assert_eq!((split[1].stats.size, split[0].stats.size), (50 << 20, 1 << 20), "each takes its share of the size");
        assert_eq!(split[1].stats.images, 2);
        assert_eq!(with_size_first_singles(&size_first_layers(one, 3), Mirror::Paths, &none, &s, groups.clone()).1, 2);
        // At one store layer size-first keeps nothing alone; without untrusted images, nothing changes.
        assert_eq!(singled(one, 1, Mirror::Paths, &none, &s, &groups), groups);
        assert_eq!(singled(&[], 3, Mirror::Paths, &none, &s, &groups), groups);
        // A trusted image kept whole keeps the groups it holds: image 2, the one holding n2.
        let mut kept = Bits::new(3);
        kept.set(2);
        assert_eq!(members(&singled(one, 3, Mirror::Paths, &kept, &s, &groups))[2..], [("n2", vec!["n2", "n3"]), ("n4", vec!["n4", "n5"])]);
        // A single's id that a hand-written group already has gets a suffix.
        let clash = vec![group("n0", &["n5"]), group("big", &["n0", "n1"])];
        let ids: Vec<String> = singled(one, 3, Mirror::Paths, &none, &s, &clash).into_iter().map(|g| g.id).collect();
        assert_eq!(ids, ["n0", "n1", "n0-2"]);
        // A group whose members are all kept alone gives way to them.
        let both = closure(&[(0, 50 << 20), (1, 1 << 20)]);
        assert_eq!(members(&singled(&[both], 3, Mirror::Paths, &none, &s, &[group("n0", &["n0", "n1"])])), [("n1", vec!["n1"]), ("n0", vec!["n0"])]);
    }

    #[test]
    fn a_large_path_and_what_only_it_uses_become_one_group() {
        // n0 (50 MB) uses n1 (1 MB); n2 (40 MB) stands alone; n3 is only in the trusted image 0.
        let s = stats(&[(50 << 20, &[0, 1]), (1 << 20, &[0, 1]), (40 << 20, &[0, 1]), (2 << 20, &[0])], 2);
        let none = Bits::new(2);
        let mut groups = vec![group("n0", &["n0", "n3"]), group("n2", &["n1", "n2"])];
        (groups[0].stats.change_rate, groups[1].stats.change_rate) = (0.1, 0.3);
        // Image 1 at 2 store layers: n0 with n1, and n2.
        let untrusted = closure_with(&[(0, 50 << 20, &[1]), (1, 1 << 20, &[]), (2, 40 << 20, &[])]);
        let one = std::slice::from_ref(&untrusted);
        let split = singled(one, 2, Mirror::Layers, &none, &s, &groups);
        assert_eq!(members(&split), [("n3", vec!["n3"]), ("n0", vec!["n0", "n1"]), ("n2", vec!["n2"])], "the group n2 gives way");
        assert_eq!(split[1].stats.change_rate, 0.3, "the highest rate of the groups it leaves");
        assert_eq!(split[1].stats.size, 51 << 20);
        // Only the one-path layer with Mirror::Paths.
        assert_eq!(members(&singled(one, 2, Mirror::Paths, &none, &s, &groups)), [("n0", vec!["n0", "n3"]), ("n1", vec!["n1"]), ("n2", vec!["n2"])]);
        // An earlier layer that takes n1 alone leaves n0's layer out.
        let first = closure(&[(1, 1 << 20)]);
        assert_eq!(members(&singled(&[first, untrusted.clone()], 2, Mirror::Layers, &none, &s, &groups)), [("n0", vec!["n0", "n3"]), ("n1", vec!["n1"]), ("n2", vec!["n2"])]);
        // A layer that is a group already stays as it is, and a path with no group leaves its layer out.
        let exact = vec![group("n0", &["n0", "n1"]), group("n2", &["n2", "n3"])];
        assert_eq!(members(&singled(one, 2, Mirror::Layers, &none, &s, &exact)), [("n0", vec!["n0", "n1"]), ("n3", vec!["n3"]), ("n2", vec!["n2"])]);
        let partial = vec![group("n0", &["n0", "n3"]), group("n2", &["n2"])];
        assert_eq!(singled(one, 2, Mirror::Layers, &none, &s, &partial), partial);
    }
}
