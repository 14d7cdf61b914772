//! The hint file (schema version 2): types, strict parsing, validation and the canonical writer.
//!
//! ```yaml
//! version: 2
//! budget: {max_layers: 100, reserve: 1}
//! learned_from:
//!   images: [api, worker]
//!   revisions: {first: 1a2b3c, last: 9f8e7d, count: 7}
//!   db_summary: sha256:…
//!   path_hazard: 0.0519       # per path and update, for names the file does not know
//! groups:                     # bottom layer first; one layer each
//!   - id: glibc
//!     members: [glibc, "gcc:lib"]
//!     stats: {size: 31457280, change_rate: 0.083, images: 18}
//!   - id: openssl
//!     members: [openssl, "openssl:bin"]
//! merges:                     # optional coarsening plan, applied in order only as far as
//!   - [glibc, openssl]        # an image's budget requires
//! size_first_images: [batch]  # optional: images laid out as size-first, whatever the groups
//! opt_outs:                   # optional: per image, groups it lays out without
//!   api: [openssl]
//! pins:                       # hand-written, kept verbatim by `hints emit`
//!   - id: python-own
//!     rule: own-layer
//!     members: [python3]
//! ```
//!
//! Parsing is two-step. serde (through `serde_yaml_ng`) checks syntax, types and unknown keys and
//! reports their line and column. Then [`HintFile::validate`] checks what types cannot: the
//! version, duplicate ids, empty groups, invalid or repeated patterns. A [`crate::locate::Locator`]
//! built from the same text gives those errors their line and column too.
//!
//! The writer does not go through serde: it emits a fixed layout (key order, indentation, one
//! member per line, members sorted, groups in layer order) so that the same hint set always gives
//! the same bytes and a change to one group is a diff of a few lines.
//!
//! Versions: 1 has no `merges`; 2 adds them. Files of either version are read, and written
//! back with the version they carry.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::locate::{has_deep_flow, Locator, Seg, MAX_NESTING};
use crate::pattern::MemberPattern;

/// The newest schema version this library reads and writes.
pub const CURRENT_VERSION: u32 = 2;

/// A parsed, validated hint file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HintFile {
    /// Schema version; this library understands up to 2.
    pub version: u32,
    /// The layer budget the groups were computed for.
    pub budget: BudgetHeader,
    /// What the groups were learned from.
    #[serde(default)]
    pub learned_from: LearnedFrom,
    /// Groups, bottom layer first. Each group becomes one layer.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// An optional, hand-written coarsening plan (version 2; `hints emit` writes none): pairs of
    /// group ids. An image with more layers than its budget merges the layer holding the first
    /// group with the layer holding the second, entry by entry, and stops as soon as it fits;
    /// an entry naming a group that is absent from the image, or two groups already in one
    /// layer, is skipped.
    #[serde(default)]
    pub merges: Vec<[String; 2]>,
    /// Images the layerer lays out exactly as size-first, ignoring the groups, when it is told
    /// which image it lays out (`hints layer --image`): those whose backtest showed no evidence
    /// that the groups help them. A group may still hold their names for the other images.
    #[serde(default)]
    pub size_first_images: Vec<String>,
    /// Per image, the ids of groups it lays out without, as if the file did not hold them, when
    /// the layerer is told which image it lays out (version 2): the groups the backtest found
    /// costly for that image. The other images keep them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub opt_outs: BTreeMap<String, Vec<String>>,
    /// Hand-written rules; regeneration keeps them verbatim.
    #[serde(default)]
    pub pins: Vec<Pin>,
}

/// How a hint file lays out one image ([`HintFile::treatment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment<'f> {
    /// With the groups that place its names.
    Groups,
    /// As size-first (`size_first_images`).
    SizeFirst,
    /// Without these groups (`opt_outs`).
    OptsOut(&'f [String]),
}

impl Treatment<'_> {
    /// Why the file treats the image so, where it treats it apart.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Treatment::Groups => None,
            Treatment::SizeFirst => Some("the file's `size_first_images`: its backtest found the groups no help to it"),
            Treatment::OptsOut(_) => Some("the file's `opt_outs`: in its backtest they cost it more than size-first"),
        }
    }
}

