//! Every closure input format, behind auto-detection: any bytes give path records or a located
//! error, and records give a valid closure or a closure error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = hints_analyzer::formats::parse("fuzz.json", text, None) {
        if let Ok(c) = layering_core::Closure::from_records(parsed.records) {
            assert!(!c.is_empty());
            assert_eq!(c.topo_order().len(), c.len());
        }
    }
    let _ = hints_analyzer::formats::quick_paths(text);
});
