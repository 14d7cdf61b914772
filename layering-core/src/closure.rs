//! A closure: store paths with sizes and references, validated and in a canonical order.
//!
//! Nodes are sorted by path and references are indices, so everything computed from a
//! [`Closure`] is independent of the order the input listed records and references in.
//! Construction rejects what Nix cannot produce: an empty closure, a path listed twice with
//! different contents, a reference to a path outside the closure, any cycle other than a
//! self-reference, paths in two store directories, two names on one hash, and sizes whose sum
//! does not fit in a signed 64-bit integer. Each error names the offending paths.

use hints_format::StorePath;
use petgraph::graph::DiGraph;

use crate::records::{PathInfo, PathRecord, Records};
use crate::texts::leading_bytes;

/// Why a list of path records is not a closure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosureError {
    /// No paths at all.
    #[error("the closure is empty")]
    Empty,
    /// One path, two different records.
    #[error("`{path}` is listed twice with different contents (narSize {first} and {second}, or different references)")]
    ConflictingDuplicate {
        /// The path listed twice.
        path: String,
        /// Its first narSize.
        first: u64,
        /// Its second narSize.
        second: u64,
    },
    /// A reference to a path that is not listed.
    #[error("`{from}` references `{to}`, which is not in the closure")]
    DanglingReference {
        /// The referring path.
        from: String,
        /// The missing path.
        to: String,
    },
    /// Paths that reference each other (Nix allows only self-references).
    #[error("reference cycle between {}", paths.join(", "))]
    Cycle {
        /// The paths of one cycle, sorted.
        paths: Vec<String>,
    },
    /// Paths of two store directories.
    #[error("`{first}` and `{second}` are in different store directories; a closure lives in one store")]
    MixedStoreDirs {
        /// A path of one directory.
        first: String,
        /// A path of the other.
        second: String,
    },
    /// One hash, two names.
    #[error("`{first}` and `{second}` have the same hash but different names; a store path hash names one path")]
    SameHash {
        /// One of the paths.
        first: String,
        /// The other.
        second: String,
    },
    /// The sizes do not fit in a signed 64-bit total.
    #[error("the narSize values add up to more than 2^63 − 1 bytes")]
    TooLarge,
}

/// Edges as one contiguous array (compressed sparse rows): the walks over a deep graph follow
/// them without a pointer chase per node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Adjacency {
    /// Node `i`'s edges are `targets[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    targets: Vec<u32>,
}

impl Adjacency {
    /// Nodes.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub(crate) fn of(&self, i: usize) -> &[u32] {
        &self.targets[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Edges.
    pub(crate) fn edges(&self) -> usize {
        self.targets.len()
    }

    /// The same edges with node `order[k]` renamed `k` (`position` is `order`'s inverse).
    pub(crate) fn relabeled(&self, order: &[usize], position: &[u32]) -> Adjacency {
        let mut offsets = Vec::with_capacity(order.len() + 1);
        let mut targets = Vec::with_capacity(self.targets.len());
        offsets.push(0);
        for &i in order {
            targets.extend(self.of(i).iter().map(|&j| position[j as usize]));
            offsets.push(targets.len());
        }
        Adjacency { offsets, targets }
    }

    /// The nodes reachable from `start` (itself excluded), each marked in `mark` (all `false`
    /// before), stopping once `limit` are found; `true` when nothing was left unvisited.
    pub(crate) fn reach_at_most(&self, start: usize, mark: &mut [bool], limit: usize) -> (Vec<usize>, bool) {
        self.reach_through(start, mark, limit, |_| true)
    }

    /// [`Adjacency::reach_at_most`] through the nodes `through` admits only: a node it rejects
    /// is neither reached nor walked past.
    pub(crate) fn reach_through(&self, start: usize, mark: &mut [bool], limit: usize, through: impl Fn(usize) -> bool) -> (Vec<usize>, bool) {
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if out.len() >= limit {
                return (out, false);
            }
            for &j in self.of(i) {
                let j = j as usize;
                if j != start && !mark[j] && through(j) {
                    mark[j] = true;
                    out.push(j);
                    stack.push(j);
                }
            }
        }
        (out, true)
    }

