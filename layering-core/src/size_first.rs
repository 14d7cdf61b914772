//! `size-first`: nixpkgs' `auto-layer.py` (the default of `streamLayeredImage` since nixpkgs
//! PR #355189), reproduced exactly.
//!
//! Objective (theirs): give the largest paths their own layers, each with the dependencies only
//! it uses, so that large layers are shared between images and differences end up in small ones.
//!
//! Algorithm. Every path carries the set of "primaries" that identify its layer; paths with the
//! same set share a layer. Initially every set is empty (one layer).
//! 1. Pop the largest remaining path by narSize as the new primary `P` (equal sizes pop in the
//!    reverse of a stable sort over the path-sorted input, as Python's `sorted(...).pop()` does).
//! 2. `P`'s set becomes `{P}`. For every dependency `d` of `P`: remove from `d`'s set the
//!    primaries that use `P`; then, if none of `d`'s remaining primaries is itself a dependency
//!    of `P`, add `P`.
//! 3. If the number of distinct sets now exceeds the limit, undo this step and stop.
//! 4. Layers are ordered by the total narSize of their closure; paths inside a layer by
//!    `(name, hash)` of the full path split at its first `-`.
//!
//! Sets are interned as sorted vectors of primary ranks, so a step costs one pass over the
//! closure plus the primary's dependencies.

use std::collections::HashMap;

use crate::closure::{Closure, Direction};
use crate::texts::sort_on_leading_bytes;
use crate::{Layer, Reason};

/// Interned primary sets. Set 0 is the empty set.
struct Sets {
    sets: Vec<Vec<u32>>,
    ids: HashMap<Vec<u32>, u32>,
}

impl Sets {
    fn new() -> Self {
        let mut s = Sets { sets: vec![], ids: HashMap::new() };
        s.intern(vec![]);
        s
    }

    fn intern(&mut self, v: Vec<u32>) -> u32 {
        if let Some(&id) = self.ids.get(&v) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(v.clone());
        self.ids.insert(v, id);
        id
    }
}

/// The order in which paths become primaries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Order {
    /// auto-layer.py's: largest narSize first.
    Size,
    /// Largest expected bytes that stay unchanged at an update first: `narSize · e^(−h·c)`,
    /// where `c` counts the paths in its closure and `h` is the per-path hazard (in Nix a path
    /// changes when anything in its closure does). Big stable paths get their own layers; a
    /// big path that changes at every update gains little from one.
    Stability { hazard: f64 },
}

/// The primaries' pop order: an iterator over candidates, best first. With `Order::Size` this is
/// auto-layer.py's `sorted(...).pop()`; with `Order::Stability` a lazy max-heap keyed by an upper
/// bound that walks a candidate's closure only when it reaches the top, and only as far as its
/// weight could still beat the next bound (at least twice as far as its last walk), so a deep
/// graph does not cost a whole closure walk per candidate. The first bound counts the paths a
/// closure must hold at least (its longest chain of references, or its direct references), so
/// a path deep in a chain is walked only if it can win. Equal weights go by rank, highest first
/// (as `Order::Size` pops equal sizes); a bound equal to the best exact weight is resolved first.
struct Candidates<'c> {
    closure: &'c Closure,
    /// Paths sorted by narSize, stable over the path-sorted input (their rank breaks ties).
    by_size: Vec<usize>,
    order: Order,
    /// (weight as bits, pending, rank): non-negative floats order as their bits; `pending`
    /// while the weight is an upper bound, before the path's closure has been walked whole.
    heap: std::collections::BinaryHeap<(u64, bool, usize)>,
    mark: Vec<bool>,
    /// Per path, how many paths its closure holds at least ([`paths_below_at_least`]).
    below: Vec<usize>,
    /// Paths found by the last cut-short walk of each candidate (by rank): the next walk goes
    /// at least twice as far, so a candidate's walks add up to about its closure once.
    walked: Vec<usize>,
}

