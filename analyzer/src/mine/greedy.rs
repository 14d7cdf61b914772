//! The greedy that groups names: lazy merges of the cheapest pairs until every image fits its
//! budget, each merge global (a group of the file) or local (left to the layerer). A global
//! merge adds to the expected update bytes of the images within their budget that hold both
//! groups; each such image has a room for what those merges may add ([`IMPOSED_SHARE`]), and a
//! merge that does not fit it is local. A join the window cannot show (both groups change beyond
//! what its transitions can show, through sources they do not share) is local too: the layerer
//! prices it, by the groups' written change rates, where an image must join.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use rayon::prelude::*;

use super::bits::Bits;
use super::model::{GroupState, Joined, Model};

/// A candidate merge of groups `a < b` with its score: in a max-heap, the smallest score pops
/// first, ties to the smallest ids. One `u128` holds all three and orders that way (reversed):
/// the score's bits mapped so that unsigned order is [`f64::total_cmp`]'s, then `a`, then `b`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate(std::cmp::Reverse<u128>);

impl Candidate {
    fn new(score: f64, a: usize, b: usize) -> Self {
        let bits = score.to_bits();
        let ordered = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
        let id = |g: usize| u32::try_from(g).expect("fewer than 2^32 groups") as u128;
        Candidate(std::cmp::Reverse(u128::from(ordered) << 64 | id(a) << 32 | id(b)))
    }

    fn score(self) -> f64 {
        let ordered = (self.0 .0 >> 64) as u64;
        f64::from_bits(if ordered >> 63 == 1 { ordered & !(1 << 63) } else { !ordered })
    }

    fn a(self) -> usize {
        (self.0 .0 >> 32) as u32 as usize
    }

    fn b(self) -> usize {
        self.0 .0 as u32 as usize
    }
}

/// A merge across classes (names in different sets of images) must look this many times
/// cheaper than a merge within a class to be chosen: it makes a layer that differs between
/// images, so it is neither shared nor stored once, and few training transitions make its
/// estimated cost uncertain.
const CROSS_CLASS_PENALTY: f64 = 2.0;

/// Up to this many groups in an image, every pair is a merge candidate.
const EXACT: usize = 400;
/// Beyond that, each group is paired with this many neighbours nearest in change probability.
const NEIGHBOURS: usize = 12;

/// Scoring fewer candidate-images than this runs on one thread.
const PARALLEL_SCORING: usize = 64;

/// How a merge applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Everywhere: the two become one group of the file.
    Global,
    /// Only in the over-budget images that hold both, as the layerer merges there.
    Local,
    /// Local because the window cannot show that the two change together.
    Unseen,
}

/// The greedy's state: live groups as each image sees them, and the file's groups.
struct Greedy<'m, 'a> {
    model: &'m Model<'a>,
    states: Vec<GroupState>,
    /// The file's groups, as made by global merges; `None` once merged into a larger one.
    units: Vec<Option<GroupState>>,
    /// Live groups per image.
    count: Vec<usize>,
    /// Per image, the live state holding each unit (what the layerer's "unit holding x" is).
    holder: Vec<HashMap<usize, usize>>,
    /// Per image, the expected update bytes that global merges it does not need may still add
    /// ([`IMPOSED_SHARE`]).
    room: Vec<f64>,
    /// The merges made local because the window cannot show that the two change together.
    unseen: usize,
}

/// The share of an image's expected update bytes with one group per name that global merges
/// made for other images (the image itself within its budget) may add to it, in all: an eighth
/// of the backtest's allowance. Beyond it such a merge is local, left to the images over budget.
/// An image's own updates come first; the sharing those merges buy is for the fleet and the
/// registry. On the generalization suite (264 rows) a half, a quarter, an eighth and a sixteenth
/// leave 4, 1, 1 and 1 rows with an image over size-first's allowance and 3, 3, 2 and 2 totals
/// over size-first; 0 leaves 2 and 4 (`docs/bench.md`).
const IMPOSED_SHARE: f64 = super::backtest::TOLERANCE / 8.0;