    /// The same edges reversed.
    fn reversed(&self) -> Adjacency {
        let n = self.len();
        let mut count = vec![0usize; n + 1];
        for &t in &self.targets {
            count[t as usize + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        let mut next = count.clone();
        let mut targets = vec![0u32; self.targets.len()];
        for i in 0..n {
            for &t in self.of(i) {
                targets[next[t as usize]] = i as u32;
                next[t as usize] += 1;
            }
        }
        Adjacency { offsets: count, targets }
    }
}

/// A path's hash part, the key of [`Closure`]'s index.
fn hash_key(path: &StorePath) -> [u8; hints_format::store_path::HASH_LEN] {
    path.hash().as_bytes().try_into().expect("a store path's hash part is 32 characters")
}

/// Record positions sorted by path, equal paths by position. Within one store directory the
/// order of paths is the order of their hash parts, so the first 16 bytes of each hash part
/// decide nearly every comparison without reading the paths again.
fn path_order(records: &[PathRecord]) -> Vec<u32> {
    let dir = records[0].path.store_dir();
    if !records.iter().all(|r| r.path.store_dir() == dir) {
        let mut order: Vec<u32> = (0..records.len() as u32).collect();
        order.sort_by(|&a, &b| records[a as usize].path.cmp(&records[b as usize].path));
        return order;
    }
    let prefix = |r: &PathRecord| u128::from_be_bytes(r.path.hash().as_bytes()[..16].try_into().expect("a hash part has 32 characters"));
    let mut keyed: Vec<(u128, u32)> = records.iter().zip(0..).map(|(r, k)| (prefix(r), k)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| records[a.1 as usize].path.cmp(&records[b.1 as usize].path)).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, k)| k).collect()
}

/// The first 8 bytes of `path` after its first `-`, where auto-layer.py's and closure-graph.py's
/// sort keys begin (the name, in a store directory without `-`), as [`leading_bytes`] gives them.
fn name_prefix(path: &str) -> u64 {
    leading_bytes(&[path.split_once('-').map_or(&b""[..], |(_, name)| name.as_bytes())])
}

/// Which record of each path a closure keeps: the first in input order.
struct Kept {
    /// Position `p` is the record kept for its path.
    first: Vec<bool>,
    /// The closure index (path order) of the path at position `p`.
    sorted_index: Vec<u32>,
}

/// Checks records in path order (`order`): one store directory, one name per hash, and
/// duplicates that agree on size and references.
fn check_duplicates(input: &Records, order: &[u32]) -> Result<Kept, ClosureError> {
    let records = &input.records;
    let mut kept = Kept { first: vec![false; records.len()], sorted_index: vec![0; records.len()] };
    let mut previous: Option<usize> = None;
    let mut next = 0u32;
    for &p in order {
        let p = p as usize;
        if let Some(k) = previous {
            let (prev, cur) = (&records[k].path, &records[p].path);
            if prev.store_dir() != cur.store_dir() {
                return Err(ClosureError::MixedStoreDirs { first: prev.to_string(), second: cur.to_string() });
            }
            if prev.hash() == cur.hash() && prev != cur {
                return Err(ClosureError::SameHash { first: prev.to_string(), second: cur.to_string() });
            }
            if prev == cur {
                if records[k].nar_size != records[p].nar_size || reference_set(input, k) != reference_set(input, p) {
                    return Err(ClosureError::ConflictingDuplicate { path: cur.to_string(), first: records[k].nar_size, second: records[p].nar_size });
                }
                kept.sorted_index[p] = kept.sorted_index[k];
                continue;
            }
        }
        kept.first[p] = true;
        kept.sorted_index[p] = next;
        next += 1;
        previous = Some(p);
    }
    Ok(kept)
}

