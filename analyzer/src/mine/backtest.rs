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
//! - The window `first..=last` has `T` transitions. Each *fold* splits it at a revision `mid`
//!   ([`splits`]: up to 3, from `last − min(⌊T/2⌋, 6)` to `last − 1`): the early part
//!   `first..=mid` (its last 24 transitions at most) is learned from, exactly as `emit` learns,
//!   and the later part `mid..=last` is
//!   replayed with the learned file and with size-first ([`crate::replay`]). Replayed bytes are
//!   summed over the folds (rolling-origin evaluation: the last fold's file is learned from
//!   nearly as much as the file written, and every fold adds evidence).
//! - An image is *trusted* when the replays show evidence (size-first pulled something: a
//!   replay in which nothing changed cannot tell a safe grouping from an unsafe one) and the
//!   learned files pulled no more than size-first, or more by less than the allowance
//!   ([`TOLERANCE`], or [`SMALL_EXCESS`] bytes per update for small images) even with half its
//!   *chance* added: a loss that chance could carry past the allowance is not forgiven. A
//!   window of 2 or 3 transitions replays one update, which is too little evidence to tell a
//!   small loss or a small gain from noise: it allows no excess, and the image is trusted only
//!   if it pulled less than size-first by more than [`TOLERANCE`] and by more than its chance.
//! - An image's *chance* is the standard deviation that chance alone gives its learned files'
//!   update bytes less size-first's (`replay::chance_deviation`): every path changing independently
//!   at the fold's path hazard, each layer that one layout has and the other does not is pulled
//!   when anything in its closure changes, and layers that share paths covary. One update in
//!   which two big paths the file joins happened to change together cannot tell a gain from
//!   luck when the layers at stake are far larger than the gain; and a loss of 1% over a few
//!   updates says little where the layers at stake move the difference by 5%. It is measured
//!   only for the images whose verdict it can change (`chance_matters`).
//! - A path's *cost* to an image is the bytes it was pulled with under the learned file less
//!   those under size-first, summed over the replays: a path is pulled with its whole layer, so
//!   an unchanged path costs bytes wherever a layer mate changed. Per image the costs sum to the
//!   difference of the two update bytes; a name's cost is its paths'.
//! - An image *opts out* of a group when the file lays that image out without it (`opt_outs`);
//!   the other images keep the group.
//!
//! # Algorithm
//! 1. With `T < 2` there is nothing to replay: no image is trusted.
//! 2. Learn each fold's early part; replay its later part with size-first once.
//! 3. Replay the learned files (and where the verdict depends on it, measure each image's
//!    chance with the same files); every image that is not trusted joins the untrusted set and is
//!    laid out as size-first. Drop every group that only untrusted images hold, and replay again.
//!    Repeat until no image joins (at most one round per image, since the set only grows).
//!    The trusted images keep every group they hold, the ones they share with untrusted images
//!    included: dropping those would change the trusted images' layouts after the replay that
//!    judged them.
//! 4. Then, while no image joins, a trusted image that pulled more than size-first beyond
//!    [`OPT_OUT_TOLERANCE`] opts out of the groups placing its costliest group-placed names,
//!    most costly first, until their costs cover its excess; replay again (at most
//!    [`MAX_OPT_OUT_ROUNDS`] rounds), and an image that this leaves worse beyond [`TOLERANCE`]
//!    joins the untrusted set. An opt-out costs the other images nothing, where dropping the
//!    group would re-split their fallback and share less; the costs come from the replays the
//!    image was trusted on, so an image found worse is never rescued by them.
//!    Then, while no image joins, if the trusted images together pulled more than size-first,
//!    those that lost join the untrusted set, the most bytes first, until the rest pull no more
//!    than size-first (`unpaid_losses`), and the folds are replayed again: a loss within the
//!    allowance is forgiven where other images' gains pay for it, not where the file as a whole
//!    would pull more than size-first.
//! 5. With some image untrusted, the files are replayed with the *size-first singles*
//!    (`output::with_size_first_singles`): the members placing the paths of a layer of an
//!    untrusted image's size-first layout (a large path with what only it uses there, or one
//!    path alone) move to a group of their own, so the trusted images that hold those paths
//!    store and pull the same layer as the untrusted image, where they held its bytes in blobs
//!    of their own before. A single adds a layer to every trusted image that holds its paths;
//!    one at its budget merges another pair of layers to make room. A trusted image that pulled
//!    more with the singles than without (beyond [`OPT_OUT_TOLERANCE`] of its size-first
//!    bytes) while no longer [`SINGLES_ROOM`] under size-first, or would lose its trust (judged
//!    with its chance under the singles, measured where that can change the verdict), costs
//!    too much. [`SINGLES_TRIES`]: first every such layer, in one round; if it costs an image,
//!    the one-path layers alone, and if those cost an image, they are replayed once more with
//!    that image *kept whole* (no group it holds is split). The singles are taken when a round
//!    costs no trusted image: they are for the registry and the fleet, and an image's own
//!    updates come first.
//! 6. `emit` drops from the file it writes every group that only untrusted images hold, moves
//!    the singles (when taken) out of their groups as the untrusted images' layouts at the
//!    window's last revision have them, and lists the untrusted images in `size_first_images`:
//!    told the image (`hints layer --image`, `nix/lib.nix`, every replay), the layerer lays
//!    such an image out exactly as size-first, also once it holds names the window never showed
//!    it with, which other images' groups hold. So the file's backtest is never worse than size-first's for any image. Each trusted
//!    image's costly names become its `opt_outs`: the ids of the groups that place them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hints_format::{Group, HintFile, Matcher};
use layering_core::Layer;
use rayon::prelude::*;
use serde::Serialize;

