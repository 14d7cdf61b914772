//! Mining the history into hint groups (`hints emit`).
//!
//! # Objective
//! A client holding image i at revision k−1 pulls revision k: every layer of k whose exact set
//! of paths it does not hold. A layer is re-downloaded when any member's store path changes (in
//! Nix a dependency's change changes every dependent's hash, so churn cascades up the graph) or
//! its membership changes. With a budget of K layers per image, minimise the expected
//! - update bytes, summed over images and updates,
//! - fleet bytes (a node running every image pulls a shared layer once),
//! - registry storage (which grows like fleet bytes),
//!
//! measured against the floor (one layer per path) and the ceiling (one layer).
//!
//! # Model
//! Names, not paths, are the units: a name is `pname[:output]`, stable across version bumps.
//! - A name's *intrinsic bump* at a transition is a change of its path that its dependencies do
//!   not explain: its version changed, or its hash changed while no dependency's did. Its rate
//!   `q` is estimated from the training transitions with a Jeffreys prior, `(bumps+½)/(T+1)`.
//! - Names that bumped at exactly the same transitions and carry the same version (the binary
//!   packages of one source package, the outputs of one derivation) are one *bump source*: the
//!   real co-change sets of the history, which bump once for all of them.
//! - A set of names changes when any source in its dependency closure bumps. Treating sources
//!   as independent, `P(change) = 1 − exp(−β·Σ −ln(1−q_s))` over the closure. This is chunkah's
//!   independence assumption moved to where it holds: co-change through shared dependencies
//!   comes from the graph and co-bumping from the history, so names that share their volatile
//!   sources are known to change together even when a few training transitions cannot show it,
//!   and a stable leaf is not dragged along by a volatile neighbour.
//! - Calibration: summed over hundreds of sources, the raw hazard overstates how often a name
//!   with a deep closure changes (bumps cluster, and every source that never bumped still gets
//!   the prior's small rate). One scale `β` is fitted by maximum likelihood to the training
//!   transitions themselves (`model::calibration`); on the dev history it is about 0.5. The mean
//!   calibrated hazard of a name's own bumps is written as `learned_from.path_hazard` (0.075
//!   on dev): the layerer's estimate for paths the file does not know.
//! - Two regimes: the calibrated hazards describe the training window, and a short or quiet
//!   window can fit `β` near zero, as if nothing would ever change again. Every change
//!   probability is therefore the mean of two: the *fitted* regime (`β` as fitted) and a *busy*
//!   one (`max(β, 1)`: the sources' own smoothed rates, which a quiet window cannot drive to
//!   zero). So a group's risk grows with its members and their bytes whatever the window
//!   showed, and a grouping is chosen that stays good when churn rises after the window.
//! - Images: a layer made of names with different image sets is a different layer in each image,
//!   so it is neither shared nor stored once. Names are first grouped only within their *class*
//!   (the set of images containing them).
//! - The expected cost of a group per transition is `Σ_images S·P + w·Σ_variants S·P`, where
//!   each image holds the part of the group it contains and each distinct part is one registry
//!   layer, one more pull for a node that runs every image (`S` bytes, `P` its change
//!   probability). `w` (`--registry-weight`, default 1) is the user's preference between each
//!   image's own updates and sharing: lower keeps small images' layers finer.
//!
//! # Algorithm
//! Start with one group per name. A lazy greedy over a heap applies, while some image holds more
//! groups than its target, the merge with the smallest cost increase per over-budget image it
//! relieves, between two groups that share an over-budget image. Each merge is one of two kinds:
//! - *global*: the two groups become one group of the file, in every image;
//! - *local*: the two join only in the images over budget that hold both, which is what the
//!   layerer does there by itself (it merges the pair of layers that wastes least, from the
//!   groups' change rates written in the file). It leaves the finer layers, and their smaller
//!   update bytes, to the images that have room, at the price of one more distinct layer for
//!   fleets and the registry. The greedy takes whichever the model finds cheaper: a merge that
//!   only big images need, and that would cost every small image re-downloads, is left to the
//!   big images. Local merges are not written to the file.
//!
//! An image's own updates come first: global merges that an image within its budget does not
//! need may add, in all, at most 0.25% of its expected update bytes with one group per name (an
//! eighth of the backtest's allowance); a global merge that would add more to such an image is
//! local. Without this bound, at 30 layers a small image beside big ones took the big images'
//! merges until it used a fraction of its budget (22 of 29 layers), and a busier future than the
//! window made it pull more than size-first. With four times the room, a future busier than the
//! window spent it three times over (a small service image beside a desktop union pulled 2.7% more
//! than size-first).
//!
//! Joins the window cannot show are left to the layerer. A window of `T` transitions cannot
//! show a chance of change above `1 − ½/(T+1)` (a name that changed at every one of them may
//! still stay unchanged at the next with about that chance), yet the model, summing hundreds of
//! sources over a deep closure, puts many names there: every top-level tool of a migration,
//! changing at every step through dependencies of its own. Joining two such names costs next to
//! nothing in the model, so the greedy would spend its merges on them and build a *sink*, a group
//! of big volatile names pulled whole whenever one of them changes; at a quiet update after a
//! busy window it re-pulls hundreds of MB that size-first keeps in layers of their own. So a
//! join of two groups that each change beyond what the window shows, while the sources they
//! share do not, is never a group of the file: it is local, and the layerer (which prices each
//! join by the groups' written rates, shrunk by one pseudo-update) joins in an image over budget
//! what wastes least there. Where the shared sources themselves change beyond the window, the
//! two change together through them, and the join may be global; only shared sources that
//! bumped in the window count there, since a deep base's never-bumped sources, summed at the
//! prior's rate, would put the shared part of any two big closures beyond the window too.
//!
//! The target is the full budget. An image that later holds names the history never saw, or
//! grows past it, makes room the same way, by the layerer's least-waste merging: it merges what is
//! actually in the closure, which does better than a written plan of merges at both 30 and 100
//! layers on six histories (the format still accepts a hand-written plan, `merges`, applied
//! first). A merge across classes is allowed only through
//! an image with more classes than its target (where no grouping can avoid it), and counts
//! double (`CROSS_CLASS_PENALTY`); so a path several images share never shares a group with one
//! only some of them have unless the budget leaves no other way (an image over budget may still
//! join the two in a layer, where that wastes least for it). While an image holds at most 400
//! groups every pair is considered; beyond that (large histories), each group is paired with its
//! 12 neighbours nearest in change probability, which keeps emit near-linear. A big volatile name
//! stays out of stable names' groups because joining it to them is expensive, and out of other
//! volatile names' groups unless the window shows they change together (above); small names that
//! change together merge for free.
//! Groups are written bottom-up from the least to the most likely to change, each with the
//! model's probability that it changes at an update (`stats.change_rate`), which the layerer
//! weighs when it must merge.
//!
//! # Backtest ([`backtest`])
//! Before writing, `emit` learns the same way from the early half of its window and replays the
//! later half with that file and with size-first. An image whose replay shows no change (no
//! evidence) or more bytes than size-first's (beyond 2%, or 1 MiB per update; when the replay
//! is a single update, anything but a gain of more than 2%) is *untrusted*;
//! the file lists it in `size_first_images`, so the layerer, told which image it lays out,
//! lays it out exactly as size-first does, even after it gains names that the kept groups hold;
//! the groups it shares with trusted images stay for them, and those only untrusted images hold
//! are left out. A window of fewer than 2 transitions cannot be
//! backtested, and its file holds no groups. A trusted image that still pulled more than
//! size-first (beyond 0.25%) *opts out* of the groups that cost it most, found by what each of
//! its paths was pulled with in the replays: the file lists them under `opt_outs`, the layerer
//! lays that image out without them, and the other images keep them. Where a trusted image
//! holds, in groups with other names, the paths of a layer of an untrusted image's size-first
//! layout (a large path with what only it uses there), the two store the same bytes in
//! different blobs: the layer's members get a group of their own (a *size-first single*) when a
//! last replay shows that no trusted image pulls more with the singles (beyond 0.25% of its
//! size-first bytes, unless it still pulls a tenth less than size-first). If one does, only the
//! one-path layers are tried, and an image they cost keeps the groups it holds whole. The
//! summary (and `--json`) prints the replay per image, the verdict, the singles and the
//! opt-outs, and, before them, how many merges the greedy left to the layerer because the window
//! cannot show that the two change together (`unseen_joins`).
//!
//! # Hysteresis ([`hysteresis`])
//! Regrouping makes every client download the regrouped layers once. Given the previous hint
//! file, its groups (and plan, if it has one) are kept unless the new ones' expected saving
//! exceeds `--min-gain` of the previous expected cost (both computed with the images over budget
//! merging as the layerer would); both figures and the one-time cost are reported. The
//! backtest's verdict applies to the kept groups as well. Pins are kept verbatim, and names
//! placed by a pin are left out of the groups.
//!
//! # Modules
//! `stats` (what the history says about each name), `sources` (sets of bump sources), `model` (change probabilities, costs,
//! calibration), `greedy` (the merges), `output` (the file's groups), [`backtest`],
//! [`hysteresis`]; `explain` lives in [`crate::explain`].

