//! Many short strings in one buffer.
//!
//! A list of strings read by position, stored end to end in one `String` with the end of each:
//! one allocation for all of them instead of one each, and strings next in the list next in
//! memory, so reading them in order reads increasing addresses.

/// Strings by position, in one buffer.
#[derive(Debug, Default)]
pub struct Texts {
    text: String,
    ends: Vec<usize>,
}

impl Texts {
    /// Room for `count` strings of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Texts { text: String::with_capacity(bytes), ends: Vec::with_capacity(count) }
    }

    /// Appends one string made of `pieces`, end to end.
    pub fn push<'p>(&mut self, pieces: impl IntoIterator<Item = &'p str>) {
        self.text.extend(pieces);
        self.ends.push(self.text.len());
    }

    /// The string at position `i`.
    pub fn get(&self, i: usize) -> &str {
        &self.text[self.span(i)]
    }

    /// The string at position `i`, as bytes: they order as the string does, and reading them
    /// checks no character boundary.
    pub fn bytes(&self, i: usize) -> &[u8] {
        &self.text.as_bytes()[self.span(i)]
    }

    fn span(&self, i: usize) -> std::ops::Range<usize> {
        (if i == 0 { 0 } else { self.ends[i - 1] })..self.ends[i]
    }
}

/// The first 8 bytes of `pieces` end to end, as a big-endian number, zero-padded: byte strings
/// that hold no zero byte and differ in those bytes order as the numbers do. Sorts on text
/// compare these first, so that most comparisons read no text.
pub fn leading_bytes(pieces: &[&[u8]]) -> u64 {
    let (mut first, mut filled) = ([0u8; 8], 0);
    for piece in pieces {
        let take = piece.len().min(8 - filled);
        first[filled..filled + take].copy_from_slice(&piece[..take]);
        filled += take;
    }
    u64::from_be_bytes(first)
}

/// Sorts `items` on a text key: first on its leading bytes (`leading`, see [`leading_bytes`]),
/// read once per item, then on the whole key (`whole`) only where those agree.
pub fn sort_on_leading_bytes(items: &mut [usize], leading: impl Fn(usize) -> u64, whole: impl Fn(usize, usize) -> std::cmp::Ordering) {
    let mut keyed: Vec<(u64, usize)> = items.iter().map(|&i| (leading(i), i)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| whole(a.1, b.1)));
    for (slot, (_, i)) in items.iter_mut().zip(keyed) {
        *slot = i;
    }
}

#[cfg(test)]
mod tests {
    use super::Texts;

    #[test]
    fn each_string_reads_back_as_pushed_including_empty_ones() {
        let mut t = Texts::with_capacity(3, 8);
        t.push(["ab", "-", "c"]);
        t.push([]);
        t.push(["é"]);
        assert_eq!([t.get(0), t.get(1), t.get(2)], ["ab-c", "", "é"]);
        assert_eq!(t.bytes(2), "é".as_bytes());
    }
}
