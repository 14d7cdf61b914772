//! Nix store paths and their names, following Nix's own rules.
//!
//! A store path is `<store dir>/<hash>-<name>`:
//! - the hash is 32 characters of Nix base32 (the alphabet `0123456789abcdfghijklmnpqrsvwxyz`,
//!   which leaves out `e`, `o`, `t` and `u`), i.e. 160 bits;
//! - the name is 1 to 211 characters from `A-Z a-z 0-9 + - . _ ? =` and does not start with `.`.
//!
//! A name splits into a package name and a version the way `builtins.parseDrvName` does it: the
//! version starts after the first `-` that is not followed by a letter. Multiple-output packages
//! append the output to the version (`gcc-13.2.0-lib`), so [`NameKey`] further splits a known
//! output suffix off the version. The key `(pname, output)` is what stays stable across version
//! bumps, and is what hint files match on.

use std::fmt;
use std::sync::Arc;

use crate::nixbase32;

/// Length in characters of the hash part of a store path.
pub const HASH_LEN: usize = 32;

/// Longest name Nix accepts in a store path.
pub const MAX_NAME_LEN: usize = 211;

/// Longest store path read: a store directory of up to 3,800 bytes, the hash and the name.
/// Anything longer is refused before it is copied or echoed into a message.
pub const MAX_PATH_LEN: usize = 4096;

/// Output names that Nix packages commonly append to their name (`-bin`, `-lib`, ...).
pub const KNOWN_OUTPUTS: &[&str] =
    &["bin", "dev", "lib", "man", "doc", "info", "devdoc", "static", "debug", "out", "py", "python", "terminfo", "modules", "sandbox", "shell", "scripts", "data", "examples", "tests", "hook"];

/// Why a string is not a store path (each variant names the string, or an excerpt of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    /// Not starting with `/`.
    #[error("`{0}` is not an absolute path")]
    NotAbsolute(String),
    /// Longer than [`MAX_PATH_LEN`].
    #[error("`{excerpt}…` ({len} bytes) is longer than any store path ({MAX_PATH_LEN} bytes at most)")]
    TooLong {
        /// The first 64 bytes (at a character boundary).
        excerpt: String,
        /// The whole length.
        len: usize,
    },
    /// A store directory with empty, `.` or `..` components or a trailing `/`.
    #[error("`{0}`: the store directory is not canonical (no empty, `.` or `..` components, no trailing `/`)")]
    NonCanonicalDir(String),
    /// A hash part that is not 32 characters of Nix base32.
    #[error("`{path}`: the hash part `{hash}` is not 32 characters of Nix base32 ({})", crate::nixbase32::ALPHABET_STR)]
    BadHash {
        /// The path.
        path: String,
        /// Its hash part.
        hash: String,
    },
    /// No `-<name>` after the hash.
    #[error("`{0}`: expected `<hash>-<name>` after the store directory")]
    MissingName(String),
    /// A name character Nix does not allow.
    #[error("`{path}`: name has invalid character {ch:?} (allowed: A-Z a-z 0-9 + - . _ ? =)")]
    BadNameChar {
        /// The path.
        path: String,
        /// The first character not allowed.
        ch: char,
    },
    /// A name starting with `.`.
    #[error("`{0}`: name must not start with `.`")]
    DotName(String),
    /// A name over 211 characters.
    #[error("`{0}`: name is longer than 211 characters")]
    NameTooLong(String),
}

/// A validated store path, ordered by its full text. Clones share the text: a closure names
/// each path once as itself and again in every path that references it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    full: Arc<str>,
    /// Byte offset of the hash (just after the last `/`).
    hash_at: usize,
}