impl<'m, 'a> Greedy<'m, 'a> {
    /// One pristine group per unit (each a list of names).
    fn new(model: &'m Model<'a>, units: &[Vec<u32>]) -> Self {
        let ni = model.stats.image_names.len();
        let mut states = vec![];
        for (u, members) in units.iter().enumerate() {
            let mut s = model.group(members);
            s.unit = Some(u);
            s.units = vec![u];
            states.push(s);
        }
        let mut count = vec![0usize; ni];
        for s in &states {
            for i in s.images.ones() {
                count[i] += 1;
            }
        }
        let units = states.iter().cloned().map(Some).collect();
        let room = model.image_costs(&states, ni).into_iter().map(|c| c * IMPOSED_SHARE).collect();
        let mut g = Greedy { model, states, units, count, holder: vec![HashMap::new(); ni], room, unseen: 0 };
        for s in 0..g.states.len() {
            g.adopt(s);
        }
        g
    }

    /// Records state `s` as the holder of its units in its images.
    fn adopt(&mut self, s: usize) {
        let state = &self.states[s];
        for i in state.images.ones() {
            for &u in &state.units {
                self.holder[i].insert(u, s);
            }
        }
    }

    /// Marks state `g` merged away, freeing what only a live state needs: a greedy that grows
    /// groups one name at a time would otherwise keep every intermediate group's members and
    /// sources, quadratic in the names of an image.
    fn retire(&mut self, g: usize) {
        let s = &mut self.states[g];
        s.alive = false;
        (s.members, s.parts, s.held, s.units) = Default::default();
    }

    fn cost(&self) -> f64 {
        self.states.iter().filter(|s| s.alive).map(|s| s.cost).sum()
    }

