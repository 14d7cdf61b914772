//! A hint file compiled for matching store path names.
//!
//! Literal patterns (no globs in the package name) are found by one hash lookup on the package
//! name; glob patterns are tried in turn. A path matched by two groups, or by two placing pins
//! (`own-layer`, `together`), is an error naming both, because the file would then not say which
//! layer the path belongs to. A placing pin wins over a group.
//!
//! Renames: distributions and Nix put numbers in package names (`libperl5.40`, `libicu76`,
//! `python3.12-numpy`), and a library or interpreter bump renames the package. Laying out a
//! whole closure ([`Matcher::place_closure`]), a name the file places nowhere is a rename of
//! its *predecessor*: among the group members with the same identity
//! ([`MemberPattern::identity_of`]) once every run of digits is read as one number (`Rename`),
//! the one with the highest numbers below the name's, whether or not it is in the closure too.
//! A name has no predecessor when another such name of the closure has the same key. The
//! layerer gives a rename a layer of its own beside its predecessor's group, rather than
//! reshuffling the layers of the names the file does not know; and the same layer at the
//! revision it arrives beside its predecessor and at the one its predecessor leaves. A name
//! below every such member (an image that lags behind, or `libpcre2-8-0` where the file holds
//! only `libpcre2-32-0`) is a rename of none.
//!
//! Groups are written by `hints emit`, each member as the package identity it learned
//! ([`MemberPattern::identity_of`]), so a group's plain package name (no version, no glob)
//! matches only the paths whose identity it is: the metapackage `golang` matches
//! `golang-2_1.27_1` but not `golang-1.27-go-1.27.3-1` (identity `golang-1.27-go`), a package the
//! file may never have seen. Such a name is a rename of its predecessor
//! (`golang@1.24-go-[0-9]*`) where it has one, and is otherwise left to the layerer's fallback,
//! like any name the file does not know. Pins, written by hand, match as their patterns read
//! (parseDrvName's package name).

use std::collections::{HashMap, HashSet};

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

impl Entry {
    /// A group member written as a plain package name: it names one package identity.
    fn is_plain_member(&self) -> bool {
        matches!(self.target, Target::Group(_)) && self.pattern.literal_pname().is_some() && !self.pattern.specificity().0
    }
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
    /// The member the path is a rename of, as (group index, index in its `members`); `group`
    /// is then that member's group (see the module doc).
    pub succeeds: Option<(usize, usize)>,
}

impl Placement {
    /// Whether the file puts the path nowhere: no group, no placing pin, no `not-catch-all`.
    fn is_unplaced(&self) -> bool {
        self.group.is_none() && self.pin.is_none() && self.not_catch_all.is_none()
    }
}

/// Buffers reused while reading each name of a closure as a rename.
#[derive(Default)]
struct RenameScratch {
    identity: String,
    key: String,
    numbers: Vec<u64>,
}

