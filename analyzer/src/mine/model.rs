//! The cost model: change probabilities of groups of names, the expected bytes a group costs
//! per transition in the images that hold it and in the registry, and the hazard calibration.
//!
//! # Signatures
//! A group has one part per class (set of images) of its names. An image holds the parts whose
//! classes it is in: that is its *signature*, and the images with one signature hold the same
//! bytes, which change when any source of the held parts' closures bumps. A group keeps, per
//! signature, the union of those sources, built once ([`Held`]). So:
//! - its cost over any subset of its images (what a local merge leaves of it) sums known
//!   probabilities;
//! - a candidate merge of `a` and `b` is scored without building the joined group
//!   ([`Model::joined_cost`]): an image's joined signature is a pair, one signature of each side
//!   (or none); a pair held on one side keeps that side's probability, and a pair held on both
//!   walks the union of two sets, not the sources of every part again.
//!
//! Hazards are summed in increasing source order, and a cost signature by signature in
//! signature order, so every result is the same to the bit however the group was reached.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use smallvec::SmallVec;

use super::bits::Bits;
use super::sources::{fold_in_either, for_each_in_union, SourceSet};
use super::stats::NameStats;

/// Cost model state shared by all groups.
pub(super) struct Model<'a> {
    pub(super) stats: &'a NameStats,
    /// −ln(1 − q) per bump source.
    pub(super) weight: Vec<f64>,
    /// −ln(1 − q) per bump source in the busy regime.
    pub(super) busy: Vec<f64>,
    /// The fitted −ln(1 − q) of each bump source that bumped in the window, 0 for the others
    /// (whose rate is the prior's alone).
    pub(super) bumped: Vec<f64>,
    /// Class (image set) of each name, and each class's images.
    pub(super) class_of: Vec<u32>,
    pub(super) class_images: Vec<Bits>,
    /// Weight of a distinct layer's registry copy against one image's update (`EmitOptions`).
    pub(super) registry_weight: f64,
}

/// The part of a group in one class.
#[derive(Clone)]
pub(super) struct ClassPart {
    pub(super) class: u32,
    pub(super) size: u64,
}

/// What the images with one signature hold of a group. An image's *signature* is which of the
/// group's parts its classes hold; the images with one signature hold the same bytes and change
/// together.
#[derive(Clone)]
pub(super) struct Held {
    /// The images with this signature, out of all that hold a part (whether or not the group's
    /// state is held by them: a local merge may join it there).
    images: Bits,
    parts: Signature,
    /// The bytes of those parts.
    size: u64,
    /// The union of those parts' sources, their hazards, and P(any of them bumps).
    deps: Arc<SourceSet>,
    hazard: Hazard,
    prob: f64,
}

#[derive(Clone)]
pub(super) struct GroupState {
    pub(super) members: Vec<u32>,
    pub(super) parts: Vec<ClassPart>,
    pub(super) images: Bits,
    /// One entry per signature, ordered by signature (`false` before `true`, part by part): the
    /// order in which costs are summed.
    pub(super) held: Vec<Held>,
    pub(super) cost: f64,
    /// P(the group as a whole changes): the key for nearest-neighbour candidates.
    pub(super) prob: f64,
    pub(super) alive: bool,
    /// The file group this state is, while it is one (every image holding it sees it whole).
    pub(super) unit: Option<usize>,
    /// The file groups it is made of.
    pub(super) units: Vec<usize>,
}

/// Hazards summed over a set of sources, in both regimes, and the fitted hazard of those of
/// them that bumped in the window.
#[derive(Clone, Copy, Default)]
struct Hazard {
    fitted: f64,
    busy: f64,
    bumped: f64,
}

impl Hazard {
    fn add(&mut self, model: &Model<'_>, source: usize) {
        *self = self.plus(model, source);
    }

    fn plus(self, model: &Model<'_>, source: usize) -> Hazard {
        Hazard { fitted: self.fitted + model.weight[source], busy: self.busy + model.busy[source], bumped: self.bumped + model.bumped[source] }
    }

