//! `popularity`: nixpkgs' `referencesByPopularity` (closure-graph.py, 2018), reproduced exactly.
//!
//! Objective (theirs): put the paths most images are likely to share in their own layers.
//!
//! Definitions:
//! - Roots are the paths no other path references. A virtual *top* references every root.
//! - `routes(x)`: the number of distinct reference chains from the top to `x`.
//! - closure-graph.py counts popularity bottom-up over each root's references expanded into a
//!   tree, with a nested rule: for a node `p` with children `c`, `C(p)[c] += 1` and
//!   `C(p)[s] += C(c)[s] + 1` for every `s` below `c`; at the top the roots are the children.
//!   Unrolling the rule gives `popularity(s) = Σ routes(x)` over every `x` that reaches `s`
//!   (`s` included): each chain from the top that passes through such an `x` adds one for `x`.
//!
//! Algorithm:
//! 1. `routes` top-down (users before references), checked in u128: counts grow with the number
//!    of chains, and an overflow is an error rather than a wrong order.
//! 2. The dominator tree from the top: `idom(x)` is the lowest common dominator of `x`'s users
//!    (the top for a root), found with skew-binary jump pointers.
//! 3. Every path that reaches `d = idom(x)` reaches `x`, and those that reach `x` without reaching
//!    `d` lie strictly between them. So `popularity(x) = popularity(d) + Σ routes(y)` over the
//!    *region* of `x`: the paths met walking up from `x` through users, stopping at `d`.
//!    A walk that meets more than `(N + E) / 1024` paths (at least 64) stops, and its path is
//!    *heavy*: heavy paths are counted 256 at a time by one sweep up the graph that gives every
//!    path a 256-bit mask of the heavy paths it reaches (its own bit, or-ed with its
//!    references'), and adds its routes to the count of each path in its mask. A sweep costs a
//!    pass over the paths above its block's last and a bit per ancestor, where a walk chases
//!    every user edge. A path with a heavy user other than `d` is heavy without a walk: that
//!    user's region lies inside its own.
//! 4. Paths sort by descending popularity, ties by ascending `package_name`: the path with its
//!    leading `/nix/store/<hash>` segment moved to the end. Most ties are settled by the name's
//!    first 8 bytes, known without reading the path's text.
//! 5. Grouping follows `buildLayeredImage`'s `limit_layers`: with a budget of `n` store layers,
//!    the first `n - 1` paths get a layer each and the rest share the last one.
//!
//! Steps 1–3 run on the paths numbered from the top down (users before references), so that each
//! pass reads its arrays in order; the counts are given back in path order.
//!
//! Cost: `O((N + E) log N)` for the dominator tree, plus the regions up to the cap times their
//! in-degrees, plus per block of 256 heavy paths a sweep over the paths above its last one and a
//! bit per ancestor. A chain, a tree or a fan has regions of one path each, so it is
//! near-linear. A graph whose shared paths have no dominator but the top (many users reaching
//! them along disjoint chains, as in preferential attachment) has regions as large as their
//! ancestor sets, and the worst case stays quadratic, as for any exact count of this kind (the
//! sum of every path's ancestors' weights); closure-graph.py's own nested maps cost the sum of
//! descendant sets over every edge.

use std::cmp::Reverse;

use crate::closure::{Adjacency, Closure};
use crate::texts::leading_bytes;
use crate::{Layer, LayerError, Reason};

/// The popularity order, most popular first, ties by package name (every path's differs, so
/// the order is total). Names are compared on their first 8 bytes, made from the closure's name
/// prefixes in path order, and read whole only where those agree, as the paths' text lies
/// scattered in memory.
pub fn order(closure: &Closure) -> Result<Vec<usize>, LayerError> {
    // Every path's first `-` is at the same place: one store directory, then 32 hash digits.
    let first = closure.path(0);
    let dash = first.as_str().find('-');
    let name = |i: usize| PackageName::split_at(closure.path(i).as_str(), dash);
    // What every path's text holds before its first `-`: the store directory and its `/`.
    let shared = &first.as_str()[..dash.unwrap_or(0).min(first.store_dir().len() + 1)];
    let prefix = |i: usize| PackageName::prefix_from(closure.name_prefix(i), shared).unwrap_or_else(|| name(i).prefix());
    let mut ranked: Vec<(Reverse<u128>, u64, usize)> = popularity(closure)?.into_iter().enumerate().map(|(i, count)| (Reverse(count), prefix(i), i)).collect();
    ranked.sort_unstable_by_key(|r| r.0);
    for tied in ranked.chunk_by_mut(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        tied.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| name(a.2).cmp(&name(b.2))));
    }
    Ok(ranked.into_iter().map(|(_, _, i)| i).collect())
}