    /// Merges until every image holds at most `target` groups. A merge of two pristine groups
    /// may be global or local, whichever the model finds cheaper (unless `local_only`); any
    /// other merge is local.
    fn run(&mut self, target: usize, local_only: bool) {
        let model = self.model;
        let ni = self.count.len();
        let over = |count: &[usize]| -> Vec<bool> { count.iter().map(|&c| c > target).collect() };
        let mut over_budget = over(&self.count);
        if !over_budget.iter().any(|&o| o) {
            return;
        }
        // Images with more classes than groups allowed cannot avoid merging across classes; in
        // all others a layer stays identical in every image that holds it.
        let mut classes_in: Vec<HashSet<u32>> = vec![HashSet::new(); ni];
        for s in self.states.iter().filter(|s| s.alive) {
            for i in s.images.ones() {
                classes_in[i].extend(s.parts.iter().map(|p| p.class));
            }
        }
        let needs_cross: Vec<bool> = classes_in.iter().map(|c| c.len() > target).collect();
        let cand = |states: &[GroupState], room: &[f64], a: usize, b: usize, over_budget: &[bool]| {
            let (a, b) = (a.min(b), a.max(b));
            score_merge(model, &states[a], &states[b], over_budget, &needs_cross, local_only, room).map(|(score, _)| Candidate::new(score, a, b))
        };
        // Live groups ordered by change probability (non-negative floats order as their bits).
        let mut alive: std::collections::BTreeSet<(u64, usize)> = (0..self.states.len()).filter(|&g| self.states[g].alive).map(|g| (self.states[g].prob.to_bits(), g)).collect();

        // Initial candidates: pairs sharing an over-budget image; all of them while an image has
        // few groups, else each group with its NEIGHBOURS nearest in change probability.
        let mut heap = BinaryHeap::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        for i in (0..ni).filter(|&i| over_budget[i]) {
            let here: Vec<usize> = alive.iter().map(|&(_, g)| g).filter(|&g| self.states[g].images.get(i)).collect();
            let window = if here.len() <= EXACT { here.len() } else { NEIGHBOURS };
            let (states, room) = (&self.states, &self.room);
            let cands: Vec<Candidate> = (0..here.len())
                .into_par_iter()
                .flat_map_iter(|k| {
                    let (over_budget, here) = (&over_budget, &here);
                    here[k + 1..(k + 1 + window).min(here.len())].iter().filter_map(move |&b| cand(states, room, here[k], b, over_budget))
                })
                .collect();
            for c in cands {
                if seen.insert((c.a(), c.b())) {
                    heap.push(c);
                }
            }
        }

        while let Some(c) = heap.pop() {
            if !over_budget.iter().any(|&o| o) {
                break;
            }
            if !self.states[c.a()].alive || !self.states[c.b()].alive {
                continue;
            }
            let Some((now, mode)) = score_merge(model, &self.states[c.a()], &self.states[c.b()], &over_budget, &needs_cross, local_only, &self.room) else { continue };
            if now.total_cmp(&c.score()) == Ordering::Greater {
                heap.push(Candidate::new(now, c.a(), c.b())); // stale: fewer images relieved now
                continue;
            }
            for g in [c.a(), c.b()] {
                alive.remove(&(self.states[g].prob.to_bits(), g));
            }
            let fresh = match mode {
                Mode::Global => {
                    let (a, b) = (&self.states[c.a()], &self.states[c.b()]);
                    for (i, more) in imposed(&model.joined(a, b, &a.images.union(&b.images)), &over_budget) {
                        self.room[i] -= more;
                    }
                    vec![self.global(c.a(), c.b())]
                }
                Mode::Local | Mode::Unseen => {
                    self.unseen += usize::from(mode == Mode::Unseen);
                    let (x, y) = (self.states[c.a()].units[0], self.states[c.b()].units[0]);
                    self.apply_local(x, y, target)
                }
            };
            for &g in &fresh {
                alive.insert((self.states[g].prob.to_bits(), g));
            }
            over_budget = over(&self.count);
            for new in fresh {
                let key = (self.states[new].prob.to_bits(), new);
                let states = &self.states;
                let shares = |g: usize| g != new && states[new].images.ones().any(|i| over_budget[i] && states[g].images.get(i));
                let crowd: usize = states[new].images.ones().filter(|&i| over_budget[i]).map(|i| self.count[i]).sum();
                let others: Vec<usize> = if crowd <= EXACT {
                    alive.iter().map(|&(_, g)| g).filter(|&g| shares(g)).collect()
                } else {
                    // The 2·NEIGHBOURS nearest in change probability, walking outwards.
                    let p = states[new].prob;
                    let mut below = alive.range(..key).rev().map(|&(_, g)| g).filter(|&g| shares(g)).peekable();
                    let mut above = alive.range((key.0, key.1 + 1)..).map(|&(_, g)| g).filter(|&g| shares(g)).peekable();
                    let mut near = vec![];
                    while near.len() < 2 * NEIGHBOURS {
                        let next = match (below.peek(), above.peek()) {
                            (Some(&l), Some(&h)) if p - states[l].prob <= states[h].prob - p => below.next(),
                            (_, Some(_)) => above.next(),
                            (Some(_), None) => below.next(),
                            (None, None) => break,
                        };
                        near.extend(next);
                    }
                    near
                };
                // Scoring costs about one step per candidate and image held; a few steps cost
                // less than waking the thread pool.
                let score = |&g: &usize| cand(states, &self.room, g, new, &over_budget);
                let fresh: Vec<Candidate> =
                    if others.len() * states[new].images.count() < PARALLEL_SCORING { others.iter().filter_map(score).collect() } else { others.par_iter().filter_map(score).collect() };
                heap.extend(fresh);
            }
        }
    }

    /// Joins two pristine groups everywhere; returns the new state.
    fn global(&mut self, a: usize, b: usize) -> usize {
        let mut m = self.model.merged(&self.states[a], &self.states[b], None);
        for i in self.states[a].images.ones().filter(|&i| self.states[b].images.get(i)) {
            self.count[i] -= 1;
        }
        let u = self.units.len();
        for g in [a, b] {
            self.units[self.states[g].unit.expect("global merges join pristine groups")] = None;
            self.retire(g);
        }
        m.unit = Some(u);
        m.units = vec![u];
        self.units.push(Some(m.clone()));
        self.states.push(m);
        self.adopt(self.states.len() - 1);
        self.states.len() - 1
    }

