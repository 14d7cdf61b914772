//! `hints explain`: where a path or name goes under a hint file, and the history's evidence for
//! it (sizes, changes, own bumps against cascades, co-changing and co-bumping names, images).
//!
//! [`explain`] and [`in_image`] gather the facts as data ([`Explanation`], [`Landing`]), which
//! `hints explain --json` prints as they are and [`Explanation::text`] and [`landings_text`] write
//! for a reader. [`layers_text`] writes `hints layer --explain`.

use std::fmt::Write as _;

use hints_format::{HintFile, Matcher, NameKey, StorePath};
use layering_core::{Budget, Closure, Layer};
use serde::Serialize;

use crate::history::History;
use crate::human_bytes;
use crate::mine::{MineError, NameStats};

/// Co-changing names listed at most.
pub const TOGETHER_SHOWN: usize = 20;

/// What the history and the hint file say about one name.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The name's label (`glibc`, `gcc:lib`).
    pub name: String,
    /// Where the file puts it.
    pub placement: Placement,
    /// The revisions the statistics cover (positions).
    pub revisions: (usize, usize),
    /// Its bytes at each revision of the range (0 where no image holds it).
    pub size_over_time: Vec<u64>,
    /// Transitions `(k, k+1)` at which it changed.
    pub changed_at: Vec<(usize, usize)>,
    /// Transitions in the range.
    pub transitions: usize,
    /// Changes that were its own version bump (the rest cascaded from dependencies).
    pub own_bumps: usize,
    /// Names that changed at exactly the same transitions (at most [`TOGETHER_SHOWN`]).
    pub changed_with: Vec<String>,
    /// Names built from the same source: same bump transitions and version.
    pub bumps_with: Vec<String>,
    /// Images that hold it.
    pub images: Vec<String>,
}

/// Where the hint file puts a name.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Placement {
    /// A placing pin.
    Pin { id: String, rule: String },
    /// A group: its position in the file (1-based, bottom-up) and its recorded figures.
    Group {
        id: String,
        position: usize,
        groups: usize,
        members: Vec<String>,
        size: u64,
        change_rate: f64,
        images: u32,
        /// Merge-plan entries naming it: (1-based entry, the other group).
        joined_with: Vec<(usize, String)>,
        /// Images that lay their paths out without it (`opt_outs`).
        opted_out_by: Vec<String>,
        /// Entries in the merge plan.
        plan_entries: usize,
    },
    /// No group or pin: the layerer's size-first fallback.
    Fallback,
}

/// The revisions `hints explain` looks at by default: those the file was learned from (as far
/// as the history has them), else the whole history.
pub fn learned_range(history: &History, hints: &HintFile) -> (usize, usize) {
    let learned = &hints.learned_from.revisions;
    (history.revision(&learned.first).unwrap_or(0), history.revision(&learned.last).unwrap_or(history.revisions.len().saturating_sub(1)))
}

/// `hints explain`: a path's or name's group and the evidence, over revisions `first..=last`.
pub fn explain(h: &History, (first, last): (usize, usize), hints: &HintFile, query: &str) -> Result<Explanation, MineError> {
    let stats = NameStats::build(h, first, last)?;
    let label = match StorePath::parse(query) {
        _ if stats.labels.iter().any(|l| l == query) => query.to_string(),
        Ok(p) => NameKey::identity(p.name()).label(),
        Err(_) if query.contains('/') => return Err(MineError::Unknown(query.to_string())),
        Err(_) => NameKey::identity(query).label(),
    };
    let n = stats.labels.iter().position(|l| *l == label).ok_or_else(|| MineError::Unknown(query.to_string()))?;
    let changed_at: Vec<usize> = (0..stats.transitions).filter(|&t| stats.changed[t].get(n)).collect();
    let changed_with = (0..stats.labels.len())
        .filter(|&m| m != n && stats.present(m) && !changed_at.is_empty())
        .filter(|&m| (0..stats.transitions).all(|t| stats.changed[t].get(m) == stats.changed[t].get(n)))
        .map(|m| stats.labels[m].clone())
        .take(TOGETHER_SHOWN)
        .collect();
    Ok(Explanation {
        placement: placement(hints, &stats.samples[n])?,
        revisions: (first, last),
        size_over_time: stats.size_over_time[n].clone(),
        changed_at: changed_at.iter().map(|&t| (first + t, first + t + 1)).collect(),
        transitions: stats.transitions,
        own_bumps: (0..stats.transitions).filter(|&t| stats.bumped[t].get(n)).count(),
        changed_with,
        bumps_with: (0..stats.labels.len()).filter(|&m| m != n && stats.source[m] == stats.source[n]).map(|m| stats.labels[m].clone()).collect(),
        images: stats.images[n].ones().map(|i| stats.image_names[i].clone()).collect(),
        name: label,
    })
}