    /// The mean of the two regimes' P(change).
    fn prob(&self) -> f64 {
        1.0 - 0.5 * ((-self.fitted).exp() + (-self.busy).exp())
    }
}

/// Which of a group's parts an image holds: bit `k` for part `k`. Signatures are ordered as
/// their lists of flags, part by part, not held before held.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Signature(Bits);

impl Signature {
    fn new(parts: usize, held: impl Fn(usize) -> bool) -> Self {
        let mut sig = Bits::new(parts);
        (0..parts).filter(|&k| held(k)).for_each(|k| sig.set(k));
        Signature(sig)
    }

    fn holds(&self, part: usize) -> bool {
        self.0.get(part)
    }

    /// The first part where two signatures differ (`None` standing for the signature that
    /// holds nothing), and whether `x` holds it.
    fn first_difference(x: Option<&Signature>, y: Option<&Signature>) -> Option<(usize, bool)> {
        let words = |s: Option<&Signature>, w: usize| s.map_or(0, |s| s.0 .0[w]);
        let len = x.or(y).map_or(0, |s| s.0 .0.len());
        (0..len).find_map(|w| {
            let differ = words(x, w) ^ words(y, w);
            (differ != 0).then(|| {
                let bit = differ.trailing_zeros() as usize;
                (w * 64 + bit, words(x, w) >> bit & 1 == 1)
            })
        })
    }
}

impl Ord for Signature {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match Signature::first_difference(Some(self), Some(other)) {
            None => std::cmp::Ordering::Equal,
            Some((_, true)) => std::cmp::Ordering::Greater,
            Some((_, false)) => std::cmp::Ordering::Less,
        }
    }
}

impl PartialOrd for Signature {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One signature of two groups joined: a signature of each (`None` where the images hold no
/// part of that group) and the images that have both.
struct JoinedHeld<'g> {
    images: Bits,
    a: Option<&'g Held>,
    b: Option<&'g Held>,
}

impl JoinedHeld<'_> {
    fn size(&self) -> u64 {
        self.a.map_or(0, |h| h.size) + self.b.map_or(0, |h| h.size)
    }
}

/// One signature of two groups joined, priced ([`Model::joined`]).
pub(super) struct Joined {
    pub(super) images: Bits,
    size: u64,
    prob: f64,
    /// The expected bytes of the two sides apart, where the signature holds both.
    apart: Option<f64>,
    /// Whether the window cannot show that the two sides change together ([`Model::unseen`]);
    /// `false` where the signature holds one side only.
    pub(super) unseen: bool,
}

impl Joined {
    /// What joining adds to the expected update bytes of each of its images: nothing where
    /// they hold one side only.
    pub(super) fn added(&self) -> Option<f64> {
        self.apart.map(|apart| self.size as f64 * self.prob - apart)
    }
}