use super::bits::Bits;
use super::output::{held_by_trusted, placing_groups, size_first_layers, with_size_first_singles};
use super::stats::NameStats;
use super::{hint_file, mine, EmitOptions, MineError};
use crate::history::History;
use crate::replay::{chance_deviation, replay_path_pulls, PathPulls, Replayed};

/// How much more than size-first an image may pull in the backtest and stay trusted.
pub const TOLERANCE: f64 = 0.02;
/// How much more than size-first a trusted image may pull before it opts out of the groups that
/// cost it most, and how much more the size-first singles may make it pull. On the
/// generalization suite every value from 0 to 0.25% leaves the same images over size-first in
/// the replay, while below 0.25% the dev history's fleet bytes grow by a
/// tenth: such small excesses are not worth the layers the image stops sharing.
pub const OPT_OUT_TOLERANCE: f64 = 0.0025;
/// How far under size-first a trusted image's replay with the size-first singles must stay for
/// it to take them whatever they cost it: five times the allowance ([`TOLERANCE`]) under. The
/// singles serve the registry and the fleet; such an image's own updates keep a wide margin. On
/// the generalization suite 3%, 5% and 10% differ by at most 0.0011 in any mean; 10% is the most
/// careful of them.
pub const SINGLES_ROOM: f64 = 0.10;
/// Rounds of opt-outs at most: each replays the folds again.
pub const MAX_OPT_OUT_ROUNDS: usize = 3;
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
    /// The bytes by which chance alone moves `hints` against `size_first`, one standard
    /// deviation (`replay::chance_deviation`), where the verdict depends on it (`chance_matters`);
    /// 0 elsewhere.
    pub chance: u64,
    pub trusted: bool,
}

/// The backtest's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    /// The window backtested, `first..=last` (positions).
    pub window: (usize, usize),
    /// The folds as `(from, mid)`: each learns from `from..=mid` and replays `mid..=last`.
    /// Empty when the window has fewer than 2 transitions.
    pub folds: Vec<(usize, usize)>,
    /// Updates replayed per image, summed over the folds.
    pub updates: u64,
    pub images: Vec<ImageBacktest>,
    /// Replays of the learned files until the untrusted set stopped growing.
    pub rounds: usize,
    /// Per trusted image, the names whose groups it opts out of: those that cost it most where
    /// it pulled more than size-first.
    pub costly_names: BTreeMap<String, BTreeSet<String>>,
    /// Which of the untrusted images' size-first layers the file repeats as groups of their own
    /// (the *size-first singles*, `output::with_size_first_singles`), but in groups an image
    /// kept whole holds; `None` when every try cost some trusted image.
    pub size_first_singles: Option<Mirror>,
    /// The trusted images that pulled more with the singles: no group they hold is split.
    pub kept_whole: Vec<String>,
    #[serde(skip)]
    pub(super) untrusted: Bits,
    /// [`Backtest::kept_whole`] as a set.
    #[serde(skip)]
    whole: Bits,
}

/// Which layers of an untrusted image's size-first layout the size-first singles repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mirror {
    /// Every layer of one path, and every layer of one primary with what only it uses there.
    Layers,
    /// The layers of one path.
    Paths,
}

impl Mirror {
    /// Whether the singles repeat `layer`, one of size-first's.
    pub fn repeats(self, layer: &Layer) -> bool {
        let one_primary = || matches!(&layer.reason, layering_core::Reason::SizeFirst { used_by } if used_by.len() == 1);
        layer.paths.len() == 1 || (self == Mirror::Layers && one_primary())
    }
}

impl Backtest {
    /// `groups` (learned from `stats`) less those that only untrusted images hold.
    pub(super) fn kept_groups(&self, stats: &NameStats, groups: Vec<Group>) -> Vec<Group> {
        held_by_trusted(stats, groups, &self.untrusted)
    }

