//! A hint file compiled for matching store path names.
//!
//! Literal patterns (no globs in the package name) are found by one hash lookup on the package
//! name; glob patterns are tried in turn. A path matched by two groups, or by two placing pins
//! (`own-layer`, `together`), is an error naming both, because the file would then not say which
//! layer the path belongs to. A placing pin wins over a group.

use std::collections::HashMap;

use crate::file::{Group, HintFile, Pin, PinRule};
use crate::pattern::MemberPattern;
use crate::store_path::NameKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Group(usize),
    Pin(usize, PinRule),
}

#[derive(Debug, Clone)]
struct Entry {
    pattern: MemberPattern,
    target: Target,
}

/// Where the hint file puts one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Index into `groups`, unless a placing pin overrides it.
    pub group: Option<usize>,
    /// Index into `pins` of the `own-layer` or `together` pin that places the path.
    pub pin: Option<usize>,
    /// Index of a `bottom` pin that covers the path.
    pub bottom: Option<usize>,
    /// Index of a `not-catch-all` pin that covers the path.
    pub not_catch_all: Option<usize>,
}

/// A name two groups claim equally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is matched by `{first_pattern}` in {first} and by `{second_pattern}` in {second}, equally specific; a path may belong to one group only")]
pub struct MatchError {
    /// The store path name.
    pub name: String,
    /// The first group or pin (`group `id``).
    pub first: String,
    /// Its matching pattern.
    pub first_pattern: String,
    /// The second group or pin.
    pub second: String,
    /// Its matching pattern.
    pub second_pattern: String,
}

/// A hint file's patterns, indexed for matching store path names (see the module doc).
#[derive(Debug, Clone)]
pub struct Matcher {
    by_pname: HashMap<String, Vec<Entry>>,
    /// Patterns with a literal first version token, by (pname, token).
    by_head: HashMap<String, HashMap<String, Vec<Entry>>>,
    globs: Vec<Entry>,
    ids: Vec<String>,
    pin_ids: Vec<String>,
}

impl Matcher {
    /// Compiles a validated hint file. Invalid patterns were rejected by validation; any that
    /// remain (a file built in code and never validated) are skipped.
    pub fn new(file: &HintFile) -> Self {
        Matcher::of(&file.groups, &file.pins)
    }

    /// Compiles groups and pins as [`Matcher::new`] compiles a file's.
    pub fn of(groups: &[Group], pins: &[Pin]) -> Self {
        let mut m =
            Matcher { by_pname: HashMap::new(), by_head: HashMap::new(), globs: vec![], ids: groups.iter().map(|g| g.id.clone()).collect(), pin_ids: pins.iter().map(|p| p.id.clone()).collect() };
        let groups = groups.iter().enumerate().map(|(i, g)| (&g.members, Target::Group(i)));
        let pins = pins.iter().enumerate().map(|(i, p)| (&p.members, Target::Pin(i, p.rule)));
        for (members, target) in groups.chain(pins) {
            for pattern in members.iter().filter_map(|s| MemberPattern::parse(s).ok()) {
                let entry = Entry { pattern, target };
                match (entry.pattern.literal_pname(), entry.pattern.version_head()) {
                    (Some(pname), Some(head)) => m.by_head.entry(pname.to_string()).or_default().entry(head.to_string()).or_default().push(entry),
                    (Some(pname), None) => m.by_pname.entry(pname.to_string()).or_default().push(entry),
                    (None, _) => m.globs.push(entry),
                }
            }
        }
        m
    }

    fn label(&self, t: Target) -> String {
        match t {
            Target::Group(i) => format!("group {}", self.ids[i]),
            Target::Pin(i, r) => format!("pin {} ({})", self.pin_ids[i], r.as_str()),
        }
    }