impl std::fmt::Display for Treatment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Treatment::Groups => write!(f, "its groups"),
            Treatment::SizeFirst => write!(f, "size-first"),
            Treatment::OptsOut(ids) => {
                write!(f, "its groups, less {} {}", if ids.len() == 1 { "group" } else { "groups" }, ids.join(", "))
            }
        }
    }
}

/// The layer budget the file was learned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetHeader {
    /// Maximum number of layers in the image.
    pub max_layers: u32,
    /// Layers kept free for a customisation layer or a base image.
    pub reserve: u32,
}

impl BudgetHeader {
    /// The rule every budget follows: the reserve is smaller than the maximum, so the store
    /// has at least one layer.
    pub fn leaves_store_layers(max_layers: u64, reserve: u64) -> bool {
        reserve < max_layers
    }
}

/// What history the file was learned from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnedFrom {
    /// Image names the history covered.
    #[serde(default)]
    pub images: Vec<String>,
    /// The revision range of the history.
    #[serde(default)]
    pub revisions: RevisionRange,
    /// Summary hash of the database contents the file was computed from.
    #[serde(default)]
    pub db_summary: String,
    /// Version 2: the expected bumps per store path per update that the history showed (the
    /// calibrated hazard). The layerer uses it for paths the file does not know: a path changes
    /// when anything in its closure does, so it ranks them by bytes likely to stay unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hazard: Option<f64>,
}

/// The revisions learned from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionRange {
    /// First revision (commit id or label).
    #[serde(default)]
    pub first: String,
    /// Last revision (commit id or label).
    #[serde(default)]
    pub last: String,
    /// Number of revisions.
    #[serde(default)]
    pub count: u32,
}

/// One layer's worth of names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Stable identifier, meaningful to people (e.g. its largest member).
    pub id: String,
    /// Patterns `PNAME[:OUTPUT][@VERSION]`, globs allowed.
    pub members: Vec<String>,
    /// What the history showed. Layering reads only `change_rate`, to choose which layers to
    /// merge when an image is over budget.
    #[serde(default)]
    pub stats: GroupStats,
}

/// What the history showed of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupStats {
    /// Bytes (narSize) at the last revision learned from.
    #[serde(default)]
    pub size: u64,
    /// Probability that the layer changes at an update, as learned: `hints emit` writes its
    /// calibrated model's estimate (closure cascades, co-bumping sources), which is steadier
    /// than the fraction of the few learned transitions at which the group changed.
    #[serde(default)]
    pub change_rate: f64,
    /// Number of images containing the group.
    #[serde(default)]
    pub images: u32,
}

/// A hand-written placement rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Identifier, unique among groups and pins.
    pub id: String,
    /// What the pin does to the paths it matches.
    pub rule: PinRule,
    /// Patterns, as in groups.
    pub members: Vec<String>,
}

/// What a pin does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PinRule {
    /// Each matching path gets a layer of its own.
    OwnLayer,
    /// All matching paths share one layer.
    Together,
    /// Matching paths' layers go to the bottom of the stack.
    Bottom,
    /// Matching paths never go into a shared fallback layer.
    NotCatchAll,
}

impl PinRule {
    /// The rule as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PinRule::OwnLayer => "own-layer",
            PinRule::Together => "together",
            PinRule::Bottom => "bottom",
            PinRule::NotCatchAll => "not-catch-all",
        }
    }

    /// Rules that decide a path's layer (as opposed to its order or its fallback).
    pub fn places(self) -> bool {
        matches!(self, PinRule::OwnLayer | PinRule::Together)
    }
}