impl StorePath {
    /// Parses an absolute store path such as `/nix/store/<hash>-hello-2.12`.
    pub fn parse(s: &str) -> Result<Self, StorePathError> {
        if s.len() > MAX_PATH_LEN {
            let cut = (0..=64).rev().find(|&k| s.is_char_boundary(k)).unwrap_or(0);
            return Err(StorePathError::TooLong { excerpt: s[..cut].to_string(), len: s.len() });
        }
        if !s.starts_with('/') {
            return Err(StorePathError::NotAbsolute(s.to_string()));
        }
        let hash_at = s.bytes().rposition(|b| b == b'/').expect("starts with /") + 1;
        let dir = s.get(1..hash_at - 1).unwrap_or("");
        if dir.is_empty() || dir.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(StorePathError::NonCanonicalDir(s.to_string()));
        }
        Self::check_base(s, &s[hash_at..])?;
        Ok(StorePath { full: Arc::from(s), hash_at })
    }

    /// Builds a store path from a store dir and a basename (`<hash>-<name>`), as Nix's
    /// `--json-format 2` output lists paths.
    pub fn from_base(store_dir: &str, base: &str) -> Result<Self, StorePathError> {
        let dir = store_dir.trim_end_matches('/');
        Self::parse(&format!("{dir}/{base}"))
    }

    fn check_base(full: &str, base: &str) -> Result<(), StorePathError> {
        let hash = base.get(..HASH_LEN).unwrap_or(base);
        if hash.len() != HASH_LEN || !nixbase32::is_valid(hash) {
            return Err(StorePathError::BadHash { path: full.to_string(), hash: hash.to_string() });
        }
        let name = match base[HASH_LEN..].strip_prefix('-') {
            Some(n) if !n.is_empty() => n,
            _ => return Err(StorePathError::MissingName(full.to_string())),
        };
        if name.len() > MAX_NAME_LEN {
            return Err(StorePathError::NameTooLong(full.to_string()));
        }
        if name.starts_with('.') {
            return Err(StorePathError::DotName(full.to_string()));
        }
        // Every name character is ASCII, so the first byte that is not one starts the first
        // character that is not.
        if let Some(at) = name.bytes().position(|b| !NAME_BYTES[b as usize]) {
            let ch = name[at..].chars().next().expect("a character starts at the first non-name byte");
            return Err(StorePathError::BadNameChar { path: full.to_string(), ch });
        }
        Ok(())
    }

    /// The full path.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The store directory, e.g. `/nix/store`.
    pub fn store_dir(&self) -> &str {
        &self.full[..self.hash_at - 1]
    }

    /// `<hash>-<name>`.
    pub fn base(&self) -> &str {
        &self.full[self.hash_at..]
    }

    /// The 32-character Nix base32 hash.
    pub fn hash(&self) -> &str {
        &self.full[self.hash_at..self.hash_at + HASH_LEN]
    }

    /// The name after the hash, e.g. `hello-2.12`.
    pub fn name(&self) -> &str {
        &self.full[self.hash_at + HASH_LEN + 1..]
    }

    /// The name split as `builtins.parseDrvName` splits it.
    pub fn drv_name(&self) -> DrvName<'_> {
        DrvName::parse(self.name())
    }

    /// The version-insensitive key hint files match on.
    pub fn name_key(&self) -> NameKey<'_> {
        NameKey::of(self.name())
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.full)
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

/// The bytes a store path name may hold: ASCII letters and digits, and `+ - . _ ? =`.
const NAME_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'_' | b'?' | b'=');
        b += 1;
    }
    t
};

/// A name split the way `builtins.parseDrvName` splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrvName<'a> {
    /// Everything before the version (the whole name when there is no version).
    pub pname: &'a str,
    /// Everything after the first `-` not followed by a letter; empty when there is none.
    pub version: &'a str,
}

impl<'a> DrvName<'a> {
    /// Nix: the version starts at the first `-` whose next character is not a letter.
    pub fn parse(name: &'a str) -> Self {
        let b = name.as_bytes();
        for i in 0..b.len() {
            if b[i] == b'-' && i + 1 < b.len() && !b[i + 1].is_ascii_alphabetic() {
                return DrvName { pname: &name[..i], version: &name[i + 1..] };
            }
        }
        DrvName { pname: name, version: "" }
    }
}