/// The kept records' listed references as closure indices, in path order: sorted, without
/// duplicates or the path itself.
fn renumbered_references(input: &Records, order: &[u32], kept: &Kept) -> Adjacency {
    let mut refs = Adjacency { offsets: Vec::with_capacity(order.len() + 1), targets: Vec::with_capacity(input.targets.len()) };
    refs.offsets.push(0);
    for (i, &p) in order.iter().filter(|&&p| kept.first[p as usize]).enumerate() {
        let start = refs.targets.len();
        refs.targets.extend(input.listed(p as usize).iter().map(|&q| kept.sorted_index[q as usize]).filter(|&j| j as usize != i));
        // Indices follow path order, so references sorted by index are sorted by path. Nix
        // lists them sorted, so they usually stay as they came.
        if !refs.targets[start..].is_sorted_by(|a, b| a < b) {
            let mut mine = refs.targets.split_off(start);
            mine.sort_unstable();
            mine.dedup();
            refs.targets.extend(mine);
        }
        refs.offsets.push(refs.targets.len());
    }
    refs
}

/// Record `k`'s references as a set of paths, for comparing two records of one path.
fn reference_set(input: &Records, k: usize) -> Vec<&StorePath> {
    let listed = input.listed(k).iter().map(|&q| &input.records[q as usize].path);
    let unlisted = input.unlisted.iter().filter(|(from, _)| *from as usize == k).map(|(_, path)| path);
    let mut v: Vec<&StorePath> = listed.chain(unlisted).collect();
    v.sort();
    v.dedup();
    v
}

/// A validated closure graph.
#[derive(Debug, Clone)]
pub struct Closure {
    /// The records, sorted by path.
    records: Vec<PathRecord>,
    /// Index of each path by its hash part, unique within a closure, built by the first
    /// [`Closure::index_of`] (scanning and layering never look a path up). Looked up once per
    /// path, so it uses foldhash rather than SipHash; it is never iterated.
    index: std::sync::OnceLock<foldhash::HashMap<[u8; hints_format::store_path::HASH_LEN], u32>>,
    /// Sorted, deduplicated references other than the path itself.
    refs: Adjacency,
    users: Adjacency,
    /// Kahn's order, references first: computed once, for the cycle check and every
    /// strategy that walks the graph bottom-up.
    topo: Vec<usize>,
    /// Each path's [`name_prefix`], by index.
    name_prefixes: Vec<u64>,
    /// The paths' indices in the order their records came in ([`Closure::input_order`]).
    input_order: Vec<u32>,
}

impl Closure {
    /// Checks and indexes path records: in one store directory, one record per path (identical
    /// duplicates merge), every reference present, no cycle but self-references, sizes that
    /// sum within `i64`.
    pub fn new(infos: Vec<PathInfo>) -> Result<Self, ClosureError> {
        Self::from_records(Records::from_infos(infos))
    }

    /// [`Closure::new`] for records whose references are already positions.
    pub fn from_records(mut input: Records) -> Result<Self, ClosureError> {
        if input.is_empty() {
            return Err(ClosureError::Empty);
        }
        // Read in input order, the order in which a parser allocated the paths' text.
        let name_prefixes_in_input: Vec<u64> = input.records.iter().map(|r| name_prefix(r.path.as_str())).collect();
        let order = path_order(&input.records);
        let kept = check_duplicates(&input, &order)?;
        let name_prefixes = order.iter().filter(|&&p| kept.first[p as usize]).map(|&p| name_prefixes_in_input[p as usize]).collect();
        let mut slots: Vec<Option<PathRecord>> = std::mem::take(&mut input.records).into_iter().map(Some).collect();
        let records: Vec<PathRecord> = order.iter().filter(|&&p| kept.first[p as usize]).map(|&p| slots[p as usize].take().expect("each record is taken once")).collect();
        // Every total of sizes downstream (layers, images, SQLite's signed integers) fits.
        if records.iter().try_fold(0u64, |t, r| t.checked_add(r.nar_size)).is_none_or(|t| t > i64::MAX as u64) {
            return Err(ClosureError::TooLarge);
        }
        // The first unlisted reference of the first path (in path order) that has one.
        if let Some((from, to)) = input.unlisted.iter().filter(|(from, _)| kept.first[*from as usize]).min_by_key(|(from, _)| kept.sorted_index[*from as usize]) {
            return Err(ClosureError::DanglingReference { from: records[kept.sorted_index[*from as usize] as usize].path.to_string(), to: to.to_string() });
        }
        let refs = renumbered_references(&input, &order, &kept);
        let users = refs.reversed();
        let input_order = (0..kept.first.len()).filter(|&p| kept.first[p]).map(|p| kept.sorted_index[p]).collect();
        let mut closure = Closure { records, index: std::sync::OnceLock::new(), refs, users, topo: vec![], name_prefixes, input_order };
        closure.topo = closure.kahn_order();
        closure.check_acyclic()?;
        Ok(closure)
    }