pub mod backtest;
pub(crate) mod bits;
mod greedy;
pub mod hysteresis;
mod model;
mod output;
mod sources;
pub(crate) mod stats;

use std::fmt::Write as _;

use hints_format::{BudgetHeader, Group, HintFile, LearnedFrom, Matcher, MemberPattern, Pin, RevisionRange};

pub use backtest::{Backtest, ImageBacktest, Mirror};
pub use hysteresis::Decision;
pub(crate) use stats::NameStats;

use crate::history::History;
use greedy::{group_names, Grouping};
use model::{build_model, path_hazard, GroupState, Model};
use output::file_groups;

#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error("no snapshots in revisions {0}..{1}")]
    Empty(usize, usize),
    #[error("budget: reserve ({reserve}) must be smaller than max-layers ({max_layers})")]
    Budget { max_layers: u32, reserve: u32 },
    #[error("registry weight must be a finite number ≥ 0, got {0}")]
    RegistryWeight(f64),
    #[error("`{0}` is not a store path or name recorded in the history")]
    Unknown(String),
    #[error(transparent)]
    Match(#[from] hints_format::MatchError),
    #[error("backtest: {0}")]
    Layer(#[from] layering_core::LayerError),
}

/// `--min-gain` unless given: regroup only when that saves more than 2% of the expected cost.
pub const DEFAULT_MIN_GAIN: f64 = 0.02;
/// `--registry-weight` unless given: one more distinct layer counts once.
pub const DEFAULT_REGISTRY_WEIGHT: f64 = 1.0;

pub struct EmitOptions {
    pub max_layers: u32,
    pub reserve: u32,
    pub first: usize,
    pub last: usize,
    pub min_gain: f64,
    /// What one more distinct layer (a registry copy, and a pull for a node running every
    /// image) weighs against one image's update bytes: 1 counts it once, lower favours each
    /// image's own updates over sharing, higher favours sharing.
    pub registry_weight: f64,
    pub db_summary: String,
}

impl EmitOptions {
    /// The layer budget, checked.
    pub(super) fn budget(&self) -> Result<layering_core::Budget, MineError> {
        layering_core::Budget::new(self.max_layers as usize, self.reserve as usize).map_err(|_| MineError::Budget { max_layers: self.max_layers, reserve: self.reserve })
    }

    fn store_layers(&self) -> usize {
        (self.max_layers - self.reserve) as usize
    }
}

pub struct Emitted {
    pub file: HintFile,
    /// The human-readable summary.
    pub report: String,
    /// The window's merges left to the layerer because it cannot show that the two change
    /// together.
    pub unseen_joins: usize,
    pub backtest: Backtest,
    /// What hysteresis decided, when a previous file with the same budget was given.
    pub hysteresis: Option<Decision>,
}

/// The grouping learned from one window: the model and the greedy's groups.
struct Mined<'a> {
    model: Model<'a>,
    /// The names grouped: present at the window's last revision, less those a pin places and
    /// those no member pattern can name.
    names: Vec<u32>,
    groups: Vec<GroupState>,
    /// The greedy's expected cost per transition.
    cost: f64,
    /// Its merges left to the layerer because the window cannot show the join.
    unseen_joins: usize,
    path_hazard: f64,
}