impl Model<'_> {
    /// The expected cost per transition of a group held by `images`: Σ over images of S·P of
    /// what each holds, + Σ over the distinct things held (registry copies, weighted) of S·P.
    /// Summed signature by signature, in the order of `held`.
    pub(super) fn cost(&self, held: &[Held], images: &Bits) -> f64 {
        held.iter().map(|h| (h.size, h.prob, h.images.common_count(images))).filter(|&(.., holders)| holders > 0).map(|(size, prob, holders)| self.term(size, prob, holders)).sum()
    }

    fn term(&self, size: u64, prob: f64, holders: usize) -> f64 {
        size as f64 * prob * (holders as f64 + self.registry_weight)
    }

    /// The cost of `a` and `b` joined, held by `images`, without building the joined group
    /// ([`Model::joined`]).
    pub(super) fn joined_cost(&self, a: &GroupState, b: &GroupState, images: &Bits) -> f64 {
        self.cost_of_joined(&self.joined(a, b, images))
    }

    /// Whether a chance of change is beyond what the window's `T` transitions can show: a name
    /// that changed at every one still stays unchanged at the next with chance `½/(T+1)`
    /// (Jeffreys), however many sources the model sums for it.
    fn beyond_window(&self, prob: f64) -> bool {
        prob > 1.0 - self.stats.unseen_rate()
    }

    /// Whether the window cannot show that `x` and `y` (whose sources' union has hazard
    /// `union`) change together: each changes beyond what it can show, so that joining them
    /// costs next to nothing in the model, while the sources they share that bumped in the
    /// window do not. Such a join is free only as long as every update stays as busy as the
    /// window's; at a quieter one, one side changes and the other's bytes are pulled with it.
    /// Shared sources that never bumped show nothing: summed over a deep closure, their prior
    /// rates alone would put any two big closures beyond the window.
    fn unseen(&self, x: &Held, y: &Held, union: Hazard) -> bool {
        // Hazards add up over sources: what the two share is theirs less their union's.
        let shared_bumped = x.hazard.bumped + y.hazard.bumped - union.bumped;
        self.beyond_window(x.prob) && self.beyond_window(y.prob) && !self.beyond_window(1.0 - (-shared_bumped).exp())
    }

    /// The cost of a joined group from its signatures, summed in signature order.
    pub(super) fn cost_of_joined(&self, joined: &[Joined]) -> f64 {
        joined.iter().map(|j| self.term(j.size, j.prob, j.images.count())).sum()
    }

    /// The signatures of `a` and `b` joined that the images `images` have, priced: a signature
    /// held on one side only keeps that side's change probability, and one held on both walks
    /// the union of the two sides' sources.
    pub(super) fn joined(&self, a: &GroupState, b: &GroupState, images: &Bits) -> SmallVec<[Joined; 8]> {
        self.joined_held(a, b, images)
            .into_iter()
            .map(|j| {
                let size = j.size();
                let (prob, apart, unseen) = match (j.a, j.b) {
                    (Some(x), Some(y)) => {
                        let union = fold_in_either(&x.deps, &y.deps, Hazard::default(), |hazard, s| hazard.plus(self, s));
                        (union.prob(), Some(x.size as f64 * x.prob + y.size as f64 * y.prob), self.unseen(x, y, union))
                    }
                    (Some(h), None) | (None, Some(h)) => (h.prob, None, false),
                    (None, None) => unreachable!("a joined signature holds a part"),
                };
                Joined { images: j.images, size, prob, apart, unseen }
            })
            .collect()
    }

    /// Each image's expected update bytes with `groups`.
    pub(super) fn image_costs(&self, groups: &[GroupState], images: usize) -> Vec<f64> {
        let mut costs = vec![0.0; images];
        for g in groups.iter().filter(|g| g.alive) {
            for h in &g.held {
                h.images.common_ones(&g.images).for_each(|i| costs[i] += h.size as f64 * h.prob);
            }
        }
        costs
    }

    /// The signatures of `a` and `b` joined that the images `within` have, in signature order.
    fn joined_held<'g>(&self, a: &'g GroupState, b: &'g GroupState, within: &Bits) -> SmallVec<[JoinedHeld<'g>; 8]> {
        // Which signature of each side every image of `within` has (`NONE`: none).
        const NONE: u32 = u32::MAX;
        let mut at_a: SmallVec<[u32; 64]> = SmallVec::from_buf([NONE; 64]); // cheaper than `from_elem`
        at_a.resize(within.len(), NONE);
        let mut at_b = at_a.clone();
        for (g, at) in [(a, &mut at_a), (b, &mut at_b)] {
            for (k, h) in g.held.iter().enumerate() {
                h.images.common_ones(within).for_each(|i| at[i] = k as u32);
            }
        }
        let mut pairs: SmallVec<[(u32, u32); 8]> = SmallVec::new();
        let mut joined: SmallVec<[JoinedHeld<'g>; 8]> = SmallVec::new();
        for i in within.ones() {
            let pair = (at_a[i], at_b[i]);
            if pair == (NONE, NONE) {
                continue;
            }
            match pairs.iter().position(|&p| p == pair) {
                Some(k) => joined[k].images.set(i),
                None => {
                    let mut images = within.empty_like();
                    images.set(i);
                    let held = |g: &'g GroupState, k: u32| (k != NONE).then(|| &g.held[k as usize]);
                    joined.push(JoinedHeld { images, a: held(a, pair.0), b: held(b, pair.1) });
                    pairs.push(pair);
                }
            }
        }
        joined.sort_unstable_by(|p, q| joined_order(a, b, p, q));
        joined
    }

    /// The group of `members` (not empty), built in one pass.
    pub(super) fn group(&self, members: &[u32]) -> GroupState {
        let mut parts: Vec<(ClassPart, SourceSet)> = vec![];
        for &m in members {
            let class = self.class_of[m as usize];
            let k = match parts.iter().position(|(p, _)| p.class == class) {
                Some(k) => k,
                None => {
                    parts.push((ClassPart { class, size: 0 }, SourceSet::empty(self.weight.len())));
                    parts.len() - 1
                }
            };
            parts[k].0.size += self.stats.size[m as usize];
            parts[k].1.union_with(&self.stats.closure[m as usize]);
        }
        parts.sort_by_key(|(p, _)| p.class);
        let mut images = Bits::new(self.stats.image_names.len());
        for (p, _) in &parts {
            images.or(&self.class_images[p.class as usize]);
        }
        let held = self.held(&parts, &images);
        let mut members = members.to_vec();
        members.sort_unstable();
        let cost = self.cost(&held, &images);
        let prob = self.union_prob(&held);
        GroupState { members, parts: parts.into_iter().map(|(p, _)| p).collect(), images, held, cost, prob, alive: true, unit: None, units: vec![] }
    }

    /// The signatures of the images `cover` (each holding a part): every signature's union from
    /// one pass over the parts' sources, each part tagged with the signatures that hold it (64
    /// signatures a pass).
    fn held(&self, parts: &[(ClassPart, SourceSet)], cover: &Bits) -> Vec<Held> {
        let mut by_sig: BTreeMap<Signature, Bits> = BTreeMap::new();
        for i in cover.ones() {
            by_sig.entry(Signature::new(parts.len(), |k| self.class_images[parts[k].0.class as usize].get(i))).or_insert_with(|| cover.empty_like()).set(i);
        }
        let sigs: Vec<(Signature, Bits)> = by_sig.into_iter().collect();
        let mut held = Vec::with_capacity(sigs.len());
        for batch in sigs.chunks(64) {
            let mut unions = vec![vec![]; batch.len()];
            let tag = |k: usize| batch.iter().enumerate().filter(|(_, (sig, _))| sig.holds(k)).fold(0u64, |t, (j, _)| t | 1 << j);
            for_each_in_union(parts.iter().enumerate().map(|(k, (_, deps))| (deps, tag(k))).filter(|&(_, t)| t != 0), |s, mut t| {
                while t != 0 {
                    unions[t.trailing_zeros() as usize].push(s as u32);
                    t &= t - 1;
                }
            });
            for ((sig, images), union) in batch.iter().zip(unions) {
                let size = parts.iter().enumerate().filter(|&(k, _)| sig.holds(k)).map(|(_, (p, _))| p.size).sum();
                let deps = SourceSet::from_sorted(self.weight.len(), union);
                let hazard = self.hazard_of(&deps);
                held.push(Held { images: images.clone(), parts: sig.clone(), size, hazard, prob: hazard.prob(), deps: Arc::new(deps) });
            }
        }
        held
    }

    /// `a` and `b` as one group, held by `images` (all that hold either unless given).
    pub(super) fn merged(&self, a: &GroupState, b: &GroupState, images: Option<Bits>) -> GroupState {
        let mut cover = a.images.empty_like();
        a.held.iter().chain(&b.held).for_each(|h| cover.or(&h.images));
        let layout = joined_layout(&a.parts, &b.parts);
        let held: Vec<Held> = self.joined_held(a, b, &cover).into_iter().map(|j| self.materialized(j, &layout)).collect();
        let images = images.unwrap_or_else(|| a.images.union(&b.images));
        let parts = layout
            .into_iter()
            .map(|(i, j)| {
                let (x, y) = (i.map(|i| &a.parts[i]), j.map(|j| &b.parts[j]));
                ClassPart { class: x.or(y).expect("a joined part is in either group").class, size: x.map_or(0, |p| p.size) + y.map_or(0, |p| p.size) }
            })
            .collect();
        let mut members = [a.members.as_slice(), b.members.as_slice()].concat();
        members.sort_unstable();
        let cost = self.cost(&held, &images);
        let prob = self.union_prob(&held);
        let units = [a.units.as_slice(), b.units.as_slice()].concat();
        GroupState { members, parts, images, held, cost, prob, alive: true, unit: None, units }
    }

    /// A joined signature as one of the joined group's own: its sources shared with the side
    /// that holds them all, or their union.
    fn materialized(&self, j: JoinedHeld<'_>, layout: &[(Option<usize>, Option<usize>)]) -> Held {
        let size = j.size();
        let on = |h: Option<&Held>, k: Option<usize>| k.is_some_and(|k| h.is_some_and(|h| h.parts.holds(k)));
        let parts = Signature::new(layout.len(), |k| on(j.a, layout[k].0) || on(j.b, layout[k].1));
        let (deps, hazard) = match (j.a, j.b) {
            (Some(x), Some(y)) => {
                let mut union = (*x.deps).clone();
                union.union_with(&y.deps);
                let hazard = self.hazard_of(&union);
                (Arc::new(union), hazard)
            }
            (Some(h), None) | (None, Some(h)) => (h.deps.clone(), h.hazard),
            (None, None) => unreachable!("a joined signature holds a part"),
        };
        Held { images: j.images, parts, size, deps, hazard, prob: hazard.prob() }
    }

    /// P(change) of a group: any source of any signature's union bumps. Summed in increasing
    /// source order without building the union.
    fn union_prob(&self, held: &[Held]) -> f64 {
        if let [only] = held {
            return only.prob;
        }
        let mut hazard = Hazard::default();
        for_each_in_union(held.iter().map(|h| (&*h.deps, 1)), |d, _| hazard.add(self, d));
        hazard.prob()
    }

    /// The hazards of one set of sources, summed in increasing order.
    fn hazard_of(&self, deps: &SourceSet) -> Hazard {
        let mut hazard = Hazard::default();
        deps.for_each(|d| hazard.add(self, d));
        hazard
    }

    /// The same group, held by `images` only.
    pub(super) fn with_images(&self, g: &GroupState, images: Bits) -> GroupState {
        let cost = self.cost(&g.held, &images);
        GroupState { images, cost, ..g.clone() }
    }
}