impl<'c> Candidates<'c> {
    fn new(closure: &'c Closure, by_size: Vec<usize>, order: Order) -> Self {
        let (heap, below) = match order {
            Order::Size => Default::default(),
            Order::Stability { hazard } => {
                let below = paths_below_at_least(closure);
                (by_size.iter().enumerate().map(|(rank, &i)| (weight(closure.nar_size(i), hazard, below[i]).to_bits(), true, rank)).collect(), below)
            }
        };
        let walked = vec![0; by_size.len()];
        Candidates { closure, by_size, order, heap, mark: vec![false; closure.len()], below, walked }
    }
}

impl Iterator for Candidates<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let Order::Stability { hazard } = self.order else { return self.by_size.pop() };
        loop {
            let (_, pending, rank) = self.heap.pop()?;
            if !pending {
                return Some(self.by_size[rank]);
            }
            let i = self.by_size[rank];
            let size = self.closure.nar_size(i) as f64;
            // Walk the closure only as far as it could still beat the next candidate: beyond
            // `ln(size / next) / hazard` paths its weight is below that bound anyway.
            let next = self.heap.peek().map_or(0.0, |&(b, _, _)| f64::from_bits(b));
            let limit = if next > 0.0 && hazard > 0.0 { ((size / next).ln() / hazard).max(0.0) as usize + 1 } else { usize::MAX };
            let limit = limit.max(2 * self.walked[rank]).max(self.below[i] + 1);
            let (deps, complete) = self.closure.reach_at_most(i, Direction::References, &mut self.mark, limit);
            self.walked[rank] = deps.len();
            clear(&mut self.mark, &deps);
            // Complete: the exact weight. Cut short: at least `limit` paths below, so at most
            // the weight of that many, and strictly more than the exact weight.
            self.heap.push((weight(self.closure.nar_size(i), hazard, deps.len()).to_bits(), !complete, rank));
        }
    }
}

/// A primary's weight: the bytes expected to stay unchanged, `narSize · e^(−hazard · below)` for
/// `below` paths in its closure.
fn weight(nar_size: u64, hazard: f64, below: usize) -> f64 {
    nar_size as f64 * (-hazard * below as f64).exp()
}

/// For every path, a number of paths its closure holds at least (itself excluded): its direct
/// references, or one more than a reference's count, whichever is more. One pass, references
/// first.
fn paths_below_at_least(closure: &Closure) -> Vec<usize> {
    let mut below = vec![0; closure.len()];
    for &i in closure.topo_order() {
        let refs = closure.refs(i);
        below[i] = refs.iter().map(|&r| below[r as usize] + 1).max().unwrap_or(0).max(refs.len());
    }
    below
}

