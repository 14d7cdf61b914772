//! A fixed-size bit set: sets of images, names and bump sources.

use smallvec::SmallVec;

/// A fixed-size bitset. Sets of up to 128 members (the images of most fleets) live inline:
/// the greedy builds and drops millions of image sets while scoring merges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bits(pub(super) SmallVec<[u64; 2]>);

impl Bits {
    pub(crate) fn new(n: usize) -> Self {
        Bits(smallvec::smallvec![0; n.div_ceil(64)])
    }
    pub(crate) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    pub(crate) fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    pub(crate) fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        Self::ones_of(self.0.iter().copied())
    }
    /// The members of both, without building the intersection.
    pub(crate) fn common_ones<'s>(&'s self, o: &'s Bits) -> impl Iterator<Item = usize> + 's {
        Self::ones_of(self.0.iter().zip(&o.0).map(|(a, b)| a & b))
    }
    pub(crate) fn common_count(&self, o: &Bits) -> usize {
        self.0.iter().zip(&o.0).map(|(a, b)| (a & b).count_ones() as usize).sum()
    }
    fn ones_of(words: impl Iterator<Item = u64>) -> impl Iterator<Item = usize> {
        words.enumerate().flat_map(|(w, x)| {
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
    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// How many members the set has room for.
    pub(crate) fn len(&self) -> usize {
        self.0.len() * 64
    }
    /// The empty set of the same size.
    pub(crate) fn empty_like(&self) -> Bits {
        Bits(smallvec::smallvec![0; self.0.len()])
    }
    pub(crate) fn minus(&self, o: &Bits) -> Bits {
        // In place on a copy: collecting into a small vector costs more.
        let mut out = self.clone();
        out.0.iter_mut().zip(&o.0).for_each(|(a, &b)| *a &= !b);
        out
    }
    pub(crate) fn union(&self, o: &Bits) -> Bits {
        let mut out = self.clone();
        out.or(o);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Bits;

    fn of(n: usize, ones: &[usize]) -> Bits {
        let mut b = Bits::new(n);
        ones.iter().for_each(|&i| b.set(i));
        b
    }

    #[test]
    fn set_bits_are_listed_in_order_across_words() {
        let b = of(200, &[0, 63, 64, 130, 199]);
        assert_eq!(b.ones().collect::<Vec<_>>(), [0, 63, 64, 130, 199]);
        assert_eq!(b.count(), 5);
        assert!(b.get(64) && !b.get(65) && !b.get(1));
        assert_eq!(Bits::new(0).ones().count(), 0);
    }

    #[test]
    fn union_and_difference_are_per_bit() {
        let mut a = of(130, &[1, 64, 129]);
        let b = of(130, &[2, 64]);
        assert_eq!(a.minus(&b).ones().collect::<Vec<_>>(), [1, 129]);
        assert_eq!(a.union(&b).ones().collect::<Vec<_>>(), [1, 2, 64, 129]);
        assert_eq!((a.common_ones(&b).collect::<Vec<_>>(), a.common_count(&b)), (vec![64], 1));
        assert_eq!(a.common_count(&of(130, &[0, 128])), 0);
        assert_eq!((a.empty_like(), a.len()), (of(130, &[]), 192));
        a.or(&b);
        assert_eq!(a.ones().collect::<Vec<_>>(), [1, 2, 64, 129]);
        assert_eq!(a, of(130, &[129, 64, 2, 1]), "equality ignores the order bits were set in");
    }
}
