//! What the history says about every name over the training revisions: sizes, image sets,
//! changes and intrinsic bumps per transition, bump sources and their rates, and each name's
//! dependency closure as a set of sources.

use std::collections::{HashMap, HashSet};

use hints_format::{MemberPattern, NameKey};
use rayon::prelude::*;

use super::bits::Bits;
use super::sources::SourceSet;
use super::MineError;
use crate::history::History;

/// The paths in exactly one of two sorted lists, in increasing order.
fn symmetric_difference<'v>(a: &'v [u32], b: &'v [u32]) -> impl Iterator<Item = u32> + 'v {
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    std::iter::from_fn(move || loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => drop((a.next(), b.next())),
            (Some(x), Some(y)) if x < y => return a.next(),
            (_, Some(_)) => return b.next(),
            (_, None) => return a.next(),
        }
    })
}

/// Revisions whose per-name sizes are held at once, a column over every name each.
const COLUMNS_AT_ONCE: usize = 64;

/// The history's paths seen as names.
struct Names<'h> {
    h: &'h History,
    /// The name of each path.
    path_name: &'h [u32],
    /// The version of each path.
    versions: &'h [String],
    count: usize,
}

impl Names<'_> {
    /// Each name's largest path in any image at each revision `first..=last`, by name. The
    /// revisions are read in parallel, each into a column over every name.
    fn sizes_over_time(&self, first: usize, last: usize) -> Vec<Vec<u64>> {
        let mut rows = vec![vec![0u64; last - first + 1]; self.count];
        let revisions: Vec<usize> = (first..=last).collect();
        for block in revisions.chunks(COLUMNS_AT_ONCE) {
            let columns: Vec<Vec<u64>> = block.par_iter().map(|&r| self.sizes_at(r)).collect();
            for (&r, column) in block.iter().zip(&columns) {
                column.iter().zip(&mut rows).filter(|(&s, _)| s > 0).for_each(|(&s, row)| row[r - first] = s);
            }
        }
        rows
    }

    /// Each name's largest path in any image at revision `r`.
    fn sizes_at(&self, r: usize) -> Vec<u64> {
        let mut column = vec![0u64; self.count];
        for m in (0..self.h.images.len()).filter_map(|i| self.h.snapshots.get(&(i, r))) {
            for &p in m {
                let size = &mut column[self.path_name[p as usize] as usize];
                *size = (*size).max(self.h.sizes[p as usize]);
            }
        }
        column
    }

    /// The names of `paths`, as a set.
    fn names_in(&self, paths: &[u32]) -> Bits {
        let mut names = Bits::new(self.count);
        paths.iter().for_each(|&p| names.set(self.path_name[p as usize] as usize));
        names
    }

    /// The distinct (name, version) pairs of the paths in `paths` whose name is in `names`.
    fn versions_of(&self, paths: &[u32], names: &Bits) -> Vec<(u32, &str)> {
        let mut v: Vec<(u32, &str)> = paths.iter().map(|&p| (self.path_name[p as usize], p)).filter(|&(n, _)| names.get(n as usize)).map(|(n, p)| (n, self.versions[p as usize].as_str())).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Adds to `changed` the names both snapshots hold whose paths differ between them, and to
    /// `version_changed` those among them whose set of versions differs.
    fn compare(&self, a: &[u32], b: &[u32], changed: &mut Bits, version_changed: &mut Bits) {
        // A name's paths differ only where one of its paths is in one snapshot alone.
        let mut differing = Bits::new(self.count);
        symmetric_difference(a, b).for_each(|p| differing.set(self.path_name[p as usize] as usize));
        if differing.count() == 0 {
            return;
        }
        let (in_a, in_b) = (self.names_in(a), self.names_in(b));
        let mut here = Bits::new(self.count);
        differing.ones().filter(|&n| in_a.get(n) && in_b.get(n)).for_each(|n| here.set(n));
        changed.or(&here);
        // Both lists hold a run for each name of `here`, in the same order.
        let (va, vb) = (self.versions_of(a, &here), self.versions_of(b, &here));
        for (ra, rb) in va.chunk_by(|x, y| x.0 == y.0).zip(vb.chunk_by(|x, y| x.0 == y.0)) {
            if ra != rb {
                version_changed.set(ra[0].0 as usize);
            }
        }
    }

    /// The names that changed between revisions `r` and `r + 1` (in some image holding the
    /// name at both, its set of paths differs), and those whose change was their own bump.
    fn transition(&self, r: usize) -> (Bits, Bits) {
        let (h, path_name) = (self.h, self.path_name);
        let mut changed = Bits::new(self.count);
        let mut version_changed = Bits::new(self.count);
        let pairs: Vec<(&[u32], &[u32])> = (0..h.images.len()).filter_map(|i| Some((h.snapshots.get(&(i, r))?.as_slice(), h.snapshots.get(&(i, r + 1))?.as_slice()))).collect();
        for &(a, b) in &pairs {
            self.compare(a, b, &mut changed, &mut version_changed);
        }
        // A change is explained when a dependency of the name (in some image at the later
        // revision) changed too; otherwise it is the name's own bump.
        let mut explained = Bits::new(self.count);
        for &(_, b) in &pairs {
            for &p in b.iter().filter(|&&p| changed.get(path_name[p as usize] as usize)) {
                let name = path_name[p as usize];
                if h.refs[p as usize].iter().map(|&d| path_name[d as usize]).any(|d| d != name && changed.get(d as usize)) {
                    explained.set(name as usize);
                }
            }
        }
        let mut bumped = version_changed;
        for name in changed.ones().filter(|&name| !explained.get(name)) {
            bumped.set(name);
        }
        (changed, bumped)
    }
}