    /// The kept `groups` with the untrusted images' size-first singles at the window's last
    /// revision (`output::with_size_first_singles`) when the backtest took them, and how many
    /// there are.
    pub(super) fn with_singles(&self, h: &History, store_layers: usize, stats: &NameStats, groups: Vec<Group>) -> (Vec<Group>, usize) {
        match self.size_first_singles {
            Some(mirror) => {
                let layers = size_first_layers(&closures_of(h, &self.untrusted, self.window.1), store_layers);
                with_size_first_singles(&layers, mirror, &self.whole, stats, groups)
            }
            None => (groups, 0),
        }
    }

    /// Gives `file` (holding the kept groups) the verdict: the untrusted images in
    /// `size_first_images`, and each trusted image's opt-outs.
    pub(super) fn apply(&self, h: &History, file: &mut HintFile) {
        apply_verdict(h, file, &self.untrusted, &self.costly_names);
    }
}

/// Lists the `untrusted` images in `file.size_first_images`, and opts each image of `costly`
/// out of the groups that place its costly names.
fn apply_verdict(h: &History, file: &mut HintFile, untrusted: &Bits, costly: &BTreeMap<String, BTreeSet<String>>) {
    file.size_first_images = image_names(h, untrusted);
    file.opt_outs = costly
        .iter()
        .filter_map(|(image, names)| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut ids: Vec<String> = placing_groups(&file.groups, &names).into_iter().map(|k| file.groups[k].id.clone()).collect();
            ids.sort();
            (!ids.is_empty()).then(|| (image.clone(), ids))
        })
        .collect();
}

/// Whether an image whose replay pulled `hints` bytes against size-first's `size_first` over
/// `updates` updates keeps its groups, `chance` being the bytes by which chance alone moves the
/// difference (one standard deviation). A loss is forgiven within the allowances
/// ([`TOLERANCE`], [`SMALL_EXCESS`]) only while it stays within them with half of `chance`
/// added, and only with more than one update behind it: a replay of one update is the least
/// evidence there is, too little to tell a small loss or a small gain from noise, and then the
/// image keeps its groups only if it pulled less than size-first by more than the allowance and
/// by more than `chance`.
pub fn trusted(size_first: u64, hints: u64, updates: u64, chance: u64) -> bool {
    let worst = hints.saturating_add(chance / 2);
    let within_allowance = || updates > 1 && (worst as f64 <= size_first as f64 * (1.0 + TOLERANCE) || worst.saturating_sub(size_first) <= SMALL_EXCESS * updates);
    let gain_beyond_noise = || updates > 1 || (hints as f64 <= size_first as f64 * (1.0 - TOLERANCE) && size_first.saturating_sub(hints) > chance);
    size_first > 0 && ((hints <= size_first && gain_beyond_noise()) || within_allowance())
}

/// Whether `chance` can change the verdict on an image that pulled `hints` against
/// `size_first` ([`trusted`]): measuring it lays the image out again, so it is measured only
/// there.
fn chance_matters(size_first: u64, hints: u64, updates: u64) -> bool {
    trusted(size_first, hints, updates, 0) != trusted(size_first, hints, updates, u64::MAX)
}

/// The images of `judged` whose verdict, having pulled `hints[i]` against `size_first[i]`,
/// depends on their chance ([`chance_matters`]).
fn chance_at_stake(size_first: &[u64], hints: &[u64], updates: u64, judged: impl Fn(usize) -> bool) -> Bits {
    let mut at_stake = Bits::new(size_first.len());
    (0..size_first.len()).filter(|&i| judged(i) && chance_matters(size_first[i], hints[i], updates)).for_each(|i| at_stake.set(i));
    at_stake
}

/// Whether the size-first singles cost the trusted image `b` too much: with them it pulled
/// `with_singles` bytes, more than [`OPT_OUT_TOLERANCE`] of its size-first bytes over what it
/// pulled without them while no longer [`SINGLES_ROOM`] under size-first, or enough to lose its
/// trust, `chance` being its chance with the singles (measured where it can change that verdict).
fn costlier_with_singles(b: &ImageBacktest, with_singles: u64, chance: u64, updates: u64) -> bool {
    let beyond_tolerance = with_singles as f64 > b.hints as f64 + b.size_first as f64 * OPT_OUT_TOLERANCE;
    let room = with_singles as f64 <= b.size_first as f64 * (1.0 - SINGLES_ROOM);
    b.trusted && ((beyond_tolerance && !room) || !trusted(b.size_first, with_singles, updates, chance))
}

/// Transitions the earliest fold replays, at most: the evidence of the last few updates, at a
/// cost that does not grow with the history.
pub const MAX_REPLAYED: usize = 6;
/// Folds at most.
pub const MAX_FOLDS: usize = 3;
/// Transitions a fold learns from at most (the last ones before its split), so that the
/// backtest of a long history costs a few short minings, not several full ones.
pub const MAX_LEARNED: usize = 24;

