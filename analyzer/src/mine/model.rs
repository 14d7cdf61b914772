//! The cost model: change probabilities of groups of names, the expected bytes a group costs
//! per transition in the images that hold it and in the registry, and the hazard calibration.

use std::collections::{BTreeMap, HashMap};

use super::bits::Bits;
use super::sources::{for_each_in_union, SourceSet};
use super::stats::NameStats;

/// Cost model state shared by all groups.
pub(super) struct Model<'a> {
    pub(super) stats: &'a NameStats,
    /// −ln(1 − q) per bump source.
    pub(super) weight: Vec<f64>,
    /// −ln(1 − q) per bump source in the busy regime.
    pub(super) busy: Vec<f64>,
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
    pub(super) deps: SourceSet,
    /// The hazards of `deps`, summed in increasing source order: what the union of this part
    /// alone sums to, kept so that costs over image subsets need not walk the sources again.
    hazard: Hazard,
}

#[derive(Clone)]
pub(super) struct GroupState {
    pub(super) members: Vec<u32>,
    pub(super) parts: Vec<ClassPart>,
    pub(super) images: Bits,
    pub(super) cost: f64,
    /// P(the group as a whole changes): the key for nearest-neighbour candidates.
    pub(super) prob: f64,
    pub(super) alive: bool,
    /// The file group this state is, while it is one (every image holding it sees it whole).
    pub(super) unit: Option<usize>,
    /// The file groups it is made of.
    pub(super) units: Vec<usize>,
}

/// Hazards summed over a set of sources, in both regimes.
#[derive(Clone, Copy, Default)]
struct Hazard {
    fitted: f64,
    busy: f64,
}

impl Hazard {
    fn add(&mut self, model: &Model<'_>, source: usize) {
        self.fitted += model.weight[source];
        self.busy += model.busy[source];
    }

    /// The mean of the two regimes' P(change).
    fn prob(&self) -> f64 {
        1.0 - 0.5 * ((-self.fitted).exp() + (-self.busy).exp())
    }
}