/// closure-graph.py's tie-break key, a path's *package name*: the path with its first
/// `-`-separated segment moved to the end, compared byte by byte.
#[derive(Debug, Clone, Copy)]
struct PackageName<'a>([&'a [u8]; 3]);

impl<'a> PackageName<'a> {
    /// The package name of `path`, whose first `-` is at `dash`.
    fn split_at(path: &'a str, dash: Option<usize>) -> Self {
        let path = path.as_bytes();
        PackageName(match dash {
            Some(k) => [&path[k + 1..], b"-", &path[..k]],
            None => [path, b"", b""],
        })
    }

    fn bytes(self) -> impl Iterator<Item = u8> + 'a {
        self.0.into_iter().flatten().copied()
    }

    /// The first 8 bytes ([`leading_bytes`]; a path holds no zero byte).
    fn prefix(self) -> u64 {
        leading_bytes(&self.0)
    }

    /// The first 8 bytes of the package name of a path whose [`Closure::name_prefix`] is
    /// `name_prefix` and whose text before its first `-` begins with `shared`, where that is
    /// enough to know them: for a name of 8 bytes or more, or when `shared` holds the 7 bytes
    /// that follow a shorter name and its `-`.
    fn prefix_from(name_prefix: u64, shared: &str) -> Option<u64> {
        // The name's bytes are those before the zero padding (a path holds no zero byte).
        let length = 8 - (name_prefix.trailing_zeros() / 8) as usize;
        match length {
            8 => Some(name_prefix),
            _ => (shared.len() >= 7).then(|| leading_bytes(&[&name_prefix.to_be_bytes()[..length], b"-", shared.as_bytes()])),
        }
    }
}

impl PartialEq for PackageName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes().eq(other.bytes())
    }
}

impl Eq for PackageName<'_> {}

impl PartialOrd for PackageName<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PackageName<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes().cmp(other.bytes())
    }
}

/// closure-graph.py's popularity of every path.
///
/// The passes run on paths renamed by their position from the top down, so that each one reads
/// its arrays in order; the counts are then given back in path order.
fn popularity(closure: &Closure) -> Result<Vec<u128>, LayerError> {
    let (users, order) = closure.users_top_down();
    let overflow = |k: usize| LayerError::PopularityOverflow(closure.path(order[k]).to_string());
    let routes = routes(&users).map_err(overflow)?;
    let by_position = counts(&users, &routes, heavy_walk(&users)).map_err(overflow)?;
    let mut popularity = vec![0u128; order.len()];
    for (k, &i) in order.iter().enumerate() {
        popularity[i] = by_position[k];
    }
    Ok(popularity)
}

/// A region walk that passes this many paths stops: the path's count is then taken with other
/// such paths, [`BLOCK`] at a time, in one sweep up the graph ([`Sweep::ancestor_sums`]).
/// Measured on preferential attachment with sweeps of 64: at 20,000 paths, caps of 64 to 256 are
/// within 2% of each other and 1,000 costs 9% more; at 200,000, 64 costs 10% more than
/// `(N + E) / 1024` (781). With sweeps of 256, divisors of 256 and 4,096 and a floor of 16 were
/// no faster (4,096: 10–15% slower at 100,000 paths and more).
fn heavy_walk(users: &Adjacency) -> usize {
    ((users.len() + users.edges()) / 1024).max(64)
}

