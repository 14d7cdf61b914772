//! Sets of bump sources: a name's dependency closure, a group's, sparse while small.
//!
//! # Objective
//! Every name carries its closure as a set of bump sources, and every group the union of its
//! members'. In a wide image a closure holds a handful of sources out of hundreds of thousands;
//! in a deep one it holds most of them. A bit set over all `U` sources costs `U/8` bytes per
//! set, whatever it holds, which makes emit quadratic in memory on one wide image (200,000
//! names: 5 GB for the closures alone) and every union `U/64` steps.
//!
//! # Representation
//! A [`SourceSet`] is a sorted list of source ids (4 bytes a member) while it holds at most
//! `U/32` members, and a bit set (`U/8` bytes) beyond that, so it never costs more than either.
//! Its members are always listed in increasing order, so a sum over them is the same
//! floating-point sum whichever form the set has.

use super::bits::Bits;

/// A set of bump sources out of `universe`.
#[derive(Clone, Debug)]
pub(crate) struct SourceSet {
    universe: usize,
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// Sorted, without duplicates.
    Sparse(Vec<u32>),
    Dense(Bits),
}

impl SourceSet {
    /// The empty set of sources out of `universe`.
    pub(crate) fn empty(universe: usize) -> Self {
        SourceSet { universe, repr: Repr::Sparse(vec![]) }
    }

    /// The most members the sorted list holds before the bit set is smaller.
    fn sparse_limit(&self) -> usize {
        self.universe / 32
    }

    /// Adds source `s`.
    pub(crate) fn insert(&mut self, s: usize) {
        match &mut self.repr {
            Repr::Dense(bits) => bits.set(s),
            Repr::Sparse(list) => {
                if let Err(at) = list.binary_search(&(s as u32)) {
                    list.insert(at, s as u32);
                }
                self.densify_if_large();
            }
        }
    }

    /// Adds every member of `other` (a set over the same universe).
    pub(crate) fn union_with(&mut self, other: &SourceSet) {
        debug_assert_eq!(self.universe, other.universe);
        match (&mut self.repr, &other.repr) {
            (Repr::Dense(bits), Repr::Dense(o)) => bits.or(o),
            (Repr::Dense(bits), Repr::Sparse(o)) => o.iter().for_each(|&s| bits.set(s as usize)),
            (Repr::Sparse(list), Repr::Sparse(o)) => {
                *list = merged(list, o);
                self.densify_if_large();
            }
            (Repr::Sparse(list), Repr::Dense(o)) => {
                let mut bits = o.clone();
                list.iter().for_each(|&s| bits.set(s as usize));
                self.repr = Repr::Dense(bits);
            }
        }
    }

    /// The set of `members` (sorted, without duplicates) out of `universe`.
    pub(crate) fn from_sorted(universe: usize, members: Vec<u32>) -> Self {
        debug_assert!(members.windows(2).all(|w| w[0] < w[1]));
        let mut set = SourceSet { universe, repr: Repr::Sparse(members) };
        set.densify_if_large();
        set
    }

    fn densify_if_large(&mut self) {
        if let Repr::Sparse(list) = &self.repr {
            if list.len() > self.sparse_limit() {
                let mut bits = Bits::new(self.universe);
                list.iter().for_each(|&s| bits.set(s as usize));
                self.repr = Repr::Dense(bits);
            }
        }
    }

    /// Calls `f` with every member, in increasing order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize)) {
        match &self.repr {
            Repr::Sparse(list) => list.iter().for_each(|&s| f(s as usize)),
            Repr::Dense(bits) => bits.ones().for_each(f),
        }
    }
}

#[cfg(test)]
impl SourceSet {
    /// Bytes on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Sparse(list) => list.capacity() * 4,
            Repr::Dense(bits) => {
                if bits.0.spilled() {
                    bits.0.capacity() * 8
                } else {
                    0
                }
            }
        }
    }
}