    /// Joins two groups in the images `n` only (a local merge); returns the new states: the
    /// joined group in `n`, and what is left of each outside `n`.
    fn local(&mut self, a: usize, b: usize, n: &Bits) -> Vec<usize> {
        let model = self.model;
        let (ga, gb) = (&self.states[a], &self.states[b]);
        let joined = model.merged(ga, gb, Some(n.clone()));
        let rest: Vec<GroupState> = [ga, gb]
            .into_iter()
            .filter_map(|g| {
                let outside = g.images.minus(n);
                (outside.count() > 0).then(|| {
                    let mut s = model.with_images(g, outside);
                    s.unit = None;
                    s
                })
            })
            .collect();
        for i in n.ones() {
            self.count[i] -= 1;
        }
        self.retire(a);
        self.retire(b);
        let first = self.states.len();
        self.states.push(joined);
        self.states.extend(rest);
        for s in first..self.states.len() {
            self.adopt(s);
        }
        (first..self.states.len()).collect()
    }

    /// Applies a local merge of units `x` and `y` the way the layerer applies a plan entry: in
    /// every over-budget image holding both in different groups, those two groups are joined.
    /// Returns the new states.
    fn apply_local(&mut self, x: usize, y: usize, target: usize) -> Vec<usize> {
        let ni = self.count.len();
        let mut fresh = vec![];
        loop {
            let pair = (0..ni).filter(|&i| self.count[i] > target).find_map(|i| {
                let (&sx, &sy) = (self.holder[i].get(&x)?, self.holder[i].get(&y)?);
                (sx != sy).then_some((sx, sy))
            });
            let Some((sx, sy)) = pair else { break };
            let mut n = Bits::new(ni);
            for i in (0..ni).filter(|&i| self.count[i] > target && self.states[sx].images.get(i) && self.states[sy].images.get(i)) {
                n.set(i);
            }
            fresh.retain(|&f| f != sx && f != sy);
            fresh.extend(self.local(sx, sy, &n));
        }
        fresh
    }
}

/// What a global merge, `joined` (its signatures), adds to the expected update bytes of each
/// image that holds both groups without being over budget.
fn imposed<'j>(joined: &'j [Joined], over_budget: &'j [bool]) -> impl Iterator<Item = (usize, f64)> + 'j {
    joined.iter().filter_map(|j| Some((j, j.added()?))).flat_map(move |(j, more)| j.images.ones().filter(move |&i| !over_budget[i]).map(move |i| (i, more)))
}

/// The images over budget that hold both groups.
fn relief_images(a: &GroupState, b: &GroupState, over_budget: &[bool]) -> Bits {
    let mut n = Bits::new(over_budget.len());
    for i in a.images.ones().filter(|&i| b.images.get(i) && over_budget[i]) {
        n.set(i);
    }
    n
}

