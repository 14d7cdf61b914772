//! Mining the history into hint groups (`hints emit`), and explaining them (`hints explain`).
//!
//! # Objective
//! A client holding image i at revision k−1 pulls revision k: every layer of k whose exact set
//! of paths it does not hold. A layer is re-downloaded when any member's store path changes (in
//! Nix a dependency's change changes every dependent's hash, so churn cascades up the graph) or
//! its membership changes. With a budget of K layers per image, minimise the expected
//! - update bytes, summed over images and updates,
//! - fleet bytes (a node running every image pulls a shared layer once),
//! - registry storage (which grows like fleet bytes),
//!
//! measured against the floor (one layer per path) and the ceiling (one layer).
//!
//! # Model
//! Names, not paths, are the units: a name is `pname[:output]`, stable across version bumps.
//! - A name's *intrinsic bump* at a transition is a change of its path that its dependencies do
//!   not explain: its version changed, or its hash changed while no dependency's did. Its rate
//!   `q` is estimated from the training transitions with a Jeffreys prior, `(bumps+½)/(T+1)`.
//! - Names that bumped at exactly the same transitions and carry the same version (the binary
//!   packages of one source package, the outputs of one derivation) are one *bump source*: the
//!   real co-change sets of the history, which bump once for all of them.
//! - A set of names changes when any source in its dependency closure bumps. Treating sources
//!   as independent, `P(change) = 1 − exp(−β·Σ −ln(1−q_s))` over the closure. This is chunkah's
//!   independence assumption moved to where it holds: co-change through shared dependencies
//!   comes from the graph and co-bumping from the history, so names that share their volatile
//!   sources are known to change together even when a few training transitions cannot show it,
//!   and a stable leaf is not dragged along by a volatile neighbour.
//! - Calibration: summed over hundreds of sources, the raw hazard overstates how often a name
//!   with a deep closure changes (bumps cluster, and every source that never bumped still gets
//!   the prior's small rate). One scale `β` is fitted by maximum likelihood to the training
//!   transitions themselves ([`calibration`]); on the dev history it is about 0.5. The mean
//!   calibrated hazard of a name's own bumps is written as `learned_from.path_hazard` (0.075
//!   on dev): the layerer's estimate for paths the file does not know.
//! - Images: a layer made of names with different image sets is a different layer in each image,
//!   so it is neither shared nor stored once. Names are first grouped only within their *class*
//!   (the set of images containing them).
//! - The expected cost of a group per transition is `Σ_images S·P + w·Σ_variants S·P`, where
//!   each image holds the part of the group it contains and each distinct part is one registry
//!   layer, one more pull for a node that runs every image (`S` bytes, `P` its change
//!   probability). `w` (`--registry-weight`, default 1) is the user's preference between each
//!   image's own updates and sharing: lower keeps small images' layers finer.
//!
//! # Algorithm
//! Start with one group per name. A lazy greedy over a heap applies, while some image holds more
//! groups than its target, the merge with the smallest cost increase per over-budget image it
//! relieves, between two groups that share an over-budget image. Each merge is one of two kinds:
//! - *global*: the two groups become one group of the file, in every image;
//! - *local*: the two join only in the images over budget that hold both, which is what the
//!   layerer does there by itself (it merges the pair of layers that wastes least, from the
//!   groups' change rates written in the file). It leaves the finer layers, and their smaller
//!   update bytes, to the images that have room, at the price of one more distinct layer for
//!   fleets and the registry. The greedy takes whichever the model finds cheaper: a merge that
//!   only big images need, and that would cost every small image re-downloads, is left to the
//!   big images. Local merges are not written to the file.
//!
//! The target is the full budget. An image that later holds names the history never saw, or
//! grows past it, makes room the same way, by the layerer's least-waste merging. (An earlier
//! version wrote the local merges as an ordered plan, `merges`, and planned headroom for unseen
//! names; on six histories the layerer's own merging did better at both 30 and 100 layers,
//! because it merges what is actually in the closure. The format still accepts a hand-written
//! plan, applied first.) A merge across classes is allowed only through
//! an image with more classes than its target (where no grouping can avoid it), and counts
//! double (`CROSS_CLASS_PENALTY`); so a path several images share never shares a layer with one
//! only some of them have unless the budget leaves no other way. While an image holds at most 400
//! groups every pair is considered; beyond that (large histories), each group is paired with its
//! 12 neighbours nearest in change probability, which keeps emit near-linear. Big volatile names
//! stay alone because merging them is expensive; small names that change together merge for free.
//! Groups are written bottom-up from the least to the most likely to change, each with the
//! model's probability that it changes at an update (`stats.change_rate`), which the layerer
//! weighs when it must merge.
//!
//! # Hysteresis
//! Regrouping makes every client download the regrouped layers once. Given the previous hint
//! file, its groups (and plan, if it has one) are kept unless the new ones' expected saving
//! exceeds `--min-gain` of the previous expected cost (both computed with the images over budget
//! merging as the layerer would, [`layered_cost`]); both figures and the one-time cost are
//! reported. Pins are kept
//! verbatim, and names placed by a pin are left out of the groups.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt::Write as _;