    fn check_acyclic(&self) -> Result<(), ClosureError> {
        // Kahn's order reaches every node exactly when there is no cycle; only then is the
        // graph built again to name one.
        if self.topo.len() == self.len() {
            return Ok(());
        }
        let mut g = DiGraph::<(), ()>::with_capacity(self.len(), 0);
        let ids: Vec<_> = (0..self.len()).map(|_| g.add_node(())).collect();
        for (i, &from) in ids.iter().enumerate() {
            for &r in self.refs(i) {
                g.add_edge(from, ids[r as usize], ());
            }
        }
        let mut cycles: Vec<Vec<String>> = petgraph::algo::kosaraju_scc(&g)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let mut p: Vec<String> = scc.iter().map(|n| self.path(n.index()).to_string()).collect();
                p.sort();
                p
            })
            .collect();
        cycles.sort();
        match cycles.into_iter().next() {
            Some(paths) => Err(ClosureError::Cycle { paths }),
            None => Ok(()),
        }
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Never true for a built closure (an empty one is an error); for the API's symmetry.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The path at index `i` (indices follow path order).
    pub fn path(&self, i: usize) -> &StorePath {
        &self.records[i].path
    }

    /// Every path's index, in the order the records came in (the first of duplicates): where a
    /// parser allocated the paths' text, so reading every path's text in this order reads
    /// memory in order, where path order jumps about it.
    pub fn input_order(&self) -> &[u32] {
        &self.input_order
    }

    /// Path `i`'s [`name_prefix`], read when the closure was built: sorts on names compare
    /// these first, where reading the paths' text, scattered in memory, would wait on it.
    pub(crate) fn name_prefix(&self, i: usize) -> u64 {
        self.name_prefixes[i]
    }

    /// The record of path `i` (its references are [`Closure::refs`]).
    pub fn record(&self, i: usize) -> &PathRecord {
        &self.records[i]
    }

    /// The narSize of path `i`.
    pub fn nar_size(&self, i: usize) -> u64 {
        self.records[i].nar_size
    }

    /// References of `i` other than itself, as indices, sorted.
    pub fn refs(&self, i: usize) -> &[u32] {
        self.refs.of(i)
    }

    /// Paths that reference `i` (other than itself), sorted.
    pub fn users(&self, i: usize) -> &[u32] {
        self.users.of(i)
    }

    /// The index of a store path, if it is in the closure.
    pub fn index_of(&self, path: &StorePath) -> Option<usize> {
        let index = self.index.get_or_init(|| self.records.iter().enumerate().map(|(i, r)| (hash_key(&r.path), i as u32)).collect());
        index.get(&hash_key(path)).map(|&i| i as usize).filter(|&i| self.records[i].path == *path)
    }

    /// The sum of every path's narSize (fits: [`Closure::new`] checks).
    pub fn total_size(&self) -> u64 {
        self.records.iter().map(|n| n.nar_size).sum()
    }

    /// All paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &StorePath> {
        self.records.iter().map(|n| &n.path)
    }

    /// Nodes no other node references.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.users(i).is_empty())
    }

    /// Node indices so that every node comes after all of its references.
    pub fn topo_order(&self) -> &[usize] {
        &self.topo
    }

    /// Kahn's order: nodes on a cycle, or above one, are left out.
    fn kahn_order(&self) -> Vec<usize> {
        let mut pending: Vec<usize> = (0..self.len()).map(|i| self.refs(i).len()).collect();
        let mut order: Vec<usize> = (0..self.len()).filter(|&i| pending[i] == 0).collect();
        let mut k = 0;
        while k < order.len() {
            let i = order[k];
            k += 1;
            for &u in self.users(i) {
                pending[u as usize] -= 1;
                if pending[u as usize] == 0 {
                    order.push(u as usize);
                }
            }
        }
        order
    }

    /// Marks every node reachable from `start` along `next` (references or users), excluding
    /// `start` itself, into `mark` (which must be all false), and returns them.
    pub fn reach(&self, start: usize, next: Direction, mark: &mut [bool]) -> Vec<usize> {
        self.reach_at_most(start, next, mark, usize::MAX).0
    }

    /// [`Closure::reach`], stopping once `limit` nodes are found; `true` when nothing was left
    /// unvisited.
    pub fn reach_at_most(&self, start: usize, next: Direction, mark: &mut [bool], limit: usize) -> (Vec<usize>, bool) {
        match next {
            Direction::References => self.refs.reach_at_most(start, mark, limit),
            Direction::Users => self.users.reach_at_most(start, mark, limit),
        }
    }

    /// The users with paths renamed by their position from the top down ([`Closure::topo_order`]
    /// reversed: users before references), and that order. A count pushed from users to
    /// references then reads and writes memory in order.
    pub(crate) fn users_top_down(&self) -> (Adjacency, Vec<usize>) {
        let order: Vec<usize> = self.topo.iter().rev().copied().collect();
        (self.users.relabeled(&order, &positions(&order)), order)
    }

    /// The references with paths renamed by their position in [`Closure::topo_order`], and
    /// each path's position. A walk down a deep graph then reads memory in order, where path
    /// order (a hash's) is random along the graph.
    pub(crate) fn references_in_dependency_order(&self) -> (Adjacency, Vec<u32>) {
        let position = positions(&self.topo);
        (self.refs.relabeled(&self.topo, &position), position)
    }
}