/// An error in a hint file, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct FormatError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What kind of problem, for tests and tools.
    pub kind: ErrorKind,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The kinds of [`FormatError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML, or not the expected types or keys.
    Syntax,
    /// A `version` this build does not read.
    UnsupportedVersion,
    /// Two groups or pins with one id.
    DuplicateId,
    /// A group or pin without members.
    EmptyGroup,
    /// A member that is not a valid pattern.
    InvalidPattern,
    /// One pattern in two groups, or twice in one.
    DuplicateMember,
    /// `reserve` not below `max_layers`, or no layers.
    InvalidBudget,
    /// A merge naming a group that does not exist (or the same group twice).
    UnknownGroup,
    /// A negative or non-finite `path_hazard`, or a `change_rate` outside `[0, 1]`.
    InvalidHazard,
}

impl HintFile {
    /// An empty file for a budget.
    pub fn new(budget: BudgetHeader) -> Self {
        HintFile { version: CURRENT_VERSION, budget, learned_from: LearnedFrom::default(), groups: vec![], merges: vec![], size_first_images: vec![], opt_outs: BTreeMap::new(), pins: vec![] }
    }

    /// Parses and validates YAML text (a leading byte-order mark is ignored).
    ///
    /// A valid file takes one typed parse. The parses that find and place an error (the
    /// [`Locator`]'s walk over every node, the version probe) run only when there is one: a
    /// file the types accept nests no deeper than they do and repeats no key.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if !has_deep_flow(text) {
            if let Ok(file) = serde_yaml_ng::from_str::<HintFile>(text) {
                return file.validate().map(|()| file).map_err(|e| e.locate(&Locator::new(text)));
            }
        }
        Self::parse_reporting(text)
    }

    /// [`HintFile::parse`] for a file that may be wrong: every check, in the order that names
    /// the most useful error.
    fn parse_reporting(text: &str) -> Result<Self, FormatError> {
        let locator = Locator::new(text);
        if let Some((line, column)) = locator.too_deep {
            let message = format!("collections nested deeper than {MAX_NESTING} levels; a hint file needs at most 5");
            return Err(FormatError { line, column, kind: ErrorKind::Syntax, message });
        }
        // The version decides how to read everything else, so it is checked first.
        // serde places a repeated key at its mapping; the repeat itself is what to fix.
        let syntax = |e| {
            let mut error = syntax_error(e);
            if let (true, Some((line, column))) = (error.message.contains("duplicate entry"), locator.duplicate_key) {
                (error.line, error.column) = (line, column);
            }
            error
        };
        let probe: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(syntax)?;
        if let Some(v) = probe.get("version").and_then(|v| v.as_u64()) {
            if v > CURRENT_VERSION as u64 || v == 0 {
                let (line, column) = locator.at(&[Seg::key("version")]);
                return Err(FormatError { line, column, kind: ErrorKind::UnsupportedVersion, message: format!("this file is version {v}; this hints understands up to {CURRENT_VERSION}") });
            }
        }
        let file: HintFile = serde_yaml_ng::from_str(text).map_err(syntax)?;
        file.validate().map_err(|e| e.locate(&locator))?;
        Ok(file)
    }

    /// Checks what the types cannot. Errors carry the YAML path of the offending node.
    pub fn validate(&self) -> Result<(), UnlocatedError> {
        let err = |path: Vec<Seg>, kind, message: String| Err(UnlocatedError { path, kind, message });
        if self.version == 0 || self.version > CURRENT_VERSION {
            return err(vec![Seg::key("version")], ErrorKind::UnsupportedVersion, format!("this file is version {}; this hints understands up to {CURRENT_VERSION}", self.version));
        }
        if !BudgetHeader::leaves_store_layers(self.budget.max_layers.into(), self.budget.reserve.into()) {
            return err(
                vec![Seg::key("budget"), Seg::key("reserve")],
                ErrorKind::InvalidBudget,
                format!("budget: reserve ({}) must be smaller than max_layers ({})", self.budget.reserve, self.budget.max_layers),
            );
        }
        let mut ids: BTreeMap<&str, Vec<Seg>> = BTreeMap::new();
        // A member may appear once among groups, once among placing pins (own-layer, together),
        // and once per ordering rule (bottom, not-catch-all). A pin may name a grouped package:
        // the pin wins.
        let mut members: BTreeMap<(Option<PinRule>, String), String> = BTreeMap::new();
        let entries = self.groups.iter().enumerate().map(|(i, g)| (Seg::key("groups"), i, &g.id, &g.members, None));
        let pins = self.pins.iter().enumerate().map(|(i, p)| (Seg::key("pins"), i, &p.id, &p.members, Some(p.rule)));
        for (section, i, id, list, rule) in entries.chain(pins) {
            let at = |k: &str| vec![section.clone(), Seg::Index(i), Seg::key(k)];
            if id.trim().is_empty() {
                return err(at("id"), ErrorKind::DuplicateId, "id must not be empty".into());
            }
            if let Some(prev) = ids.insert(id, at("id")) {
                return err(at("id"), ErrorKind::DuplicateId, format!("duplicate id `{id}` (first used at {})", describe(&prev)));
            }
            if list.is_empty() {
                return err(at("members"), ErrorKind::EmptyGroup, format!("`{id}` has no members"));
            }
            if rule.is_none() {
                let rate = self.groups[i].stats.change_rate;
                if !(0.0..=1.0).contains(&rate) {
                    let mut path = at("stats");
                    path.push(Seg::key("change_rate"));
                    return err(path, ErrorKind::InvalidHazard, format!("change_rate of `{id}` must be a probability from 0 to 1, found {rate}"));
                }
            }
            for (j, m) in list.iter().enumerate() {
                let mut path = at("members");
                path.push(Seg::Index(j));
                let pat = match MemberPattern::parse(m) {
                    Ok(p) => p,
                    Err(e) => return err(path, ErrorKind::InvalidPattern, format!("invalid member `{m}` in `{id}`: {e}")),
                };
                let class = rule.map(|r| if r.places() { PinRule::OwnLayer } else { r });
                let slot = (class, pat.to_string());
                if let Some(prev) = members.insert(slot, id.clone()) {
                    return err(path, ErrorKind::DuplicateMember, format!("member `{pat}` appears twice: in `{prev}` and in `{id}`"));
                }
            }
        }
        if let Some(h) = self.learned_from.path_hazard {
            let at = vec![Seg::key("learned_from"), Seg::key("path_hazard")];
            if self.version < 2 {
                return err(at, ErrorKind::UnsupportedVersion, "`path_hazard` needs version 2; this file says version 1".into());
            }
            if !(h.is_finite() && h >= 0.0) {
                return err(at, ErrorKind::InvalidHazard, format!("path_hazard must be a non-negative number, found {h}"));
            }
        }
        let group_ids: BTreeMap<&str, ()> = self.groups.iter().map(|g| (g.id.as_str(), ())).collect();
        for (i, pair) in self.merges.iter().enumerate() {
            let at = |j: usize| vec![Seg::key("merges"), Seg::Index(i), Seg::Index(j)];
            if self.version < 2 {
                return err(vec![Seg::key("merges")], ErrorKind::UnsupportedVersion, "`merges` needs version 2; this file says version 1".into());
            }
            for (j, id) in pair.iter().enumerate() {
                if !group_ids.contains_key(id.as_str()) {
                    return err(at(j), ErrorKind::UnknownGroup, format!("merge names `{id}`, which is not a group id"));
                }
            }
            if pair[0] == pair[1] {
                return err(at(1), ErrorKind::UnknownGroup, format!("merge names `{}` twice", pair[0]));
            }
        }
        for (image, ids) in &self.opt_outs {
            let at = |j: usize| vec![Seg::key("opt_outs"), Seg::key(image), Seg::Index(j)];
            if self.version < 2 {
                return err(vec![Seg::key("opt_outs")], ErrorKind::UnsupportedVersion, "`opt_outs` needs version 2; this file says version 1".into());
            }
            let mut seen = std::collections::BTreeSet::new();
            for (j, id) in ids.iter().enumerate() {
                if !group_ids.contains_key(id.as_str()) {
                    return err(at(j), ErrorKind::UnknownGroup, format!("`{image}` opts out of `{id}`, which is not a group id"));
                }
                if !seen.insert(id) {
                    return err(at(j), ErrorKind::UnknownGroup, format!("`{image}` opts out of `{id}` twice"));
                }
            }
        }
        Ok(())
    }

    /// The file as the layerer applies it to `image`: without the groups the image opts out of
    /// (and the merges naming them). Borrowed when there are none.
    pub fn for_image(&self, image: Option<&str>) -> std::borrow::Cow<'_, HintFile> {
        let Some(out) = image.and_then(|i| self.opt_outs.get(i)) else { return std::borrow::Cow::Borrowed(self) };
        let mut file = self.clone();
        file.groups.retain(|g| !out.contains(&g.id));
        file.merges.retain(|pair| pair.iter().all(|id| !out.contains(id)));
        file.opt_outs.clear();
        std::borrow::Cow::Owned(file)
    }

    /// Whether `image` is laid out as size-first, whatever the groups.
    pub fn lays_out_by_size_first(&self, image: &str) -> bool {
        self.size_first_images.iter().any(|i| i == image)
    }

    /// How the file lays out `image`: with its groups, as size-first, or without the groups it
    /// opts out of.
    pub fn treatment(&self, image: &str) -> Treatment<'_> {
        match self.opt_outs.get(image) {
            _ if self.lays_out_by_size_first(image) => Treatment::SizeFirst,
            Some(ids) => Treatment::OptsOut(ids),
            None => Treatment::Groups,
        }
    }

    /// The canonical text. Members are written sorted; groups keep their (layer) order.
    pub fn to_canonical_string(&self) -> String {
        let mut o = String::new();
        o.push_str(HEADER_COMMENT);
        let _ = writeln!(o, "version: {}", self.version);
        let _ = writeln!(o, "budget:\n  max_layers: {}\n  reserve: {}", self.budget.max_layers, self.budget.reserve);
        let lf = &self.learned_from;
        o.push_str("learned_from:\n");
        write_list(&mut o, "  ", "images", &lf.images, false);
        let _ = writeln!(o, "  revisions:\n    first: {}\n    last: {}\n    count: {}", scalar(&lf.revisions.first), scalar(&lf.revisions.last), lf.revisions.count);
        let _ = writeln!(o, "  db_summary: {}", scalar(&lf.db_summary));
        if let Some(h) = lf.path_hazard {
            let _ = writeln!(o, "  path_hazard: {}", fmt_f64(h));
        }
        o.push_str("# Generated: one group per layer, bottom layer first. Of `stats`, layering reads only change_rate.\n");
        if self.groups.is_empty() {
            o.push_str("groups: []\n");
        } else {
            o.push_str("groups:\n");
        }
        for g in &self.groups {
            let _ = writeln!(o, "  - id: {}", scalar(&g.id));
            write_list(&mut o, "    ", "members", &g.members, true);
            let s = &g.stats;
            let _ = writeln!(o, "    stats: {{size: {}, change_rate: {}, images: {}}}", s.size, fmt_f64(s.change_rate), s.images);
        }
        if !self.merges.is_empty() {
            o.push_str("# Generated: where an image is over budget, merge these groups' layers, in order, until it fits.\nmerges:\n");
            for [a, b] in &self.merges {
                let _ = writeln!(o, "  - [{}, {}]", scalar(a), scalar(b));
            }
        }
        if !self.size_first_images.is_empty() {
            o.push_str("# Generated: images laid out as size-first (`hints layer --image NAME`); the backtest could not trust the groups for them.\n");
            write_list(&mut o, "", "size_first_images", &self.size_first_images, true);
        }
        if !self.opt_outs.is_empty() {
            o.push_str("# Generated: groups an image lays out without (`hints layer --image NAME`); the backtest found them costly for it.\nopt_outs:\n");
            for (image, ids) in &self.opt_outs {
                write_list(&mut o, "  ", &scalar(image), ids, true);
            }
        }
        o.push_str("# Hand-edited: pins survive `hints emit` verbatim.\n");
        if self.pins.is_empty() {
            o.push_str("pins: []\n");
        } else {
            o.push_str("pins:\n");
        }
        for p in &self.pins {
            let _ = writeln!(o, "  - id: {}\n    rule: {}", scalar(&p.id), p.rule.as_str());
            write_list(&mut o, "    ", "members", &p.members, true);
        }
        o
    }

    /// `canonical` (this library's output) with its `pins` section replaced by `original`'s,
    /// verbatim with its comments, when both hold the same pins: a reviewer's explanation of a
    /// pin survives `hints fmt` and `hints emit`. Otherwise `canonical` unchanged.
    pub fn keep_pins_text(canonical: &str, original: &str) -> String {
        let original = original.strip_prefix('\u{feff}').unwrap_or(original);
        let (Some(new), Some(old)) = (top_level_block(canonical, "pins"), top_level_block(original, "pins")) else { return canonical.to_string() };
        #[derive(Deserialize, PartialEq)]
        struct Pins {
            #[serde(default)]
            pins: Vec<Pin>,
        }
        let pins = |t: &str| serde_yaml_ng::from_str::<Pins>(t).ok();
        let mut old_text = original[old.clone()].to_string();
        if !old_text.ends_with('\n') {
            old_text.push('\n');
        }
        match (pins(&canonical[new.clone()]), pins(&old_text)) {
            (Some(a), Some(b)) if a == b => format!("{}{}{}", &canonical[..new.start], old_text, &canonical[new.end..]),
            _ => canonical.to_string(),
        }
    }

    /// The JSON Schema of the file, for editors and YAML language servers.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(HintFile);
        serde_json::to_string_pretty(&schema).expect("schema serialises")
    }
}

const HEADER_COMMENT: &str = "\
# Layer hints for Nix-built container images (hints-format).
# `hints emit` regenerates the header, `groups` and `merges`; `pins` are hand-edited and kept verbatim.
# Keep it canonical with `hints fmt`; check it with `hints validate`.
";

/// A validation error before it is given a position in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlocatedError {
    /// Where in the document: keys and indices from the top.
    pub path: Vec<Seg>,
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What is wrong and what was expected.
    pub message: String,
}

impl UnlocatedError {
    fn locate(self, locator: &Locator) -> FormatError {
        let (line, column) = locator.at(&self.path);
        FormatError { line, column, kind: self.kind, message: self.message }
    }
}

fn describe(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => format!("[{i}]"),
        })
        .collect::<Vec<_>>()
        .join(".")
        .replace(".[", "[")
}

fn syntax_error(e: serde_yaml_ng::Error) -> FormatError {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    let message = crate::locate::without_serde_position(&e.to_string()).to_string();
    FormatError { line, column, kind: ErrorKind::Syntax, message }
}

fn write_list(o: &mut String, indent: &str, key: &str, items: &[String], sorted: bool) {
    if items.is_empty() {
        let _ = writeln!(o, "{indent}{key}: []");
        return;
    }
    let mut items: Vec<&String> = items.iter().collect();
    if sorted {
        items.sort();
    }
    let _ = writeln!(o, "{indent}{key}:");
    for i in items {
        let _ = writeln!(o, "{indent}  - {}", scalar(i));
    }
}

/// Words YAML 1.1 tools read as booleans or null; quoted so that every reader sees a string.
const YAML11_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// A string as a YAML scalar: plain when YAML reads it back as the same string, else quoted.
fn scalar(s: &str) -> String {
    let plain_chars = !s.is_empty()
        && !YAML11_WORDS.contains(&s.to_ascii_lowercase().as_str())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-:@=/".contains(c))
        && !s.ends_with(':');
    if plain_chars && serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s).ok().and_then(|v| v.as_str().map(|x| x == s)) == Some(true) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialise")
    }
}

/// Shortest text that reads back as the same f64, always with a decimal point.
fn fmt_f64(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) || !x.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// The byte range of a top-level key's entry: from its line (`key:` at column 0) to the next
/// line at column 0 that is neither blank nor a comment, or the end.
fn top_level_block(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let prefix = format!("{key}:");
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let at_column_0 = !line.starts_with([' ', '\t', '#', '\n', '\r']);
        match start {
            None if line.starts_with(&prefix) => start = Some(offset),
            Some(s) if at_column_0 => return Some(s..offset),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|s| s..text.len())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_repeated_key_is_reported_where_it_repeats() {
        let e = HintFile::parse("version: 2\nbudget: {max_layers: 100, reserve: 1}\ngroups:\n  - id: a\n    members: [x]\n    id: b\n").unwrap_err();
        assert_eq!((e.line, e.column, e.kind), (6, 5, ErrorKind::Syntax), "{e}");
        assert!(e.message.contains("duplicate entry with key \"id\""), "{e}");
    }

    #[test]
    fn pin_comments_survive_when_the_pins_are_the_same() {
        let original = "version: 2\nbudget: {max_layers: 100, reserve: 1}\ngroups: []\npins:\n  # glibc changes with every stdenv rebuild; keep it at the bottom (ops, 2026-11)\n  - id: base\n    rule: bottom\n    members: [glibc]  # just libc\n";
        let file = HintFile::parse(original).unwrap();
        let kept = HintFile::keep_pins_text(&file.to_canonical_string(), original);
        assert!(kept.contains("# glibc changes with every stdenv rebuild") && kept.contains("# just libc"), "{kept}");
        assert_eq!(HintFile::parse(&kept).unwrap(), file, "the same file");
        assert_eq!(HintFile::keep_pins_text(&kept, &kept), kept, "stable");
        let mut changed = file.clone();
        changed.pins[0].members.push("zlib".into());
        let regenerated = HintFile::keep_pins_text(&changed.to_canonical_string(), original);
        assert!(!regenerated.contains("# just libc") && regenerated.contains("zlib"), "other pins: the canonical text");
    }
    use super::*;

    fn sample() -> HintFile {
        HintFile {
            version: 2,
            budget: BudgetHeader { max_layers: 100, reserve: 1 },
            learned_from: LearnedFrom {
                images: vec!["api".into(), "worker".into()],
                revisions: RevisionRange { first: "0a1b".into(), last: "trixie~forky step 6/12".into(), count: 7 },
                db_summary: "sha256:abc".into(),
                path_hazard: Some(0.0519),
            },
            groups: vec![
                Group { id: "glibc".into(), members: vec!["gcc:lib".into(), "glibc".into()], stats: GroupStats { size: 1234, change_rate: 0.25, images: 2 } },
                Group { id: "7zip".into(), members: vec!["7zip".into(), "yes".into(), "p*".into()], stats: GroupStats::default() },
            ],
            merges: vec![["7zip".into(), "glibc".into()]],
            size_first_images: vec![],
            opt_outs: BTreeMap::new(),
            pins: vec![Pin { id: "base".into(), rule: PinRule::Bottom, members: vec!["glibc".into()] }],
        }
    }

    #[test]
    fn canonical_roundtrip() {
        let mut f = sample();
        let text = f.to_canonical_string();
        let back = HintFile::parse(&text).unwrap();
        for g in &mut f.groups {
            g.members.sort();
        }
        assert_eq!(back, f);
        assert_eq!(back.to_canonical_string(), text);
        assert!(text.contains("- \"yes\""), "YAML keywords are quoted:\n{text}");
        assert!(text.contains("- \"p*\""), "aliases are quoted:\n{text}");
        assert!(text.contains("- gcc:lib"), "outputs stay plain:\n{text}");
    }

    #[test]
    fn no_timestamp_and_stable() {
        let a = sample().to_canonical_string();
        assert_eq!(a, sample().to_canonical_string());
        assert!(!a.contains("20"), "no dates: {a}");
    }

    #[test]
    fn floats_roundtrip() {
        for x in [0.0, 1.0, 0.1, 1.0 / 3.0, 1e-9, 123456.789] {
            assert_eq!(serde_yaml_ng::from_str::<f64>(&fmt_f64(x)).unwrap(), x);
        }
    }
}