use hints_format::{
    BudgetHeader, Group, GroupStats, HintFile, LearnedFrom, Matcher, MemberPattern, NameKey, RevisionRange, StorePath,
};
use rayon::prelude::*;

use crate::history::History;

#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error("no snapshots in revisions {0}..{1}")]
    Empty(usize, usize),
    #[error("budget: reserve ({reserve}) must be smaller than max-layers ({max_layers})")]
    Budget { max_layers: u32, reserve: u32 },
    #[error("registry weight must be a finite number ≥ 0, got {0}")]
    RegistryWeight(f64),
    #[error("`{0}` is not a store path or name recorded in the history")]
    Unknown(String),
    #[error(transparent)]
    Match(#[from] hints_format::MatchError),
}

pub struct EmitOptions {
    pub max_layers: u32,
    pub reserve: u32,
    pub first: usize,
    pub last: usize,
    pub min_gain: f64,
    /// What one more distinct layer (a registry copy, and a pull for a node running every
    /// image) weighs against one image's update bytes: 1 counts it once, lower favours each
    /// image's own updates over sharing, higher favours sharing.
    pub registry_weight: f64,
    pub db_summary: String,
}

pub struct Emitted {
    pub file: HintFile,
    pub report: String,
}

/// A fixed-size bitset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &x)| {
            let mut x = x;
            std::iter::from_fn(move || {
                (x != 0).then(|| {
                    let b = x.trailing_zeros() as usize;
                    x &= x - 1;
                    w * 64 + b
                })
            })
        })
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn minus(&self, o: &Bits) -> Bits {
        Bits(self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect())
    }
}

/// What the history says about every name at the training revisions.
pub struct NameStats {
    /// `NameKey::identity` labels, e.g. `gcc-14-base` or `glibc:bin`.
    pub labels: Vec<String>,
    /// The hint-file member pattern of each label.
    pub patterns: Vec<String>,
    /// A real store path name per label, for matching against hint files.
    pub samples: Vec<String>,
    /// Bytes at the last training revision (largest over images).
    pub size: Vec<u64>,
    /// Images containing the name at the last training revision.
    images: Vec<Bits>,
    /// Per transition (index t = revision first+t+1): the name's path changed in some image.
    changed: Vec<Bits>,
    /// Intrinsic bumps per transition.
    bumped: Vec<Bits>,
    /// Transitive dependency closure as a set of bump *sources*, the name's own included.
    closure: Vec<Bits>,
    /// Bump source of each name: names that bumped at exactly the same transitions and carry the
    /// same version at the last revision (binary packages of one source package, outputs of one
    /// derivation) share one source, which bumps once for all of them.
    source: Vec<u32>,
    /// Jeffreys-smoothed bump rate of each source.
    source_rate: Vec<f64>,
    pub transitions: usize,
    pub image_names: Vec<String>,
    /// Name → sizes over the range, per revision (largest over images; 0 when absent).
    pub size_over_time: Vec<Vec<u64>>,
}