/// Every path's popularity by position: its dominator's plus its region's routes, or for a
/// path whose region walk passes `cap` paths (a *heavy* path), the routes of all its ancestors,
/// summed in sweeps of [`BLOCK`] heavy paths. An overflow gives the first position whose count does
/// not fit.
fn counts(users: &Adjacency, routes: &[u128], cap: usize) -> Result<Vec<u128>, usize> {
    let n = users.len();
    let dominators = Dominators::new(users);
    let mut region = Region::new(n);
    // The first position known to overflow (`n`: none so far).
    let (mut heavy, mut known) = (vec![], n);
    let mut is_heavy = vec![false; n];
    let mut counts: Vec<u128> = (0..n)
        .map(|x| {
            let d = dominators.idom(x);
            // A user other than `d` has its region inside `x`'s: a heavy one makes `x` heavy.
            let walk = if users.of(x).iter().any(|&u| u as usize != d && is_heavy[u as usize]) { Walk::Heavy } else { region.routes_within(users, x, d, routes, cap) };
            is_heavy[x] = walk == Walk::Heavy;
            (x, walk)
        })
        .map(|(x, walk)| match walk {
            Walk::Sum(Some(sum)) => sum,
            Walk::Sum(None) => {
                known = known.min(x);
                0
            }
            Walk::Heavy => {
                heavy.push(x);
                0
            }
        })
        .collect();
    if !heavy.is_empty() {
        let mut sweep = Sweep::new(n);
        for block in heavy.chunks(BLOCK) {
            for (&x, sum) in block.iter().zip(sweep.ancestor_sums(users, routes, block)) {
                match sum {
                    Some(sum) => counts[x] = sum,
                    None => known = known.min(x),
                }
            }
        }
    }
    // Top down, each other path adds its dominator's count, final by then. Past the first
    // known overflow nothing is needed: only an earlier one could be reported instead.
    let mut heavy = heavy.into_iter().peekable();
    for x in 0..known {
        let d = dominators.idom(x);
        if heavy.next_if_eq(&x).is_none() && d != dominators.top() {
            counts[x] = counts[d].checked_add(counts[x]).ok_or(x)?;
        }
    }
    if known < n {
        return Err(known);
    }
    Ok(counts)
}

/// Chains from the top to each path (paths numbered from the top down, so every user comes
/// before what it uses): one for a root, the sum of its users' otherwise. An overflow names the
/// path.
fn routes(users: &Adjacency) -> Result<Vec<u128>, usize> {
    let n = users.len();
    let mut routes = vec![0u128; n];
    for x in 0..n {
        let of = users.of(x);
        routes[x] = if of.is_empty() { Some(1) } else { of.iter().try_fold(0u128, |t, &u| t.checked_add(routes[u as usize])) }.ok_or(x)?;
    }
    Ok(routes)
}

/// The dominator tree of the closure seen from the top, with a jump pointer per node for
/// common dominators. Node `closure.len()` is the top.
///
/// A node's jump skips to an ancestor chosen from depths alone (skew-binary jumps: twice the
/// parent's jump when the parent's and its jump's jumps are as long, else one step), so any
/// ancestor, and the lowest common one, is `O(log depth)` steps away, and building the tree
/// costs a few lookups per node rather than a table of `log n` levels.
struct Dominators {
    idom: Vec<u32>,
    jump: Vec<u32>,
    depth: Vec<u32>,
}

impl Dominators {
    /// The tree of paths numbered from the top down (`users`), so every user is attached
    /// before what it uses.
    fn new(users: &Adjacency) -> Self {
        let top = users.len();
        let mut tree = Dominators::only_top(top);
        for x in 0..top {
            let users = users.of(x).iter().map(|&u| u as usize);
            let idom = users.reduce(|a, b| tree.common(a, b)).unwrap_or(top);
            tree.attach(x, idom);
        }
        tree
    }

    /// A tree holding only `top`; nodes `0..top` are attached later.
    fn only_top(top: usize) -> Self {
        Dominators { idom: vec![top as u32; top + 1], jump: vec![top as u32; top + 1], depth: vec![0; top + 1] }
    }

    /// Makes `parent` the immediate dominator of `x`, with `x`'s jump.
    fn attach(&mut self, x: usize, parent: usize) {
        let (up, upup) = (self.jump[parent] as usize, self.jump[self.jump[parent] as usize] as usize);
        let even = self.depth[parent] - self.depth[up] == self.depth[up] - self.depth[upup];
        self.idom[x] = parent as u32;
        self.jump[x] = if even { upup } else { parent } as u32;
        self.depth[x] = self.depth[parent] + 1;
    }

    fn top(&self) -> usize {
        self.depth.len() - 1
    }

    fn idom(&self, x: usize) -> usize {
        self.idom[x] as usize
    }

    /// The lowest node that dominates both `a` and `b` (either one itself, if it dominates the other).
    fn common(&self, mut a: usize, mut b: usize) -> usize {
        if self.depth[a] < self.depth[b] {
            std::mem::swap(&mut a, &mut b);
        }
        while self.depth[a] > self.depth[b] {
            let ja = self.jump[a] as usize;
            a = if self.depth[ja] >= self.depth[b] { ja } else { self.idom(a) };
        }
        // At equal depths the jumps land at equal depths too: jump together while that stays
        // below the common dominator.
        while a != b {
            let (ja, jb) = (self.jump[a] as usize, self.jump[b] as usize);
            (a, b) = if ja != jb { (ja, jb) } else { (self.idom(a), self.idom(b)) };
        }
        a
    }
}

