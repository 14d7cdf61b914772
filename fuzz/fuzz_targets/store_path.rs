//! Store paths, names and member patterns: parsing never panics, and what parses is
//! consistent (the parts rebuild the path, base32 round-trips, names split as they match).
#![no_main]

use hints_format::nixbase32;
use hints_format::{DrvName, MemberPattern, NameKey, StorePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = StorePath::parse(text) {
        assert_eq!(format!("{}/{}-{}", p.store_dir(), p.hash(), p.name()), text);
        let bytes = nixbase32::decode(p.hash()).expect("a parsed hash decodes");
        assert_eq!(nixbase32::encode(&bytes), p.hash());
        assert_eq!(StorePath::from_base(p.store_dir(), p.base()).as_ref(), Ok(&p));
    }
    // A decoded string of the length its bytes encode to (as every Nix hash is) round-trips.
    if let Some(bytes) = nixbase32::decode(text).ok().filter(|b| (b.len() * 8).div_ceil(5) == text.len()) {
        assert_eq!(nixbase32::encode(&bytes), text);
    }
    let d = DrvName::parse(text);
    assert!(text.starts_with(d.pname));
    let key = NameKey::identity(text);
    let _ = key.label();
    if let Ok(pattern) = MemberPattern::parse(text) {
        let _ = pattern.matches(&NameKey::of(text));
        assert_eq!(MemberPattern::parse(&pattern.to_string()).map(|p| p.to_string()), Ok(pattern.to_string()));
    }
    let identity = MemberPattern::identity_of(text);
    let named = !d.pname.is_empty();
    if named && text.chars().all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c)) && !text.starts_with('.') {
        let pattern = MemberPattern::parse(&identity).expect("a name's identity pattern parses");
        assert!(pattern.matches(&NameKey::of(text)), "{identity} matches {text}");
    }
});