impl NameStats {
    pub fn build(h: &History, first: usize, last: usize) -> Result<Self, MineError> {
        if !(first..=last).any(|r| (0..h.images.len()).any(|i| h.snapshots.contains_key(&(i, r)))) {
            return Err(MineError::Empty(first, last));
        }
        // Intern a label for every path once.
        let mut index: HashMap<String, u32> = HashMap::new();
        let (mut labels, mut patterns, mut samples): (Vec<String>, Vec<String>, Vec<String>) = Default::default();
        let mut versions: Vec<String> = Vec::with_capacity(h.paths.len());
        let path_name: Vec<u32> = h
            .paths
            .iter()
            .map(|p| {
                let k = NameKey::identity(p.name());
                versions.push(k.version.to_string());
                let label = k.label();
                *index.entry(label.clone()).or_insert_with(|| {
                    labels.push(label);
                    patterns.push(MemberPattern::identity_of(p.name()));
                    samples.push(p.name().to_string());
                    labels.len() as u32 - 1
                })
            })
            .collect();
        let n = labels.len();
        let revs = last - first + 1;
        let transitions = revs - 1;
        let ni = h.images.len();

        // Per snapshot: (name, path) sorted by name.
        let named = |i: usize, r: usize| -> Option<Vec<(u32, u32)>> {
            let m = h.snapshots.get(&(i, r))?;
            let mut v: Vec<(u32, u32)> = m.iter().map(|&p| (path_name[p as usize], p)).collect();
            v.sort_unstable();
            Some(v)
        };
        let mut size = vec![0u64; n];
        let mut last_version: Vec<&str> = vec![""; n];
        let mut images = vec![Bits::new(ni); n];
        let mut size_over_time = vec![vec![0u64; revs]; n];
        let mut dep_edges: Vec<HashSet<u32>> = vec![HashSet::new(); n];
        for i in 0..ni {
            for r in first..=last {
                let Some(v) = named(i, r) else { continue };
                for &(name, p) in &v {
                    let s = &mut size_over_time[name as usize][r - first];
                    *s = (*s).max(h.sizes[p as usize]);
                    if r == last {
                        last_version[name as usize] = versions[p as usize].as_str();
                        size[name as usize] = size[name as usize].max(h.sizes[p as usize]);
                        images[name as usize].set(i);
                        dep_edges[name as usize].extend(h.refs[p as usize].iter().map(|&d| path_name[d as usize]).filter(|&d| d != name));
                    }
                }
            }
        }

        // Changes and intrinsic bumps per transition, in parallel over transitions.
        let per_t: Vec<(Bits, Bits)> = (0..transitions)
            .into_par_iter()
            .map(|t| {
                let (r0, r1) = (first + t, first + t + 1);
                let mut changed = Bits::new(n);
                let mut version_changed = Bits::new(n);
                let mut deps_at: HashMap<u32, Vec<u32>> = HashMap::new();
                for i in 0..ni {
                    let (Some(a), Some(b)) = (named(i, r0), named(i, r1)) else { continue };
                    let group = |v: &[(u32, u32)]| -> BTreeMap<u32, Vec<u32>> {
                        let mut m: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
                        for &(name, p) in v {
                            m.entry(name).or_default().push(p);
                        }
                        m
                    };
                    let (ga, gb) = (group(&a), group(&b));
                    for (name, pb) in &gb {
                        deps_at
                            .entry(*name)
                            .or_default()
                            .extend(pb.iter().flat_map(|&p| h.refs[p as usize].iter().map(|&d| path_name[d as usize])));
                        if let Some(pa) = ga.get(name) {
                            if pa != pb {
                                changed.set(*name as usize);
                                let va: HashSet<&str> = pa.iter().map(|&p| versions[p as usize].as_str()).collect();
                                let vb: HashSet<&str> = pb.iter().map(|&p| versions[p as usize].as_str()).collect();
                                if va != vb {
                                    version_changed.set(*name as usize);
                                }
                            }
                        }
                    }
                }
                let mut bumped = version_changed;
                for name in changed.ones() {
                    let explained = deps_at
                        .get(&(name as u32))
                        .is_some_and(|ds| ds.iter().any(|&d| d as usize != name && changed.get(d as usize)));
                    if !explained {
                        bumped.set(name);
                    }
                }
                (changed, bumped)
            })
            .collect();
        let (changed, bumped): (Vec<Bits>, Vec<Bits>) = per_t.into_iter().unzip();

        // Bump sources: the real co-change sets of the history.
        let mut source = vec![0u32; n];
        let mut source_rate = vec![];
        let mut by_key: HashMap<(Vec<bool>, &str), u32> = HashMap::new();
        for name in 0..n {
            let v: Vec<bool> = bumped.iter().map(|b| b.get(name)).collect();
            let bumps = v.iter().filter(|&&b| b).count();
            let rate = (bumps as f64 + 0.5) / (transitions as f64 + 1.0);
            let fresh = |source_rate: &mut Vec<f64>| {
                source_rate.push(rate);
                source_rate.len() as u32 - 1
            };
            source[name] = if bumps == 0 {
                fresh(&mut source_rate)
            } else {
                *by_key.entry((v, last_version[name])).or_insert_with(|| fresh(&mut source_rate))
            };
        }

        // Transitive closure over the name graph (SCCs come dependencies-first).
        let mut g = petgraph::graph::DiGraph::<(), ()>::with_capacity(n, 0);
        let nodes: Vec<_> = (0..n).map(|_| g.add_node(())).collect();
        for (a, ds) in dep_edges.iter().enumerate() {
            let mut ds: Vec<u32> = ds.iter().copied().collect();
            ds.sort_unstable();
            for d in ds {
                g.add_edge(nodes[a], nodes[d as usize], ());
            }
        }
        let ns = source_rate.len();
        let mut closure = vec![Bits::new(ns); n];
        for scc in petgraph::algo::tarjan_scc(&g) {
            let mut c = Bits::new(ns);
            for v in &scc {
                c.set(source[v.index()] as usize);
                for d in &dep_edges[v.index()] {
                    if !scc.iter().any(|s| s.index() == *d as usize) {
                        c.or(&closure[*d as usize]);
                    }
                }
            }
            for v in &scc {
                closure[v.index()] = c.clone();
            }
        }
        Ok(NameStats { labels, patterns, samples, size, images, changed, bumped, closure, source, source_rate, transitions, image_names: h.images.clone(), size_over_time })
    }

