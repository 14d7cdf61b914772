//! Member patterns: which store path names a hint group or pin covers.
//!
//! Syntax: `PNAME[:OUTPUT][@VERSION]`.
//! - `PNAME` is the package name as `builtins.parseDrvName` splits it (`python3.12-numpy`).
//! - `:OUTPUT` selects a multiple-output suffix (`gcc:lib` matches `gcc-13.2.0-lib`). Without it
//!   the pattern matches the default output only; `:*` matches every output.
//! - `@VERSION` pins an exact version (without the output suffix).
//! - Each part may use the globs `*`, `?` and `[...]`.
//!
//! Because matching ignores the version unless one is given, a version bump (which renames the
//! store path) keeps the path in its group. A group's plain package name names one package
//! identity, as `hints emit` writes it ([`MemberPattern::identity_of`]); the matcher does not let
//! it take in another package that parseDrvName names alike (`crate::matcher`).

use std::fmt;

use crate::store_path::NameKey;

/// Why a member pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing before `:` or `@`.
    #[error("empty package name")]
    EmptyName,
    /// A character no store path name holds.
    #[error("character {0:?} is not allowed in a pattern (store path names use A-Z a-z 0-9 + - . _ ? =, globs add * [ ])")]
    BadChar(char),
    /// The glob and what is wrong with it.
    #[error("invalid glob `{0}`: {1}")]
    BadGlob(String, String),
    /// An output or version part left empty, and the separator before it.
    #[error("empty {0} after `{1}`")]
    EmptyPart(&'static str, char),
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Glob(glob::Pattern),
}

impl Part {
    fn parse(s: &str) -> Result<Self, PatternError> {
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "+-._?=*[]!".contains(*c))) {
            return Err(PatternError::BadChar(c));
        }
        if s.contains(['*', '?', '[']) {
            glob::Pattern::new(s).map(Part::Glob).map_err(|e| PatternError::BadGlob(s.to_string(), e.msg.to_string()))
        } else {
            Ok(Part::Literal(s.to_string()))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Part::Literal(s) => s,
            Part::Glob(g) => g.as_str(),
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Part::Literal(l) => l == s,
            Part::Glob(g) => g.matches(s),
        }
    }

    fn literal(&self) -> Option<&str> {
        match self {
            Part::Literal(l) => Some(l),
            Part::Glob(_) => None,
        }
    }
}

/// A parsed member pattern. Equality and order follow the canonical text.
#[derive(Debug, Clone)]
pub struct MemberPattern {
    pname: Part,
    output: Part,
    version: Option<Part>,
}

impl MemberPattern {
    /// Parses `PNAME[:OUTPUT][@VERSION]`, globs allowed in each part.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let (rest, version) = match s.split_once('@') {
            Some((_, "")) => return Err(PatternError::EmptyPart("version", '@')),
            Some((r, v)) => (r, Some(Part::parse(v)?)),
            None => (s, None),
        };
        let (pname, output) = match rest.split_once(':') {
            Some((_, "")) => return Err(PatternError::EmptyPart("output", ':')),
            Some((p, o)) => (p, Part::parse(o)?),
            None => (rest, Part::Literal("out".into())),
        };
        if pname.is_empty() {
            return Err(PatternError::EmptyName);
        }
        Ok(MemberPattern { pname: Part::parse(pname)?, output, version })
    }

    /// The pattern that matches exactly the package [`NameKey::identity`] finds in `name`, at
    /// any version: `glibc`, `gcc:lib`, or, where the identity is longer than parseDrvName's
    /// pname, that pname with a version glob (`gcc@14-base-[0-9]*` for `gcc-14-base-14.2.0-19`).
    pub fn identity_of(name: &str) -> String {
        let mut text = String::new();
        MemberPattern::write_identity(name, NameKey::of(name), &mut text);
        text
    }

    /// Writes [`MemberPattern::identity_of`] into `text` (cleared first), given `drv`,
    /// [`NameKey::of`] the same name: no allocation once `text` has room.
    pub fn write_identity(name: &str, drv: NameKey<'_>, text: &mut String) {
        let id = NameKey::identity_given(name, drv);
        text.clear();
        text.push_str(drv.pname);
        if drv.output != "out" {
            text.push(':');
            text.push_str(drv.output);
        }
        if id.pname != drv.pname {
            text.push('@');
            text.push_str(&id.pname[drv.pname.len() + 1..]);
            text.push_str("-[0-9]*");
        }
    }

    /// Whether a store path name's key matches.
    pub fn matches(&self, key: &NameKey<'_>) -> bool {
        self.pname.matches(key.pname) && self.output.matches(key.output) && self.version.as_ref().is_none_or(|v| v.matches(key.version))
    }

    /// How specific the pattern is; where several groups match a name, the most specific
    /// pattern wins. A version constraint outranks none, then a literal package name outranks
    /// a glob, then a literal output outranks a glob.
    pub fn specificity(&self) -> (bool, bool, bool) {
        (self.version.is_some(), self.pname.literal().is_some(), self.output.literal().is_some())
    }

    /// The package name when it has no glob: such patterns are found by hash lookup.
    pub fn literal_pname(&self) -> Option<&str> {
        self.pname.literal()
    }

    /// The first `-`-separated token of the version constraint, when it is literal: patterns
    /// that `hints emit` writes for numbered names (`gcc@14-base-[0-9]*`) are indexed by it.
    pub fn version_head(&self) -> Option<&str> {
        let v = self.version.as_ref()?.as_str();
        let head = v.split('-').next()?;
        (v.len() > head.len() && !head.contains(['*', '?', '[', ']'])).then_some(head)
    }
}