/// Each node's position in `order` (a permutation of the nodes).
fn positions(order: &[usize]) -> Vec<u32> {
    let mut position = vec![0u32; order.len()];
    for (k, &i) in order.iter().enumerate() {
        position[i] = k as u32;
    }
    position
}

/// Which edges a walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a path to what it references.
    References,
    /// From a path to what references it.
    Users,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sp(name: &str) -> StorePath {
        // A deterministic valid hash per name.
        let alphabet = hints_format::nixbase32::ALPHABET;
        let mut h = 0xcbf29ce484222325u64;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let hash: String = (0..32).map(|k| alphabet[((h >> (k % 13 * 5)) as usize + k) % 32] as char).collect();
        StorePath::parse(&format!("/nix/store/{hash}-{name}")).unwrap()
    }

    pub fn info(name: &str, size: u64, refs: &[&str]) -> PathInfo {
        PathInfo::new(sp(name), size, refs.iter().map(|r| sp(r)).collect())
    }

    #[test]
    fn one_store_one_name_per_hash_and_sizes_that_add_up() {
        let a = info("a-1", 1, &[]);
        let moved = PathInfo::new(StorePath::parse(&a.record.path.as_str().replace("/nix/store", "/other/store")).unwrap(), 1, vec![]);
        let e = Closure::new(vec![a.clone(), moved]).unwrap_err();
        assert!(matches!(e, ClosureError::MixedStoreDirs { .. }), "{e}");
        let renamed = PathInfo::new(StorePath::parse(&a.record.path.as_str().replace("a-1", "z-2")).unwrap(), 1, vec![]);
        let e = Closure::new(vec![a.clone(), renamed]).unwrap_err();
        assert!(matches!(e, ClosureError::SameHash { .. }) && e.to_string().contains("z-2"), "{e}");
        let e = Closure::new(vec![info("a-1", u64::MAX - 1, &[]), info("b-1", 2, &[])]).unwrap_err();
        assert_eq!(e, ClosureError::TooLarge);
        assert_eq!(Closure::new(vec![info("a-1", i64::MAX as u64 + 1, &[])]).unwrap_err(), ClosureError::TooLarge);
        assert_eq!(Closure::new(vec![info("a-1", i64::MAX as u64, &[])]).unwrap().total_size(), i64::MAX as u64);
    }

    #[test]
    fn a_deep_chain_needs_no_deep_stack() {
        // 100,000 paths, each referencing the next; sorted order follows the chain, so a
        // recursive search would go 100,000 frames deep. 256 KiB of stack is enough here.
        let n = 100_000;
        let p = |i: usize| StorePath::parse(&format!("/nix/store/{i:032}-p{i}")).unwrap();
        let infos: Vec<PathInfo> = (0..n).map(|i| PathInfo::new(p(i), 1, if i + 1 < n { vec![p(i + 1)] } else { vec![] })).collect();
        let c = std::thread::Builder::new().stack_size(256 << 10).spawn(move || Closure::new(infos).map(|c| c.len())).unwrap().join().unwrap();
        assert_eq!(c, Ok(n));
    }

    #[test]
    fn a_reference_to_a_later_copy_of_a_path_is_a_reference_to_the_path() {
        let record = |name: &str, size: u64| PathRecord { path: sp(name), nar_size: size, nar_hash: None, closure_size: None };
        let mut r = Records::with_capacity(3);
        r.push(record("a-1", 1), [Ok(2)]);
        r.push(record("b-1", 2), []);
        r.push(record("b-1", 2), []);
        let c = Closure::from_records(r).unwrap();
        let (a, b) = (c.index_of(&sp("a-1")).unwrap(), c.index_of(&sp("b-1")).unwrap());
        assert_eq!((c.len(), c.refs(a), c.users(b)), (2, &[b as u32][..], &[a as u32][..]));
    }

    #[test]
    fn the_input_order_lists_each_path_once_as_its_first_record_came() {
        let infos = vec![info("zz-1", 1, &[]), info("b-1", 2, &["zz-1"]), info("zz-1", 1, &[]), info("m-1", 3, &["b-1"]), info("a-1", 4, &[])];
        let c = Closure::new(infos).unwrap();
        let names: Vec<&str> = c.input_order().iter().map(|&i| c.path(i as usize).name()).collect();
        assert_eq!(names, ["zz-1", "b-1", "m-1", "a-1"]);
        assert_ne!(c.input_order(), [0, 1, 2, 3], "path order is another order here");
    }

    #[test]
    fn validates() {
        assert_eq!(Closure::new(vec![]).unwrap_err(), ClosureError::Empty);
        let e = Closure::new(vec![info("a-1", 1, &["b-1"])]).unwrap_err();
        assert!(matches!(e, ClosureError::DanglingReference { .. }) && e.to_string().contains("b-1"), "{e}");
        let e = Closure::new(vec![info("a-1", 1, &["b-1"]), info("b-1", 1, &["c-1"]), info("c-1", 1, &["a-1"])]).unwrap_err();
        match &e {
            ClosureError::Cycle { paths } => assert_eq!(paths.len(), 3, "{e}"),
            _ => panic!("{e}"),
        }
        let e = Closure::new(vec![info("a-1", 1, &[]), info("a-1", 2, &[])]).unwrap_err();
        assert!(matches!(e, ClosureError::ConflictingDuplicate { first: 1, second: 2, .. }), "{e}");
        // Self-references and identical duplicates are fine.
        let c = Closure::new(vec![info("a-1", 1, &["a-1", "b-1"]), info("b-1", 2, &["b-1"]), info("a-1", 1, &["b-1", "a-1"])]).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.total_size(), 3);
        let a = c.index_of(&sp("a-1")).unwrap();
        assert_eq!(c.refs(a).len(), 1);
        assert_eq!(c.roots().collect::<Vec<_>>(), vec![a]);
    }
}