/// The score of merging `a` and `b` (cost increase per over-budget image relieved, doubled
/// across classes) and how: globally when both are pristine and that is no dearer than joining
/// them only where the budget requires, which keeps the finer groups (and their update bytes)
/// in the images that have room at the price of one more registry layer; and locally when a
/// global merge would add more to an image within its budget than that image's `room` has left,
/// or when the window cannot show that the two change together ([`Model::joined`]'s `unseen`).
/// `None` when the merge relieves no over-budget image, or crosses classes needlessly.
fn score_merge(model: &Model<'_>, a: &GroupState, b: &GroupState, over_budget: &[bool], needs_cross: &[bool], local_only: bool, room: &[f64]) -> Option<(f64, Mode)> {
    let n = relief_images(a, b, over_budget);
    let relief = n.count();
    let same_class = a.parts.len() == 1 && b.parts.len() == 1 && a.parts[0].class == b.parts[0].class;
    if relief == 0 || (!same_class && !n.ones().any(|i| needs_cross[i])) {
        return None;
    }
    let weight = if same_class { 1.0 } else { CROSS_CLASS_PENALTY };
    let both = a.images.common_count(&b.images);
    let pristine = !local_only && a.unit.is_some() && b.unit.is_some();
    // A join the window cannot show is left to the layerer, which prices it where it must join.
    let joined = pristine.then(|| model.joined(a, b, &a.images.union(&b.images)));
    let unseen = joined.as_ref().is_some_and(|j| j.iter().any(|j| j.unseen));
    let joined = joined.filter(|_| !unseen);
    let global = joined.as_ref().map(|j| model.cost_of_joined(j) - a.cost - b.cost);
    // Only images that hold both without needing the merge (so `relief < both`) can lack room.
    let local = (joined.is_none() || relief < both).then(|| {
        let rest = |g: &GroupState| model.cost(&g.held, &g.images.minus(&n));
        model.joined_cost(a, b, &n) + rest(a) + rest(b) - a.cost - b.cost
    });
    let within_room = || joined.as_ref().is_none_or(|j| imposed(j, over_budget).all(|(i, more)| more <= room[i]));
    let (delta, mode) = match (global, local) {
        (Some(g), Some(l)) if l < g || !within_room() => (l, Mode::Local),
        (Some(g), _) => (g, Mode::Global),
        (None, Some(l)) => (l, if unseen { Mode::Unseen } else { Mode::Local }),
        (None, None) => unreachable!("a merge is global or local"),
    };
    Some((weight * delta / relief as f64, mode))
}

/// What the greedy made of the names, run to `full` groups per image.
pub(super) struct Grouping {
    /// The file's groups. The local merges are not written: they stand for the layerer's own
    /// merging in the images over budget.
    pub(super) groups: Vec<GroupState>,
    /// The expected cost per transition, the local merges included.
    pub(super) cost: f64,
    /// The local merges made so because the window cannot show that the two change together.
    pub(super) unseen_joins: usize,
}

pub(super) fn group_names(model: &Model<'_>, names: &[u32], full: usize) -> Grouping {
    let singles: Vec<Vec<u32>> = names.iter().map(|&n| vec![n]).collect();
    let mut g = Greedy::new(model, &singles);
    g.run(full, false);
    let cost = g.cost();
    Grouping { groups: g.units.into_iter().flatten().collect(), cost, unseen_joins: g.unseen }
}

/// Expected cost per transition of groups (and a plan, in a file that has one) as images use
/// them: the plan replayed as the layerer applies it, then local merges, cheapest first, in
/// every image still over `full` groups, standing for the layerer's least-waste merging.
pub(super) fn layered_cost(model: &Model<'_>, groups: &[Vec<u32>], merges: &[(usize, usize)], full: usize) -> f64 {
    let mut g = Greedy::new(model, groups);
    for &(x, y) in merges {
        g.apply_local(x, y, full);
    }
    g.run(full, true);
    g.cost()
}

#[cfg(test)]
pub(super) mod tests {
    use super::{score_merge, Mode};
    use crate::mine::bits::Bits;
    use crate::mine::model::{GroupState, Model};
    use crate::mine::sources::SourceSet;
    use crate::mine::stats::NameStats;

    /// Names of the given sizes and image sets, each its own bump source with hazard `w`.
    pub(in crate::mine) fn stats(names: &[(u64, &[usize])], images: usize) -> NameStats {
        let n = names.len();
        let bits = |ones: &[usize], len: usize| {
            let mut b = Bits::new(len);
            ones.iter().for_each(|&i| b.set(i));
            b
        };
        NameStats {
            labels: (0..n).map(|k| format!("n{k}")).collect(),
            patterns: (0..n).map(|k| format!("n{k}")).collect(),
            samples: (0..n).map(|k| format!("n{k}-1.0")).collect(),
            size: names.iter().map(|&(s, _)| s).collect(),
            images: names.iter().map(|(_, i)| bits(i, images)).collect(),
            changed: vec![],
            bumped: vec![],
            closure: (0..n)
                .map(|k| {
                    let mut own = SourceSet::empty(n);
                    own.insert(k);
                    own
                })
                .collect(),
            source: (0..n as u32).collect(),
            source_rate: vec![0.1; n],
            transitions: 0,
            image_names: (0..images).map(|i| format!("i{i}")).collect(),
            size_over_time: vec![vec![1]; n],
        }
    }