/// The folds' splits of the window `first..=last`: up to [`MAX_FOLDS`] revisions, evenly spaced
/// from `last − span` to the last revision but one, where `span` is half the window or
/// [`MAX_REPLAYED`], whichever is less. Each fold learns from everything before its split and
/// replays at least one update; none when the window has fewer than 2 transitions.
pub fn splits(first: usize, last: usize) -> Vec<usize> {
    let span = ((last - first) / 2).min(MAX_REPLAYED);
    let folds = span.min(MAX_FOLDS);
    (0..folds).map(|k| last - span + k * span / folds).collect()
}

/// One fold: the groups learned from `from..=mid`.
struct Fold {
    from: usize,
    mid: usize,
    stats: NameStats,
    groups: Vec<Group>,
    path_hazard: f64,
}

/// Runs the backtest on `opts.first..=opts.last` (pins placed as in the file to write).
pub(super) fn run(h: &History, opts: &EmitOptions, pins: &[hints_format::Pin]) -> Result<Backtest, MineError> {
    let ni = h.images.len();
    let window = (opts.first, opts.last);
    let mids = splits(opts.first, opts.last);
    if mids.is_empty() {
        let mut untrusted = Bits::new(ni);
        (0..ni).for_each(|i| untrusted.set(i));
        let images = h.images.iter().map(|image| ImageBacktest { image: image.clone(), size_first: 0, hints: 0, chance: 0, trusted: false }).collect();
        return Ok(Backtest { window, folds: vec![], updates: 0, images, rounds: 0, untrusted, costly_names: BTreeMap::new(), size_first_singles: None, kept_whole: vec![], whole: Bits::new(ni) });
    }
    let budget = opts.budget()?;
    // Size-first's replays do not depend on the folds: they fill the threads the folds leave.
    let (folds, size_first_pulls) = rayon::join(|| learn_folds(h, opts, pins, &mids), || replay_size_first(h, opts.last, budget, &mids));
    let (folds, (size_first, size_first_pulls)) = (folds?, size_first_pulls?);
    let updates: u64 = mids.iter().map(|&mid| (opts.last - mid) as u64).sum();
    let replays = Replays { h, opts, pins, budget, folds: &folds, size_first_pulls: &size_first_pulls };
    let mut untrusted = Bits::new(ni);
    let mut costly: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Each untrusted image's replay in the round that found it worse (later rounds lay it out
    // as size-first).
    let mut verdicts: Vec<Option<ImageBacktest>> = vec![None; ni];
    let (mut rounds, mut opt_out_rounds) = (0, 0);
    loop {
        rounds += 1;
        let (learned, pulls) = replays.round(&untrusted, &costly, None)?;
        let at_stake = chance_at_stake(&size_first, &learned, updates, |_| true);
        let chance = replays.chance(&untrusted, &costly, None, &at_stake)?;
        let mut images: Vec<ImageBacktest> = (0..ni)
            .map(|i| ImageBacktest { image: h.images[i].clone(), size_first: size_first[i], hints: learned[i], chance: chance[i], trusted: trusted(size_first[i], learned[i], updates, chance[i]) })
            .collect();
        let mut grown = untrust(&mut images, |b| !b.trusted, &mut untrusted, &mut costly, &mut verdicts);
        if !grown && opt_out_rounds < MAX_OPT_OUT_ROUNDS && add_costly_names(&images, &pulls, &untrusted, &mut costly) {
            opt_out_rounds += 1;
            continue;
        }
        if !grown {
            let unpaid = unpaid_losses(&images);
            grown = untrust(&mut images, |b| unpaid.contains(&b.image), &mut untrusted, &mut costly, &mut verdicts);
        }
        if !grown {
            let (size_first_singles, whole, singles_rounds) = singles_verdict(&replays, &images, &untrusted, &costly, updates)?;
            rounds += singles_rounds;
            let images = images.into_iter().zip(verdicts).map(|(b, verdict)| verdict.unwrap_or(b)).collect();
            let folds = folds.iter().map(|f| (f.from, f.mid)).collect();
            return Ok(Backtest { window, folds, updates, images, rounds, costly_names: costly, size_first_singles, kept_whole: image_names(h, &whole), untrusted, whole });
        }
    }
}

/// Moves the images that `judge` finds untrustworthy, and are not untrusted yet, to the
/// `untrusted` set (their verdict the one of this round, their opt-outs gone); whether any moved.
fn untrust(
    images: &mut [ImageBacktest],
    judge: impl Fn(&ImageBacktest) -> bool,
    untrusted: &mut Bits,
    costly: &mut BTreeMap<String, BTreeSet<String>>,
    verdicts: &mut [Option<ImageBacktest>],
) -> bool {
    let mut grown = false;
    for (i, b) in images.iter_mut().enumerate() {
        if !untrusted.get(i) && judge(b) {
            b.trusted = false;
            untrusted.set(i);
            costly.remove(&b.image);
            verdicts[i] = Some(b.clone());
            grown = true;
        }
    }
    grown
}