thread_local! {
    /// A bit set over every source and its non-zero words, clear between uses; and a tag per
    /// source, zero between uses.
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

#[derive(Default)]
struct Scratch {
    words: Vec<u64>,
    touched: Vec<u32>,
    tags: Vec<u64>,
}

impl Scratch {
    /// Sized for sets out of `universe` (every set of one call is over the same universe).
    fn fit(&mut self, universe: usize) {
        self.words.resize(self.words.len().max(universe.div_ceil(64)), 0);
        self.tags.resize(self.tags.len().max(universe), 0);
    }

    /// Marks word `w` with `bits`.
    fn mark(&mut self, w: usize, bits: u64) {
        if self.words[w] == 0 {
            self.touched.push(w as u32);
        }
        self.words[w] |= bits;
    }

    /// Calls `f` with every marked source, in increasing order, and clears the marks: the
    /// touched words sorted, or all of them when that is cheaper.
    fn drain(&mut self, mut f: impl FnMut(usize)) {
        let Scratch { words, touched, .. } = self;
        let (len, all) = (words.len(), touched.len() * 16 > words.len());
        let mut read = |w: usize| {
            let mut x = std::mem::take(&mut words[w]);
            while x != 0 {
                f(w * 64 + x.trailing_zeros() as usize);
                x &= x - 1;
            }
        };
        if all {
            (0..len).for_each(&mut read);
        } else {
            touched.sort_unstable();
            touched.iter().for_each(|&w| read(w as usize));
        }
        touched.clear();
    }
}

/// Calls `f` with every member of the union of `sets`, in increasing order, and the OR of the
/// tags of the sets that hold it, without building the union: the sets are marked in a
/// per-thread bit set, whose marked words are then read in order and cleared. Tagging each set
/// with the unions it belongs to (bit `j` for union `j`), one pass serves up to 64 unions of
/// some of the sets: union `j` is the members whose tag has bit `j`, in the same order.
pub(crate) fn for_each_in_union<'s>(sets: impl Iterator<Item = (&'s SourceSet, u64)>, mut f: impl FnMut(usize, u64)) {
    let mut sets = sets.peekable();
    let Some((first, tag)) = sets.next() else { return };
    if sets.peek().is_none() {
        return first.for_each(|s| f(s, tag));
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.fit(first.universe);
        for (set, tag) in std::iter::once((first, tag)).chain(sets) {
            debug_assert_eq!(set.universe, first.universe);
            set.for_each(|s| {
                scratch.mark(s / 64, 1 << (s % 64));
                scratch.tags[s] |= tag;
            });
        }
        let mut tags = std::mem::take(&mut scratch.tags);
        scratch.drain(|s| f(s, std::mem::take(&mut tags[s])));
        scratch.tags = tags;
    });
}

/// Folds `f` over every member of `a ∪ b`, in increasing order (sets over the same universe),
/// without building the union. The accumulator is passed along, not captured: a sum captured
/// by reference goes through memory at every member.
pub(crate) fn fold_in_either<T>(a: &SourceSet, b: &SourceSet, init: T, mut f: impl FnMut(T, usize) -> T) -> T {
    debug_assert_eq!(a.universe, b.universe);
    let mut ones = |acc: T, w: usize, mut x: u64| {
        let mut acc = acc;
        while x != 0 {
            acc = f(acc, w * 64 + x.trailing_zeros() as usize);
            x &= x - 1;
        }
        acc
    };
    match (&a.repr, &b.repr) {
        (Repr::Sparse(x), Repr::Sparse(y)) => merge_lists(x, y, init, |acc, s| ones(acc, s as usize / 64, 1 << (s % 64))),
        (Repr::Dense(x), Repr::Dense(y)) => x.0.iter().zip(&y.0).enumerate().fold(init, |acc, (w, (p, q))| ones(acc, w, p | q)),
        (Repr::Dense(dense), Repr::Sparse(list)) | (Repr::Sparse(list), Repr::Dense(dense)) => {
            let mut list = list.iter().peekable();
            dense.0.iter().enumerate().fold(init, |acc, (w, &word)| {
                let mut x = word;
                while let Some(s) = list.next_if(|&&s| s as usize / 64 == w) {
                    x |= 1 << (s % 64);
                }
                ones(acc, w, x)
            })
        }
    }
}

/// The sorted union of two sorted lists without duplicates.
fn merged(a: &[u32], b: &[u32]) -> Vec<u32> {
    merge_lists(a, b, Vec::with_capacity(a.len() + b.len()), |mut out, s| {
        out.push(s);
        out
    })
}