impl fmt::Display for MemberPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pname.as_str())?;
        if self.output.as_str() != "out" {
            write!(f, ":{}", self.output.as_str())?;
        }
        if let Some(v) = &self.version {
            write!(f, "@{}", v.as_str())?;
        }
        Ok(())
    }
}

impl PartialEq for MemberPattern {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}
impl Eq for MemberPattern {}
impl PartialOrd for MemberPattern {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MemberPattern {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, name: &str) -> bool {
        MemberPattern::parse(p).unwrap().matches(&NameKey::of(name))
    }

    #[test]
    fn matches_by_pname_ignoring_version() {
        assert!(m("glibc", "glibc-2.39-52"));
        assert!(m("glibc", "glibc-2.40-1"));
        assert!(!m("glibc", "glibc-2.39-52-bin"), "default output only");
        assert!(m("glibc:bin", "glibc-2.39-52-bin"));
        assert!(m("glibc:*", "glibc-2.39-52-bin"));
        assert!(m("glibc:*", "glibc-2.39-52"));
        assert!(m("python3.12-numpy", "python3.12-numpy-1.26.4"));
        assert!(!m("python3.12", "python3.12-numpy-1.26.4"));
        assert!(m("python3.12-*", "python3.12-numpy-1.26.4"));
        assert!(m("gcc:lib@13.2.0", "gcc-13.2.0-lib"));
        assert!(!m("gcc:lib@13.2.1", "gcc-13.2.0-lib"));
        assert!(m("gcc:lib@13.*", "gcc-13.2.0-lib"));
        assert!(m("source", "source"));
        assert!(m("lib[cs]*", "libc6-2.41-12"));
    }

    #[test]
    fn identity_patterns_name_distinct_packages() {
        assert_eq!(MemberPattern::identity_of("gcc-14-base-14.2.0-19"), "gcc@14-base-[0-9]*");
        assert_eq!(MemberPattern::identity_of("gcc-14-14.2.0-19"), "gcc@14-[0-9]*");
        assert_eq!(MemberPattern::identity_of("glibc-2.39-52-bin"), "glibc:bin");
        let p = MemberPattern::parse(&MemberPattern::identity_of("gcc-14-base-14.2.0-19")).unwrap();
        assert!(p.matches(&NameKey::of("gcc-14-base-14.3.1-2")), "a version bump keeps matching");
        assert!(!p.matches(&NameKey::of("gcc-14-14.2.0-19")));
        assert!(p.specificity() > MemberPattern::parse("gcc").unwrap().specificity());
        let go = MemberPattern::parse(&MemberPattern::identity_of("golang-1.19-go-1.19.8-2")).unwrap();
        assert_eq!(go.to_string(), "golang@1.19-go-[0-9]*");
        assert!(go.matches(&NameKey::of("golang-1.19-go-1.19.13-1")), "a version bump keeps matching");
        assert!(!go.matches(&NameKey::of("golang-1.19-src-1.19.8-2")), "the source beside it is another package");
    }

    #[test]
    fn display_is_canonical() {
        for s in ["glibc", "gcc:lib", "gcc:*@13.2.0", "python3.12-*", "a@1"] {
            assert_eq!(MemberPattern::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(MemberPattern::parse("glibc:out").unwrap().to_string(), "glibc");
    }

    #[test]
    fn rejects_invalid() {
        assert_eq!(MemberPattern::parse("").unwrap_err(), PatternError::EmptyName);
        assert_eq!(MemberPattern::parse(":lib").unwrap_err(), PatternError::EmptyName);
        assert!(matches!(MemberPattern::parse("a b"), Err(PatternError::BadChar(' '))));
        assert!(matches!(MemberPattern::parse("a/b"), Err(PatternError::BadChar('/'))));
        assert!(matches!(MemberPattern::parse("a[b"), Err(PatternError::BadGlob(..))));
        assert!(matches!(MemberPattern::parse("a:"), Err(PatternError::EmptyPart("output", ':'))));
        assert!(matches!(MemberPattern::parse("a@"), Err(PatternError::EmptyPart("version", '@'))));
    }
}