/// The trusted images whose losses against size-first no gain of another trusted image pays
/// for: while the trusted images together pulled more than size-first, the one that lost most
/// (in bytes) is taken out of the sum. A loss within the allowance is forgiven for the layers
/// an image shares with others, but the file as a whole must not pull more than size-first.
fn unpaid_losses(images: &[ImageBacktest]) -> BTreeSet<String> {
    let excess = |b: &ImageBacktest| b.hints as i128 - b.size_first as i128;
    let mut losers: Vec<&ImageBacktest> = images.iter().filter(|b| b.trusted && excess(b) > 0).collect();
    losers.sort_by(|a, b| excess(b).cmp(&excess(a)).then_with(|| a.image.cmp(&b.image)));
    let mut total: i128 = images.iter().filter(|b| b.trusted).map(excess).sum();
    let mut unpaid = BTreeSet::new();
    for b in losers {
        if total <= 0 {
            break;
        }
        total -= excess(b);
        unpaid.insert(b.image.clone());
    }
    unpaid
}

/// Per name, the bytes its paths were pulled with: `[learned file, size-first]`.
type NamePulls<'h> = HashMap<&'h str, [u64; 2]>;

/// How the size-first singles are tried, in order: which layers they repeat, and the rounds
/// each try replays at most. Whole layers share the most; where one round shows that they cost
/// a trusted image, the one-path layers are tried, and in a second round without the groups of
/// the images they cost.
pub const SINGLES_TRIES: [(Mirror, usize); 2] = [(Mirror::Layers, 1), (Mirror::Paths, 2)];

/// The last rounds (module doc, step 5): which layers the size-first singles repeat (`None`:
/// none), the images whose groups stay whole, and the rounds replayed. Each round replays the
/// folds with the singles, less those of groups the images kept whole hold; a trusted image they
/// cost too much ([`costlier_with_singles`]) is kept whole for the rest of the try.
fn singles_verdict(replays: &Replays, images: &[ImageBacktest], untrusted: &Bits, costly: &BTreeMap<String, BTreeSet<String>>, updates: u64) -> Result<(Option<Mirror>, Bits, usize), MineError> {
    let mut whole = Bits::new(images.len());
    let mut rounds = 0;
    if untrusted.count() == 0 {
        return Ok((None, whole, rounds));
    }
    // Per fold, the untrusted images' size-first layers at its split.
    let layers: Vec<Vec<Layer>> = replays.folds.iter().map(|f| size_first_layers(&closures_of(replays.h, untrusted, f.mid), replays.budget.store_layers())).collect();
    let size_first: Vec<u64> = images.iter().map(|b| b.size_first).collect();
    for (mirror, max_rounds) in SINGLES_TRIES {
        whole = Bits::new(images.len());
        for _ in 0..max_rounds {
            rounds += 1;
            let singles = Some(Singles { layers: &layers, mirror, whole: &whole });
            let (with_singles, _) = replays.round(untrusted, costly, singles)?;
            let chance = replays.chance(untrusted, costly, singles, &chance_at_stake(&size_first, &with_singles, updates, |i| images[i].trusted))?;
            let costlier: Vec<usize> = (0..images.len()).filter(|&i| costlier_with_singles(&images[i], with_singles[i], chance[i], updates)).collect();
            if costlier.is_empty() {
                return Ok((Some(mirror), whole, rounds));
            }
            costlier.into_iter().for_each(|i| whole.set(i));
        }
    }
    Ok((None, whole, rounds))
}

/// The size-first singles a round replays with: per fold the untrusted images' size-first
/// layers, which of them are repeated, and the images kept whole.
#[derive(Clone, Copy)]
struct Singles<'s> {
    layers: &'s [Vec<Layer>],
    mirror: Mirror,
    whole: &'s Bits,
}

/// What every round of the backtest replays: the folds, and size-first's pulls in each.
struct Replays<'a> {
    h: &'a History,
    opts: &'a EmitOptions,
    pins: &'a [hints_format::Pin],
    budget: layering_core::Budget,
    folds: &'a [Fold],
    size_first_pulls: &'a [Vec<PathPulls>],
}

impl<'a> Replays<'a> {
    /// Fold `k`'s file with the verdict so far (`untrusted`, the `costly` names' opt-outs) and,
    /// with `singles`, the size-first singles at the fold's split.
    fn file(&self, k: usize, untrusted: &Bits, costly: &BTreeMap<String, BTreeSet<String>>, singles: Option<Singles>) -> HintFile {
        let f = &self.folds[k];
        let mut groups = held_by_trusted(&f.stats, f.groups.clone(), untrusted);
        if let Some(Singles { layers, mirror, whole }) = singles {
            groups = with_size_first_singles(&layers[k], mirror, whole, &f.stats, groups).0;
        }
        let mut file = hint_file(self.h, self.opts, (f.from, f.mid), groups, vec![], self.pins.to_vec(), f.path_hazard);
        apply_verdict(self.h, &mut file, untrusted, costly);
        file
    }