/// A region walk's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// The routes of the region (`None`: more than `u128` holds).
    Sum(Option<u128>),
    /// The walk passed its cap.
    Heavy,
}

/// Walks up from a path through its users, stopping at a dominator; reusable without clearing.
struct Region {
    seen: Vec<u32>,
    walk: u32,
    stack: Vec<u32>,
}

impl Region {
    fn new(n: usize) -> Self {
        Region { seen: vec![0; n], walk: 0, stack: vec![] }
    }

    /// The routes of `x` and of every path that reaches `x` without passing through `stop`, or
    /// [`Walk::Heavy`] once more than `cap` paths are met.
    fn routes_within(&mut self, users: &Adjacency, x: usize, stop: usize, routes: &[u128], cap: usize) -> Walk {
        self.walk += 1;
        self.stack.clear();
        self.stack.push(x as u32);
        self.seen[x] = self.walk;
        let (mut sum, mut met) = (0u128, 0usize);
        while let Some(y) = self.stack.pop() {
            met += 1;
            if met > cap {
                return Walk::Heavy;
            }
            let Some(more) = sum.checked_add(routes[y as usize]) else { return Walk::Sum(None) };
            sum = more;
            for &u in users.of(y as usize) {
                if u as usize != stop && self.seen[u as usize] != self.walk {
                    self.seen[u as usize] = self.walk;
                    self.stack.push(u);
                }
            }
        }
        Walk::Sum(Some(sum))
    }
}

/// Heavy paths summed by one sweep.
const BLOCK: usize = 256;

/// One bit per path of a block.
type Mask = [u64; BLOCK / 64];

/// Sums routes over the ancestors of up to [`BLOCK`] paths at once; reusable (its masks are left clear).
struct Sweep {
    /// Per path, which of the block's paths it reaches (bit `j`: the block's `j`-th).
    reaches: Vec<Mask>,
}

impl Sweep {
    fn new(n: usize) -> Self {
        Sweep { reaches: vec![[0; BLOCK / 64]; n] }
    }

    /// `Σ routes(y)` over every `y` that reaches each path of `block` (positions, increasing,
    /// at most [`BLOCK`]), each `None` where it overflows. Paths are visited from the block's last
    /// upwards, so every path's mask is complete (its references come after it) before it is
    /// passed on to its users, and its routes are added to the sum of each path it reaches.
    fn ancestor_sums(&mut self, users: &Adjacency, routes: &[u128], block: &[usize]) -> Vec<Option<u128>> {
        for (j, &t) in block.iter().enumerate() {
            self.reaches[t][j / 64] |= 1 << (j % 64);
        }
        let (mut sums, mut overflowed) = (vec![0u128; block.len()], vec![false; block.len()]);
        let last = *block.last().expect("a block holds a path");
        for y in (0..=last).rev() {
            let mask = std::mem::take(&mut self.reaches[y]);
            if mask == [0; BLOCK / 64] {
                continue;
            }
            for &u in users.of(y) {
                for (to, from) in self.reaches[u as usize].iter_mut().zip(mask) {
                    *to |= from;
                }
            }
            for (w, mut bits) in mask.into_iter().enumerate() {
                while bits != 0 {
                    let j = w * 64 + bits.trailing_zeros() as usize;
                    let (sum, over) = sums[j].overflowing_add(routes[y]);
                    sums[j] = sum;
                    overflowed[j] |= over;
                    bits &= bits - 1;
                }
            }
        }
        sums.into_iter().zip(overflowed).map(|(sum, over)| (!over).then_some(sum)).collect()
    }
}