impl Mined<'_> {
    fn file_groups(&self) -> Vec<Group> {
        file_groups(self.model.stats, &self.groups)
    }
}

/// Learns the groups of one window (everything `emit` does before hysteresis and the backtest's
/// verdict).
fn mine<'a>(stats: &'a NameStats, pins: &[Pin], opts: &EmitOptions) -> Result<Mined<'a>, MineError> {
    let mut pin_file = HintFile::new(BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve });
    pin_file.pins = pins.to_vec();
    let pin_matcher = Matcher::new(&pin_file);
    let mut names: Vec<u32> = vec![];
    for n in (0..stats.labels.len()).filter(|&n| stats.present(n)) {
        // A name with no package name (`-05ab-1.0`) has no member pattern: the layerer's
        // fallback places it.
        let expressible = MemberPattern::parse(&stats.patterns[n]).is_ok();
        if expressible && pin_matcher.place(&stats.samples[n])?.pin.is_none() {
            names.push(n as u32);
        }
    }
    let model = build_model(stats, &names, opts.registry_weight);
    let t = std::time::Instant::now();
    let Grouping { groups, cost, unseen_joins } = group_names(&model, &names, opts.store_layers());
    tracing::info!("grouping: {} classes -> {} groups, {:.1} s", model.class_images.len(), groups.len(), t.elapsed().as_secs_f64());
    let path_hazard = path_hazard(&model, &names);
    Ok(Mined { model, names, groups, cost, unseen_joins, path_hazard })
}