    /// Per image of `images` (0 for the others), the bytes by which chance alone moves the
    /// learned files' replay (with `singles`, as [`Replays::round`]) against size-first's, with
    /// the verdict so far: one standard
    /// deviation ([`chance_deviation`], at each fold's path hazard), the folds taken as
    /// independent.
    fn chance(&self, untrusted: &Bits, costly: &BTreeMap<String, BTreeSet<String>>, singles: Option<Singles>, images: &Bits) -> Result<Vec<u64>, MineError> {
        if images.count() == 0 {
            return Ok(vec![0; images.len()]);
        }
        let (h, opts) = (self.h, self.opts);
        let mut variance = vec![0.0; h.images.len()];
        for (k, f) in self.folds.iter().enumerate() {
            let file = self.file(k, untrusted, costly, singles);
            let deviation = chance_deviation(h, f.mid, opts.last, (self.budget, Replayed::Hints(&file)), (self.budget, Replayed::SizeFirst), f.path_hazard, images)?;
            variance.iter_mut().zip(deviation).for_each(|(v, d)| *v += d * d);
        }
        Ok(variance.into_iter().map(|v| v.sqrt().round() as u64).collect())
    }

    /// Each fold's file with the verdict so far (`untrusted`, the `costly` names' opt-outs) and,
    /// with `singles`, the size-first singles at the fold's split, replayed:
    /// each image's update bytes summed over the folds, and the pulls of each name a group
    /// places ([`add_group_pulls`]).
    fn round(&self, untrusted: &Bits, costly: &BTreeMap<String, BTreeSet<String>>, singles: Option<Singles>) -> Result<(Vec<u64>, Vec<NamePulls<'a>>), MineError> {
        let (h, opts) = (self.h, self.opts);
        let mut learned = vec![0u64; h.images.len()];
        let mut pulls: Vec<NamePulls> = vec![HashMap::new(); h.images.len()];
        for (k, (f, size_first_pulls)) in self.folds.iter().zip(self.size_first_pulls).enumerate() {
            let file = self.file(k, untrusted, costly, singles);
            let (metrics, path_pulls) = replay_path_pulls(h, f.mid, opts.last, self.budget, Replayed::Hints(&file))?;
            add(&mut learned, &metrics.per_image_update_bytes);
            add_group_pulls(h, &file, [&path_pulls, size_first_pulls], &mut pulls);
        }
        Ok((learned, pulls))
    }
}

/// Adds the bytes each path was pulled with (per image, with the learned file and with
/// size-first, [`replay_path_pulls`]) to its name's, for the paths a group places as the
/// image's file applies: only opting out of a group can change what such a path costs.
fn add_group_pulls<'h>(h: &'h History, file: &HintFile, path_pulls: [&[PathPulls]; 2], pulls: &mut [NamePulls<'h>]) {
    for (i, per_name) in pulls.iter_mut().enumerate() {
        let matcher = Matcher::new(&file.for_image(Some(&h.images[i])));
        for (j, per_path) in path_pulls.iter().enumerate() {
            for (&p, &bytes) in &per_path[i] {
                let name = h.paths[p as usize].name();
                if matches!(matcher.place(name), Ok(placed) if placed.group.is_some()) {
                    per_name.entry(name).or_default()[j] += bytes;
                }
            }
        }
    }
}

/// For every trusted image that pulled more than size-first (beyond [`OPT_OUT_TOLERANCE`]), adds
/// to its costly names those it pulled more of than size-first did, most costly first, until
/// their costs cover its excess. Whether any was added.
fn add_costly_names(images: &[ImageBacktest], pulls: &[NamePulls], untrusted: &Bits, costly: &mut BTreeMap<String, BTreeSet<String>>) -> bool {
    let mut added = false;
    for (i, b) in images.iter().enumerate().filter(|(i, _)| !untrusted.get(*i)) {
        let mut excess = b.hints as f64 - b.size_first as f64 * (1.0 + OPT_OUT_TOLERANCE);
        let mut over: Vec<(&str, u64)> = pulls[i].iter().filter(|(_, [h, sf])| h > sf).map(|(&name, &[h, sf])| (name, h - sf)).collect();
        over.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (name, cost) in over {
            if excess <= 0.0 {
                break;
            }
            added |= costly.entry(b.image.clone()).or_default().insert(name.to_string());
            excess -= cost as f64;
        }
    }
    added
}

