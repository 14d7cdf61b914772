//! The backtest: before `hints emit` writes a file, it checks on its own window that the
//! grouping it learns would not have made any image's updates worse than size-first's.
//!
//! # Objective
//! The miner's groups are only as good as the history they were learned from. A short or quiet
//! window cannot show that a grouping is safe: a group of names that did not change in four
//! transitions may change at every one of the next four. The promise is that no image pulls
//! more than with nixpkgs' default (`size-first`); the backtest is where that promise is checked
//! before anything is written.
//!
//! # Definitions
//! - The window `first..=last` has `T` transitions. It is split at `mid = first + ⌊T/2⌋`: the
//!   early part `first..=mid` is learned from, exactly as `emit` learns, and the later part
//!   `mid..=last` is replayed with the learned file and with size-first ([`crate::replay`]).
//! - An image is *trusted* when the replay shows evidence (size-first pulled something: a
//!   replay in which nothing changed cannot tell a safe grouping from an unsafe one) and the
//!   learned file pulled no more than size-first, within [`TOLERANCE`] or [`SMALL_EXCESS`] bytes
//!   per update for small images.
//!
//! # Algorithm
//! 1. With `T < 2` there is nothing to replay: no image is trusted.
//! 2. Learn the early part; replay the later part with size-first once.
//! 3. Replay the learned file; every image that is not trusted joins the untrusted set. Drop
//!    every group that holds a name of an untrusted image, and replay again: an image that kept
//!    its groups may now lay out the dropped names differently. Repeat until no image joins
//!    (at most one round per image, since the set only grows).
//! 4. `emit` drops from the file it writes every group holding a name of an untrusted image. An
//!    image with no groups left is laid out by the layerer exactly as size-first would lay it
//!    out, so the file's backtest is never worse than size-first's for any image.

use hints_format::{Group, HintFile};
use layering_core::Budget;
use serde::Serialize;

use super::bits::Bits;
use super::output::without_images;
use super::stats::NameStats;
use super::{hint_file, mine, EmitOptions, MineError};
use crate::history::History;
use crate::replay::{replay, Replayed};

/// How much more than size-first an image may pull in the backtest and stay trusted.
pub const TOLERANCE: f64 = 0.02;
/// Below this excess per update (bytes), a small image stays trusted whatever the ratio.
pub const SMALL_EXCESS: u64 = 1 << 20;

/// One image in the backtest's replay.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageBacktest {
    pub image: String,
    /// Update bytes with size-first over the replayed part.
    pub size_first: u64,
    /// Update bytes with the file learned from the early part, less the groups dropped so far:
    /// in the round that found the image worse, or in the last round if it is trusted.
    pub hints: u64,
    pub trusted: bool,
}

/// The backtest's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    /// Revisions learned from and replayed (positions), when the window allowed a backtest.
    pub learned: Option<(usize, usize)>,
    pub replayed: Option<(usize, usize)>,
    pub images: Vec<ImageBacktest>,
    /// Replays of the learned file until the untrusted set stopped growing.
    pub rounds: usize,
    #[serde(skip)]
    pub(super) untrusted: Bits,
}

impl Backtest {
    /// Whether every image is trusted.
    pub fn all_trusted(&self) -> bool {
        self.untrusted.count() == 0
    }
}

/// Whether an image whose replay pulled `hints` bytes against size-first's `size_first` over
/// `updates` updates keeps its groups.
pub fn trusted(size_first: u64, hints: u64, updates: u64) -> bool {
    size_first > 0 && (hints as f64 <= size_first as f64 * (1.0 + TOLERANCE) || hints.saturating_sub(size_first) <= SMALL_EXCESS * updates)
}

/// Runs the backtest on `opts.first..=opts.last` (pins placed as in the file to write).
pub(super) fn run(h: &History, opts: &EmitOptions, pins: &[hints_format::Pin]) -> Result<Backtest, MineError> {
    let ni = h.images.len();
    let transitions = opts.last - opts.first;
    let mid = opts.first + transitions / 2;
    let untrusted_all = || {
        let mut all = Bits::new(ni);
        (0..ni).for_each(|i| all.set(i));
        all
    };
    if transitions < 2 {
        let images = h.images.iter().map(|image| ImageBacktest { image: image.clone(), size_first: 0, hints: 0, trusted: false }).collect();
        return Ok(Backtest { learned: None, replayed: None, images, rounds: 0, untrusted: untrusted_all() });
    }
    let stats = NameStats::build(h, opts.first, mid)?;
    let mined = mine(&stats, pins, opts)?;
    let groups = mined.file_groups();
    let budget = Budget::new(opts.max_layers as usize, opts.reserve as usize).map_err(|_| MineError::Budget { max_layers: opts.max_layers, reserve: opts.reserve })?;
    let size_first = replay(h, mid, opts.last, budget, Replayed::SizeFirst)?.per_image_update_bytes;
    let updates = (opts.last - mid) as u64;
    let mut untrusted = Bits::new(ni);
    // Each untrusted image's replay in the round that found it worse (later rounds lay it out
    // as size-first).
    let mut verdicts: Vec<Option<ImageBacktest>> = vec![None; ni];
    let mut rounds = 0;
    loop {
        rounds += 1;
        let kept: Vec<Group> = without_images(&stats, groups.clone(), &untrusted);
        let file: HintFile = hint_file(h, opts, (opts.first, mid), kept, vec![], pins.to_vec(), mined.path_hazard);
        let learned = replay(h, mid, opts.last, budget, Replayed::Hints(&file))?.per_image_update_bytes;
        let images: Vec<ImageBacktest> = size_first
            .iter()
            .zip(&learned)
            .map(|((image, sf), (_, hb))| ImageBacktest { image: image.clone(), size_first: *sf, hints: *hb, trusted: trusted(*sf, *hb, updates) })
            .collect();
        let mut grown = false;
        for (i, b) in images.iter().enumerate() {
            if !b.trusted && !untrusted.get(i) {
                untrusted.set(i);
                verdicts[i] = Some(b.clone());
                grown = true;
            }
        }
        if !grown {
            let images = images.into_iter().zip(verdicts).map(|(b, verdict)| verdict.unwrap_or(b)).collect();
            return Ok(Backtest { learned: Some((opts.first, mid)), replayed: Some((mid, opts.last)), images, rounds, untrusted });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{trusted, SMALL_EXCESS};

    #[test]
    fn an_image_is_trusted_only_on_evidence_and_within_tolerance() {
        assert!(!trusted(0, 0, 4), "nothing changed: no evidence");
        assert!(trusted(1_000_000_000, 1_000_000_000, 4));
        assert!(trusted(1_000_000_000, 1_019_000_000, 4), "within 2%");
        assert!(!trusted(1_000_000_000, 1_030_000_000, 4), "3% over");
        assert!(trusted(10_000_000, 10_000_000 + 4 * SMALL_EXCESS, 4), "a small image, 1 MiB per update over");
        assert!(!trusted(10_000_000, 10_000_000 + 4 * SMALL_EXCESS + 1, 4));
    }
}