/// The layer of every path, as a set id, after running the algorithm with `limit` layers, on
/// the sub-closure `members` (all paths when `None`), taking primaries in `order`. A primary's
/// dependencies are the members it reaches through members: the paths outside stand between it
/// and what lies below them, as primaries that are its dependencies do in step 2.
pub(crate) fn split(closure: &Closure, members: Option<&[bool]>, limit: usize, order: Order) -> (Vec<u32>, Vec<Vec<usize>>) {
    let n = closure.len();
    let inside = |i: usize| members.is_none_or(|m| m[i]);
    // Python: nodes_by_size = sorted(graph by path, key=narSize); pop() from the end.
    let mut by_size: Vec<usize> = (0..n).filter(|&i| inside(i)).collect();
    by_size.sort_by_key(|&i| closure.nar_size(i));

    let mut sets = Sets::new();
    // The steps' working arrays are indexed by position in dependency order, as the walks are,
    // so a walk down a deep graph reads them in order.
    let (references, position) = closure.references_in_dependency_order();
    let topo = closure.topo_order();
    let mut split = Assignment::new(n, by_size.len());
    // Primaries by position.
    let mut primaries: Vec<usize> = vec![];
    let mut is_dep = vec![false; n];
    // Bit q % 64 of `reached_by[q / 64][d]`: the closure of primary q holds d. So whether an
    // earlier primary uses the new one is one lookup, not a walk over the new one's users.
    let mut reached_by: Vec<Vec<u64>> = vec![];
    // Per old set, (the step that last mapped it, its new set): a dependency's new set depends
    // only on its old one, so each old set is mapped once per step.
    let mut mapped: Vec<(u32, u32)> = vec![];
    for p in Candidates::new(closure, by_size, order) {
        let (p, rank) = (position[p] as usize, primaries.len() as u32);
        split.assign(p, sets.intern(vec![rank]));
        let all_deps = match members {
            None => references.reach_at_most(p, &mut is_dep, usize::MAX).0,
            Some(m) => references.reach_through(p, &mut is_dep, usize::MAX, |d| m[topo[d]]).0,
        };
        let uses_p = |q: u32| reached_by[q as usize / 64][p] >> (q % 64) & 1 == 1;
        mapped.resize(sets.sets.len(), (u32::MAX, 0));
        for &d in &all_deps {
            let old = split.set_of[d] as usize;
            if mapped[old].0 != rank {
                let mut s: Vec<u32> = sets.sets[old].iter().copied().filter(|&q| !uses_p(q)).collect();
                if !s.iter().any(|&q| is_dep[primaries[q as usize]]) {
                    s.push(rank); // ranks grow, so the vector stays sorted
                }
                mapped[old] = (rank, sets.intern(s));
            }
            split.assign(d, mapped[old].1);
        }
        if split.distinct > limit {
            split.undo();
            break;
        }
        split.commit();
        primaries.push(p);
        if rank.is_multiple_of(64) {
            reached_by.push(vec![0; n]);
        }
        let block = &mut reached_by[rank as usize / 64];
        for &d in &all_deps {
            is_dep[d] = false;
            block[d] |= 1 << (rank % 64);
        }
    }
    // Sets interned in a rejected last step mention its primary; the final split uses none.
    let named = sets.sets.iter().map(|s| s.iter().filter_map(|&q| primaries.get(q as usize).map(|&p| topo[p])).collect()).collect();
    (position.iter().map(|&k| split.set_of[k as usize]).collect(), named)
}

/// Each path's set, with the number of members in each set, so that a step counts the distinct
/// sets from the paths it moved rather than by a pass over every member; a rejected step is
/// undone from its log.
struct Assignment {
    set_of: Vec<u32>,
    holders: Vec<usize>,
    /// Sets holding at least one member.
    distinct: usize,
    /// This step's moves: (path, its set before).
    moves: Vec<(usize, u32)>,
}

impl Assignment {
    /// Every path in set 0, `members` of them counted.
    fn new(paths: usize, members: usize) -> Self {
        Assignment { set_of: vec![0; paths], holders: vec![members], distinct: usize::from(members > 0), moves: vec![] }
    }

    /// Moves member `i` to `set`.
    fn assign(&mut self, i: usize, set: u32) {
        self.moves.push((i, self.set_of[i]));
        self.relocate(i, set);
    }

    fn relocate(&mut self, i: usize, set: u32) {
        let old = std::mem::replace(&mut self.set_of[i], set) as usize;
        self.holders[old] -= 1;
        self.distinct -= usize::from(self.holders[old] == 0);
        if self.holders.len() <= set as usize {
            self.holders.resize(set as usize + 1, 0);
        }
        self.holders[set as usize] += 1;
        self.distinct += usize::from(self.holders[set as usize] == 1);
    }

    fn commit(&mut self) {
        self.moves.clear();
    }

    fn undo(&mut self) {
        while let Some((i, old)) = self.moves.pop() {
            self.relocate(i, old);
        }
    }
}

fn clear(mark: &mut [bool], all: &[usize]) {
    for &i in all {
        mark[i] = false;
    }
}

/// `(name, hash)` of a full path split at its first `-`, as auto-layer.py's `path_key`.
pub(crate) fn path_key(path: &str) -> (&str, &str) {
    match path.split_once('-') {
        Some((hash, name)) => (name, hash),
        None => ("", path),
    }
}

