//! Nix base32: the encoding of hashes in store paths and in `nix hash to-base32`.
//!
//! Nix's alphabet drops `e o u t` (32 symbols), and it prints the least significant 5 bits
//! last: digit `n` (counting from the end) holds bits `5n..5n+5` of the little-endian byte
//! string. A 20-byte store path hash is 32 digits; a 32-byte SHA-256 is 52.

/// The 32 digits, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// The alphabet as text, for messages.
pub const ALPHABET_STR: &str = match std::str::from_utf8(ALPHABET) {
    Ok(s) => s,
    Err(_) => panic!("the alphabet is ASCII"),
};

/// Why a string is not Nix base32.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A character outside the alphabet, at a byte offset.
    #[error("character {ch:?} at {at} is not a Nix base32 digit ({ALPHABET_STR})")]
    BadDigit {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// The leading digit sets bits beyond the decoded length: not what Nix would print.
    #[error("the leading digits set bits beyond the {len} decoded bytes")]
    Padding {
        /// The decoded length in bytes.
        len: usize,
    },
}

/// Encodes bytes the way Nix prints hashes.
pub fn encode(bytes: &[u8]) -> String {
    let len = (bytes.len() * 8).div_ceil(5);
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = bytes[i] as u16 >> j;
        let hi = if i + 1 < bytes.len() { (bytes[i + 1] as u16) << (8 - j) } else { 0 };
        out.push(ALPHABET[((lo | hi) & 0x1f) as usize] as char);
    }
    out
}

/// Digit values by byte; 0xff for bytes outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Whether every byte of `s` is a digit.
pub fn is_valid(s: &str) -> bool {
    s.bytes().all(is_digit)
}

/// Whether `b` is a digit (one table lookup).
pub fn is_digit(b: u8) -> bool {
    DIGITS[b as usize] != 0xff
}

/// Decodes the 32 digits of a store path's hash part into its 20 bytes: what [`decode`] gives
/// for them, without an allocation (160 bits, so no padding to check). `None` when `s` is not
/// 32 digits.
pub fn decode_path_hash(s: &str) -> Option<[u8; 20]> {
    let digits: &[u8; 32] = s.as_bytes().try_into().ok()?;
    let mut out = [0u8; 20];
    // Digits from the last hold the bits from the first byte on, 5 at a time; a byte is written
    // as soon as 8 have gathered, so `pending` never holds more than 12.
    let (mut pending, mut bits, mut k) = (0u32, 0u32, 0usize);
    for &c in digits.iter().rev() {
        let digit = DIGITS[c as usize];
        if digit == 0xff {
            return None;
        }
        pending |= u32::from(digit) << bits;
        bits += 5;
        if bits >= 8 {
            out[k] = pending as u8;
            (pending, bits, k) = (pending >> 8, bits - 8, k + 1);
        }
    }
    Some(out)
}

/// Decodes Nix base32 (`s.len() * 5 / 8` bytes).
pub fn decode(s: &str) -> Result<Vec<u8>, DecodeError> {
    let len = s.len() * 5 / 8;
    let mut out = vec![0u8; len];
    for (n, (at, c)) in s.char_indices().rev().enumerate() {
        let digit = match c.is_ascii().then(|| DIGITS[c as usize]) {
            Some(d) if d != 0xff => d as u16,
            _ => return Err(DecodeError::BadDigit { ch: c, at }),
        };
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        if i < len {
            out[i] |= (digit << j) as u8;
        } else if digit << j != 0 {
            return Err(DecodeError::Padding { len });
        }
        let carry = digit >> (8 - j);
        if i + 1 < len {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return Err(DecodeError::Padding { len });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Golden pairs from Nix itself: `nix hash to-base32 --type T HEX` (Nix 2.8), for a store
    /// path's 20 bytes, SHA-1, SHA-256 and SHA-512.
    #[test]
    fn golden_from_nix() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("1f", "0z"),
            ("8a12321522fd91efbd60ebb2481af88580f61600", "00bgd045z0d4icpbc2yyz4gx48ak44la"),
            ("0123456789abcdef0123456789abcdef01234567", "cx2j60ggrnmqjrs54c0yzkdbi5kla8q1"),
            ("b3a24de97a8fdbc835b9833169501030b8977031bcb54b3b3ac13740f846ab30", "0c5b8vw40dy178xlpddw65q9gf1h2186jcc3p4swinwggbllv8mk"),
            (
                "e212f06644d77b2775d8851fcadf9eb1cfd76da0ca3c20b9663fccfc59c7aa2131b902b273f498d90fd9ccd04f398be6d589599fbd4ff98f94a9022a83a94928",
                "0l4kac3581ak54gz57vv7sri7ayd2rr9z8crn8gv6cg8wxj0awk28daqxczrk1zcswj0g6al1nxgkxikvgwl7w5v1sjfyyp8ikg04p2",
            ),
        ];
        for (h, b32) in cases {
            assert_eq!(encode(&hex(h)), *b32, "{h}");
            assert_eq!(decode(b32).unwrap(), hex(h), "{b32}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(decode("0e"), Err(DecodeError::BadDigit { ch: 'e', at: 1 }), "e is not in the alphabet");
        assert_eq!(decode("zz"), Err(DecodeError::Padding { len: 1 }), "padding bits set");
        assert_eq!(decode("0é"), Err(DecodeError::BadDigit { ch: 'é', at: 1 }));
        assert!(is_valid("0z") && !is_valid("0e"));
    }

    #[test]
    fn a_path_hash_decodes_as_any_hash() {
        for seed in 0..200u32 {
            let bytes: Vec<u8> = (0..20u32).map(|i| (i.wrapping_mul(seed + 7) ^ (seed * 131)) as u8).collect();
            assert_eq!(decode_path_hash(&encode(&bytes)).map(Vec::from), Some(bytes));
        }
        assert_eq!(decode_path_hash("00bgd045z0d4icpbc2yyz4gx48ak44la").map(Vec::from), Some(hex("8a12321522fd91efbd60ebb2481af88580f61600")));
        assert_eq!(decode_path_hash("00bgd045z0d4icpbc2yyz4gx48ak44l"), None, "31 digits");
        assert_eq!(decode_path_hash("e0bgd045z0d4icpbc2yyz4gx48ak44la"), None, "e is no digit");
    }

    #[test]
    fn roundtrip_all_lengths() {
        for n in 0..40usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let s = encode(&bytes);
            assert_eq!(s.len(), (n * 8).div_ceil(5));
            assert_eq!(decode(&s).unwrap(), bytes);
        }
    }
}