    /// Places a store path name (the part after the hash). Where several groups (or placing
    /// pins) match, the most specific pattern wins ([`MemberPattern::specificity`]); two
    /// different groups matching at the same specificity are an error.
    pub fn place(&self, name: &str) -> Result<Placement, MatchError> {
        let key = NameKey::of(name);
        let mut out = Placement::default();
        let mut group_by: Option<&Entry> = None;
        let mut pin_by: Option<&Entry> = None;
        let head = key.version.split('-').next().unwrap_or_default();
        let by_head = self.by_head.get(key.pname).and_then(|h| h.get(head));
        let candidates = self.by_pname.get(key.pname).into_iter().flatten().chain(by_head.into_iter().flatten()).chain(&self.globs);
        for e in candidates.filter(|e| e.pattern.matches(&key)) {
            let slot = match e.target {
                Target::Group(_) => &mut group_by,
                Target::Pin(_, PinRule::OwnLayer | PinRule::Together) => &mut pin_by,
                Target::Pin(i, PinRule::Bottom) => {
                    out.bottom.get_or_insert(i);
                    continue;
                }
                Target::Pin(i, PinRule::NotCatchAll) => {
                    out.not_catch_all.get_or_insert(i);
                    continue;
                }
            };
            *slot = match slot.take() {
                None => Some(e),
                Some(prev) => match prev.pattern.specificity().cmp(&e.pattern.specificity()) {
                    std::cmp::Ordering::Greater => Some(prev),
                    std::cmp::Ordering::Less => Some(e),
                    std::cmp::Ordering::Equal if prev.target == e.target => Some(prev),
                    std::cmp::Ordering::Equal => {
                        return Err(MatchError {
                            name: name.to_string(),
                            first: self.label(prev.target),
                            first_pattern: prev.pattern.to_string(),
                            second: self.label(e.target),
                            second_pattern: e.pattern.to_string(),
                        })
                    }
                },
            };
        }
        for (entry, field) in [(group_by, &mut out.group), (pin_by, &mut out.pin)] {
            *field = entry.map(|e| match e.target {
                Target::Group(i) | Target::Pin(i, _) => i,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{BudgetHeader, Group, Pin};

    fn file(groups: &[(&str, &[&str])], pins: &[(&str, PinRule, &[&str])]) -> HintFile {
        let mut f = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
        f.groups = groups.iter().map(|(id, m)| Group { id: id.to_string(), members: m.iter().map(|s| s.to_string()).collect(), stats: Default::default() }).collect();
        f.pins = pins.iter().map(|(id, rule, m)| Pin { id: id.to_string(), rule: *rule, members: m.iter().map(|s| s.to_string()).collect() }).collect();
        f.validate().unwrap();
        f
    }

    #[test]
    fn places_groups_and_pins() {
        let f = file(&[("libc", &["glibc", "gcc:lib"]), ("py", &["python3*"])], &[("own", PinRule::OwnLayer, &["python3.12-numpy"]), ("deep", PinRule::Bottom, &["glibc"])]);
        let m = Matcher::new(&f);
        assert_eq!(m.place("glibc-2.39-52").unwrap(), Placement { group: Some(0), bottom: Some(1), ..Default::default() });
        assert_eq!(m.place("glibc-2.40-1").unwrap().group, Some(0), "version bumps keep the group");
        assert_eq!(m.place("gcc-13.2.0-lib").unwrap().group, Some(0));
        assert_eq!(m.place("gcc-13.2.0").unwrap().group, None);
        assert_eq!(m.place("python3-3.12.1").unwrap().group, Some(1));
        let numpy = m.place("python3.12-numpy-1.26.4").unwrap();
        assert_eq!((numpy.group, numpy.pin), (Some(1), Some(0)));
        assert_eq!(m.place("hello-2.12").unwrap(), Placement::default());
    }

    #[test]
    fn most_specific_pattern_wins() {
        let f = file(&[("gcc", &["gcc"]), ("gcc14", &["gcc@14-[0-9]*"]), ("base", &["gcc@14-base-[0-9]*"])], &[]);
        let m = Matcher::new(&f);
        assert_eq!(m.place("gcc-13.2.0").unwrap().group, Some(0));
        assert_eq!(m.place("gcc-14-14.2.0-19").unwrap().group, Some(1));
        assert_eq!(m.place("gcc-14-base-14.2.0-19").unwrap().group, Some(2));
        let f = file(&[("a", &["lib*"]), ("b", &["libc6"])], &[]);
        assert_eq!(Matcher::new(&f).place("libc6-2.41").unwrap().group, Some(1), "literal beats glob");
    }

    #[test]
    fn overlapping_groups_are_an_error() {
        let f = file(&[("a", &["lib*"]), ("b", &["l*6"])], &[]);
        let e = Matcher::new(&f).place("libc6-2.41-12").unwrap_err();
        assert!(e.to_string().contains("group a") && e.to_string().contains("group b"), "{e}");
        assert!(Matcher::new(&f).place("libfoo-1").is_ok());
    }
}