    /// A group of one name that is still a group of the file (so a merge may be global).
    fn pristine(m: &Model<'_>, name: u32) -> GroupState {
        GroupState { unit: Some(name as usize), ..m.group(&[name]) }
    }

    fn model(stats: &NameStats, w: f64) -> Model<'_> {
        let n = stats.labels.len();
        let names: Vec<u32> = (0..n as u32).collect();
        let mut m = crate::mine::model::build_model(stats, &names, 1.0);
        m.weight = vec![w; n];
        m.busy = vec![w; n];
        m.bumped = vec![w; n];
        m
    }

    #[test]
    fn candidates_pop_by_score_then_ids_and_keep_their_score_to_the_bit() {
        let scores = [3.5, -0.0, 0.0, -2.25, 1e-300, f64::MAX, f64::MIN, 3.5, -2.25, f64::INFINITY];
        let cands: Vec<(f64, usize, usize)> = scores.iter().enumerate().map(|(k, &s)| (s, k % 3, 7 + k % 4)).collect();
        let mut heap: std::collections::BinaryHeap<super::Candidate> = cands.iter().map(|&(s, a, b)| super::Candidate::new(s, a, b)).collect();
        let mut popped = vec![];
        while let Some(c) = heap.pop() {
            popped.push((c.score(), c.a(), c.b()));
        }
        let mut expected = cands.clone();
        expected.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| (x.1, x.2).cmp(&(y.1, y.2))));
        let bits = |v: &[(f64, usize, usize)]| v.iter().map(|&(s, a, b)| (s.to_bits(), a, b)).collect::<Vec<_>>();
        assert_eq!(bits(&popped), bits(&expected));
    }

    #[test]
    fn joining_a_big_name_costs_more_than_joining_two_small_ones() {
        let s = stats(&[(100_000_000, &[0]), (1_000_000, &[0]), (1_000_000, &[0])], 1);
        let m = model(&s, 0.2);
        let g: Vec<_> = (0..3u32).map(|k| pristine(&m, k)).collect();
        let over = [true];
        let (big, mode) = score_merge(&m, &g[0], &g[1], &over, &[false], false, &[f64::INFINITY]).unwrap();
        let (small, _) = score_merge(&m, &g[1], &g[2], &over, &[false], false, &[f64::INFINITY]).unwrap();
        assert!(big > 10.0 * small, "{big} vs {small}");
        assert_eq!(mode, Mode::Global, "the only image needs it: no reason to keep them apart elsewhere");
        assert!(score_merge(&m, &g[1], &g[2], &[false], &[false], false, &[f64::INFINITY]).is_none(), "no image over budget");
    }

    #[test]
    fn a_merge_only_one_image_needs_is_local_and_one_across_classes_needs_a_reason() {
        // n0 and n1 in both images, n2 only in image 1; only image 1 is over budget.
        let s = stats(&[(1_000_000, &[0, 1]), (1_000_000, &[0, 1]), (1_000_000, &[1])], 2);
        // Registry copies weigh nothing, so only the images' own updates count.
        let m = Model { registry_weight: 0.0, ..model(&s, 0.2) };
        let g: Vec<_> = (0..3u32).map(|k| pristine(&m, k)).collect();
        let over = [false, true];
        let (_, mode) = score_merge(&m, &g[0], &g[1], &over, &[false, false], false, &[f64::INFINITY; 2]).unwrap();
        assert_eq!(mode, Mode::Local, "image 0 has room and keeps the finer layers");
        assert!(score_merge(&m, &g[0], &g[2], &over, &[false, false], false, &[f64::INFINITY; 2]).is_none(), "across classes without need");
        assert!(score_merge(&m, &g[0], &g[2], &over, &[false, true], false, &[f64::INFINITY; 2]).is_some(), "image 1 has more classes than room");
    }

    #[test]
    fn a_global_merge_an_image_does_not_need_must_fit_its_room() {
        // n0 and n1 in both images; only image 1 is over budget. Registry copies count, so the
        // merge is global while image 0 has room for what it adds there.
        let s = stats(&[(1_000_000, &[0, 1]), (1_000_000, &[0, 1])], 2);
        let m = model(&s, 0.2);
        let g: Vec<_> = (0..2u32).map(|k| pristine(&m, k)).collect();
        let over = [false, true];
        let more: Vec<(usize, f64)> = super::imposed(&m.joined(&g[0], &g[1], &g[0].images.union(&g[1].images)), &over).collect();
        assert_eq!(more.len(), 1);
        let (image, added) = &more[0];
        assert_eq!(*image, 0, "only the image that does not need the merge");
        assert!(*added > 0.0);
        let mode = |room: f64| score_merge(&m, &g[0], &g[1], &over, &[false, false], false, &[room, 0.0]).unwrap().1;
        assert_eq!(mode(*added), Mode::Global);
        assert_eq!(mode(added * 0.99), Mode::Local);
    }

    #[test]
    fn a_join_the_window_cannot_show_is_left_to_the_layerer() {
        // Four transitions: a chance of change above 1 − ½/5 = 0.9 is beyond what they show.
        // n0 and n1 share source 3; n2 shares nothing; n3 only lends its source.
        let mut s = stats(&[(10_000_000, &[0]), (10_000_000, &[0]), (10_000_000, &[0]), (1, &[0])], 1);
        s.transitions = 4;
        s.size_over_time = vec![vec![1; 5]; 4];
        s.changed = vec![Bits::new(4); 4];
        for k in [0, 1] {
            s.closure[k].insert(3);
        }
        let mode_with = |w: f64, shared_bumped: bool, a: u32, b: u32| {
            let mut m = model(&s, w);
            if !shared_bumped {
                m.bumped[3] = 0.0;
            }
            score_merge(&m, &pristine(&m, a), &pristine(&m, b), &[true], &[false], false, &[f64::INFINITY]).unwrap().1
        };
        let mode = |w: f64, a: u32, b: u32| mode_with(w, true, a, b);
        // Every source bumps with chance 1 − e^(−3) = 0.95.
        assert_eq!(mode(3.0, 0, 2), Mode::Unseen, "each changes beyond the window, and nothing they share does");
        assert_eq!(mode(3.0, 0, 1), Mode::Global, "the source they share changes beyond the window: they change together");
        assert_eq!(mode_with(3.0, false, 0, 1), Mode::Unseen, "a shared source that never bumped shows nothing, whatever its prior rate");
        // Every source bumps with chance 0.1: the window shows what a join costs.
        assert_eq!(mode(0.1, 0, 2), Mode::Global);
    }

    #[test]
    fn global_merges_add_to_an_image_within_its_budget_at_most_its_share() {
        // Image 0 holds 4 names (a budget of 5 leaves it room); image 1 holds them and 20 more.
        let mut names: Vec<(u64, &[usize])> = vec![(1_000_000, &[0, 1]); 4];
        names.extend(vec![(1_000_000, &[1][..]); 20]);
        let s = stats(&names, 2);
        let m = model(&s, 0.2);
        let units: Vec<Vec<u32>> = (0..24).map(|k| vec![k]).collect();
        let added = |unlimited: bool| {
            let mut g = super::Greedy::new(&m, &units);
            if unlimited {
                g.room = vec![f64::INFINITY; 2];
            }
            let before = m.image_costs(&g.states, 2)[0];
            g.run(5, false);
            assert!(g.count[1] <= 5);
            (m.image_costs(&g.states, 2)[0] - before) / before
        };
        assert!(added(false) <= super::IMPOSED_SHARE, "{}", added(false));
        assert!(added(true) > super::IMPOSED_SHARE, "without the room, image 0 takes the merges image 1 needs: {}", added(true));
    }
}
