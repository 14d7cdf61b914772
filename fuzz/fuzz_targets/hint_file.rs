//! The hint-file parser and validator: any text is a file or a located error, and a file
//! reads back to itself from its canonical text.
#![no_main]

use hints_format::HintFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match HintFile::parse(text) {
        Ok(f) => {
            let canonical = f.to_canonical_string();
            let again = HintFile::parse(&canonical).expect("canonical text parses");
            assert_eq!(again.to_canonical_string(), canonical, "canonical text is a fixed point");
        }
        Err(e) => assert!(e.line >= 1 && e.column >= 1, "{e}"),
    }
});
