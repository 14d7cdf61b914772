//! Replaying revisions under each strategy: what clients and a registry would transfer and store.
//!
//! For revisions `C..D` and every image, each strategy's layers come from `layering-core` (the
//! real code a build runs). A layer is identified by its exact set of paths (reproducible tars
//! make equal sets equal digests). Then, as `shared/tools/replay.py` counts them:
//! - update bytes: a client holding image i at revision k−1 pulls every layer of k it does not
//!   hold, for k in C+1..=D;
//! - fleet bytes: a node running every image pulls each layer of k not present at k−1 in any
//!   image, once;
//! - storage: the bytes of the distinct layers of all images at revision k, summed over C..=D;
//! - layers pulled: the number of layers the update bytes came from.
//!
//! The floor is one layer per path (only new paths are pulled); the ceiling is a single layer.
//! Each closure's bytes fit in an `i64` ([`layering_core::Closure`] checks); totals over many
//! snapshots saturate at `u64::MAX` rather than wrap.

use std::collections::{HashMap, HashSet};

use hints_format::{HintFile, Matcher};
use layering_core::{hinted, layer, Budget, LayerError, Strategy};
use rayon::prelude::*;
use serde::Serialize;

use crate::history::History;
use crate::mine::bits::Bits;

#[derive(Debug, Clone, Copy)]
pub enum Replayed<'a> {
    Single,
    Popularity,
    SizeFirst,
    Hints(&'a HintFile),
    Floor,
}