/// The order of two signatures of `a` and `b` joined, as the joined group orders its own,
/// without building them: the first joined part where they differ is the first among `a`'s
/// parts or `b`'s where they do (a part of both classes differs on both sides alike), placed
/// among the joined parts by class.
fn joined_order(a: &GroupState, b: &GroupState, p: &JoinedHeld<'_>, q: &JoinedHeld<'_>) -> std::cmp::Ordering {
    let differ = |x: Option<&Held>, y: Option<&Held>| Signature::first_difference(x.map(|h| &h.parts), y.map(|h| &h.parts));
    let at_a = |k: usize| k + b.parts.partition_point(|q| q.class < a.parts[k].class);
    let at_b = |k: usize| k + a.parts.partition_point(|q| q.class < b.parts[k].class);
    let p_holds = match (differ(p.a, q.a), differ(p.b, q.b)) {
        (None, None) => return std::cmp::Ordering::Equal,
        (Some((_, holds)), None) | (None, Some((_, holds))) => holds,
        (Some((ka, in_a)), Some((kb, in_b))) => {
            if at_a(ka) <= at_b(kb) {
                in_a
            } else {
                in_b
            }
        }
    };
    if p_holds {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Less
    }
}

/// The parts of two groups joined, in class order: for each, its index among `a`'s parts and
/// among `b`'s (both sorted by class), where it is one.
fn joined_layout(a: &[ClassPart], b: &[ClassPart]) -> Vec<(Option<usize>, Option<usize>)> {
    let (mut i, mut j) = (0, 0);
    let mut layout = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) if p.class == q.class => (Some(i), Some(j)),
            (Some(p), Some(q)) if p.class < q.class => (Some(i), None),
            (Some(_), None) => (Some(i), None),
            _ => (None, Some(j)),
        };
        i += usize::from(next.0.is_some());
        j += usize::from(next.1.is_some());
        layout.push(next);
    }
    layout
}