/// The folds' groups, learned in parallel, one fold per split in `mids`.
fn learn_folds(h: &History, opts: &EmitOptions, pins: &[hints_format::Pin], mids: &[usize]) -> Result<Vec<Fold>, MineError> {
    mids.par_iter()
        .map(|&mid| {
            let from = opts.first.max(mid.saturating_sub(MAX_LEARNED));
            let stats = NameStats::build(h, from, mid)?;
            let mined = mine(&stats, pins, opts)?;
            let (groups, path_hazard) = (mined.file_groups(), mined.path_hazard);
            drop(mined);
            Ok(Fold { from, mid, stats, groups, path_hazard })
        })
        .collect()
}

/// Size-first's update bytes per image, summed over the replays of every split in `mids` to
/// `last`, and each replay's bytes per path ([`replay_path_pulls`]): the same in every round.
fn replay_size_first(h: &History, last: usize, budget: layering_core::Budget, mids: &[usize]) -> Result<(Vec<u64>, Vec<Vec<PathPulls>>), MineError> {
    let mut total = vec![0u64; h.images.len()];
    let mut pulls = vec![];
    for &mid in mids {
        let (metrics, per_path) = replay_path_pulls(h, mid, last, budget, Replayed::SizeFirst)?;
        add(&mut total, &metrics.per_image_update_bytes);
        pulls.push(per_path);
    }
    Ok((total, pulls))
}

/// The closures of the images in `set` at `revision` (those that hold anything there).
fn closures_of(h: &History, set: &Bits, revision: usize) -> Vec<layering_core::Closure> {
    set.ones().filter_map(|i| h.closure(i, revision)).collect()
}

/// The names of the images in `set`, sorted: a file's `size_first_images`.
pub(super) fn image_names(h: &History, set: &Bits) -> Vec<String> {
    let mut names: Vec<String> = set.ones().map(|i| h.images[i].clone()).collect();
    names.sort();
    names
}