/// Sorts paths by [`path_key`]. Most comparisons are settled by the names' first 8 bytes
/// ([`Closure::name_prefix`]): the paths' text lies scattered in memory, and a sort that read it
/// at every comparison would mostly wait on memory.
pub(crate) fn sort_by_path_key(closure: &Closure, paths: &mut [usize]) {
    let key = |i: usize| path_key(closure.path(i).as_str());
    sort_on_leading_bytes(paths, |i| closure.name_prefix(i), |a, b| key(a).cmp(&key(b)));
}

/// Groups paths by set id, sorts each group by `path_key`, and orders groups by the narSize of
/// their closure.
pub(crate) fn group(closure: &Closure, split: &[u32], members: Option<&[bool]>) -> Vec<(u32, Vec<usize>)> {
    // Set ids are dense (interned), so a list indexed by id gathers each set's paths.
    let included = |i: &usize| members.is_none_or(|m| m[*i]);
    let mut by_id: Vec<Vec<usize>> = vec![vec![]; (0..closure.len()).filter(included).map(|i| split[i] as usize + 1).max().unwrap_or(0)];
    for i in (0..closure.len()).filter(included) {
        by_id[split[i] as usize].push(i);
    }
    let by_set: Vec<(u32, Vec<usize>)> = by_id.into_iter().zip(0..).filter(|(paths, _)| !paths.is_empty()).map(|(paths, set)| (set, paths)).collect();
    let mut group_of = vec![NO_GROUP; closure.len()];
    for (k, (_, paths)) in by_set.iter().enumerate() {
        paths.iter().for_each(|&p| group_of[p] = k as u32);
    }
    let sizes = closure_sizes(closure, &group_of, by_set.len());
    let mut groups: Vec<(u64, u32, Vec<usize>)> = by_set
        .into_iter()
        .zip(sizes)
        .map(|((set, mut paths), closure_size)| {
            sort_by_path_key(closure, &mut paths);
            (closure_size, set, paths)
        })
        .collect();
    // Python sorts a set's iteration order stably by closure size, so equal sizes have no
    // defined order there; here they fall back to the first path's key.
    groups.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| path_key(closure.path(a.2[0]).as_str()).cmp(&path_key(closure.path(b.2[0]).as_str()))));
    groups.into_iter().map(|(_, set, paths)| (set, paths)).collect()
}

/// `group_of` for a path in no group.
const NO_GROUP: u32 = u32::MAX;

/// The narSize of each group's closure (its members and every path they reach), all groups in
/// one pass from users to references: each path carries the set of groups that reach it, the
/// union of its users' sets and its own group.
fn closure_sizes(closure: &Closure, group_of: &[u32], groups: usize) -> Vec<u64> {
    let words = groups.div_ceil(64).max(1);
    let mut reached = vec![0u64; closure.len() * words];
    let mut sizes = vec![0u64; groups];
    for &v in closure.topo_order().iter().rev() {
        let row = v * words;
        if group_of[v] != NO_GROUP {
            let g = group_of[v] as usize;
            reached[row + g / 64] |= 1 << (g % 64);
        }
        for &u in closure.users(v) {
            for w in 0..words {
                reached[row + w] |= reached[u as usize * words + w];
            }
        }
        for w in 0..words {
            let mut bits = reached[row + w];
            while bits != 0 {
                sizes[w * 64 + bits.trailing_zeros() as usize] += closure.nar_size(v);
                bits &= bits - 1;
            }
        }
    }
    sizes
}