/// The Jeffreys estimate of an event's chance per transition, `(k+½)/(T+1)`, from `k` of `T`
/// transitions showing it.
fn jeffreys(k: usize, transitions: usize) -> f64 {
    (k as f64 + 0.5) / (transitions as f64 + 1.0)
}

/// What the history says about every name at the training revisions.
pub(crate) struct NameStats {
    /// `NameKey::identity` labels, e.g. `gcc-14-base` or `glibc:bin`.
    pub labels: Vec<String>,
    /// The hint-file member pattern of each label.
    pub patterns: Vec<String>,
    /// A real store path name per label, for matching against hint files.
    pub samples: Vec<String>,
    /// Bytes at the last training revision (largest over images).
    pub size: Vec<u64>,
    /// Images containing the name at the last training revision.
    pub(crate) images: Vec<Bits>,
    /// Per transition (index t = revision first+t+1): the name's path changed in some image.
    pub(crate) changed: Vec<Bits>,
    /// Intrinsic bumps per transition.
    pub(crate) bumped: Vec<Bits>,
    /// Transitive dependency closure as a set of bump *sources*, the name's own included.
    pub(crate) closure: Vec<SourceSet>,
    /// Bump source of each name: names that bumped at exactly the same transitions and carry the
    /// same version at the last revision (binary packages of one source package, outputs of one
    /// derivation) share one source, which bumps once for all of them.
    pub(crate) source: Vec<u32>,
    /// Jeffreys-smoothed bump rate of each source.
    pub(crate) source_rate: Vec<f64>,
    pub transitions: usize,
    pub image_names: Vec<String>,
    /// Name → sizes over the range, per revision (largest over images; 0 when absent).
    pub size_over_time: Vec<Vec<u64>>,
}

