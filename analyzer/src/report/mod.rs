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
//!    chosen one).
//! 3. The layer map: each image's `hints` layers at revision `D`, with the change rate of each.
//! 4. The churn timeline: per update, the bytes each strategy pulled and the changed names.
//! 5. With a previous file: [`crate::diff`]'s changes and costs.
//!
//! Then [`page::render`] writes the HTML; [`charts`] draws the SVGs.

pub mod charts;
pub mod page;

use std::collections::{BTreeMap, HashSet};

use hints_format::{HintFile, MatchError, Matcher, NameKey};
use layering_core::{layer, Budget, LayerError, Strategy};
use rayon::prelude::*;

use crate::diff::{self, Changes, Costs};
use crate::history::History;
use crate::replay::{replay, Metrics, Replayed};

/// Budgets (max layers) the trade-off curve is replayed at, besides the report's own.
pub const BUDGETS: [usize; 7] = [10, 20, 30, 50, 75, 100, 125];

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
    let strategies: Vec<Metrics> = Replayed::all(req.hints).par_iter().map(|&s| replay(history, first, last, req.budget, s)).collect::<Result<_, _>>()?;
    let previous = match &req.previous {
        Some((name, old)) => Some(Regeneration { previous_name: name.clone(), changes: diff::changes(old, req.hints), costs: diff::costs(history, old, req.hints, req.budget)? }),
        None => None,
    };
    Ok(Report {
        source: req.source.clone(),
        hints_name: req.hints_name.clone(),
        range: (history.revisions[first].label.clone(), history.revisions[last].label.clone()),
        budget: req.budget,
        images: history.images.clone(),
        tradeoff: tradeoff(history, (first, last), req)?,
        layer_maps: layer_maps(history, (first, last), req)?,
        churn: churn(history, (first, last), req.hints, &strategies)?,
        strategies,
        previous,
    })
}

fn tradeoff(history: &History, (first, last): (usize, usize), req: &Request<'_>) -> Result<Vec<TradeoffPoint>, ReportError> {
    let mut budgets: Vec<usize> = BUDGETS.iter().copied().chain([req.budget.max_layers]).filter(|&b| b > req.budget.reserve + 1).collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
        .par_iter()
        .map(|&max_layers| {
            let budget = Budget::new(max_layers, req.budget.reserve)?;
            let bytes = |s| replay(history, first, last, budget, s).map(|m| m.update_bytes);
            Ok(TradeoffPoint { max_layers, size_first: bytes(Replayed::SizeFirst)?, hints: bytes(Replayed::Hints(req.hints))? })
        })
        .collect()
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

fn layer_maps(history: &History, (first, last): (usize, usize), req: &Request<'_>) -> Result<Vec<LayerMap>, ReportError> {
    let labels = labels(history);
    let updates = (last - first) as f64;
    (0..history.images.len())
        .into_par_iter()
        .filter_map(|i| Some((i, history.closure(i, last)?)))
        .map(|(i, closure)| {
            let touched: Vec<HashSet<&str>> = (first + 1..=last).map(|r| gained(history, &labels, i, r).into_iter().map(|(l, _)| l).collect()).collect();
            let layers = layer(&closure, req.budget, Strategy::Hints(req.hints))?
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

fn churn(history: &History, (first, last): (usize, usize), hints: &HintFile, strategies: &[Metrics]) -> Result<Vec<Update>, ReportError> {
    let labels = labels(history);
    let matcher = Matcher::new(hints);
    (first + 1..=last)
        .map(|r| {
            // label → (bytes, paths counted)
            let mut bytes: BTreeMap<&str, (u64, Vec<u32>)> = BTreeMap::new();
            for i in 0..history.images.len() {
                for (label, p) in gained(history, &labels, i, r) {
                    let (b, paths) = bytes.entry(label).or_default();
                    if !paths.contains(&p) {
                        paths.push(p);
                        *b += history.sizes[p as usize];
                    }
                }
            }
            let changed_total = bytes.len();
            let mut changed: Vec<(&str, u64, u32)> = bytes.into_iter().map(|(l, (b, paths))| (l, b, paths[0])).collect();
            changed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            changed.truncate(CHANGED_SHOWN);
            let changed = changed
                .into_iter()
                .map(|(l, b, sample)| Ok((l.to_string(), b, matcher.place(history.paths[sample as usize].name())?.group.map(|g| hints.groups[g].id.clone()))))
                .collect::<Result<_, MatchError>>()?;
            let pulled = strategies.iter().map(|m| m.per_update_bytes[r - first - 1]).collect();
            Ok(Update { revision: history.revisions[r].label.clone(), pulled, changed, changed_total })
        })
        .collect()
}