impl Model<'_> {
    /// Σ over images of the part it holds + Σ over distinct parts (registry copies, weighted),
    /// each S·P.
    ///
    /// Images are counted by signature, which parts they hold. The unions of the signatures
    /// that hold several parts are read from one pass over the parts ([`Model::unions_prob`]).
    pub(super) fn cost(&self, parts: &[ClassPart], images: &Bits) -> f64 {
        let mut by_sig: BTreeMap<Vec<bool>, usize> = BTreeMap::new();
        for i in images.ones() {
            *by_sig.entry(parts.iter().map(|p| self.class_images[p.class as usize].get(i)).collect()).or_insert(0) += 1;
        }
        let sigs: Vec<(&Vec<bool>, usize)> = by_sig.iter().map(|(sig, &holders)| (sig, holders)).collect();
        let several: Vec<usize> = (0..sigs.len()).filter(|&j| sigs[j].0.iter().filter(|&&on| on).count() > 1).collect();
        let mut prob = vec![None; sigs.len()];
        for batch in several.chunks(64) {
            let batch_sigs: Vec<&[bool]> = batch.iter().map(|&j| sigs[j].0.as_slice()).collect();
            for (&j, p) in batch.iter().zip(self.unions_prob(parts, &batch_sigs)) {
                prob[j] = Some(p);
            }
        }
        sigs.iter()
            .zip(prob)
            .map(|(&(sig, holders), prob)| {
                let held = || parts.iter().zip(sig).filter(|(_, &on)| on).map(|(p, _)| p);
                let prob = prob.unwrap_or_else(|| self.union_prob(held()));
                held().map(|p| p.size).sum::<u64>() as f64 * prob * (holders as f64 + self.registry_weight)
            })
            .sum()
    }

    /// P(change) of the union of the parts each signature holds (at most 64 signatures), all
    /// from one pass over the parts' sources: the same sums, in the same order, as
    /// [`Model::union_prob`] for each.
    fn unions_prob(&self, parts: &[ClassPart], sigs: &[&[bool]]) -> Vec<f64> {
        let tag = |k: usize| sigs.iter().enumerate().filter(|(_, sig)| sig[k]).fold(0u64, |t, (j, _)| t | 1 << j);
        let tagged = parts.iter().enumerate().map(|(k, p)| (&p.deps, tag(k))).filter(|&(_, t)| t != 0);
        let mut hazards = vec![Hazard::default(); sigs.len()];
        for_each_in_union(tagged, |s, mut t| {
            while t != 0 {
                hazards[t.trailing_zeros() as usize].add(self, s);
                t &= t - 1;
            }
        });
        hazards.iter().map(Hazard::prob).collect()
    }

    /// The group of `members` (not empty), built in one pass.
    pub(super) fn group(&self, members: &[u32]) -> GroupState {
        let mut parts: Vec<ClassPart> = vec![];
        for &m in members {
            let class = self.class_of[m as usize];
            let k = match parts.iter().position(|p| p.class == class) {
                Some(k) => k,
                None => {
                    parts.push(ClassPart { class, size: 0, deps: SourceSet::empty(self.weight.len()), hazard: Hazard::default() });
                    parts.len() - 1
                }
            };
            parts[k].size += self.stats.size[m as usize];
            parts[k].deps.union_with(&self.stats.closure[m as usize]);
        }
        parts.iter_mut().for_each(|p| p.hazard = self.hazard_of(&p.deps));
        parts.sort_by_key(|p| p.class);
        let mut images = Bits::new(self.stats.image_names.len());
        for p in &parts {
            images.or(&self.class_images[p.class as usize]);
        }
        let mut members = members.to_vec();
        members.sort_unstable();
        let cost = self.cost(&parts, &images);
        GroupState { members, prob: self.parts_prob(&parts), parts, images, cost, alive: true, unit: None, units: vec![] }
    }

    /// The class parts of two groups joined, and the images holding either.
    pub(super) fn joined(&self, a: &GroupState, b: &GroupState) -> (Vec<ClassPart>, Bits) {
        // Both part lists are sorted by class: merge them in one pass.
        let mut parts = Vec::with_capacity(a.parts.len() + b.parts.len());
        let (mut x, mut y) = (a.parts.iter().peekable(), b.parts.iter().peekable());
        loop {
            let next = match (x.peek(), y.peek()) {
                (Some(p), Some(q)) if p.class == q.class => {
                    let mut joined = (*p).clone();
                    joined.size += q.size;
                    joined.deps.union_with(&q.deps);
                    joined.hazard = self.hazard_of(&joined.deps);
                    x.next();
                    y.next();
                    joined
                }
                (Some(p), Some(q)) if p.class < q.class => x.next().expect("peeked").clone(),
                (Some(_), None) => x.next().expect("peeked").clone(),
                (_, Some(_)) => y.next().expect("peeked").clone(),
                (None, None) => break,
            };
            parts.push(next);
        }
        let mut images = a.images.clone();
        images.or(&b.images);
        (parts, images)
    }

    /// `a` and `b` as one group, held by `images` (all that hold either unless given).
    pub(super) fn merged(&self, a: &GroupState, b: &GroupState, images: Option<Bits>) -> GroupState {
        let (parts, union) = self.joined(a, b);
        let images = images.unwrap_or(union);
        let mut members = [a.members.as_slice(), b.members.as_slice()].concat();
        members.sort_unstable();
        let cost = self.cost(&parts, &images);
        let prob = self.parts_prob(&parts);
        let units = [a.units.as_slice(), b.units.as_slice()].concat();
        GroupState { members, parts, images, cost, prob, alive: true, unit: None, units }
    }

    /// P(change) of a group made of `parts`: any source in any part's closure bumps.
    pub(super) fn parts_prob(&self, parts: &[ClassPart]) -> f64 {
        self.union_prob(parts.iter())
    }

    /// P(change) of the union of some parts' sources (the mean of the fitted and the busy
    /// regime), summed in increasing source order without building the union.
    fn union_prob<'p>(&self, parts: impl Iterator<Item = &'p ClassPart>) -> f64 {
        let mut parts = parts.peekable();
        let Some(first) = parts.next() else { return Hazard::default().prob() };
        if parts.peek().is_none() {
            return first.hazard.prob();
        }
        let mut hazard = Hazard::default();
        for_each_in_union(std::iter::once(first).chain(parts).map(|p| (&p.deps, 1)), |d, _| hazard.add(self, d));
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
        let cost = self.cost(&g.parts, &images);
        GroupState { images, cost, ..g.clone() }
    }
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
    let weight = raw.iter().map(|w| w * beta).collect();
    // The busy regime: the sources' own smoothed rates, or the fitted ones where the window
    // was busier than that.
    let busy = raw.iter().map(|w| w * beta.max(1.0)).collect();
    Model { stats, weight, busy, class_of, class_images, registry_weight }
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
    use std::collections::BTreeMap;

    use super::{build_model, fit_scale, ClassPart, Model};
    use crate::mine::bits::Bits;
    use crate::mine::greedy::tests::stats;
    use crate::mine::sources::SourceSet;

    /// The cost by its definition: per signature, the union of the held parts' sources walked
    /// on its own.
    fn cost_by_definition(m: &Model<'_>, parts: &[ClassPart], images: &Bits) -> f64 {
        let mut by_sig: BTreeMap<Vec<bool>, usize> = BTreeMap::new();
        for i in images.ones() {
            *by_sig.entry(parts.iter().map(|p| m.class_images[p.class as usize].get(i)).collect()).or_insert(0) += 1;
        }
        by_sig
            .iter()
            .map(|(sig, &holders)| {
                let held = || parts.iter().zip(sig).filter(|(_, &on)| on).map(|(p, _)| p);
                held().map(|p| p.size).sum::<u64>() as f64 * m.union_prob(held()) * (holders as f64 + m.registry_weight)
            })
            .sum()
    }

    #[test]
    fn the_cost_of_a_group_seen_differently_by_many_images_is_its_definition_to_the_bit() {
        // 70 images in a ring: name k is in images k and k+1, and depends on the sources of
        // the 12 names from it round the ring and of 2 of 5 libraries every image holds. Each
        // image holds three parts of the group of all names, a signature of its own: 70 unions
        // of several parts.
        let images = 70;
        let ring: Vec<[usize; 2]> = (0..images).map(|k| [k, (k + 1) % images]).collect();
        let all: Vec<usize> = (0..images).collect();
        let mut names: Vec<(u64, &[usize])> = ring.iter().enumerate().map(|(k, i)| (1000 + k as u64, &i[..])).collect();
        names.extend((0..5).map(|l| (50_000 + l, &all[..])));
        let mut s = stats(&names, images);
        let n = names.len();
        for k in 0..images {
            let mut deps = SourceSet::empty(n);
            (k..k + 12).map(|d| d % images).chain([images + k % 5, images + (k + 2) % 5]).for_each(|d| deps.insert(d));
            s.closure[k] = deps;
        }
        let everything: Vec<u32> = (0..n as u32).collect();
        let mut m = build_model(&s, &everything, 1.0);
        m.weight = (0..n).map(|d| 1.0 / (3.0 + d as f64).powf(1.3)).collect();
        m.busy = (0..n).map(|d| 0.3 / (1.0 + d as f64).sqrt()).collect();
        let group = m.group(&everything);
        assert_eq!(group.parts.len(), images + 1);
        assert_eq!(group.cost.to_bits(), cost_by_definition(&m, &group.parts, &group.images).to_bits());
        let mut some = Bits::new(images);
        (0..images).step_by(3).for_each(|i| some.set(i));
        assert_eq!(m.cost(&group.parts, &some).to_bits(), cost_by_definition(&m, &group.parts, &some).to_bits());
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
