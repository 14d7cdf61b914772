//! Reference scanning as Nix does it: a path references another when the other's 32-character
//! hash part appears anywhere in its file contents or symlink targets, with or without the
//! `/nix/store/` prefix (inside binary data too). A path that holds its own hash references
//! itself.
//!
//! The candidates are known only once every layer is read, so a scan collects every window of
//! 32 Nix base32 digits; the caller keeps those that are hash parts of the image's paths.
//!
//! # Algorithm
//! A window matches only when all 32 of its bytes are digits, so [`windows`] tests a candidate
//! from its last byte backwards: the first non-digit it meets rules out every window that holds
//! it, and the search moves just past it. In binary data a byte is a digit with probability
//! 32/256, so most candidates cost one test and the search moves 32 bytes at a time. Each
//! byte is tested at most twice: a backwards test stops at the first non-digit, and the bytes
//! it passed are all behind the next candidate's start or re-tested once by it. After a match,
//! each further digit in the run is one more window.

use std::collections::HashSet;

use hints_format::nixbase32::is_digit;

pub(super) const HASH_LEN: usize = 32;

/// Adds to `found` every 32-byte window of Nix base32 digits in `bytes`.
pub fn windows(bytes: &[u8], found: &mut HashSet<[u8; HASH_LEN]>) {
    let mut start = 0;
    while start + HASH_LEN <= bytes.len() {
        let candidate = &bytes[start..start + HASH_LEN];
        if let Some(last_non_digit) = candidate.iter().rposition(|&b| !is_digit(b)) {
            start += last_non_digit + 1;
            continue;
        }
        let mut end = start + HASH_LEN;
        found.insert(candidate.try_into().expect("32-byte window"));
        while end < bytes.len() && is_digit(bytes[end]) {
            end += 1;
            found.insert(bytes[end - HASH_LEN..end].try_into().expect("32-byte window"));
        }
        // `bytes[end]` is not a digit (or the bytes end): no window holds it.
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const A: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    const B: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";

    fn scan(bytes: &[u8]) -> HashSet<[u8; 32]> {
        let mut found = HashSet::new();
        windows(bytes, &mut found);
        found
    }

    /// The definition, one window at a time.
    fn every_window(bytes: &[u8]) -> HashSet<[u8; 32]> {
        bytes.windows(HASH_LEN).filter(|w| w.iter().all(|&b| is_digit(b))).map(|w| w.try_into().unwrap()).collect()
    }

    fn has(found: &HashSet<[u8; 32]>, h: &str) -> bool {
        found.contains(<&[u8; 32]>::try_from(h.as_bytes()).unwrap())
    }

    #[test]
    fn hashes_are_found_with_or_without_a_prefix_and_inside_binary_data() {
        let found = scan(format!("#!/nix/store/{A}-bash/bin/sh").as_bytes());
        assert!(has(&found, A) && !has(&found, B));
        let mut binary = vec![0u8, 0xff, b'e'];
        binary.extend_from_slice(B.as_bytes());
        binary.push(0);
        assert!(has(&scan(&binary), B));
    }

    #[test]
    fn a_hash_inside_a_longer_run_of_digits_is_found_and_a_partial_one_is_not() {
        assert!(has(&scan(format!("00{A}11").as_bytes()), A), "Nix matches any 32-character window");
        assert_eq!(scan(format!("00{A}11").as_bytes()).len(), 5);
        assert!(scan(&A.as_bytes()[..31]).is_empty());
        assert_eq!(scan(format!("{A}-{B}").as_bytes()).len(), 2, "`-` ends a run");
        assert_eq!(scan(format!("-{}{A}", &B[..31]).as_bytes()).len(), 32, "a run that starts just after a non-digit");
    }

    proptest! {
        #[test]
        fn the_skipping_search_finds_exactly_every_window(bytes in proptest::collection::vec(prop_oneof![8 => Just(b'a'), 8 => Just(b'0'), 1 => Just(b'e'), 1 => any::<u8>()], 0..400)) {
            prop_assert_eq!(scan(&bytes), every_window(&bytes));
        }
    }
}
