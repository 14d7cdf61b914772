//! `hints report`: one self-contained HTML page that shows what the history says about a hint
//! file, for the people who decide whether to adopt it or merge a regenerated one.
//!
//! # Objective
//! Everything `eval`, `explain` and `diff` print as text, drawn: where each image's bytes go,
//! which layers change and when, what each strategy would have cost, and what regenerating the
//! file would change. The page needs no network: charts are inline SVG from `plotters`, styles
//! and the table-sorting script are inline, and a Content-Security-Policy forbids any fetch.
//!
//! # Definitions
//! - The *range* `C..D` is replayed as `hints eval` replays it ([`crate::replay`]): updates are
//!   the revisions `C+1..=D`, each from the one before.
//! - A layer's *change rate* is the share of the range's updates in which the image gained a
//!   path whose name (its hint-file label) is one of the layer's names: how often a client would
//!   have pulled that layer again.
//! - An update's *changed names* are the labels of the paths new in some image at that
//!   revision, with their bytes, and the hint-file group each one falls in.
//!
//! # Algorithm
//! 1. Replay the range under every strategy at the budget ([`Replayed::all`]).
//! 2. The trade-off curve: replay size-first and hints at each budget of [`BUDGETS`] (and the
//!    chosen one), in the same pass as step 1, so each snapshot's closure is built once.
//! 3. The layer map: each image's `hints` layers at revision `D`, with the change rate of each.
//! 4. The churn timeline: per update, the bytes each strategy pulled and the changed names.
//! 5. With a previous file: [`crate::diff`]'s changes and costs.
//!
//! Then [`page::render`] writes the HTML; [`charts`] draws the SVGs.

pub mod charts;
pub mod page;

use std::collections::{BTreeMap, HashSet};

use hints_format::{HintFile, MatchError, Matcher, NameKey};
use layering_core::{hinted, Budget, LayerError};
use rayon::prelude::*;

use crate::diff::{self, Changes, Costs};
use crate::history::History;
use crate::replay::{replay_many, Job, Metrics, Replayed};

/// Budgets (max layers) the trade-off curve is replayed at, besides the report's own.
pub const BUDGETS: [usize; 6] = [10, 20, 30, 50, 100, 125];

/// Changed names listed per update, largest first.
pub const CHANGED_SHOWN: usize = 12;

/// Why a report cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A strategy failed to lay out a snapshot.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The hint file cannot place a name.
    #[error(transparent)]
    Match(#[from] MatchError),
    /// A chart could not be drawn.
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    /// The range holds no update.
    #[error("the range {0}..{1} holds no update: give a range of at least two revisions")]
    NoUpdate(String, String),
}

/// What the page shows.
pub struct Report {
    /// What the history is (the database file).
    pub source: String,
    /// The hint file's name.
    pub hints_name: String,
    /// First and last revision labels of the range.
    pub range: (String, String),
    /// The budget every strategy was replayed at.
    pub budget: Budget,
    pub images: Vec<String>,
    /// How the hint file lays out each image ([`hints_format::Treatment`]), in image order.
    pub treatments: Vec<String>,
    /// Every strategy's replay, in [`Replayed::all`] order.
    pub strategies: Vec<Metrics>,
    /// The trade-off curve, by budget.
    pub tradeoff: Vec<TradeoffPoint>,
    /// Each image's layers at the range's last revision.
    pub layer_maps: Vec<LayerMap>,
    /// One entry per update.
    pub churn: Vec<Update>,
    /// What regenerating from a previous file changes.
    pub previous: Option<Regeneration>,
}

/// Update bytes of size-first and hints at one budget.
pub struct TradeoffPoint {
    pub max_layers: usize,
    pub size_first: u64,
    pub hints: u64,
}

/// One image's `hints` layers, bottom-up.
pub struct LayerMap {
    pub image: String,
    pub layers: Vec<MapLayer>,
}