/// Adds one replay's update bytes per image (in image order) to `total`.
fn add(total: &mut [u64], per_image: &[(String, u64)]) {
    for (t, (_, b)) in total.iter_mut().zip(per_image) {
        *t = t.saturating_add(*b);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{chance_matters, costlier_with_singles, trusted, unpaid_losses, ImageBacktest, SMALL_EXCESS};

    #[test]
    fn folds_learn_from_at_least_half_the_window_and_replay_at_least_one_update() {
        assert_eq!(super::splits(0, 1), Vec::<usize>::new());
        assert_eq!(super::splits(0, 2), [1]);
        assert_eq!(super::splits(0, 4), [2, 3]);
        assert_eq!(super::splits(3, 9), [6, 7, 8]);
        assert_eq!(super::splits(0, 12), [6, 8, 10]);
        assert_eq!(super::splits(0, 499), [493, 495, 497], "a long history replays only its end");
    }

    #[test]
    fn an_image_is_trusted_only_on_evidence_and_within_tolerance() {
        assert!(!trusted(0, 0, 4, 0), "nothing changed: no evidence");
        assert!(trusted(1_000_000_000, 1_000_000_000, 4, 0));
        assert!(trusted(1_000_000_000, 1_019_000_000, 4, 0), "within 2%");
        assert!(!trusted(1_000_000_000, 1_030_000_000, 4, 0), "3% over");
        assert!(trusted(10_000_000, 10_000_000 + 4 * SMALL_EXCESS, 4, 0), "a small image, 1 MiB per update over");
        assert!(!trusted(10_000_000, 10_000_000 + 4 * SMALL_EXCESS + 1, 4, 0));
    }

    #[test]
    fn singles_may_cost_a_trusted_image_a_quarter_percent_of_size_first_or_anything_a_tenth_under_it() {
        let b = ImageBacktest { image: "app".into(), size_first: 1_000_000_000, hints: 950_000_000, chance: 0, trusted: true };
        assert!(!costlier_with_singles(&b, 950_000_000, 0, 4));
        assert!(!costlier_with_singles(&b, 952_500_000, 0, 4), "0.25% of size-first more");
        assert!(costlier_with_singles(&b, 952_500_001, 0, 4));
        let roomy = ImageBacktest { hints: 800_000_000, ..b.clone() };
        assert!(!costlier_with_singles(&roomy, 900_000_000, 0, 4), "10% more, and still a tenth under size-first");
        assert!(costlier_with_singles(&roomy, 900_000_001, 0, 4));
        let edge = ImageBacktest { hints: 1_019_000_000, ..b.clone() };
        assert!(costlier_with_singles(&edge, 1_021_000_000, 0, 4), "within the quarter percent, but no longer trusted");
        let untrusted = ImageBacktest { trusted: false, ..b };
        assert!(!costlier_with_singles(&untrusted, 2_000_000_000, 0, 4), "an untrusted image is laid out as size-first anyway");
    }

    #[test]
    fn losses_within_the_allowance_stay_trusted_only_while_other_gains_pay_for_them() {
        let image = |name: &str, size_first: u64, hints: u64| ImageBacktest { image: name.into(), size_first, hints, chance: 0, trusted: true };
        let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
        let paid = [image("a", 1000, 1010), image("b", 1000, 1005), image("c", 1000, 980)];
        assert!(unpaid_losses(&paid).is_empty(), "c's gain of 20 pays for a's and b's losses of 15");
        let unpaid = [image("a", 1000, 1010), image("b", 1000, 1005), image("c", 1000, 992)];
        assert_eq!(names(unpaid_losses(&unpaid)), ["a"], "without a's loss the rest gain 3: b stays");
        let untrusted_gain = [image("a", 1000, 1010), ImageBacktest { trusted: false, ..image("c", 1000, 900) }];
        assert_eq!(names(unpaid_losses(&untrusted_gain)), ["a"], "an untrusted image's replay pays for nothing");
        let all_lose = [image("a", 1000, 1001), image("b", 1000, 1002)];
        assert_eq!(names(unpaid_losses(&all_lose)), ["a", "b"]);
    }

    #[test]
    fn one_replayed_update_allows_no_excess_and_needs_a_gain_beyond_the_allowance() {
        assert!(trusted(1_000_000_000, 980_000_000, 1, 0), "2% under");
        assert!(!trusted(1_000_000_000, 984_000_000, 1, 0), "1.6% under: within the noise of one update");
        assert!(!trusted(1_000_000_000, 1_000_000_000, 1, 0));
        assert!(trusted(1_000_000_000, 1_000_000_000, 2, 0), "a tie over two updates");
        assert!(!trusted(1_000_000_000, 1_002_000_000, 1, 0), "0.2% over, on one update");
        assert!(!trusted(10_000_000, 10_000_001, 1, 0), "a small image, one byte over");
        assert!(trusted(1_000_000_000, 1_002_000_000, 2, 0), "the same excess over two updates is within 2%");
        assert!(!trusted(0, 0, 1, 0));
    }

    #[test]
    fn a_loss_within_the_allowance_is_forgiven_only_while_half_its_chance_stays_within_it() {
        assert!(trusted(1_000_000_000, 1_010_000_000, 3, 20_000_000), "1% over, and 2% with half of a 2% chance");
        assert!(!trusted(1_000_000_000, 1_010_000_000, 3, 20_000_002), "half the chance carries it past 2%");
        assert!(trusted(1_000_000_000, 990_000_000, 3, u64::MAX), "over several updates a gain needs no test against chance");
        assert!(trusted(10_000_000, 10_000_000 + SMALL_EXCESS, 3, 4 * SMALL_EXCESS), "a small image: 1 MiB per update, half its chance included");
        assert!(!trusted(10_000_000, 10_000_000 + SMALL_EXCESS, 3, 4 * SMALL_EXCESS + 2));
    }

    #[test]
    fn chance_is_measured_only_where_it_can_change_the_verdict() {
        assert!(chance_matters(1_000_000_000, 1_010_000_000, 3), "a loss within the allowance");
        assert!(!chance_matters(1_000_000_000, 1_030_000_000, 3), "a loss beyond it");
        assert!(!chance_matters(1_000_000_000, 990_000_000, 3), "a gain over several updates");
        assert!(chance_matters(1_000_000_000, 950_000_000, 1), "a gain beyond the allowance on one update");
        assert!(!chance_matters(1_000_000_000, 990_000_000, 1), "a gain within it on one update");
    }

    #[test]
    fn one_replayed_update_needs_a_gain_beyond_what_chance_alone_gives() {
        assert!(trusted(1_000_000_000, 950_000_000, 1, 49_999_999), "5% under, chance 5% less a byte");
        assert!(!trusted(1_000_000_000, 950_000_000, 1, 50_000_000), "a gain no larger than chance's standard deviation");
        let b = ImageBacktest { image: "app".into(), size_first: 1_000_000_000, hints: 950_000_000, chance: 40_000_000, trusted: true };
        assert!(!costlier_with_singles(&b, 952_000_000, 40_000_000, 1), "within the quarter percent, and still beyond chance");
        assert!(costlier_with_singles(&b, 952_000_000, 50_000_000, 1), "within the quarter percent, but the gain left is within the singles' chance");
    }

    #[test]
    fn the_singles_are_judged_by_the_chance_of_the_layout_they_make() {
        let gain = ImageBacktest { image: "app".into(), size_first: 1_000_000_000, hints: 999_000_000, chance: 0, trusted: true };
        assert!(!costlier_with_singles(&gain, 1_001_000_000, 0, 4), "0.2% more, a loss within the allowance");
        assert!(costlier_with_singles(&gain, 1_001_000_000, 40_000_000, 4), "the same loss, which half the singles' chance carries past the allowance");
    }
}
