//! The `hints` analyzer: everything between closure files and the hint file.
//!
//! - [`formats`]: closure input formats (exportReferencesGraph, `nix path-info`, nix2container).
//! - [`flake`]: a flake's image outputs, for `hints scan --flake`.
//! - [`scan`]: sources (files, `nix`, git work tree and history, dataset directories).
//! - [`ingest`]: the one pipeline that stores snapshot jobs (scan, benchmark, service).
//! - [`store`]: the SQLite history database.
//! - [`history`]: snapshots loaded back from the database, per name and per revision.
//! - [`mine`]: learning groups from the history, backtesting them and emitting the hint file
//!   (`hints emit`).
//! - [`diff`]: what changes between two hint files, and what it saves and costs (`hints diff`).
//! - [`explain`]: a name's group and the history's evidence for it (`hints explain`).
//! - [`image`]: writing reproducible OCI images from the layers (`hints image`).
//! - [`recover`]: the closure graph of a built image, from its embedded graph or its layers.
//! - [`replay`]: replaying revisions under each strategy (`hints eval`).
//! - [`report`]: the self-contained HTML report with charts (`hints report`).
//! - [`synth`]: synthetic histories under Nix rules, for benchmarks and tests.
//!
//! Boundary: layering itself is `layering-core`; the hint file is `hints-format`. This crate
//! owns I/O, the database and the CLI (`src/main.rs`, with `anyhow` at that edge only).

pub mod diff;
pub mod explain;
pub mod flake;
pub mod formats;
pub mod history;
pub mod image;
pub mod ingest;
pub mod mine;
pub mod pulls;
pub mod recover;
pub mod replay;
pub mod report;
pub mod scan;
pub mod serve;
pub mod store;
pub mod synth;

/// The process's peak resident set in KiB (VmHWM from /proc), where the system reports it.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The largest binary unit that keeps `bytes` at 1 or more: (bytes per unit, its name).
pub fn binary_unit(bytes: u64) -> (f64, &'static str) {
    match bytes {
        0..1024 => (1.0, "B"),
        1024..1_048_576 => (1024.0, "KiB"),
        1_048_576..1_073_741_824 => (1_048_576.0, "MiB"),
        _ => (1_073_741_824.0, "GiB"),
    }
}

/// Bytes in their [`binary_unit`]: `512 B`, `1.5 KiB`, `12.0 MiB`, `3.25 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    match binary_unit(bytes) {
        (_, "B") => format!("{bytes} B"),
        (per, "GiB") => format!("{:.2} GiB", bytes as f64 / per),
        (per, name) => format!("{:.1} {name}", bytes as f64 / per),
    }
}
