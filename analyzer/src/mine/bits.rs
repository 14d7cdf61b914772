//! A fixed-size bit set: sets of images, names and bump sources.

/// A fixed-size bitset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bits(pub(super) Vec<u64>);

impl Bits {
    pub(crate) fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
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
    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub(crate) fn minus(&self, o: &Bits) -> Bits {
        Bits(self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect())
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
        a.or(&b);
        assert_eq!(a.ones().collect::<Vec<_>>(), [1, 2, 64, 129]);
        assert_eq!(a, of(130, &[129, 64, 2, 1]), "equality ignores the order bits were set in");
    }
}
