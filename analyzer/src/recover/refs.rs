//! Reference scanning as Nix does it: a path references another when the other's 32-character
//! hash part appears anywhere in its file contents or symlink targets, with or without the
//! `/nix/store/` prefix (inside binary data too). A path that holds its own hash references
//! itself.
//!
//! The candidates are known only once every layer is read, so a scan collects every window of
//! 32 Nix base32 digits; the caller keeps those that are hash parts of the image's paths.

use std::collections::HashSet;

use hints_format::nixbase32;

const HASH_LEN: usize = 32;

/// Adds to `found` every 32-byte window of Nix base32 digits in `bytes`: one pass that counts
/// the digits in a row and takes a window whenever the count reaches 32.
pub fn windows(bytes: &[u8], found: &mut HashSet<[u8; HASH_LEN]>) {
    let mut run = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        run = if nixbase32::is_digit(b) { run + 1 } else { 0 };
        if run >= HASH_LEN {
            found.insert(bytes[i + 1 - HASH_LEN..=i].try_into().expect("32-byte window"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    const B: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";

    fn scan(bytes: &[u8]) -> HashSet<[u8; 32]> {
        let mut found = HashSet::new();
        windows(bytes, &mut found);
        found
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
        assert!(scan(&A.as_bytes()[..31]).is_empty());
        assert_eq!(scan(format!("{A}-{B}").as_bytes()).len(), 2, "`-` ends a run");
    }
}