/// Whether a `-`-separated token of a name can start its version: digits, a `.` and a digit,
/// after an optional epoch (`8_6.9.11`, as Debian's `8:` is written in a store name).
fn starts_a_version(token: &str) -> bool {
    let unepoched = match token.split_once('_') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => token,
    };
    let b = unepoched.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && b.get(digits) == Some(&b'.') && b.get(digits + 1).is_some_and(u8::is_ascii_digit)
}

/// `(pname, output)` plus the bare version: the identity of a package across version bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameKey<'a> {
    /// The package name (`parseDrvName`'s `name`).
    pub pname: &'a str,
    /// The output suffix (`lib`, `bin`, ...), or `out` when the name has none.
    pub output: &'a str,
    /// The version without the output suffix.
    pub version: &'a str,
}

impl<'a> NameKey<'a> {
    /// The key of a store path name (without the hash).
    pub fn of(name: &'a str) -> Self {
        let d = DrvName::parse(name);
        if let Some((v, out)) = d.version.rsplit_once('-') {
            if KNOWN_OUTPUTS.contains(&out) {
                return NameKey { pname: d.pname, output: out, version: v };
            }
        }
        // A name with no version can still carry an output suffix (`foo-bin`): parseDrvName
        // keeps it in the pname because `b` is a letter.
        if d.version.is_empty() {
            if let Some((p, out)) = d.pname.rsplit_once('-') {
                if KNOWN_OUTPUTS.contains(&out) && !p.is_empty() {
                    return NameKey { pname: p, output: out, version: "" };
                }
            }
        }
        NameKey { pname: d.pname, output: "out", version: d.version }
    }

    /// The identity `hints emit` learns per package: like [`NameKey::of`], except that
    /// dash-separated components between parseDrvName's split and the version stay in the
    /// package name. The version starts at the first *dotted* token (digits, a `.` and a digit,
    /// after an optional `N_` epoch) after which no token is a plain word. Distribution-style
    /// names carry numbers in the package name (`gcc-14-base-14.2.0-19`,
    /// `libnghttp2-14-1.70.0-1`, `golang-1.19-go-1.19.8-2`, `imagemagick-6.q16-8_6.9.11.60-1`),
    /// which parseDrvName would call `gcc`, `libnghttp2`, `golang` or `imagemagick`, beside
    /// other packages of those names in the same closure; here they are `gcc-14-base`,
    /// `libnghttp2-14`, `golang-1.19-go` and `imagemagick-6.q16`. When no token qualifies
    /// (`tzdata-2026c-0`, `libevent-core-2.1-7t64-2.1.13-stable-1`) the parseDrvName split
    /// stands.
    pub fn identity(name: &'a str) -> Self {
        NameKey::identity_given(name, NameKey::of(name))
    }