impl NameStats {
    pub(crate) fn build(h: &History, first: usize, last: usize) -> Result<Self, MineError> {
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
        let transitions = last - first;
        let ni = h.images.len();

        let names = Names { h, path_name: &path_name, versions: &versions, count: n };
        let mut last_version: Vec<&str> = vec![""; n];
        let mut images = vec![Bits::new(ni); n];
        let mut dep_edges: Vec<HashSet<u32>> = vec![HashSet::new(); n];
        for (i, m) in (0..ni).filter_map(|i| Some((i, h.snapshots.get(&(i, last))?))) {
            for &p in m {
                let name = path_name[p as usize] as usize;
                last_version[name] = versions[p as usize].as_str();
                images[name].set(i);
                dep_edges[name].extend(h.refs[p as usize].iter().map(|&d| path_name[d as usize]).filter(|&d| d as usize != name));
            }
        }
        let size_over_time = names.sizes_over_time(first, last);
        let size: Vec<u64> = size_over_time.iter().map(|sizes| sizes[transitions]).collect();

        // Changes and intrinsic bumps per transition, in parallel.
        let per_t: Vec<(Bits, Bits)> = (first..last).into_par_iter().map(|r| names.transition(r)).collect();
        let (changed, bumped): (Vec<Bits>, Vec<Bits>) = per_t.into_iter().unzip();

        // Bump sources: the real co-change sets of the history.
        let mut source = vec![0u32; n];
        let mut source_rate = vec![];
        let mut by_key: HashMap<(Vec<bool>, &str), u32> = HashMap::new();
        for name in 0..n {
            let v: Vec<bool> = bumped.iter().map(|b| b.get(name)).collect();
            let bumps = v.iter().filter(|&&b| b).count();
            let rate = jeffreys(bumps, transitions);
            let fresh = |source_rate: &mut Vec<f64>| {
                source_rate.push(rate);
                source_rate.len() as u32 - 1
            };
            source[name] = if bumps == 0 { fresh(&mut source_rate) } else { *by_key.entry((v, last_version[name])).or_insert_with(|| fresh(&mut source_rate)) };
        }

        // Transitive closure over the name graph. Kosaraju (iterative, so no recursion as deep as
        // the graph) yields SCCs in reverse topological order: dependencies first.
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
        let mut closure = vec![SourceSet::empty(ns); n];
        let mut component = vec![usize::MAX; n];
        for (k, scc) in petgraph::algo::kosaraju_scc(&g).into_iter().enumerate() {
            scc.iter().for_each(|v| component[v.index()] = k);
            let mut c = SourceSet::empty(ns);
            for v in &scc {
                c.insert(source[v.index()] as usize);
                for &d in &dep_edges[v.index()] {
                    if component[d as usize] != k {
                        c.union_with(&closure[d as usize]);
                    }
                }
            }
            for v in &scc {
                closure[v.index()] = c.clone();
            }
        }
        Ok(NameStats { labels, patterns, samples, size, images, changed, bumped, closure, source, source_rate, transitions, image_names: h.images.clone(), size_over_time })
    }

    /// The chance of what the training transitions never showed, `½/(T+1)`: a source's bump
    /// rate when it never bumped, and the chance that a name that changed at every transition
    /// stays unchanged at the next.
    pub(crate) fn unseen_rate(&self) -> f64 {
        jeffreys(0, self.transitions)
    }

    pub(crate) fn present(&self, name: usize) -> bool {
        self.images[name].count() > 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::NameStats;
    use crate::history::History;
    use crate::store::Revision;

    /// One image at two revisions: a root over `n` leaves of their own names.
    fn wide(n: usize) -> History {
        let path = |i: usize| hints_format::StorePath::parse(&format!("/nix/store/{:0>32}-leaf{i}-1.0", i % 10)).expect("a store path");
        let mut paths: Vec<_> = (0..n).map(path).collect();
        paths.push(hints_format::StorePath::parse(&format!("/nix/store/{:z>32}-root-1.0", "")).expect("a store path"));
        let mut refs = vec![vec![]; n];
        refs.push((0..n as u32).collect());
        let members: Vec<u32> = (0..=n as u32).collect();
        let revision = |r: usize| Revision { label: format!("r{r}"), commit: None, time: format!("2026-01-0{}T00:00:00Z", r + 1), branch: None, dirty: false };
        History {
            images: vec!["wide".into()],
            revisions: vec![revision(0), revision(1)],
            sizes: vec![4096; n + 1],
            refs,
            paths,
            snapshots: HashMap::from([((0, 0), members.clone()), ((0, 1), members)]),
            summary: String::new(),
        }
    }

    #[test]
    fn the_symmetric_difference_lists_each_path_of_one_list_only_in_order() {
        let diff = |a: &[u32], b: &[u32]| super::symmetric_difference(a, b).collect::<Vec<_>>();
        assert_eq!(diff(&[1, 3, 5, 9], &[2, 3, 9, 10, 11]), [1, 2, 5, 10, 11]);
        assert_eq!(diff(&[], &[4, 7]), [4, 7]);
        assert_eq!(diff(&[4, 7], &[]), [4, 7]);
        assert_eq!(diff(&[4, 7], &[4, 7]), Vec::<u32>::new());
    }

    #[test]
    fn closures_in_a_wide_image_cost_memory_per_source_held_not_per_name_squared() {
        let n = 4000;
        let stats = NameStats::build(&wide(n), 0, 1).expect("stats");
        let bytes: usize = stats.closure.iter().map(|c| c.heap_bytes()).sum();
        // Each leaf's closure is its own source; the root's holds all of them. Bit sets over
        // every source would take (n + 1)² / 8 bytes, 2 MB here.
        assert!(bytes < 64 * n, "{bytes} bytes for {n} one-source closures");
        let mut root = vec![];
        stats.closure[n].for_each(|s| root.push(s));
        assert_eq!(root.len(), n + 1, "the root's closure is every source");
    }
}