impl<'a> Replayed<'a> {
    /// Every strategy, in the order reports list them.
    pub fn all(hints: &'a HintFile) -> [Replayed<'a>; 5] {
        [Replayed::Single, Replayed::Popularity, Replayed::SizeFirst, Replayed::Hints(hints), Replayed::Floor]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Replayed::Single => "single",
            Replayed::Popularity => "popularity",
            Replayed::SizeFirst => "size-first",
            Replayed::Hints(_) => "hints",
            Replayed::Floor => "floor",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Metrics {
    pub strategy: String,
    pub update_bytes: u64,
    pub fleet_bytes: u64,
    pub storage_bytes: u64,
    pub layers_pulled: u64,
    pub updates: u64,
    /// Layers per image per revision, on average (one decimal).
    pub avg_layers: f64,
    pub per_image_update_bytes: Vec<(String, u64)>,
    /// Update bytes of each update (revisions `first+1..=last`), summed over images.
    pub per_update_bytes: Vec<u64>,
}

/// One snapshot's layers: each a sorted list of paths (history indices) with its bytes.
pub(crate) type LayerSet = Vec<(Vec<u32>, u64)>;

/// One replay: a budget and a strategy.
pub type Job<'a> = (Budget, Replayed<'a>);

/// Replays `first..=last` under `strategy`.
pub fn replay(history: &History, first: usize, last: usize, budget: Budget, strategy: Replayed<'_>) -> Result<Metrics, LayerError> {
    Ok(replay_many(history, first, last, &[(budget, strategy)])?.remove(0))
}

/// Replays `first..=last` once per job, building each snapshot's closure once for all of them.
/// Memory holds every job's layers of every snapshot in the range.
pub fn replay_many(history: &History, first: usize, last: usize, jobs: &[Job<'_>]) -> Result<Vec<Metrics>, LayerError> {
    let laid_out = LaidOut::new(history, first, last, jobs, |_| true)?;
    Ok(jobs.iter().enumerate().map(|(j, &(_, strategy))| count(history, first, last, strategy, &laid_out.job(j))).collect())
}

/// Replays `first..=last` under `strategy`, and gives beside its metrics, per image, the bytes
/// each path was pulled with, summed over the updates. A path is pulled with its layer, so a
/// path that did not change is pulled wherever a layer mate did; per image the sum is the
/// image's update bytes.
pub fn replay_path_pulls(history: &History, first: usize, last: usize, budget: Budget, strategy: Replayed<'_>) -> Result<(Metrics, Vec<PathPulls>), LayerError> {
    let laid_out = LaidOut::new(history, first, last, &[(budget, strategy)], |_| true)?;
    let layers = laid_out.job(0);
    let metrics = count(history, first, last, strategy, &layers);
    let pulls = (0..history.images.len())
        .map(|i| {
            let mut bytes = PathPulls::new();
            for r in first + 1..=last {
                let (Some(now), Some(before)) = (layers.get(&(i, r)), layers.get(&(i, r - 1))) else { continue };
                for &p in pulled(now, before).flat_map(|(l, _)| l) {
                    *bytes.entry(p).or_default() += history.sizes[p as usize];
                }
            }
            bytes
        })
        .collect();
    Ok((metrics, pulls))
}

/// Image `i`'s layers at each revision of `first..=last` it has a snapshot at, under each job:
/// `[job][revision − first]`, `None` where it has none.
pub(crate) fn image_layers(history: &History, i: usize, first: usize, last: usize, jobs: &[Job<'_>]) -> Result<Vec<Vec<Option<LayerSet>>>, LayerError> {
    let laid_out = LaidOut::new(history, first, last, jobs, |x| x == i)?;
    Ok((0..jobs.len())
        .map(|j| {
            let layers = laid_out.job(j);
            (first..=last).map(|r| layers.get(&(i, r)).map(|&l| l.clone())).collect()
        })
        .collect())
}

/// The layers of `now` a client holding `before` pulls: those of `now` that `before` lacks.
pub(crate) fn pulled<'l>(now: &'l LayerSet, before: &'l LayerSet) -> impl Iterator<Item = &'l (Vec<u32>, u64)> {
    let held: HashSet<&Vec<u32>> = before.iter().map(|(l, _)| l).collect();
    now.iter().filter(move |(l, _)| !held.contains(l))
}

/// Per image of `images` (0 for the others, which are not laid out), the standard deviation
/// that chance alone gives the difference between two layouts' update bytes (`a`'s less `b`'s)
/// over `first..=last`, every path changing at an update with hazard `hazard`
/// (`learned_from.path_hazard`), independently of the others.
///
/// A layer both layouts have is pulled under both or neither and cancels. Each other layer is
/// pulled when anything in its closure `C` changes, so it stays unchanged with probability
/// `e^(−hazard·|C|)`, and two such layers together with probability `e^(−hazard·|C ∪ C'|)`:
/// their pulls covary by that less the product of the two. The variance of the difference sums
/// those covariances over every pair of layers, weighted by their bytes and signs, at each
/// replayed revision. Layers that share paths covary, so it is neither the sum of the layers'
/// own variances nor bounded by it.
pub(crate) fn chance_deviation(history: &History, first: usize, last: usize, a: Job<'_>, b: Job<'_>, hazard: f64, images: &Bits) -> Result<Vec<f64>, LayerError> {
    let laid_out = LaidOut::new(history, first, last, &[a, b], |i| images.get(i))?;
    let (a, b) = (laid_out.job(0), laid_out.job(1));
    let variance_at = |i: usize, r: usize| -> f64 {
        let (Some(x), Some(y)) = (a.get(&(i, r)), b.get(&(i, r))) else { return 0.0 };
        let members = &history.snapshots[&(i, r)];
        let closure = |layer: &[u32]| closure_bits(history, members, layer);
        // The layers one layout has and the other lacks: what a client holding the other pulls.
        let layers: Vec<(f64, Bits)> = pulled(x, y).map(|(l, bytes)| (*bytes as f64, closure(l))).chain(pulled(y, x).map(|(l, bytes)| (-(*bytes as f64), closure(l)))).collect();
        difference_variance(&layers, hazard)
    };
    Ok((0..history.images.len()).map(|i| (first + 1..=last).map(|r| variance_at(i, r)).sum::<f64>().max(0.0).sqrt()).collect())
}

/// The variance of `Σ w·[the layer is pulled]` over `layers`, each given as its signed bytes
/// `w` and its closure, every path changing with hazard `hazard`.
fn difference_variance(layers: &[(f64, Bits)], hazard: f64) -> f64 {
    let unchanged = |paths: usize| (-hazard * paths as f64).exp();
    let counts: Vec<usize> = layers.iter().map(|(_, c)| c.count()).collect();
    let mut variance = 0.0;
    for (u, (wu, cu)) in layers.iter().enumerate() {
        for (v, (wv, cv)) in layers.iter().enumerate() {
            let union = counts[u] + counts[v] - cu.common_count(cv);
            variance += wu * wv * (unchanged(union) - unchanged(counts[u]) * unchanged(counts[v]));
        }
    }
    variance
}

/// The closure of `layer` (history indices) within the snapshot of `members` (sorted, closed
/// under references), as a set of the members' positions.
fn closure_bits(history: &History, members: &[u32], layer: &[u32]) -> Bits {
    let mut closure = Bits::new(members.len());
    let mut stack = layer.to_vec();
    while let Some(p) = stack.pop() {
        let k = members.binary_search(&p).expect("a snapshot is closed under references");
        if !closure.get(k) {
            closure.set(k);
            stack.extend(&history.refs[p as usize]);
        }
    }
    closure
}

/// Per path (history index), the bytes it was pulled with.
pub type PathPulls = HashMap<u32, u64>;

/// Every snapshot's layers of `first..=last` under each job.
struct LaidOut {
    keys: Vec<(usize, usize)>,
    per_snapshot: Vec<Vec<LayerSet>>,
}

impl LaidOut {
    /// The snapshots of `first..=last` of the images `laid_out` admits, laid out by each job.
    fn new(history: &History, first: usize, last: usize, jobs: &[Job<'_>], laid_out: impl Fn(usize) -> bool) -> Result<Self, LayerError> {
        let images = (0..history.images.len()).filter(|&i| laid_out(i));
        let keys: Vec<(usize, usize)> = images.flat_map(|i| (first..=last).map(move |r| (i, r))).filter(|k| history.snapshots.contains_key(k)).collect();
        // Each hint file is compiled once per image that applies it differently, not once per snapshot.
        let compiled: Vec<Option<Compiled>> = jobs.iter().map(|(_, s)| if let Replayed::Hints(f) = s { Some(Compiled::new(f, &history.images)) } else { None }).collect();
        let per_snapshot = keys.par_iter().map(|&(i, r)| layer_sets(history, i, r, jobs, &compiled)).collect::<Result<_, _>>()?;
        Ok(LaidOut { keys, per_snapshot })
    }

    /// Job `j`'s layers by (image, revision).
    fn job(&self, j: usize) -> HashMap<(usize, usize), &LayerSet> {
        self.keys.iter().zip(&self.per_snapshot).map(|(&k, sets)| (k, &sets[j])).collect()
    }
}

/// A hint file compiled for a replay: its matcher, and for each image with opt-outs the file as
/// that image applies it ([`HintFile::for_image`]) with its own matcher.
struct Compiled {
    all: Matcher,
    own: Vec<Option<(HintFile, Matcher)>>,
}

impl Compiled {
    fn new(file: &HintFile, images: &[String]) -> Self {
        let own = images
            .iter()
            .map(|image| match file.for_image(Some(image)) {
                std::borrow::Cow::Owned(f) => {
                    let m = Matcher::new(&f);
                    Some((f, m))
                }
                std::borrow::Cow::Borrowed(_) => None,
            })
            .collect();
        Compiled { all: Matcher::new(file), own }
    }

    /// The file image `i` applies, and its matcher.
    fn for_image<'c>(&'c self, file: &'c HintFile, i: usize) -> (&'c HintFile, &'c Matcher) {
        match &self.own[i] {
            Some((f, m)) => (f, m),
            None => (file, &self.all),
        }
    }
}

/// One snapshot's layers under each job, as sorted member lists with their bytes.
fn layer_sets(history: &History, i: usize, r: usize, jobs: &[Job<'_>], compiled: &[Option<Compiled>]) -> Result<Vec<LayerSet>, LayerError> {
    let members = &history.snapshots[&(i, r)];
    // Built on first use, once for every job that lays the snapshot out.
    let closure = std::cell::OnceCell::new();
    let laid_out = |budget: Budget, strategy: Strategy<'_>, matcher: Option<&Matcher>| -> Result<Vec<Vec<u32>>, LayerError> {
        let closure = closure.get_or_init(|| history.closure(i, r).expect("snapshot exists"));
        // Closure indices are path-sorted, as are the dense indices of `members`.
        let member = |p: &hints_format::StorePath| members[closure.index_of(p).expect("a layer holds closure paths")];
        let layers = match (strategy, matcher) {
            (Strategy::Hints(file), Some(m)) => hinted::layers_matched(closure, budget.store_layers(), file, m)?,
            _ => layer(closure, budget, strategy)?,
        };
        Ok(layers
            .into_iter()
            .map(|l| {
                let mut m: Vec<u32> = l.paths.iter().map(member).collect();
                m.sort_unstable();
                m
            })
            .collect())
    };
    // Size-first's sets per budget, laid out once for the size-first job and for every hint file
    // that lays this image out as size-first.
    let size_first: std::cell::RefCell<Vec<(Budget, Vec<Vec<u32>>)>> = Default::default();
    let size_first_sets = |budget: Budget| -> Result<Vec<Vec<u32>>, LayerError> {
        if let Some((_, sets)) = size_first.borrow().iter().find(|(b, _)| *b == budget) {
            return Ok(sets.clone());
        }
        let sets = laid_out(budget, Strategy::SizeFirst, None)?;
        size_first.borrow_mut().push((budget, sets.clone()));
        Ok(sets)
    };
    let with_size = |m: Vec<u32>| {
        let b = m.iter().map(|&p| history.sizes[p as usize]).sum();
        (m, b)
    };
    jobs.iter()
        .zip(compiled)
        .map(|(&(budget, s), compiled)| {
            let sets = match s {
                Replayed::Single => vec![members.clone()],
                Replayed::Floor => members.iter().map(|&p| vec![p]).collect(),
                Replayed::Popularity => laid_out(budget, Strategy::Popularity, None)?,
                Replayed::SizeFirst => size_first_sets(budget)?,
                Replayed::Hints(f) => {
                    let (own, matcher) = compiled.as_ref().expect("hint files are compiled").for_image(f, i);
                    match Strategy::hints_for(own, Some(&history.images[i])) {
                        Strategy::SizeFirst => size_first_sets(budget)?,
                        hinted => laid_out(budget, hinted, Some(matcher))?,
                    }
                }
            };
            Ok(sets.into_iter().map(with_size).collect())
        })
        .collect()
}

/// Counts what clients, nodes and the registry transfer and store, given every snapshot's layers.
fn count(history: &History, first: usize, last: usize, strategy: Replayed<'_>, layers: &HashMap<(usize, usize), &LayerSet>) -> Metrics {
    let mut m = Metrics { strategy: strategy.name().to_string(), ..Default::default() };
    let mut per_image = vec![0u64; history.images.len()];
    let mut prev_union: HashSet<&Vec<u32>> = HashSet::new();
    for r in first..=last {
        let mut union_now: HashMap<&Vec<u32>, u64> = HashMap::new();
        for i in 0..history.images.len() {
            for (l, b) in layers.get(&(i, r)).into_iter().flat_map(|s| s.iter()) {
                union_now.insert(l, *b);
            }
        }
        m.storage_bytes = union_now.values().fold(m.storage_bytes, |t, b| t.saturating_add(*b));
        if r > first {
            let before_update = m.update_bytes;
            for (i, bytes) in per_image.iter_mut().enumerate() {
                let (Some(now), Some(before)) = (layers.get(&(i, r)), layers.get(&(i, r - 1))) else { continue };
                for (_, b) in pulled(now, before) {
                    m.update_bytes = m.update_bytes.saturating_add(*b);
                    *bytes = bytes.saturating_add(*b);
                    m.layers_pulled += 1;
                }
                m.updates += 1;
            }
            m.per_update_bytes.push(m.update_bytes - before_update);
            m.fleet_bytes = union_now.iter().filter(|(l, _)| !prev_union.contains(*l)).fold(m.fleet_bytes, |t, (_, b)| t.saturating_add(*b));
        }
        prev_union = union_now.into_keys().collect();
    }
    let total_layers: usize = layers.values().map(|s| s.len()).sum();
    m.avg_layers = (total_layers as f64 * 10.0 / layers.len().max(1) as f64).round() / 10.0;
    m.per_image_update_bytes = history.images.iter().cloned().zip(per_image).collect();
    m
}

/// How the revisions a hint file was learned from relate to the replayed updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Learned before (or after) the replayed updates: a fair test.
    Disjoint,
    /// Learned from revisions `0..=1` (positions), some of which the replay covers: testing on
    /// the training data.
    Overlaps(usize, usize),
    /// The file's revisions are not in this history.
    Unknown,
}

/// Whether replaying `first..=last` with `file` tests it on revisions it was learned from (the
/// updates replayed are `first+1..=last`).
pub fn training_overlap(history: &History, file: &HintFile, first: usize, last: usize) -> Overlap {
    let learned = &file.learned_from.revisions;
    match (history.revision(&learned.first), history.revision(&learned.last)) {
        (Ok(lo), Ok(hi)) if hi > first && lo <= last => Overlap::Overlaps(lo, hi),
        (Ok(_), Ok(_)) => Overlap::Disjoint,
        _ => Overlap::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::difference_variance;
    use crate::mine::bits::Bits;

    /// A closure over paths `0..8` from a mask.
    fn paths(mask: u64) -> Bits {
        let mut bits = Bits::new(8);
        (0..8).filter(|k| mask >> k & 1 == 1).for_each(|k| bits.set(k));
        bits
    }

    /// The variance of a signed sum of pulls, by enumerating which of the paths change.
    fn enumerated(layers: &[(f64, Bits)], paths: usize, hazard: f64) -> f64 {
        let p = 1.0 - (-hazard).exp();
        let (mut mean, mut square) = (0.0, 0.0);
        for changed in 0u64..1 << paths {
            let chance: f64 = (0..paths).map(|k| if changed >> k & 1 == 1 { p } else { 1.0 - p }).product();
            let value: f64 = layers.iter().filter(|(_, c)| c.ones().any(|k| changed >> k & 1 == 1)).map(|(w, _)| w).sum();
            mean += chance * value;
            square += chance * value * value;
        }
        square - mean * mean
    }

    #[test]
    fn the_difference_variance_counts_layers_that_share_paths_together() {
        // Paths 0..3; 1 references 2. Size-first's layers {0} and {1, 2} (30 and 20 bytes)
        // against one learned layer holding all three (50): layers both had would cancel and
        // are not given.
        let layers = [(30.0, paths(0b001)), (20.0, paths(0b110)), (-50.0, paths(0b111))];
        for hazard in [0.05, 0.3, 2.0] {
            let (variance, expected) = (difference_variance(&layers, hazard), enumerated(&layers, 3, hazard));
            assert!((variance - expected).abs() < 1e-9 * expected.max(1.0), "hazard {hazard}: {variance} against {expected}");
            assert!(variance > 0.0);
        }
        // A layer and its opposite cancel whatever their paths do.
        assert!(difference_variance(&[(10.0, paths(0b110)), (-10.0, paths(0b110))], 0.3).abs() < 1e-9);
    }
}