/// The hint file learned from revisions `window` of `h`.
fn hint_file(h: &History, opts: &EmitOptions, window: (usize, usize), groups: Vec<Group>, merges: Vec<[String; 2]>, pins: Vec<Pin>, path_hazard: f64) -> HintFile {
    let (first, last) = window;
    HintFile {
        version: hints_format::CURRENT_VERSION,
        budget: BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve },
        learned_from: LearnedFrom {
            images: h.images.clone(),
            revisions: RevisionRange { first: h.revisions[first].label.clone(), last: h.revisions[last].label.clone(), count: (last - first + 1) as u32 },
            db_summary: opts.db_summary.clone(),
            path_hazard: Some(path_hazard),
        },
        groups,
        merges,
        size_first_images: vec![],
        opt_outs: Default::default(),
        pins,
    }
}

/// What `emit` learns from the whole window, before the backtest's verdict.
struct Learned {
    stats: NameStats,
    /// The groups to write (the window's own, or the previous file's kept by hysteresis), and
    /// the previous file's merge plan when kept.
    groups: Vec<Group>,
    merges: Vec<[String; 2]>,
    hysteresis: Option<Decision>,
    path_hazard: f64,
    unseen_joins: usize,
    /// The summary's lines on the learning and on hysteresis.
    report: String,
}

/// Learns the window's groups and applies hysteresis against `previous`.
fn learn(h: &History, opts: &EmitOptions, previous: Option<&HintFile>, pins: &[Pin]) -> Result<Learned, MineError> {
    let t0 = std::time::Instant::now();
    let stats = NameStats::build(h, opts.first, opts.last)?;
    tracing::info!("name statistics: {} names, {:.1} s", stats.labels.len(), t0.elapsed().as_secs_f64());
    let mined = mine(&stats, pins, opts)?;
    let new_groups = mined.file_groups();
    tracing::info!("expected cost per transition: {:.0}", mined.cost);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "learned from {} images, revisions {}..{} ({} transitions): {} names in {} image-set classes -> {} groups ({} store layers; an image over budget merges the pairs that waste least)",
        h.images.len(),
        opts.first,
        opts.last,
        stats.transitions,
        mined.names.len(),
        mined.model.class_images.len(),
        new_groups.len(),
        opts.store_layers()
    );
    if mined.unseen_joins > 0 {
        let _ = writeln!(
            report,
            "{} merges left to the layerer because {} transitions cannot show that the two change together (each changed beyond what they can show, through sources the two do not share)",
            mined.unseen_joins, stats.transitions
        );
    }
    let budget = BudgetHeader { max_layers: opts.max_layers, reserve: opts.reserve };
    let (groups, merges, hysteresis) = match previous.filter(|p| !p.groups.is_empty() && p.budget == budget) {
        Some(prev) => {
            let c = hysteresis::choose(&mined.model, &mined.names, &mined.groups, new_groups, prev, opts.min_gain, opts.store_layers())?;
            report_hysteresis(&mut report, &c.decision, opts.min_gain);
            (c.groups, c.merges, Some(c.decision))
        }
        None => (new_groups, vec![], None),
    };
    let (path_hazard, unseen_joins) = (mined.path_hazard, mined.unseen_joins);
    drop(mined);
    Ok(Learned { stats, groups, merges, hysteresis, path_hazard, unseen_joins, report })
}

/// Learns the hint file: the groups of the window, hysteresis against `previous`, and the
/// backtest's verdict (groups that only untrusted images hold are not written; the size-first
/// singles when the backtest took them).
pub fn emit(h: &History, opts: &EmitOptions, previous: Option<&HintFile>) -> Result<Emitted, MineError> {
    opts.budget()?;
    if !(opts.registry_weight.is_finite() && opts.registry_weight >= 0.0) {
        return Err(MineError::RegistryWeight(opts.registry_weight));
    }
    let pins = previous.map(|p| p.pins.clone()).unwrap_or_default();
    // The backtest's folds and the whole window's learning are independent: run side by side.
    let (backtest, learned) = rayon::join(|| backtest::run(h, opts, &pins), || learn(h, opts, previous, &pins));
    let (backtest, Learned { stats, groups, merges, hysteresis, path_hazard, unseen_joins, mut report }) = (backtest?, learned?);
    let learned = groups.len();
    let groups = backtest.kept_groups(&stats, groups);
    let dropped = learned - groups.len();
    let (groups, singles) = backtest.with_singles(h, opts.store_layers(), &stats, groups);
    let ids: std::collections::HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    let merges = merges.into_iter().filter(|[a, b]| ids.contains(a.as_str()) && ids.contains(b.as_str())).collect();
    report_backtest(&mut report, h, &backtest, dropped);
    report_singles(&mut report, &backtest, singles);
    let mut file = hint_file(h, opts, (opts.first, opts.last), groups, merges, pins, path_hazard);
    backtest.apply(h, &mut file);
    report_opt_outs(&mut report, &file, &backtest);
    debug_assert!(file.validate().is_ok());
    Ok(Emitted { file, report, unseen_joins, backtest, hysteresis })
}