/// A group member that a renamed package can succeed: one written as a package identity.
#[derive(Debug, Clone)]
struct Renamable {
    group: usize,
    index: usize,
    rename: Rename,
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
    /// Group members written as a package identity with a number in it, by [`Rename::key`].
    renamables: HashMap<String, Vec<Renamable>>,
    /// The [`Rename::stem`] of each key of `renamables`: a name whose package name does not
    /// start with one is a rename of no member, known without reading it as a rename.
    rename_stems: HashSet<String>,
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
        let mut m = Matcher {
            by_pname: HashMap::default(),
            by_head: HashMap::default(),
            globs: vec![],
            renamables: HashMap::default(),
            rename_stems: HashSet::default(),
            ids: groups.iter().map(|g| g.id.clone()).collect(),
            pin_ids: pins.iter().map(|p| p.id.clone()).collect(),
        };
        let groups = groups.iter().enumerate().map(|(i, g)| (&g.members, Target::Group(i)));
        let pins = pins.iter().enumerate().map(|(i, p)| (&p.members, Target::Pin(i, p.rule)));
        for (members, target) in groups.chain(pins) {
            for (index, member) in members.iter().enumerate() {
                let Ok(pattern) = MemberPattern::parse(member) else { continue };
                if let (Target::Group(group), Some(rename)) = (target, Rename::of(member)) {
                    m.rename_stems.insert(rename.stem().to_string());
                    m.renamables.entry(rename.key.clone()).or_default().push(Renamable { group, index, rename });
                }
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
        self.place_key(name, NameKey::of(name))
    }

    /// [`Matcher::place`], given `key`, [`NameKey::of`] the name.
    fn place_key(&self, name: &str, key: NameKey<'_>) -> Result<Placement, MatchError> {
        let mut out = Placement::default();
        let mut group_by: Option<&Entry> = None;
        let mut pin_by: Option<&Entry> = None;
        let head = key.version.split('-').next().unwrap_or_default();
        let by_head = self.by_head.get(key.pname).and_then(|h| h.get(head));
        let candidates = self.by_pname.get(key.pname).into_iter().flatten().chain(by_head.into_iter().flatten()).chain(&self.globs);
        for e in candidates.filter(|e| e.pattern.matches(&key) && !(e.is_plain_member() && names_another_package(name))) {
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

    /// Places every name of one closure: each as [`Matcher::place`] places it, then the names
    /// it leaves unplaced that are renames of members (module doc).
    pub fn place_closure(&self, names: &[&str]) -> Result<Vec<Placement>, MatchError> {
        let mut placed = Vec::with_capacity(names.len());
        // The unplaced names that read as a member's rename key, with the key: found while
        // each name's text is at hand.
        let mut renames: Vec<(usize, &str)> = vec![];
        let mut scratch = RenameScratch::default();
        for (i, name) in names.iter().enumerate() {
            let key = NameKey::of(name);
            let p = self.place_key(name, key)?;
            if p.is_unplaced() {
                renames.extend(self.rename_key(name, key, &mut scratch).map(|k| (i, k)));
            }
            placed.push(p);
        }
        self.place_renames(names, &renames, &mut placed);
        Ok(placed)
    }

    /// The key of `renamables` that `name` (whose [`NameKey::of`] is `key`) reads as, if any.
    fn rename_key(&self, name: &str, key: NameKey<'_>, scratch: &mut RenameScratch) -> Option<&str> {
        let stem = &key.pname[..key.pname.find(|c: char| c.is_ascii_digit()).unwrap_or(key.pname.len())];
        if !self.rename_stems.contains(stem) {
            return None;
        }
        MemberPattern::write_identity(name, key, &mut scratch.identity);
        if !Rename::fold(&scratch.identity, &mut scratch.key, &mut scratch.numbers) {
            return None;
        }
        self.renamables.get_key_value(scratch.key.as_str()).map(|(k, _)| k.as_str())
    }

    /// Gives each of the `renames` (unplaced names, each with its [`Rename::key`]) that is the
    /// only one of its key in the closure its predecessor and that member's group (module doc),
    /// if it has one.
    fn place_renames(&self, names: &[&str], renames: &[(usize, &str)], placed: &mut [Placement]) {
        // Per key, how many names read as it, and the last of them.
        let mut by_key: HashMap<&str, (usize, usize)> = HashMap::default();
        for &(i, key) in renames {
            let (count, last) = by_key.entry(key).or_insert((0, i));
            (*count, *last) = (*count + 1, i);
        }
        for (key, (count, i)) in by_key {
            let Some(name) = (count == 1).then(|| Rename::of(&MemberPattern::identity_of(names[i]))).flatten() else { continue };
            let older = self.renamables[key].iter().filter(|m| m.rename.numbers < name.numbers);
            if let Some(m) = older.max_by(|a, b| a.rename.numbers.cmp(&b.rename.numbers)) {
                placed[i].group = Some(m.group);
                placed[i].succeeds = Some((m.group, m.index));
            }
        }
    }
}

/// Whether `name` is another package than its parseDrvName package name: its identity is
/// longer (`golang-1.27-go` for `golang-1.27-go-1.27.3-1`, which a group's plain `golang` does
/// not match). Only a version holding a `-` can refine the package name.
fn names_another_package(name: &str) -> bool {
    let key = NameKey::of(name);
    key.version.contains('-') && NameKey::identity(name).pname != key.pname
}

/// How a member or a name reads as a rename: its text as [`MemberPattern::identity_of`] writes
/// it, less its version glob, split into the digits and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rename {
    /// What a member and its renames share: the text with every run of digits read as `#`
    /// (`libperl#.#`, `python#.#-numpy`, `gcc@#-base`).
    key: String,
    /// The runs of digits, as numbers (saturating), in order: the newer of two names with
    /// one key has the greater.
    numbers: Vec<u64>,
}

impl Rename {
    /// The key's text before its first number, `@` or `:`: the package name's text before its
    /// first digit in every name whose rename key this is (an identity is its parseDrvName
    /// package name, then `@…` or `:…`).
    fn stem(&self) -> &str {
        &self.key[..self.key.find(['#', '@', ':']).unwrap_or(self.key.len())]
    }

    /// `None` for a text with no digit, whose renames cannot be told from other packages, and
    /// for a hand-written glob.
    fn of(member: &str) -> Option<Rename> {
        let mut r = Rename { key: String::new(), numbers: vec![] };
        Rename::fold(member, &mut r.key, &mut r.numbers).then_some(r)
    }

    /// Reads `member` into `key` and `numbers` (both cleared first) as [`Rename::of`] reads it;
    /// false where it has no rename.
    fn fold(member: &str, key: &mut String, numbers: &mut Vec<u64>) -> bool {
        key.clear();
        numbers.clear();
        let text = member.strip_suffix("-[0-9]*").unwrap_or(member);
        if text.contains(['*', '?', '[', ']']) || !text.contains(|c: char| c.is_ascii_digit()) {
            return false;
        }
        let mut in_digits = false;
        for c in text.chars() {
            match (c.to_digit(10), in_digits) {
                (Some(d), true) => {
                    let n = numbers.last_mut().expect("in a run");
                    *n = n.saturating_mul(10).saturating_add(u64::from(d));
                }
                (Some(d), false) => {
                    key.push('#');
                    numbers.push(u64::from(d));
                }
                (None, _) => key.push(c),
            }
            in_digits = c.is_ascii_digit();
        }
        true
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
    fn renames_read_runs_of_digits_as_one_number() {
        let key = |text: &str| Rename::of(text).map(|r| r.key);
        assert_eq!(key("libperl5.40").as_deref(), Some("libperl#.#"));
        assert_eq!(key("python3.12-numpy").as_deref(), Some("python#.#-numpy"));
        assert_eq!(key("gcc@14-base-[0-9]*").as_deref(), Some("gcc@#-base"));
        assert_eq!(key("libicu76"), key("libicu77"));
        assert_ne!(key("libssl3"), key("libssl3t64"));
        assert_eq!(key("glibc"), None, "no number: no rename");
        assert_eq!(key("lib*6"), None, "a hand-written glob is not an identity");
        assert_eq!(Rename::of("libperl5.40").unwrap().numbers, [5, 40]);
        let stem = |text: &str| Rename::of(text).map(|r| r.stem().to_string());
        assert_eq!(stem("libperl5.40").as_deref(), Some("libperl"));
        assert_eq!(stem("gcc@14-base-[0-9]*").as_deref(), Some("gcc"), "parseDrvName's `gcc` for gcc-15-base-15.1.0-1");
        assert_eq!(stem("foo:lib64").as_deref(), Some("foo"));
        assert!(Rename::of("python3.9").unwrap().numbers < Rename::of("python3.12").unwrap().numbers, "numbers, not text");
    }

    /// The groups `place_closure` gives `names`, with the member each rename succeeds.
    fn closure_groups<'f>(f: &'f HintFile, names: &[&str]) -> Vec<(Option<usize>, Option<&'f str>)> {
        let member = |(g, m): (usize, usize)| f.groups[g].members[m].as_str();
        Matcher::new(f).place_closure(names).unwrap().into_iter().map(|p| (p.group, p.succeeds.map(member))).collect()
    }

    #[test]
    fn a_renamed_package_is_placed_beside_its_predecessor() {
        let f = file(&[("perl", &["libperl5.40", "perl-base"]), ("py", &["python3.12-numpy"]), ("gcc", &["gcc@14-base-[0-9]*"]), ("other", &["zlib1g"])], &[]);
        let renamed = closure_groups(&f, &["libperl5.42-5.42.3-1", "perl-base-5.42.3-1", "python3.13-numpy-2.1.3", "gcc-15-base-15.1.0-1", "hello-2.12"]);
        assert_eq!(renamed, [(Some(0), Some("libperl5.40")), (Some(0), None), (Some(1), Some("python3.12-numpy")), (Some(2), Some("gcc@14-base-[0-9]*")), (None, None)]);
        // While the predecessor is still there, the rename is its rename all the same.
        assert_eq!(closure_groups(&f, &["libperl5.40-5.40.1-6", "libperl5.42-5.42.3-1"]), [(Some(0), None), (Some(0), Some("libperl5.40"))]);
        // Two names one rename apart from the same member: neither is its successor.
        assert_eq!(closure_groups(&f, &["libperl5.42-5.42.3-1", "libperl5.44-5.44.0-1"]), [(None, None), (None, None)]);
        // A group's plain package name (`golang`, the metapackage's identity) does not match
        // another package parseDrvName names alike (`golang-1.27-go`): that one is its
        // predecessor's rename where it has one, and is left to the fallback where it has none.
        let f = file(&[("meta", &["golang"]), ("go", &["golang@1.24-go-[0-9]*"])], &[]);
        let placed = closure_groups(&f, &["golang-2_1.27_1", "golang-1.27-go-1.27.3-1", "golang-1.27-src-1.27.3-1"]);
        assert_eq!(placed, [(Some(0), None), (Some(1), Some("golang@1.24-go-[0-9]*")), (None, None)]);
        // A pin, written by hand, matches as its pattern reads.
        let f = file(&[("meta", &["golang"])], &[("all-go", PinRule::OwnLayer, &["golang"])]);
        assert_eq!(Matcher::new(&f).place("golang-1.27-src-1.27.3-1").unwrap().pin, Some(0));
        // Of two members one rename below the name, it succeeds the newer; a name
        // below every member (an image that lags behind) succeeds none.
        let f = file(&[("a", &["libicu72"]), ("b", &["libicu76"])], &[]);
        assert_eq!(closure_groups(&f, &["libicu77-77.1-1"]), [(Some(1), Some("libicu76"))]);
        assert_eq!(closure_groups(&f, &["libicu71-71.1-1"]), [(None, None)]);
    }

    #[test]
    fn overlapping_groups_are_an_error() {
        let f = file(&[("a", &["lib*"]), ("b", &["l*6"])], &[]);
        let e = Matcher::new(&f).place("libc6-2.41-12").unwrap_err();
        assert!(e.to_string().contains("group a") && e.to_string().contains("group b"), "{e}");
        assert!(Matcher::new(&f).place("libfoo-1").is_ok());
    }
}