    fn present(&self, name: usize) -> bool {
        self.images[name].count() > 0
    }

    fn change_count(&self, name: usize) -> usize {
        self.changed.iter().filter(|c| c.get(name)).count()
    }

}

/// Cost model state shared by all groups.
struct Model<'a> {
    stats: &'a NameStats,
    /// −ln(1 − q) per bump source.
    weight: Vec<f64>,
    /// Class (image set) of each name, and each class's images.
    class_of: Vec<u32>,
    class_images: Vec<Bits>,
    /// Weight of a distinct layer's registry copy against one image's update (`EmitOptions`).
    registry_weight: f64,
}

/// The part of a group in one class.
#[derive(Clone)]
struct ClassPart {
    class: u32,
    size: u64,
    deps: Bits,
}

#[derive(Clone)]
struct GroupState {
    members: Vec<u32>,
    parts: Vec<ClassPart>,
    images: Bits,
    cost: f64,
    /// P(the group as a whole changes): the key for nearest-neighbour candidates.
    prob: f64,
    alive: bool,
    /// The file group this state is, while it is one (every image holding it sees it whole).
    unit: Option<usize>,
    /// The file groups it is made of.
    units: Vec<usize>,
}

impl Model<'_> {
    fn prob(&self, deps: &Bits) -> f64 {
        let l: f64 = deps.ones().map(|d| self.weight[d]).sum();
        1.0 - (-l).exp()
    }

    /// Σ over images of the part it holds + Σ over distinct parts (registry copies, weighted),
    /// each S·P.
    fn cost(&self, parts: &[ClassPart], images: &Bits) -> f64 {
        let mut by_sig: HashMap<Vec<bool>, (u64, f64, usize)> = HashMap::new();
        for i in images.ones() {
            let sig: Vec<bool> = parts.iter().map(|p| self.class_images[p.class as usize].get(i)).collect();
            let entry = by_sig.entry(sig).or_insert_with_key(|sig| {
                let mut deps = Bits::new(self.weight.len());
                let mut size = 0;
                for (p, &on) in parts.iter().zip(sig) {
                    if on {
                        deps.or(&p.deps);
                        size += p.size;
                    }
                }
                (size, self.prob(&deps), 0)
            });
            entry.2 += 1;
        }
        by_sig.values().map(|&(s, p, holders)| s as f64 * p * (holders as f64 + self.registry_weight)).sum()
    }

    /// The group of `members` (not empty), built in one pass.
    fn group(&self, members: &[u32]) -> GroupState {
        let mut parts: Vec<ClassPart> = vec![];
        for &m in members {
            let class = self.class_of[m as usize];
            let k = match parts.iter().position(|p| p.class == class) {
                Some(k) => k,
                None => {
                    parts.push(ClassPart { class, size: 0, deps: Bits::new(self.weight.len()) });
                    parts.len() - 1
                }
            };
            parts[k].size += self.stats.size[m as usize];
            parts[k].deps.or(&self.stats.closure[m as usize]);
        }
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
    fn joined(&self, a: &GroupState, b: &GroupState) -> (Vec<ClassPart>, Bits) {
        // Both part lists are sorted by class: merge them in one pass.
        let mut parts = Vec::with_capacity(a.parts.len() + b.parts.len());
        let (mut x, mut y) = (a.parts.iter().peekable(), b.parts.iter().peekable());
        loop {
            let next = match (x.peek(), y.peek()) {
                (Some(p), Some(q)) if p.class == q.class => {
                    let mut joined = (*p).clone();
                    joined.size += q.size;
                    joined.deps.or(&q.deps);
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
    fn merged(&self, a: &GroupState, b: &GroupState, images: Option<Bits>) -> GroupState {
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
    fn parts_prob(&self, parts: &[ClassPart]) -> f64 {
        let mut all = Bits::new(self.weight.len());
        for p in parts {
            all.or(&p.deps);
        }
        self.prob(&all)
    }

    /// The same group, held by `images` only.
    fn with_images(&self, g: &GroupState, images: Bits) -> GroupState {
        let cost = self.cost(&g.parts, &images);
        GroupState { images, cost, ..g.clone() }
    }
}

/// A candidate merge, ordered by score (smallest first), then ids.
struct Cand {
    score: f64,
    a: usize,
    b: usize,
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: invert so the cheapest merge pops first.
        o.score.total_cmp(&self.score).then_with(|| (o.a, o.b).cmp(&(self.a, self.b)))
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

/// How a merge applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Everywhere: the two become one group of the file.
    Global,
    /// Only in the over-budget images that hold both, as the layerer merges there.
    Local,
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
}

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
        let mut g = Greedy { model, states, units, count, holder: vec![HashMap::new(); ni] };
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
        let mut ov = over(&self.count);
        if !ov.iter().any(|&o| o) {
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
        let cand = |states: &[GroupState], a: usize, b: usize, ov: &[bool]| {
            let (a, b) = (a.min(b), a.max(b));
            score_merge(model, &states[a], &states[b], ov, &needs_cross, local_only).map(|(score, _)| Cand { score, a, b })
        };
        // Live groups ordered by change probability (non-negative floats order as their bits).
        let mut alive: std::collections::BTreeSet<(u64, usize)> =
            (0..self.states.len()).filter(|&g| self.states[g].alive).map(|g| (self.states[g].prob.to_bits(), g)).collect();

        // Initial candidates: pairs sharing an over-budget image; all of them while an image has
        // few groups, else each group with its NEIGHBOURS nearest in change probability.
        let mut heap = BinaryHeap::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        for i in (0..ni).filter(|&i| ov[i]) {
            let here: Vec<usize> = alive.iter().map(|&(_, g)| g).filter(|&g| self.states[g].images.get(i)).collect();
            let window = if here.len() <= EXACT { here.len() } else { NEIGHBOURS };
            let states = &self.states;
            let cands: Vec<Cand> = (0..here.len())
                .into_par_iter()
                .flat_map_iter(|k| {
                    let (ov, here) = (&ov, &here);
                    here[k + 1..(k + 1 + window).min(here.len())].iter().filter_map(move |&b| cand(states, here[k], b, ov))
                })
                .collect();
            for c in cands {
                if seen.insert((c.a, c.b)) {
                    heap.push(c);
                }
            }
        }

        while let Some(c) = heap.pop() {
            if !ov.iter().any(|&o| o) {
                break;
            }
            if !self.states[c.a].alive || !self.states[c.b].alive {
                continue;
            }
            let Some((now, mode)) = score_merge(model, &self.states[c.a], &self.states[c.b], &ov, &needs_cross, local_only) else { continue };
            if now.total_cmp(&c.score) == Ordering::Greater {
                heap.push(Cand { score: now, ..c }); // stale: fewer images relieved now
                continue;
            }
            for g in [c.a, c.b] {
                alive.remove(&(self.states[g].prob.to_bits(), g));
            }
            let fresh = match mode {
                Mode::Global => vec![self.global(c.a, c.b)],
                Mode::Local => {
                    let (x, y) = (self.states[c.a].units[0], self.states[c.b].units[0]);
                    self.replay(x, y, target)
                }
            };
            for &g in &fresh {
                alive.insert((self.states[g].prob.to_bits(), g));
            }
            ov = over(&self.count);
            for new in fresh {
                let key = (self.states[new].prob.to_bits(), new);
                let states = &self.states;
                let shares = |g: usize| g != new && states[new].images.ones().any(|i| ov[i] && states[g].images.get(i));
                let crowd: usize = states[new].images.ones().filter(|&i| ov[i]).map(|i| self.count[i]).sum();
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
                let fresh: Vec<Cand> = others.par_iter().filter_map(|&g| cand(states, g, new, &ov)).collect();
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
            self.states[g].alive = false;
            self.units[self.states[g].unit.expect("global merges join pristine groups")] = None;
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
        self.states[a].alive = false;
        self.states[b].alive = false;
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
    fn replay(&mut self, x: usize, y: usize, target: usize) -> Vec<usize> {
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

/// The images over budget that hold both groups.
fn relief_images(a: &GroupState, b: &GroupState, ov: &[bool]) -> Bits {
    let mut n = Bits::new(ov.len());
    for i in a.images.ones().filter(|&i| b.images.get(i) && ov[i]) {
        n.set(i);
    }
    n
}

/// The score of merging `a` and `b` (cost increase per over-budget image relieved, doubled
/// across classes) and how: globally when both are pristine and that is no dearer than joining
/// them only where the budget requires, which keeps the finer groups (and their update bytes)
/// in the images that have room at the price of one more registry layer. `None` when the
/// merge relieves no over-budget image, or crosses classes needlessly.
fn score_merge(model: &Model<'_>, a: &GroupState, b: &GroupState, ov: &[bool], needs_cross: &[bool], local_only: bool) -> Option<(f64, Mode)> {
    let n = relief_images(a, b, ov);
    let relief = n.count();
    let same_class = a.parts.len() == 1 && b.parts.len() == 1 && a.parts[0].class == b.parts[0].class;
    if relief == 0 || (!same_class && !n.ones().any(|i| needs_cross[i])) {
        return None;
    }
    let weight = if same_class { 1.0 } else { CROSS_CLASS_PENALTY };
    let (parts, images) = model.joined(a, b);
    let both = a.images.ones().filter(|&i| b.images.get(i)).count();
    let global_ok = !local_only && a.unit.is_some() && b.unit.is_some();
    let global = global_ok.then(|| model.cost(&parts, &images) - a.cost - b.cost);
    let local = (!global_ok || relief < both).then(|| {
        let rest = |g: &GroupState| model.cost(&g.parts, &g.images.minus(&n));
        model.cost(&parts, &n) + rest(a) + rest(b) - a.cost - b.cost
    });
    let (delta, mode) = match (global, local) {
        (Some(g), Some(l)) if l < g => (l, Mode::Local),
        (Some(g), _) => (g, Mode::Global),
        (None, Some(l)) => (l, Mode::Local),
        (None, None) => unreachable!("a merge is global or local"),
    };
    Some((weight * delta / relief as f64, mode))
}

/// The file's groups from the greedy, run to `full` groups per image, and the greedy's
/// expected cost per transition. Its local merges are not written: they stand for the
/// layerer's own merging in the images over budget.
fn group_names(model: &Model<'_>, names: &[u32], full: usize) -> (Vec<GroupState>, f64) {
    let singles: Vec<Vec<u32>> = names.iter().map(|&n| vec![n]).collect();
    let mut g = Greedy::new(model, &singles);
    g.run(full, false);
    let cost = g.cost();
    (g.units.into_iter().flatten().collect(), cost)
}

/// Expected cost per transition of groups (and a plan, in a file that has one) as images use
/// them: the plan replayed as the layerer applies it, then local merges, cheapest first, in
/// every image still over `full` groups, standing for the layerer's least-waste merging.
fn layered_cost(model: &Model<'_>, groups: &[Vec<u32>], merges: &[(usize, usize)], full: usize) -> f64 {
    let mut g = Greedy::new(model, groups);
    for &(x, y) in merges {
        g.replay(x, y, full);
    }
    g.run(full, true);
    g.cost()
}

fn build_model<'a>(stats: &'a NameStats, names: &[u32], registry_weight: f64) -> Model<'a> {
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
    Model { stats, weight, class_of, class_images, registry_weight }
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
            let hazard: f64 = stats.closure[n].ones().map(|s| raw[s]).sum();
            (hazard, changed as f64, (exposed - changed) as f64)
        })
        .filter(|&(hazard, ..)| hazard > 0.0)
        .collect();
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
fn path_hazard(model: &Model<'_>, names: &[u32]) -> f64 {
    let sum: f64 = names.iter().map(|&n| model.weight[model.stats.source[n as usize] as usize]).sum();
    (sum / names.len().max(1) as f64 * 1e4).round() / 1e4
}

/// Learns the hint file.
pub fn emit(h: &History, opts: &EmitOptions, previous: Option<&HintFile>) -> Result<Emitted, MineError> {
    if opts.reserve >= opts.max_layers {
        return Err(MineError::Budget { max_layers: opts.max_layers, reserve: opts.reserve });
    }
    if !(opts.registry_weight.is_finite() && opts.registry_weight >= 0.0) {
        return Err(MineError::RegistryWeight(opts.registry_weight));
    }
    let t0 = std::time::Instant::now();
    let stats = NameStats::build(h, opts.first, opts.last)?;
    tracing::info!("name statistics: {} names, {:.1} s", stats.labels.len(), t0.elapsed().as_secs_f64());
    let store_layers = (opts.max_layers - opts.reserve) as usize;

    // Names at the last revision, less those a placing pin owns.
    let pins = previous.map(|p| p.pins.clone()).unwrap_or_default();
    let mut pin_file = HintFile::new(BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve });
    pin_file.pins = pins.clone();
    let pin_matcher = Matcher::new(&pin_file);
    let mut names: Vec<u32> = vec![];
    for n in (0..stats.labels.len()).filter(|&n| stats.present(n)) {
        if pin_matcher.place(&stats.samples[n])?.pin.is_none() {
            names.push(n as u32);
        }
    }
    let model = build_model(&stats, &names, opts.registry_weight);
    let t1 = std::time::Instant::now();
    let (groups, greedy_cost) = group_names(&model, &names, store_layers);
    tracing::info!("grouping: {} classes -> {} groups, {:.1} s", model.class_images.len(), groups.len(), t1.elapsed().as_secs_f64());

    // Bottom-up: least likely to change first, then larger first, then by id.
    let mut order: Vec<(f64, u64, String, usize)> = groups
        .iter()
        .enumerate()
        .map(|(k, g)| (g.prob, g.members.iter().map(|&m| stats.size[m as usize]).sum(), group_id(&stats, &g.members), k))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let new_groups: Vec<Group> = order.iter().map(|(_, _, id, k)| to_group(&stats, id, &groups[*k])).collect();
    tracing::info!("expected cost per transition: {greedy_cost:.0}");

    let mut report = String::new();
    let classes = model.class_images.len();
    let _ = writeln!(
        report,
        "learned from {} images, revisions {}..{} ({} transitions): {} names in {} image-set classes -> {} groups ({} store layers; an image over budget merges the pairs that waste least)",
        h.images.len(),
        opts.first,
        opts.last,
        stats.transitions,
        names.len(),
        classes,
        new_groups.len(),
        store_layers
    );

    let (mut groups_out, mut merges_out) = (new_groups.clone(), vec![]);
    if let Some(prev) = previous.filter(|p| !p.groups.is_empty() && p.budget == BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve }) {
        let matcher = Matcher::new(prev);
        let mut by_prev: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        let mut loose = vec![];
        for &n in &names {
            match matcher.place(&stats.samples[n as usize])?.group {
                Some(g) => by_prev.entry(g).or_default().push(n),
                None => loose.push(vec![n]),
            }
        }
        let position: HashMap<usize, usize> = by_prev.keys().enumerate().map(|(k, &g)| (g, k)).collect();
        let id_index: HashMap<&str, usize> = prev.groups.iter().enumerate().map(|(g, grp)| (grp.id.as_str(), g)).collect();
        let prev_plan: Vec<(usize, usize)> = prev
            .merges
            .iter()
            .filter_map(|[a, b]| Some((*position.get(id_index.get(a.as_str())?)?, *position.get(id_index.get(b.as_str())?)?)))
            .collect();
        let prev_groups: Vec<Vec<u32>> = by_prev.into_values().chain(loose).collect();
        let prev_cost = layered_cost(&model, &prev_groups, &prev_plan, store_layers);
        // Both groupings costed the same way, the new one from its groups alone.
        let member_lists: Vec<Vec<u32>> = groups.iter().map(|g| g.members.clone()).collect();
        let new_cost = layered_cost(&model, &member_lists, &[], store_layers);
        let saving = prev_cost - new_cost;
        let prev_sets: HashSet<Vec<String>> = prev.groups.iter().map(|g| sorted(&g.members)).collect();
        let regroup_bytes: u64 = new_groups
            .iter()
            .filter(|g| !prev_sets.contains(&sorted(&g.members)))
            .map(|g| g.stats.size * g.stats.images as u64)
            .sum();
        let _ = writeln!(
            report,
            "expected bytes per update: {:.0} with the previous groups, {:.0} regrouped (saving {:.1}%); regrouping costs {} bytes once",
            prev_cost,
            new_cost,
            100.0 * saving / prev_cost.max(1.0),
            regroup_bytes
        );
        if saving <= opts.min_gain * prev_cost {
            let _ = writeln!(report, "kept the previous groups (saving below --min-gain {})", opts.min_gain);
            groups_out = prev.groups.clone();
            merges_out = prev.merges.clone();
            refresh_stats(&model, &mut groups_out);
        } else {
            let _ = writeln!(report, "regrouped (saving above --min-gain {})", opts.min_gain);
        }
    }

    let file = HintFile {
        version: hints_format::CURRENT_VERSION,
        budget: BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve },
        learned_from: LearnedFrom {
            images: h.images.clone(),
            revisions: RevisionRange {
                first: h.revisions[opts.first].label.clone(),
                last: h.revisions[opts.last].label.clone(),
                count: (opts.last - opts.first + 1) as u32,
            },
            db_summary: opts.db_summary.clone(),
            path_hazard: Some(path_hazard(&model, &names)),
        },
        groups: groups_out,
        merges: merges_out,
        pins,
    };
    debug_assert!(file.validate().is_ok());
    Ok(Emitted { file, report })
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Named after the largest member (ties: the first label).
fn group_id(stats: &NameStats, members: &[u32]) -> String {
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
    GroupStats {
        size: members.iter().map(|&m| stats.size[m as usize]).sum(),
        change_rate: (prob * 1000.0).round() / 1000.0,
        images: images.count() as u32,
    }
}

fn to_group(stats: &NameStats, id: &str, g: &GroupState) -> Group {
    let mut labels: Vec<String> = g.members.iter().map(|&m| stats.patterns[m as usize].clone()).collect();
    labels.sort();
    Group { id: id.to_string(), members: labels, stats: group_stats(stats, &g.members, g.prob) }
}

/// Recomputes the statistics of kept groups.
fn refresh_stats(model: &Model<'_>, groups: &mut [Group]) {
    let stats = model.stats;
    let index: HashMap<&str, u32> = stats.patterns.iter().enumerate().map(|(k, l)| (l.as_str(), k as u32)).collect();
    for g in groups {
        let members: Vec<u32> = g.members.iter().filter_map(|m| index.get(m.as_str()).copied())
            // Present names the model knows (not those a pin places).
            .filter(|&m| model.class_of[m as usize] != u32::MAX)
            .collect();
        g.stats = if members.is_empty() { GroupStats::default() } else { group_stats(stats, &members, model.group(&members).prob) };
    }
}

/// `hints explain`: a path's or name's group and the evidence.
pub fn explain(h: &History, (first, last): (usize, usize), hints: &HintFile, query: &str) -> Result<String, MineError> {
    let stats = NameStats::build(h, first, last)?;
    let label = match StorePath::parse(query) {
        _ if stats.labels.iter().any(|l| l == query) => query.to_string(),
        Ok(p) => NameKey::identity(p.name()).label(),
        Err(_) if query.contains('/') => return Err(MineError::Unknown(query.to_string())),
        Err(_) => NameKey::identity(query).label(),
    };
    let n = stats.labels.iter().position(|l| *l == label).ok_or_else(|| MineError::Unknown(query.to_string()))?;
    let mut o = String::new();
    let placement = Matcher::new(hints).place(&stats.samples[n])?;
    let _ = writeln!(o, "{label}");
    match (placement.pin, placement.group) {
        (Some(p), _) => {
            let _ = writeln!(o, "  layer: pin `{}` ({})", hints.pins[p].id, hints.pins[p].rule.as_str());
        }
        (None, Some(g)) => {
            let grp = &hints.groups[g];
            let _ = writeln!(
                o,
                "  layer: group `{}` (layer {} of {} from the bottom), {} members, {} bytes, expected to change at {:.0}% of updates, in {} images",
                grp.id,
                g + 1,
                hints.groups.len(),
                grp.members.len(),
                grp.stats.size,
                grp.stats.change_rate * 100.0,
                grp.stats.images
            );
            let _ = writeln!(o, "  with: {}", grp.members.join(", "));
            let plan: Vec<String> = hints
                .merges
                .iter()
                .enumerate()
                .filter_map(|(k, [x, y])| {
                    let other = if *x == grp.id { y } else if *y == grp.id { x } else { return None };
                    Some(format!("`{other}` (entry {})", k + 1))
                })
                .collect();
            if !plan.is_empty() {
                let _ = writeln!(
                    o,
                    "  in an image over budget, joined with: {} of {} plan entries, applied in order until it fits",
                    plan.join(", "),
                    hints.merges.len()
                );
            }
        }
        (None, None) => {
            let _ = writeln!(o, "  layer: none of the groups; the layerer places it by its size-first fallback");
        }
    }
    let sizes: Vec<String> = stats.size_over_time[n].iter().map(|s| s.to_string()).collect();
    let _ = writeln!(o, "  size over revisions {first}..{last}: {}", sizes.join(" "));
    let changes: Vec<String> =
        (0..stats.transitions).filter(|&t| stats.changed[t].get(n)).map(|t| format!("{}->{}", first + t, first + t + 1)).collect();
    let bumps = (0..stats.transitions).filter(|&t| stats.bumped[t].get(n)).count();
    let _ = writeln!(
        o,
        "  changed at: {} ({} of {} transitions; {bumps} of them its own bump, the rest cascaded from dependencies)",
        if changes.is_empty() { "never".to_string() } else { changes.join(", ") },
        stats.change_count(n),
        stats.transitions
    );
    let mine: Vec<usize> = (0..stats.transitions).filter(|&t| stats.changed[t].get(n)).collect();
    let together: Vec<&str> = (0..stats.labels.len())
        .filter(|&m| m != n && stats.present(m) && !mine.is_empty())
        .filter(|&m| (0..stats.transitions).all(|t| stats.changed[t].get(m) == stats.changed[t].get(n)))
        .map(|m| stats.labels[m].as_str())
        .take(20)
        .collect();
    let _ = writeln!(o, "  always changed together with: {}", if together.is_empty() { "-".to_string() } else { together.join(", ") });
    let cobump: Vec<&str> = (0..stats.labels.len())
        .filter(|&m| m != n && stats.source[m] == stats.source[n])
        .map(|m| stats.labels[m].as_str())
        .collect();
    let _ = writeln!(
        o,
        "  bumps together with (one source: same bump transitions and version): {}",
        if cobump.is_empty() { "-".to_string() } else { cobump.join(", ") }
    );
    let imgs: Vec<&str> = stats.images[n].ones().map(|i| stats.image_names[i].as_str()).collect();
    let _ = writeln!(o, "  in images: {}", imgs.join(", "));
    Ok(o)
}