fn report_hysteresis(report: &mut String, d: &Decision, min_gain: f64) {
    let _ = writeln!(
        report,
        "expected bytes per update: {:.0} with the previous groups, {:.0} regrouped (saving {:.1}%); regrouping costs {} bytes once",
        d.previous_cost,
        d.new_cost,
        100.0 * (d.previous_cost - d.new_cost) / d.previous_cost.max(1.0),
        d.regroup_bytes
    );
    let verdict = if d.kept_previous { "kept the previous groups (saving below" } else { "regrouped (saving above" };
    let _ = writeln!(report, "{verdict} --min-gain {min_gain})");
}

fn report_backtest(report: &mut String, h: &History, b: &Backtest, dropped: usize) {
    let last = b.window.1;
    if b.folds.is_empty() {
        let _ = writeln!(report, "backtest: the window has fewer than 2 transitions, so nothing shows that a grouping is safe; {dropped} groups dropped, every image is laid out as size-first");
        return;
    }
    let learned: Vec<String> = b.folds.iter().map(|(from, mid)| format!("{from}..{mid}")).collect();
    let _ = writeln!(report, "backtest: learned {} and replayed each to {last} ({} rounds); update bytes per image:", learned.join(", "), b.rounds);
    let _ = writeln!(report, "  {:<24} {:>14} {:>14} {:>7}  verdict", "image", "size-first MiB", "learned MiB", "ratio");
    for i in &b.images {
        let verdict = match (i.trusted, i.size_first) {
            (true, _) => "groups kept",
            (false, 0) => "no change replayed: laid out as size-first",
            (false, _) if i.hints <= i.size_first => "one update shows no gain beyond noise: laid out as size-first",
            (false, _) => "worse than size-first: laid out as size-first",
        };
        let ratio = if i.size_first > 0 { format!("{:.3}", i.hints as f64 / i.size_first as f64) } else { "-".into() };
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let chance = if i.chance > 0 && i.size_first > 0 { format!(" (chance alone moves it by {:.1} MiB)", mib(i.chance)) } else { String::new() };
        let _ = writeln!(report, "  {:<24} {:>14.1} {:>14.1} {:>7}  {verdict}{chance}", i.image, mib(i.size_first), mib(i.hints), ratio);
    }
    let untrusted = b.images.iter().filter(|i| !i.trusted).count();
    let _ = writeln!(report, "backtest: {untrusted} of {} images laid out as size-first; {dropped} groups that only they hold dropped", h.images.len());
}

fn report_singles(report: &mut String, b: &Backtest, singles: usize) {
    let whole = b.kept_whole.join(", ");
    match b.size_first_singles {
        Some(mirror) if singles > 0 => {
            let spared = if whole.is_empty() { String::new() } else { format!("; {whole} pulled more with them and keep their groups whole") };
            let layers = match mirror {
                Mirror::Layers => "layers (a large path with what only it uses there)",
                Mirror::Paths => "one-path layers",
            };
            let _ = writeln!(report, "backtest: size-first singles: {singles} {layers} of the untrusted images' size-first layouts are groups of their own, so the trusted images share them{spared}");
        }
        _ if !whole.is_empty() => {
            let _ = writeln!(report, "backtest: no size-first singles: {whole} pulled more with them");
        }
        _ => {}
    }
}

fn report_opt_outs(report: &mut String, file: &HintFile, b: &Backtest) {
    for (image, ids) in &file.opt_outs {
        let names: Vec<&str> = b.costly_names.get(image).into_iter().flatten().map(String::as_str).collect();
        let _ = writeln!(report, "backtest: {image} opts out of {} (its paths of {} cost it more than with size-first)", ids.join(", "), names.join(", "));
    }
}