/// One layer of a [`LayerMap`].
pub struct MapLayer {
    pub bytes: u64,
    /// Its paths' names (hint-file labels), sorted and deduplicated.
    pub names: Vec<String>,
    /// Why these paths are together (the layerer's reason).
    pub why: String,
    /// Share of the range's updates that touched one of its names.
    pub change_rate: f64,
}

/// One update of the range.
pub struct Update {
    /// The revision updated to.
    pub revision: String,
    /// Bytes pulled over all images, per strategy in [`Report::strategies`] order.
    pub pulled: Vec<u64>,
    /// Changed names, largest first: (label, bytes, group id).
    pub changed: Vec<(String, u64, Option<String>)>,
    /// All changed names, counted.
    pub changed_total: usize,
}

/// What regenerating from a previous file changes.
pub struct Regeneration {
    pub previous_name: String,
    pub changes: Changes,
    pub costs: Costs,
}

/// The inputs of a report besides the history.
pub struct Request<'a> {
    pub source: String,
    pub hints_name: String,
    pub hints: &'a HintFile,
    pub budget: Budget,
    /// A previous hint file and its name.
    pub previous: Option<(String, &'a HintFile)>,
}

/// Builds the report for revisions `first..=last`.
pub fn build(history: &History, (first, last): (usize, usize), req: &Request<'_>) -> Result<Report, ReportError> {
    if last <= first {
        return Err(ReportError::NoUpdate(history.revisions[first].label.clone(), history.revisions[last].label.clone()));
    }
    let budgets = tradeoff_budgets(req.budget)?;
    // One pass lays every snapshot out for the strategies and for the trade-off's other budgets.
    let mut jobs: Vec<Job<'_>> = Replayed::all(req.hints).map(|s| (req.budget, s)).to_vec();
    jobs.extend(budgets.iter().flat_map(|&b| [(b, Replayed::SizeFirst), (b, Replayed::Hints(req.hints))]));
    let mut strategies = replay_many(history, first, last, &jobs)?;
    let others = strategies.split_off(Replayed::all(req.hints).len());
    let point = |b: Budget, m: &[Metrics]| TradeoffPoint { max_layers: b.max_layers, size_first: m[0].update_bytes, hints: m[1].update_bytes };
    let named = |name: &str| strategies.iter().find(|m| m.strategy == name).expect("every strategy is replayed").clone();
    let mut tradeoff: Vec<TradeoffPoint> = budgets.iter().zip(others.chunks(2)).map(|(&b, m)| point(b, m)).collect();
    tradeoff.push(point(req.budget, &[named("size-first"), named("hints")]));
    tradeoff.sort_by_key(|p| p.max_layers);
    let previous = match &req.previous {
        Some((name, old)) => Some(Regeneration { previous_name: name.clone(), changes: diff::changes(old, req.hints), costs: diff::costs(history, old, req.hints, req.budget)? }),
        None => None,
    };
    let labels = labels(history);
    let matcher = Matcher::new(req.hints);
    Ok(Report {
        source: req.source.clone(),
        hints_name: req.hints_name.clone(),
        range: (history.revisions[first].label.clone(), history.revisions[last].label.clone()),
        budget: req.budget,
        images: history.images.clone(),
        treatments: history.images.iter().map(|image| req.hints.treatment(image).to_string()).collect(),
        tradeoff,
        layer_maps: layer_maps(history, (first, last), req, &labels, &matcher)?,
        churn: churn(history, (first, last), req.hints, &strategies, &labels, &matcher)?,
        strategies,
        previous,
    })
}

/// The trade-off curve's other budgets: those of [`BUDGETS`] that differ from the report's own
/// and leave room for a store layer beside the reserve.
fn tradeoff_budgets(chosen: Budget) -> Result<Vec<Budget>, LayerError> {
    BUDGETS.iter().filter(|&&b| b != chosen.max_layers && b > chosen.reserve + 1).map(|&m| Budget::new(m, chosen.reserve)).collect()
}

/// The hint-file label of each path, by dense index.
fn labels(history: &History) -> Vec<String> {
    history.paths.par_iter().map(|p| NameKey::identity(p.name()).label()).collect()
}