    /// [`NameKey::identity`], given `k`, [`NameKey::of`] the same name.
    pub fn identity_given(name: &'a str, k: NameKey<'a>) -> Self {
        if k.version.is_empty() {
            return k;
        }
        let mut offset = 0;
        for (n, token) in k.version.split('-').enumerate() {
            let rest = &k.version[(offset + token.len() + 1).min(k.version.len())..];
            if starts_a_version(token) && !rest.split('-').any(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic())) {
                if n == 0 {
                    return k;
                }
                // `name` is `pname-version[-output]`: the refined pname runs to this token.
                let end = k.pname.len() + 1 + offset - 1;
                return NameKey { pname: &name[..end], output: k.output, version: &k.version[offset..] };
            }
            offset += token.len() + 1;
        }
        k
    }

    /// `pname` for the default output, `pname:output` otherwise: the display form used as a
    /// hint-file member and as the analyzer's name identity.
    pub fn label(&self) -> String {
        if self.output == "out" {
            self.pname.to_string()
        } else {
            format!("{}:{}", self.pname, self.output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "00bgd045z0d4icpbc2yyz4gx48ak44la";

    #[test]
    fn an_overlong_path_is_refused_with_a_short_excerpt() {
        let long = format!("/{}", "\u{0}".repeat(1 << 20));
        let e = StorePath::parse(&long).unwrap_err();
        assert!(matches!(e, StorePathError::TooLong { len, .. } if len == long.len()), "{e}");
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn a_store_directory_must_be_canonical() {
        for dir in ["/nix/store/..", "//nix//store", "/nix/./store", "", "/nix/store/"] {
            let e = StorePath::parse(&format!("{dir}/{H}-x")).unwrap_err();
            assert_eq!(e, StorePathError::NonCanonicalDir(format!("{dir}/{H}-x")), "{dir}");
        }
        assert_eq!(StorePath::parse(&format!("/other/store/{H}-x")).unwrap().store_dir(), "/other/store");
    }

    #[test]
    fn parses_components() {
        let p = StorePath::parse(&format!("/nix/store/{H}-net-tools-1.60_p20170221182432")).unwrap();
        assert_eq!(p.store_dir(), "/nix/store");
        assert_eq!(p.hash(), H);
        assert_eq!(p.name(), "net-tools-1.60_p20170221182432");
        assert_eq!(p.base(), format!("{H}-net-tools-1.60_p20170221182432"));
        let q = StorePath::from_base("/nix/store/", p.base()).unwrap();
        assert_eq!(p, q);
        let other = StorePath::parse(&format!("/gnu/store/{H}-x")).unwrap();
        assert_eq!(other.store_dir(), "/gnu/store");
    }

    #[test]
    fn rejects_bad_paths() {
        use StorePathError::*;
        type Check = fn(&StorePathError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-x", |e| matches!(e, NotAbsolute(_))),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44le-x", |e| matches!(e, BadHash { .. })),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44l-xx", |e| matches!(e, BadHash { .. })),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la", |e| matches!(e, MissingName(_))),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-", |e| matches!(e, MissingName(_))),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la_x", |e| matches!(e, MissingName(_))),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a b", |e| matches!(e, BadNameChar { ch: ' ', .. })),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-ü", |e| matches!(e, BadNameChar { ch: 'ü', .. })),
            ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-.x", |e| matches!(e, DotName(_))),
            ("/nix/store/short-x", |e| matches!(e, BadHash { .. })),
        ];
        for (s, pred) in cases {
            let e = StorePath::parse(s).unwrap_err();
            assert!(pred(&e), "{s}: {e}");
        }
        let long = format!("/nix/store/{H}-{}", "a".repeat(212));
        assert!(matches!(StorePath::parse(&long), Err(NameTooLong(_))));
        let max = format!("/nix/store/{H}-{}", "a".repeat(211));
        assert!(StorePath::parse(&max).is_ok());
        // Every allowed special character.
        assert!(StorePath::parse(&format!("/nix/store/{H}-a+-._?=Z9")).is_ok());
    }

    /// `builtins.parseDrvName` examples from the Nix manual, then tricky real names.
    #[test]
    fn parse_drv_name_matches_nix() {
        let cases = [
            ("nix-0.12pre12876", "nix", "0.12pre12876"),
            ("hello-2.12.1", "hello", "2.12.1"),
            ("python3.12-numpy-1.26.4", "python3.12-numpy", "1.26.4"),
            ("gcc-13.2.0-lib", "gcc", "13.2.0-lib"),
            ("glibc-2.39-52", "glibc", "2.39-52"),
            ("source", "source", ""),
            ("hook", "hook", ""),
            ("nss-cacert-3.98", "nss-cacert", "3.98"),
            ("util-linux-minimal-2.39.4-lib", "util-linux-minimal", "2.39.4-lib"),
            ("libstdc++6-14.2.0-19", "libstdc++6", "14.2.0-19"),
            ("foo-_bar", "foo", "_bar"),
            ("foo-", "foo-", ""),
            ("a-b-c", "a-b-c", ""),
            ("x--1", "x", "-1"),
        ];
        for (name, pname, version) in cases {
            assert_eq!(DrvName::parse(name), DrvName { pname, version }, "{name}");
        }
    }

    #[test]
    fn name_key_splits_outputs() {
        let k = |n| {
            let k = NameKey::of(n);
            (k.pname, k.output, k.version)
        };
        assert_eq!(k("gcc-13.2.0-lib"), ("gcc", "lib", "13.2.0"));
        assert_eq!(k("util-linux-minimal-2.39.4-lib"), ("util-linux-minimal", "lib", "2.39.4"));
        assert_eq!(k("glibc-2.39-52"), ("glibc", "out", "2.39-52"));
        assert_eq!(k("glibc-2.39-52-bin"), ("glibc", "bin", "2.39-52"));
        assert_eq!(k("python3.12-numpy-1.26.4"), ("python3.12-numpy", "out", "1.26.4"));
        assert_eq!(k("source"), ("source", "out", ""));
        assert_eq!(k("hook"), ("hook", "out", ""));
        assert_eq!(k("foo-bin"), ("foo", "bin", ""));
        assert_eq!(k("nss-cacert-3.98"), ("nss-cacert", "out", "3.98"));
        assert_eq!(NameKey::of("gcc-13.2.0-lib").label(), "gcc:lib");
        assert_eq!(NameKey::of("gcc-14-base-14.2.0-19").pname, "gcc", "parseDrvName's split");
        assert_eq!(NameKey::of("glibc-2.39-52").label(), "glibc");
    }

    #[test]
    fn identity_keeps_numbered_package_names() {
        let id = |n| {
            let k = NameKey::identity(n);
            (k.pname, k.output, k.version)
        };
        assert_eq!(id("gcc-14-base-14.2.0-19"), ("gcc-14-base", "out", "14.2.0-19"));
        assert_eq!(id("gcc-14-14.2.0-19"), ("gcc-14", "out", "14.2.0-19"));
        assert_eq!(id("libnghttp2-14-1.70.0-1"), ("libnghttp2-14", "out", "1.70.0-1"));
        assert_eq!(id("binutils-x86-64-linux-gnu-2.47.50.20261021-1"), ("binutils-x86-64-linux-gnu", "out", "2.47.50.20261021-1"));
        assert_eq!(id("g++-14-x86-64-linux-gnu-14.4.0-3-lib"), ("g++-14-x86-64-linux-gnu", "lib", "14.4.0-3"));
        // Packages one closure holds side by side, which parseDrvName would all call `golang`,
        // `imagemagick` or `libjson-glib`.
        assert_eq!(id("golang-1.19-go-1.19.8-2"), ("golang-1.19-go", "out", "1.19.8-2"));
        assert_eq!(id("golang-1.19-src-1.19.8-2"), ("golang-1.19-src", "out", "1.19.8-2"));
        assert_eq!(id("imagemagick-6.q16-8_6.9.11.60_dfsg-1.6_deb12u11"), ("imagemagick-6.q16", "out", "8_6.9.11.60_dfsg-1.6_deb12u11"));
        assert_eq!(id("libjson-glib-1.0-common-1.6.6-1"), ("libjson-glib-1.0-common", "out", "1.6.6-1"));
        // Where parseDrvName is already right, identity agrees with it.
        for n in [
            "glibc-2.39-52",
            "gcc-13.2.0-lib",
            "python3.12-numpy-1.26.4",
            "tzdata-2026c-0_deb13u1",
            "zlib1g-1_1.3.dfsg_really1.3.1-1_b1",
            "libevent-core-2.1-7t64-2.1.13-stable-1",
            "imagemagick-8_6.9.11.60_dfsg-1.6_deb12u11",
            "golang-2_1.19_1",
            "libjson-glib-1.0-0-1.6.6-1",
            "foo-1.0-beta-2",
            "source",
            "publicsuffix-list-0-unstable-2024-06-19",
            "util-linux-minimal-2.39.4-lib",
            "kmod-31",
        ] {
            assert_eq!(NameKey::identity(n), NameKey::of(n), "{n}");
        }
    }
}