/// Folds `f` over every member of two sorted lists without duplicates, in increasing order,
/// once each.
fn merge_lists<T>(a: &[u32], b: &[u32], init: T, mut f: impl FnMut(T, u32) -> T) -> T {
    let (mut i, mut j, mut acc) = (0, 0, init);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        acc = f(acc, x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    a[i..].iter().chain(&b[j..]).fold(acc, |acc, &s| f(acc, s))
}

#[cfg(test)]
mod tests {
    use super::{Repr, SourceSet};

    fn members(s: &SourceSet) -> Vec<usize> {
        let mut v = vec![];
        s.for_each(|x| v.push(x));
        v
    }

    fn of(universe: usize, ones: &[usize]) -> SourceSet {
        let mut s = SourceSet::empty(universe);
        ones.iter().for_each(|&x| s.insert(x));
        s
    }

    #[test]
    fn members_are_listed_in_order_without_duplicates_in_either_form() {
        let sparse = of(6400, &[130, 5, 64, 5, 6399]);
        assert!(matches!(sparse.repr, Repr::Sparse(_)));
        assert_eq!(members(&sparse), [5, 64, 130, 6399]);
        let dense = of(64, &[63, 1, 1, 40]);
        assert!(matches!(dense.repr, Repr::Dense(_)), "3 members out of 64 is more than 64/32");
        assert_eq!(members(&dense), [1, 40, 63]);
    }

    #[test]
    fn a_union_is_the_same_set_whichever_forms_meet() {
        let universe = 320; // lists of up to 10 members
        let small = [3usize, 17, 200];
        let large: Vec<usize> = (0..universe).step_by(20).collect(); // 16 members: dense
        for (a, b) in [(&small[..], &large[..]), (&large[..], &small[..]), (&small[..], &[4, 17, 319][..]), (&large[..], &large[1..4]), (&large[..], &[1, 63, 64, 65, 319][..])] {
            let mut union = of(universe, a);
            union.union_with(&of(universe, b));
            let mut expected: Vec<usize> = a.iter().chain(b).copied().collect();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(members(&union), expected, "{a:?} | {b:?}");
            let walked = super::fold_in_either(&of(universe, a), &of(universe, b), vec![], |mut walked, s| {
                walked.push(s);
                walked
            });
            assert_eq!(walked, expected, "walked, {a:?} | {b:?}");
        }
    }

    #[test]
    fn the_union_of_many_sets_is_visited_in_order_and_leaves_the_scratch_clear() {
        let sets = [of(320, &[3, 200]), of(320, &(0..320).step_by(20).collect::<Vec<_>>()), of(320, &[319, 3, 64])];
        let mut expected = SourceSet::empty(320);
        sets.iter().for_each(|s| expected.union_with(s));
        for _ in 0..2 {
            let mut visited = vec![];
            super::for_each_in_union(sets.iter().map(|s| (s, 1)), |s, _| visited.push(s));
            assert_eq!(visited, members(&expected));
        }
        let mut none = vec![];
        super::for_each_in_union(std::iter::empty(), |s, _| none.push(s));
        assert!(none.is_empty());
    }

    #[test]
    fn each_member_of_a_union_is_listed_once_with_the_tags_of_the_sets_that_hold_it() {
        let sets = [of(320, &[3, 200]), of(320, &(0..320).step_by(20).collect::<Vec<_>>()), of(320, &[319, 3, 64])];
        let tags = [0b01, 0b10, 0b11];
        for _ in 0..2 {
            let mut listed = vec![];
            super::for_each_in_union(sets.iter().zip(tags), |s, tag| listed.push((s as u32, tag)));
            let mut expected = SourceSet::empty(320);
            sets.iter().for_each(|s| expected.union_with(s));
            assert_eq!(listed.iter().map(|&(s, _)| s as usize).collect::<Vec<_>>(), members(&expected));
            for &(s, tag) in &listed {
                let holding = sets.iter().zip(tags).filter(|(set, _)| members(set).contains(&(s as usize))).fold(0, |t, (_, tag)| t | tag);
                assert_eq!(tag, holding, "source {s}");
            }
            assert_eq!(listed.iter().find(|&&(s, _)| s == 200).map(|&(_, t)| t), Some(0b11), "sets 0 and 1");
            assert_eq!(listed.iter().find(|&&(s, _)| s == 20).map(|&(_, t)| t), Some(0b10), "set 1 alone");
        }
    }

    #[test]
    fn a_list_becomes_a_bit_set_once_that_is_smaller() {
        let mut s = of(3200, &(0..100).collect::<Vec<_>>());
        assert!(matches!(s.repr, Repr::Sparse(_)), "100 members: 400 bytes, the bit set's size");
        s.union_with(&of(3200, &[3000]));
        assert!(matches!(s.repr, Repr::Dense(_)));
        assert_eq!(members(&s).len(), 101);
    }
}