fn placement(hints: &HintFile, sample: &str) -> Result<Placement, MineError> {
    let placed = Matcher::new(hints).place(sample)?;
    Ok(match (placed.pin, placed.group) {
        (Some(p), _) => Placement::Pin { id: hints.pins[p].id.clone(), rule: hints.pins[p].rule.as_str().to_string() },
        (None, Some(g)) => {
            let grp = &hints.groups[g];
            let joined_with = hints.merges.iter().enumerate().filter_map(|(k, [x, y])| [(x, y), (y, x)].into_iter().find(|(a, _)| **a == grp.id).map(|(_, other)| (k + 1, other.clone()))).collect();
            Placement::Group {
                id: grp.id.clone(),
                position: g + 1,
                groups: hints.groups.len(),
                members: grp.members.clone(),
                size: grp.stats.size,
                change_rate: grp.stats.change_rate,
                images: grp.stats.images,
                joined_with,
                plan_entries: hints.merges.len(),
                opted_out_by: hints.opt_outs.iter().filter(|(_, ids)| ids.contains(&grp.id)).map(|(image, _)| image.clone()).collect(),
            }
        }
        (None, None) => Placement::Fallback,
    })
}

impl Explanation {
    /// The explanation for a reader.
    pub fn text(&self) -> String {
        let mut o = format!("{}\n", self.name);
        let _ = writeln!(o, "  layer: {}", self.placement.text());
        if let Placement::Group { members, joined_with, plan_entries, opted_out_by, .. } = &self.placement {
            let _ = writeln!(o, "  with: {}", members.join(", "));
            if !opted_out_by.is_empty() {
                let _ = writeln!(o, "  laid out without this group (their backtest found it costly; its names go to their fallback) by: {}", opted_out_by.join(", "));
            }
            if !joined_with.is_empty() {
                let plan: Vec<String> = joined_with.iter().map(|(k, other)| format!("`{other}` (entry {k})")).collect();
                let _ = writeln!(o, "  in an image over budget, joined with: {} of {plan_entries} plan entries, applied in order until it fits", plan.join(", "));
            }
        }
        let sizes: Vec<String> = self.size_over_time.iter().map(u64::to_string).collect();
        let _ = writeln!(o, "  size over revisions {}..{}: {}", self.revisions.0, self.revisions.1, sizes.join(" "));
        let changes: Vec<String> = self.changed_at.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        let _ = writeln!(
            o,
            "  changed at: {} ({} of {} transitions; {} of them its own bump, the rest cascaded from dependencies)",
            or_none(&changes, "never"),
            self.changed_at.len(),
            self.transitions,
            self.own_bumps
        );
        let _ = writeln!(o, "  always changed together with: {}", or_none(&self.changed_with, "-"));
        let _ = writeln!(o, "  bumps together with (one source: same bump transitions and version): {}", or_none(&self.bumps_with, "-"));
        let _ = writeln!(o, "  in images: {}", self.images.join(", "));
        o
    }
}

