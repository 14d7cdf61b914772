//! The file's groups from the greedy's states: ids, members as patterns, and statistics.

use std::collections::{BTreeSet, HashMap};

use hints_format::{Group, GroupStats, Matcher, Placement};

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
    let matcher = Matcher::of(&groups, &[]);
    let mut held = vec![false; groups.len()];
    for n in (0..stats.labels.len()).filter(|&n| stats.images[n].ones().any(|i| !untrusted.get(i))) {
        if let Ok(Placement { group: Some(g), .. }) = matcher.place(&stats.samples[n]) {
            held[g] = true;
        }
    }
    groups.into_iter().zip(held).filter_map(|(g, held)| held.then_some(g)).collect()
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

    use super::held_by_trusted;
    use crate::mine::bits::Bits;
    use crate::mine::greedy::tests::stats;

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
}