pub(super) fn build_model<'a>(stats: &'a NameStats, names: &[u32], registry_weight: f64) -> Model<'a> {
    let mut class_index: HashMap<Bits, u32> = HashMap::new();
    let mut class_images = vec![];
    let mut class_of = vec![u32::MAX; stats.labels.len()];
    for &n in names {
        let set = stats.images[n as usize].clone();
        let c = *class_index.entry(set.clone()).or_insert_with(|| {
            class_images.push(set);
            class_images.len() as u32 - 1
        });
        class_of[n as usize] = c;
    }
    let raw: Vec<f64> = stats.source_rate.iter().map(|q| -(1.0 - q).ln()).collect();
    let beta = calibration(stats, names, &raw);
    tracing::info!("change model calibrated to the training history: hazard scale {beta:.3}");
    let weight: Vec<f64> = raw.iter().map(|w| w * beta).collect();
    // The busy regime: the sources' own smoothed rates, or the fitted ones where the window
    // was busier than that.
    let busy = raw.iter().map(|w| w * beta.max(1.0)).collect();
    // A source that never bumped has the prior's rate alone.
    let bumped = weight.iter().zip(&stats.source_rate).map(|(&w, &q)| if q > stats.unseen_rate() { w } else { 0.0 }).collect();
    Model { stats, weight, busy, bumped, class_of, class_images, registry_weight }
}