fn or_none(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

impl Placement {
    fn text(&self) -> String {
        match self {
            Placement::Pin { id, rule } => format!("pin `{id}` ({rule})"),
            Placement::Group { id, position, groups, members, size, change_rate, images, .. } => format!(
                "group `{id}` (group {position} of {groups} in the file, bottom-up; one layer in every image that holds it, unless an image over budget merges it), {} members, {size} bytes, expected to change at {:.0}% of updates, in {images} images",
                members.len(),
                change_rate * 100.0
            ),
            Placement::Fallback => "none of the groups; the layerer places it by its size-first fallback".to_string(),
        }
    }
}

/// Where one path of the queried name lands in an image.
#[derive(Debug, Clone, Serialize)]
pub struct Landing {
    pub image: String,
    pub revision: String,
    /// The path's name.
    pub path: String,
    /// Its layer, counted from the bottom (1-based), of `layers`.
    pub layer: usize,
    pub layers: usize,
    /// The layer's bytes and paths.
    pub bytes: u64,
    pub paths: usize,
    /// Why the layer exists.
    pub why: String,
}

/// Where the paths named `query` land in one image: its snapshot at `revision` laid out by
/// `hints` with the file's budget.
pub fn in_image(h: &History, image: usize, revision: usize, hints: &HintFile, query: &str) -> Result<Vec<Landing>, MineError> {
    let at = || format!("{} at {}", h.images[image], h.revisions[revision].label);
    let closure = h.closure(image, revision).ok_or_else(|| MineError::Unknown(format!("{query} in {}", at())))?;
    let budget = layering_core::Budget::new(hints.budget.max_layers as usize, hints.budget.reserve as usize).map_err(MineError::Layer)?;
    let layers = layering_core::layer_image(&closure, budget, hints, Some(&h.images[image])).map_err(MineError::Layer)?;
    let label = match StorePath::parse(query) {
        Ok(p) => NameKey::identity(p.name()).label(),
        Err(_) => NameKey::identity(query).label(),
    };
    let notes = path_notes(&closure, hints, Some(&h.images[image]));
    let mut out = vec![];
    for (k, l) in layers.iter().enumerate() {
        for p in l.paths.iter().filter(|p| p.as_str() == query || NameKey::identity(p.name()).label() == label) {
            let (image, revision) = (h.images[image].clone(), h.revisions[revision].label.clone());
            let why = notes.get(p.name()).map_or_else(|| l.reason.to_string(), |note| format!("{} ({note})", l.reason));
            out.push(Landing { image, revision, path: p.name().to_string(), layer: k + 1, layers: layers.len(), bytes: l.size, paths: l.paths.len(), why });
        }
    }
    if out.is_empty() {
        return Err(MineError::Unknown(format!("{query} (not in {})", at())));
    }
    Ok(out)
}

/// [`in_image`]'s landings for a reader.
pub fn landings_text(landings: &[Landing]) -> String {
    let Some(first) = landings.first() else { return String::new() };
    let mut o = format!("in {} at {} ({} layers):\n", first.image, first.revision, first.layers);
    for l in landings {
        let _ = writeln!(o, "  {}: layer {} of {} from the bottom, {} bytes in {} paths: {}", l.path, l.layer, l.layers, l.bytes, l.paths, l.why);
    }
    o
}

/// The id of the group of `file` (compiled as `matcher`) that places `name`, where `image` opts
/// out of it: why a name the file holds lies elsewhere in that image.
fn opted_out_group<'f>(file: &'f HintFile, matcher: &Matcher, image: &str, name: &str) -> Option<&'f str> {
    let out = file.opt_outs.get(image)?;
    let group = &file.groups[matcher.place(name).ok()?.group?];
    out.contains(&group.id).then_some(group.id.as_str())
}

/// `hints layer --explain`: the layers bottom-up with their sizes, reasons and paths. Given the
/// hint file they were laid out by (`by`, with the image when it was named), it says how the
/// file treats that image apart (as size-first, or without the groups it opts out of), and
/// beside a path what its layer's reason leaves out: the group the image opts out of, or the
/// member a renamed package is a rename of.
pub fn layers_text(closure: &Closure, budget: Budget, layers: &[Layer], by: Option<(&HintFile, Option<&str>)>) -> String {
    let mut text = format!("{} paths, {} in {} layers (budget {} store layers)\n", closure.len(), human_bytes(closure.total_size()), layers.len(), budget.store_layers());
    if let Some((file, Some(image))) = by {
        let treatment = file.treatment(image);
        let why = treatment.reason().map(|r| format!(" ({r})")).unwrap_or_default();
        let _ = writeln!(text, "`{image}` is laid out by {treatment}{why}");
    }
    let notes = by.map(|(file, image)| path_notes(closure, file, image)).unwrap_or_default();
    for (k, l) in layers.iter().enumerate() {
        let _ = writeln!(text, "layer {:>3}: {:>10}, {:>4} paths — {}", k + 1, human_bytes(l.size), l.paths.len(), l.reason);
        for p in &l.paths {
            let note = notes.get(p.name()).map(|n| format!("  ({n})")).unwrap_or_default();
            let _ = writeln!(text, "    {}{note}", p.name());
        }
    }
    text
}

/// For the paths of `closure` laid out by `file` (for `image`, if named) whose layer's reason
/// does not say why they are there, why: the group `image` opts out of, or the member a
/// renamed package is a rename of ([`Matcher::place_closure`]), whose group's layer it is beside.
fn path_notes<'c>(closure: &'c Closure, file: &HintFile, image: Option<&str>) -> std::collections::HashMap<&'c str, String> {
    let names: Vec<&str> = (0..closure.len()).map(|i| closure.path(i).name()).collect();
    if image.is_some_and(|i| file.lays_out_by_size_first(i)) {
        return Default::default();
    }
    let applied = file.for_image(image);
    let placed = Matcher::new(&applied).place_closure(&names).unwrap_or_default();
    let matcher = Matcher::new(file);
    let mut notes = std::collections::HashMap::new();
    for (&name, p) in names.iter().zip(placed) {
        let opted_out = image.and_then(|image| opted_out_group(file, &matcher, image, name));
        let note = match (opted_out, p.succeeds) {
            (Some(id), _) => format!("opted out of group `{id}`"),
            (None, Some((g, m))) => format!("a rename of `{}`, in a layer of its own beside its group's", applied.groups[g].members[m]),
            (None, None) => continue,
        };
        notes.insert(name, note);
    }
    notes
}