/// Labels of the paths image `i` gained at revision `r` (empty when it was absent before).
fn gained<'l>(history: &History, labels: &'l [String], i: usize, r: usize) -> Vec<(&'l str, u32)> {
    let (Some(now), Some(before)) = (history.snapshots.get(&(i, r)), history.snapshots.get(&(i, r - 1))) else { return vec![] };
    let held: HashSet<u32> = before.iter().copied().collect();
    now.iter().filter(|p| !held.contains(p)).map(|&p| (labels[p as usize].as_str(), p)).collect()
}

fn layer_maps(history: &History, (first, last): (usize, usize), req: &Request<'_>, labels: &[String], matcher: &Matcher) -> Result<Vec<LayerMap>, ReportError> {
    let updates = (last - first) as f64;
    (0..history.images.len())
        .into_par_iter()
        .filter_map(|i| Some((i, history.closure(i, last)?)))
        .map(|(i, closure)| {
            let touched: Vec<HashSet<&str>> = (first + 1..=last).map(|r| gained(history, labels, i, r).into_iter().map(|(l, _)| l).collect()).collect();
            let layers = hinted::layers_matched(&closure, req.budget.store_layers(), req.hints, matcher)?
                .into_iter()
                .map(|l| {
                    let mut names: Vec<String> = l.paths.iter().map(|p| NameKey::identity(p.name()).label()).collect();
                    names.sort();
                    names.dedup();
                    let hits = touched.iter().filter(|t| names.iter().any(|n| t.contains(n.as_str()))).count();
                    MapLayer { bytes: l.size, why: l.reason.to_string(), change_rate: hits as f64 / updates, names }
                })
                .collect();
            Ok(LayerMap { image: history.images[i].clone(), layers })
        })
        .collect()
}

/// The group `matcher` places path `p` of a snapshot in (a renamed package: the group its own
/// layer is beside), as the layerer places it in that closure ([`Matcher::place_closure`]).
fn group_in_snapshot(history: &History, matcher: &Matcher, snapshot: (usize, usize), p: u32) -> Result<Option<usize>, MatchError> {
    let paths = &history.snapshots[&snapshot];
    let names: Vec<&str> = paths.iter().map(|&q| history.paths[q as usize].name()).collect();
    let at = paths.iter().position(|&q| q == p).expect("a gained path is in its snapshot");
    Ok(matcher.place_closure(&names)?[at].group)
}

fn churn(history: &History, (first, last): (usize, usize), hints: &HintFile, strategies: &[Metrics], labels: &[String], matcher: &Matcher) -> Result<Vec<Update>, ReportError> {
    (first + 1..=last)
        .map(|r| {
            // label → (bytes, paths counted, the image of the first)
            let mut bytes: BTreeMap<&str, (u64, Vec<u32>, usize)> = BTreeMap::new();
            for i in 0..history.images.len() {
                for (label, p) in gained(history, labels, i, r) {
                    let (b, paths, _) = bytes.entry(label).or_insert((0, vec![], i));
                    if !paths.contains(&p) {
                        paths.push(p);
                        *b += history.sizes[p as usize];
                    }
                }
            }
            let changed_total = bytes.len();
            let mut changed: Vec<(&str, u64, u32, usize)> = bytes.into_iter().map(|(l, (b, paths, i))| (l, b, paths[0], i)).collect();
            changed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            changed.truncate(CHANGED_SHOWN);
            let changed = changed
                .into_iter()
                .map(|(l, b, sample, i)| Ok((l.to_string(), b, group_in_snapshot(history, matcher, (i, r), sample)?.map(|g| hints.groups[g].id.clone()))))
                .collect::<Result<_, MatchError>>()?;
            let pulled = strategies.iter().map(|m| m.per_update_bytes[r - first - 1]).collect();
            Ok(Update { revision: history.revisions[r].label.clone(), pulled, changed, changed_total })
        })
        .collect()
}