/// The hazard scale `β` that makes the independence model agree with the training history.
///
/// Summing every closure source's rate overstates how often a name with a deep closure
/// changes: bumps cluster (one upload rebuilds many packages at once) and the prior gives every
/// source that never bumped a small rate, which adds up over hundreds of sources. So each
/// name's hazard `L = Σ −ln(1 − q_s)` is scaled by one `β`, fitted by maximum likelihood to the
/// training transitions: a name present at both ends of `E` transitions that changed at `k` of
/// them contributes `k·ln(1 − e^{−βL}) − (E − k)·βL`. The log-likelihood is concave in `β`, so
/// its derivative is bisected (on a log scale, within `[1e-3, 1e3]`).
fn calibration(stats: &NameStats, names: &[u32], raw: &[f64]) -> f64 {
    let obs: Vec<(f64, f64, f64)> = names
        .iter()
        .map(|&n| {
            let n = n as usize;
            let sizes = &stats.size_over_time[n];
            let exposed = (0..stats.transitions).filter(|&t| sizes[t] > 0 && sizes[t + 1] > 0).count();
            let changed = (0..stats.transitions).filter(|&t| sizes[t] > 0 && sizes[t + 1] > 0 && stats.changed[t].get(n)).count();
            let mut hazard = 0.0;
            stats.closure[n].for_each(|s| hazard += raw[s]);
            (hazard, changed as f64, (exposed - changed) as f64)
        })
        .filter(|&(hazard, ..)| hazard > 0.0)
        .collect();
    fit_scale(&obs)
}