/// auto-layer.py with `layer_limit = store_layers`.
pub fn layers(closure: &Closure, store_layers: usize) -> Vec<Layer> {
    let (split, named) = split(closure, None, store_layers, Order::Size);
    group(closure, &split, None)
        .into_iter()
        .map(|(set, paths)| {
            let used_by = named[set as usize].iter().map(|&p| closure.path(p).to_string()).collect();
            Layer::new(closure, paths, Reason::SizeFirst { used_by })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::info;
    use crate::PathInfo;
    use hints_format::StorePath;

    /// Names that agree in their first 8 bytes, one a prefix of another, and one name under
    /// three hashes: the order is `path_key`'s on the whole text.
    #[test]
    fn paths_sort_by_whole_keys_where_their_names_first_8_bytes_agree() {
        let mut infos: Vec<PathInfo> = ["python3.11-a", "python3.11", "python3.11-a+b", "p", "zlib", "python3.11-aa"].iter().map(|n| info(n, 1, &[])).collect();
        for hash in ["1".repeat(32), "0".repeat(32)] {
            infos.push(PathInfo::new(StorePath::parse(&format!("/nix/store/{hash}-python3.11-a")).unwrap(), 1, vec![]));
        }
        let c = Closure::new(infos).unwrap();
        let mut paths: Vec<usize> = (0..c.len()).rev().collect();
        sort_by_path_key(&c, &mut paths);
        let mut expected: Vec<usize> = (0..c.len()).collect();
        expected.sort_by_key(|&i| path_key(c.path(i).as_str()));
        assert_eq!(paths, expected);
        assert_eq!(paths.iter().map(|&i| c.path(i).name()).filter(|n| *n == "python3.11-a").count(), 3);
    }

    /// A closure from generated edge lists: path i references only paths after it, so the graph
    /// is acyclic; sizes come from `sizes`, which repeats values so that equal sizes and equal
    /// weights occur.
    fn closure(edges: &[Vec<usize>], sizes: &[u64]) -> Closure {
        let names: Vec<String> = (0..edges.len()).map(|i| format!("p{i:02}")).collect();
        let infos = edges.iter().enumerate().map(|(i, to)| {
            let refs: Vec<&str> = to.iter().filter(|_| i + 1 < edges.len()).map(|&t| names[i + 1 + t % (edges.len() - i - 1)].as_str()).collect();
            info(&names[i], sizes[i % sizes.len()], &refs)
        });
        Closure::new(infos.collect()).unwrap()
    }

    fn edges() -> impl proptest::strategy::Strategy<Value = Vec<Vec<usize>>> {
        proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..40)
    }

    proptest::proptest! {
        /// One pass over the graph gives each group the size of its closure that a walk from
        /// each of its members gives.
        #[test]
        fn closure_sizes_equal_a_walk_per_group(edges in edges(), groups in proptest::collection::vec(0u32..5, 40)) {
            let c = closure(&edges, &[7, 1000, 3, 1 << 20]);
            // Group 4 stands for "in no group".
            let group_of: Vec<u32> = (0..c.len()).map(|i| if groups[i] == 4 { NO_GROUP } else { groups[i] }).collect();
            let sizes = closure_sizes(&c, &group_of, 4);
            for (g, &size) in sizes.iter().enumerate() {
                let mut mark = vec![false; c.len()];
                let mut walked = 0;
                for p in (0..c.len()).filter(|&p| group_of[p] == g as u32) {
                    for q in std::iter::once(p).chain(c.reach(p, Direction::References, &mut vec![false; c.len()])) {
                        if !std::mem::replace(&mut mark[q], true) {
                            walked += c.nar_size(q);
                        }
                    }
                }
                proptest::prop_assert_eq!(size, walked, "group {}", g);
            }
        }

        /// The lazy stability order pops primaries by exact weight, highest first, and equal
        /// weights by rank, highest first, however its bounds are refined.
        #[test]
        fn stability_candidates_come_in_the_order_of_their_exact_weights(edges in edges(), hazard in 0.0f64..0.5) {
            let c = closure(&edges, &[5000, 40, 5000, 900]);
            let mut by_size: Vec<usize> = (0..c.len()).collect();
            by_size.sort_by_key(|&i| c.nar_size(i));
            let exact = |i: usize| weight(c.nar_size(i), hazard, c.reach(i, Direction::References, &mut vec![false; c.len()]).len());
            let mut expected: Vec<usize> = (0..by_size.len()).collect();
            expected.sort_by(|&a, &b| exact(by_size[b]).total_cmp(&exact(by_size[a])).then(b.cmp(&a)));
            let expected: Vec<usize> = expected.into_iter().map(|rank| by_size[rank]).collect();
            let popped: Vec<usize> = Candidates::new(&c, by_size, Order::Stability { hazard }).collect();
            proptest::prop_assert_eq!(popped, expected);
        }
    }
}
