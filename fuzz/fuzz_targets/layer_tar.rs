//! The layer reader of `hints scan --oci … --from-layers`: any bytes as an uncompressed layer
//! tar give the store paths it writes or an error naming the blob or entry; never a panic, and
//! every recovered path is a valid store path with a well-formed NAR size and hash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(layer) = hints_analyzer::recover::read_layer_tar(data, "sha256:fuzz") else { return };
    for (base, path) in &layer.paths {
        assert!(hints_format::StorePath::parse(&format!("/nix/store/{base}")).is_ok(), "{base}");
        // A NAR is 8-byte aligned and holds at least its magic and one node.
        assert!(path.nar_size % 8 == 0 && path.nar_size >= 96, "{base}: {}", path.nar_size);
        assert!(path.nar_hash.starts_with("sha256-") && path.nar_hash.len() == 51, "{}", path.nar_hash);
    }
});