/// The maximum-likelihood scale `β` for observations `(L, changed, stayed)`: names with raw
/// hazard `L` that changed at `changed` and stayed at `stayed` transitions.
fn fit_scale(obs: &[(f64, f64, f64)]) -> f64 {
    // d/dβ of the log-likelihood; decreasing in β.
    let slope = |beta: f64| -> f64 {
        obs.iter()
            .map(|&(l, k, stay)| {
                let e = (-beta * l).exp();
                k * l * e / (1.0 - e).max(f64::MIN_POSITIVE) - stay * l
            })
            .sum()
    };
    let (mut lo, mut hi) = (1e-3f64.ln(), 1e3f64.ln());
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if slope(mid.exp()) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// The calibrated hazard of one name's own bumps, averaged over `names` (4 decimals, so that
/// the file does not churn): what the layerer assumes per path for names the file does not
/// know, whose change probability is then `1 − e^(−hazard · closure size)`.
pub(super) fn path_hazard(model: &Model<'_>, names: &[u32]) -> f64 {
    let sum: f64 = names.iter().map(|&n| model.weight[model.stats.source[n as usize] as usize]).sum();
    (sum / names.len().max(1) as f64 * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{build_model, fit_scale, Hazard, Model};
    use crate::mine::bits::Bits;
    use crate::mine::greedy::tests::stats;
    use crate::mine::sources::SourceSet;

    /// The cost of the group of `members` held by `images`, by its definition: per signature
    /// (which classes of the group an image holds, ordered as flags over the classes in
    /// increasing order), the held names' bytes times the change probability of the union of
    /// their closures, summed in increasing source order.
    fn cost_by_definition(m: &Model<'_>, members: &[u32], images: &Bits) -> f64 {
        let classes: BTreeSet<u32> = members.iter().map(|&n| m.class_of[n as usize]).collect();
        let mut by_sig: BTreeMap<Vec<bool>, (Vec<u32>, usize)> = BTreeMap::new();
        for i in images.ones() {
            let sig = classes.iter().map(|&c| m.class_images[c as usize].get(i)).collect();
            let held = members.iter().copied().filter(|&n| m.class_images[m.class_of[n as usize] as usize].get(i)).collect();
            by_sig.entry(sig).or_insert((held, 0)).1 += 1;
        }
        by_sig.values().map(|(held, holders)| held.iter().map(|&n| m.stats.size[n as usize]).sum::<u64>() as f64 * prob_by_definition(m, held) * (*holders as f64 + m.registry_weight)).sum()
    }

    /// P(change) of the union of the names' closures, summed in increasing source order.
    fn prob_by_definition(m: &Model<'_>, names: &[u32]) -> f64 {
        let mut sources = BTreeSet::new();
        names.iter().for_each(|&n| m.stats.closure[n as usize].for_each(|s| _ = sources.insert(s)));
        let mut hazard = Hazard::default();
        sources.into_iter().for_each(|s| hazard.add(m, s));
        hazard.prob()
    }

    /// Images in a ring: name k is in images k and k+1, and depends on the sources of the 12
    /// names from it round the ring and of 2 of 5 libraries every image holds. Each image
    /// holds three parts of the group of all names, a signature of its own.
    fn ring(images: usize) -> crate::mine::stats::NameStats {
        let mut names: Vec<(u64, Vec<usize>)> = (0..images).map(|k| (1000 + k as u64, vec![k, (k + 1) % images])).collect();
        names.extend((0..5).map(|l| (50_000 + l, (0..images).collect())));
        let mut s = stats(&names.iter().map(|(size, i)| (*size, &i[..])).collect::<Vec<_>>(), images);
        for k in 0..images {
            let mut deps = SourceSet::empty(names.len());
            (k..k + 12).map(|d| d % images).chain([images + k % 5, images + (k + 2) % 5]).for_each(|d| deps.insert(d));
            s.closure[k] = deps;
        }
        s
    }

    /// The model of every name of `s`, with hazards that differ per source and regime.
    fn ring_model(s: &crate::mine::stats::NameStats) -> Model<'_> {
        let n = s.labels.len();
        let everything: Vec<u32> = (0..n as u32).collect();
        let mut m = build_model(s, &everything, 1.0);
        m.weight = (0..n).map(|d| 1.0 / (3.0 + d as f64).powf(1.3)).collect();
        m.busy = (0..n).map(|d| 0.3 / (1.0 + d as f64).sqrt()).collect();
        m
    }

    fn every_third(images: usize) -> Bits {
        let mut some = Bits::new(images);
        (0..images).step_by(3).for_each(|i| some.set(i));
        some
    }

    #[test]
    fn the_cost_of_a_group_seen_differently_by_many_images_is_its_definition_to_the_bit() {
        let images = 70;
        let s = ring(images);
        let m = ring_model(&s);
        let everything: Vec<u32> = (0..s.labels.len() as u32).collect();
        let group = m.group(&everything);
        assert_eq!(group.parts.len(), images + 1);
        assert_eq!(group.cost.to_bits(), cost_by_definition(&m, &everything, &group.images).to_bits());
        let some = every_third(images);
        assert_eq!(m.cost(&group.held, &some).to_bits(), cost_by_definition(&m, &everything, &some).to_bits());
        assert_eq!(group.prob.to_bits(), prob_by_definition(&m, &everything).to_bits());
    }

    #[test]
    fn two_groups_joined_cost_their_union_by_definition_to_the_bit_whether_scored_or_built() {
        // Two groups of the ring, each held by every image, whose parts interleave by class
        // and share the libraries' class: the joined signatures are ordered across both sides.
        let images = 70;
        let s = ring(images);
        let m = ring_model(&s);
        let (a, b): (Vec<u32>, Vec<u32>) = (0..s.labels.len() as u32).partition(|&k| k % 3 == 0 || k == images as u32 + 1);
        let both: Vec<u32> = (0..s.labels.len() as u32).collect();
        let (ga, gb) = (m.group(&a), m.group(&b));
        let all = ga.images.clone();
        let some = every_third(images);
        for within in [&all, &some] {
            let expected = cost_by_definition(&m, &both, within).to_bits();
            assert_eq!(m.joined_cost(&ga, &gb, within).to_bits(), expected, "scored");
            assert_eq!(m.joined_cost(&gb, &ga, within).to_bits(), expected, "scored the other way round");
            assert_eq!(m.merged(&ga, &gb, Some(within.clone())).cost.to_bits(), expected, "built");
        }
        assert_eq!(m.merged(&ga, &gb, None).prob.to_bits(), prob_by_definition(&m, &both).to_bits());
        // A group left only where a local merge did not take it still brings its parts to the
        // images it left, when joined there.
        let rest = m.with_images(&ga, all.minus(&some));
        assert_eq!(rest.cost.to_bits(), cost_by_definition(&m, &a, &all.minus(&some)).to_bits());
        assert_eq!(m.joined_cost(&rest, &gb, &some).to_bits(), cost_by_definition(&m, &both, &some).to_bits());
    }

    /// Observations with the expected counts of a world whose true scale is `beta`.
    fn world(beta: f64) -> Vec<(f64, f64, f64)> {
        [0.1, 0.5, 1.0, 2.0, 4.0]
            .iter()
            .map(|&l| {
                let p = 1.0 - (-beta * l).exp();
                (l, 100.0 * p, 100.0 * (1.0 - p))
            })
            .collect()
    }

    #[test]
    fn the_fitted_scale_recovers_the_scale_that_made_the_observations() {
        for beta in [0.05, 0.5, 1.0, 3.0] {
            let fitted = fit_scale(&world(beta));
            assert!((fitted / beta - 1.0).abs() < 1e-6, "{beta} -> {fitted}");
        }
    }

    #[test]
    fn a_window_without_changes_fits_the_smallest_scale_and_one_without_stays_the_largest() {
        let quiet: Vec<_> = world(1.0).into_iter().map(|(l, k, s)| (l, 0.0, k + s)).collect();
        assert!(fit_scale(&quiet) < 1.01e-3);
        let busy: Vec<_> = world(1.0).into_iter().map(|(l, k, s)| (l, k + s, 0.0)).collect();
        assert!(fit_scale(&busy) > 0.99e3);
    }
}