/// `limit_layers` over the popularity order.
pub fn layers(closure: &Closure, store_layers: usize) -> Result<Vec<Layer>, LayerError> {
    let order = order(closure)?;
    let singles = store_layers.saturating_sub(1).min(order.len());
    let mut out: Vec<Layer> = order[..singles].iter().enumerate().map(|(rank, &i)| Layer::new(closure, vec![i], Reason::Popular { rank: rank + 1 })).collect();
    if order.len() > singles {
        out.push(Layer::new(closure, order[singles..].to_vec(), Reason::PopularRemainder));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::info;

    /// The worked example at the top of closure-graph.py.
    #[test]
    fn documented_example() {
        let c = Closure::new(vec![info("A", 1, &["B", "G"]), info("B", 1, &["C", "E"]), info("C", 1, &["D", "E"]), info("D", 1, &["F"]), info("E", 1, &["F"]), info("F", 1, &[]), info("G", 1, &[])])
            .unwrap();
        let names: Vec<&str> = order(&c).unwrap().into_iter().map(|i| c.path(i).name()).collect();
        // F 9, E 5, D 4, C 3, then B and G tie at 2 (ordered by name), then A 1.
        assert_eq!(names, ["F", "E", "D", "C", "B", "G", "A"]);
    }

    /// closure-graph.py's nested rule, as it states it: per-node maps, children first.
    fn nested_rule(c: &Closure) -> Vec<u128> {
        use std::collections::BTreeMap;
        let mut maps: Vec<BTreeMap<usize, u128>> = vec![BTreeMap::new(); c.len()];
        let add_child = |acc: &mut BTreeMap<usize, u128>, child: usize, below: &BTreeMap<usize, u128>| {
            *acc.entry(child).or_default() += 1;
            for (&s, &v) in below {
                *acc.entry(s).or_default() += v + 1;
            }
        };
        for &p in c.topo_order() {
            let mut acc = BTreeMap::new();
            for &child in c.refs(p) {
                add_child(&mut acc, child as usize, &maps[child as usize]);
            }
            maps[p] = acc;
        }
        let mut top = BTreeMap::new();
        for r in c.roots() {
            add_child(&mut top, r, &maps[r]);
        }
        (0..c.len()).map(|s| top[&s]).collect()
    }

    /// A closure where path `i` references the paths `edges[i]` picks among those after it (so
    /// the graph is acyclic): many roots, shared paths, diamonds and chains.
    fn random_closure(edges: &[Vec<usize>]) -> Closure {
        let names: Vec<String> = (0..edges.len()).map(|i| format!("p{i:03}")).collect();
        let infos = edges.iter().enumerate().map(|(i, to)| {
            let refs: Vec<&str> = to.iter().filter(|_| i + 1 < edges.len()).map(|&t| names[i + 1 + t % (edges.len() - i - 1)].as_str()).collect();
            info(&names[i], 1, &refs)
        });
        Closure::new(infos.collect()).unwrap()
    }

    /// The users of the paths numbered from the top down, and the routes to each.
    fn top_down(c: &Closure) -> (Adjacency, Vec<u128>) {
        let (users, _) = c.users_top_down();
        let routes = routes(&users).unwrap();
        (users, routes)
    }

    proptest::proptest! {
        /// The dominator form equals the nested rule on random closures.
        #[test]
        fn dominator_form_equals_nested_rule(edges in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..40)) {
            let c = random_closure(&edges);
            proptest::prop_assert_eq!(popularity(&c).unwrap(), nested_rule(&c));
        }

        /// Heavy paths' sweeps count what region walks count, whichever paths are heavy and
        /// however many blocks they fill.
        #[test]
        fn sweeps_count_as_region_walks_do(edges in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..3 * BLOCK), cap in 0usize..6) {
            let (users, routes) = top_down(&random_closure(&edges));
            proptest::prop_assert_eq!(counts(&users, &routes, cap), counts(&users, &routes, usize::MAX));
        }
    }

    #[test]
    fn an_overflow_names_the_first_path_whose_count_does_not_fit_however_it_is_summed() {
        // A ladder of 127 diamonds: t0 -> a0, b0 -> t1 -> … -> t127. The routes double at each
        // rung and still fit (2^127 at the bottom); the counts of the last rung do not.
        let t = |k: usize| format!("t{k:03}");
        let mut infos = vec![];
        for k in 0..127 {
            let (a, b) = (format!("a{k:03}"), format!("b{k:03}"));
            infos.push(info(&t(k), 1, &[&a, &b]));
            infos.push(info(&a, 1, &[&t(k + 1)]));
            infos.push(info(&b, 1, &[&t(k + 1)]));
        }
        infos.push(info(&t(127), 1, &[]));
        let (users, routes) = top_down(&Closure::new(infos).unwrap());
        // By the definition: each path's ancestors (itself included) found one by one.
        let fits = |x: usize| {
            let (mut seen, mut stack, mut sum) = (vec![false; users.len()], vec![x], Some(0u128));
            seen[x] = true;
            while let Some(y) = stack.pop() {
                sum = sum.and_then(|s| s.checked_add(routes[y]));
                for &u in users.of(y) {
                    if !std::mem::replace(&mut seen[u as usize], true) {
                        stack.push(u as usize);
                    }
                }
            }
            sum.is_some()
        };
        let first = (0..users.len()).find(|&x| !fits(x)).expect("the ladder overflows");
        for cap in [0, 1, 3, usize::MAX] {
            assert_eq!(counts(&users, &routes, cap), Err(first), "cap {cap}");
        }
    }

    #[test]
    fn common_dominators_by_jumps_are_those_found_one_step_at_a_time() {
        // A deep, branching tree: each node's parent is one of the three made just before it.
        let n = 3000;
        let mut tree = Dominators::only_top(n);
        let mut state = 7u64;
        let mut next = |m: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % m
        };
        for x in 0..n {
            let parent = if x == 0 { n } else { x - 1 - next(x.min(3)) };
            tree.attach(x, parent);
        }
        let stepwise = |mut a: usize, mut b: usize| {
            while a != b {
                if tree.depth[a] >= tree.depth[b] {
                    a = tree.idom(a);
                } else {
                    b = tree.idom(b);
                }
            }
            a
        };
        assert!(tree.depth[..n].iter().max().unwrap() > &1000);
        for _ in 0..20_000 {
            let (a, b) = (next(n + 1), next(n + 1));
            assert_eq!(tree.common(a, b), stepwise(a, b), "{a} and {b}");
        }
    }

    #[test]
    fn a_long_chain_counts_each_path_above() {
        let names: Vec<String> = (0..50_000).map(|i| format!("p{i:05}")).collect();
        let infos = names.iter().enumerate().map(|(i, name)| info(name, 1, &names.get(i + 1).map(String::as_str).into_iter().collect::<Vec<_>>()));
        let c = Closure::new(infos.collect()).unwrap();
        let pop = popularity(&c).unwrap();
        // The k-th path of the chain is reached by the k paths above it and by itself.
        let position = |i: usize| c.path(i).name()[1..].parse::<u128>().unwrap();
        assert!((0..c.len()).all(|i| pop[i] == position(i) + 1));
    }

    #[test]
    fn package_name_moves_hash_last() {
        let name = |p: &str| PackageName::split_at(p, p.find('-')).bytes().collect::<Vec<u8>>();
        assert_eq!(
            [name("/nix/store/abc-foo-1.0"), name("/nix/store/def"), name("/nix/store/ghi-bar")],
            ["foo-1.0-/nix/store/abc", "/nix/store/def", "bar-/nix/store/ghi"].map(|s| s.as_bytes().to_vec())
        );
    }

    /// A package name's first 8 bytes, made from the name's, are those of its text; with a store
    /// directory too short to follow a short name, they are not made.
    #[test]
    fn package_name_prefixes_are_made_from_name_prefixes() {
        let c = Closure::new(["p", "p1234-x", "python3.11", "abcdefg", "abcdefgh"].map(|n| info(n, 1, &[])).into()).unwrap();
        let dash = c.path(0).as_str().find('-');
        for i in 0..c.len() {
            let expected = PackageName::split_at(c.path(i).as_str(), dash).prefix();
            assert_eq!(PackageName::prefix_from(c.name_prefix(i), "/nix/store/"), Some(expected), "{}", c.path(i));
            let long = c.path(i).name().len() >= 8;
            assert_eq!(PackageName::prefix_from(c.name_prefix(i), "/s/"), long.then_some(expected), "{}", c.path(i));
        }
    }

    /// Roots all tie at one; their order is the package names' as whole strings, also where
    /// the first 8 bytes agree, one name is a prefix of another, or a `+` sorts before the `-`
    /// that follows a shorter name.
    #[test]
    fn ties_order_by_whole_package_names() {
        let names = ["python3.11-a", "python3.11-a+b", "python3.11", "python3.11+x", "python3", "p", "python3.11-a-b", "zlib"];
        let c = Closure::new(names.iter().map(|n| info(n, 1, &[])).collect()).unwrap();
        let whole = |i: usize| {
            let (first, rest) = c.path(i).as_str().split_once('-').unwrap();
            format!("{rest}-{first}")
        };
        let mut expected: Vec<usize> = (0..c.len()).collect();
        expected.sort_by_key(|&i| whole(i));
        assert_eq!(order(&c).unwrap(), expected);
        assert_eq!(c.path(expected[0]).name(), "p");
        let pos = |n: &str| expected.iter().position(|&i| c.path(i).name() == n).unwrap();
        assert!(pos("python3.11+x") < pos("python3.11") && pos("python3.11-a+b") < pos("python3.11-a") && pos("python3.11-a") < pos("python3.11-a-b"));
    }
}
