//! Every error class of the hint file, each with its line, column and key words.

use hints_format::{ErrorKind, HintFile};

const HEAD: &str = "version: 1\nbudget:\n  max_layers: 100\n  reserve: 1\n";

fn err(text: &str) -> hints_format::FormatError {
    HintFile::parse(text).expect_err("must be rejected")
}

fn check(text: &str, kind: ErrorKind, line: usize, column: usize, words: &[&str]) {
    let e = err(text);
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!((e.line, e.column), (line, column), "{e}");
    for w in words {
        assert!(e.message.contains(w), "`{w}` not in: {e}");
    }
    assert!(e.to_string().starts_with(&format!("line {line}, column {column}: ")));
}

#[test]
fn unknown_keys() {
    check(&format!("{HEAD}colour: blue\n"), ErrorKind::Syntax, 5, 1, &["unknown field `colour`", "expected one of"]);
    let g = format!("{HEAD}groups:\n  - id: a\n    members: [x]\n    memebrs: [y]\n");
    check(&g, ErrorKind::Syntax, 8, 5, &["unknown field `memebrs`"]);
}

#[test]
fn wrong_types() {
    check("version: 1\nbudget:\n  max_layers: ten\n  reserve: 1\n", ErrorKind::Syntax, 3, 15, &["invalid type", "string \"ten\"", "u32"]);
    check(&format!("{HEAD}groups:\n  - id: a\n    members: x\n"), ErrorKind::Syntax, 7, 14, &["invalid type", "sequence"]);
    check(&format!("{HEAD}pins:\n  - id: p\n    rule: sideways\n    members: [x]\n"), ErrorKind::Syntax, 7, 11, &["unknown variant `sideways`", "own-layer"]);
}

#[test]
fn not_yaml() {
    check("version: 1\nbudget: [\n", ErrorKind::Syntax, 3, 1, &["did not find expected"]);
}

#[test]
fn unsupported_version() {
    check("version: 3\nbudget: {max_layers: 10, reserve: 1}\n", ErrorKind::UnsupportedVersion, 1, 10, &["this file is version 3; this hints understands up to 2"]);
    check("version: 0\nbudget: {max_layers: 10, reserve: 1}\n", ErrorKind::UnsupportedVersion, 1, 10, &["version 0"]);
}

#[test]
fn invalid_budget() {
    check("version: 1\nbudget:\n  max_layers: 5\n  reserve: 5\n", ErrorKind::InvalidBudget, 4, 12, &["reserve (5) must be smaller than max_layers (5)"]);
}

#[test]
fn duplicate_ids() {
    let t = format!("{HEAD}groups:\n  - id: libc\n    members: [glibc]\n  - id: libc\n    members: [zlib]\n");
    check(&t, ErrorKind::DuplicateId, 8, 9, &["duplicate id `libc`", "groups[0].id"]);
    let t = format!("{HEAD}groups:\n  - id: libc\n    members: [glibc]\npins:\n  - id: libc\n    rule: bottom\n    members: [zlib]\n");
    check(&t, ErrorKind::DuplicateId, 9, 9, &["duplicate id `libc`"]);
}

#[test]
fn empty_groups() {
    check(&format!("{HEAD}groups:\n  - id: lonely\n    members: []\n"), ErrorKind::EmptyGroup, 7, 14, &["`lonely` has no members"]);
}

#[test]
fn invalid_patterns() {
    check(&format!("{HEAD}groups:\n  - id: a\n    members:\n      - glibc\n      - \"gcc lib\"\n"), ErrorKind::InvalidPattern, 9, 9, &["invalid member `gcc lib`", "' '"]);
    check(&format!("{HEAD}groups:\n  - id: a\n    members: [\"x[\"]\n"), ErrorKind::InvalidPattern, 7, 15, &["invalid glob"]);
    check(&format!("{HEAD}groups:\n  - id: a\n    members: [\"gcc:\"]\n"), ErrorKind::InvalidPattern, 7, 15, &["empty output"]);
}

#[test]
fn duplicate_members() {
    let t = format!("{HEAD}groups:\n  - id: a\n    members: [glibc, zlib]\n  - id: b\n    members: [openssl, glibc]\n");
    check(&t, ErrorKind::DuplicateMember, 9, 24, &["member `glibc` appears twice", "`a`", "`b`"]);
    // `glibc:out` is `glibc`.
    let t = format!("{HEAD}groups:\n  - id: a\n    members: [glibc, \"glibc:out\"]\n");
    check(&t, ErrorKind::DuplicateMember, 7, 22, &["appears twice"]);
    // A pin may name a grouped package (the pin wins), but two placing pins may not share one.
    let ok = format!("{HEAD}groups:\n  - id: a\n    members: [glibc]\npins:\n  - id: p\n    rule: own-layer\n    members: [glibc]\n");
    assert!(HintFile::parse(&ok).is_ok());
    let t = format!("{HEAD}pins:\n  - id: p\n    rule: own-layer\n    members: [glibc]\n  - id: q\n    rule: together\n    members: [glibc]\n");
    check(&t, ErrorKind::DuplicateMember, 11, 15, &["appears twice"]);
}

#[test]
fn merges() {
    let groups = "groups:\n  - id: a\n    members: [x]\n  - id: b\n    members: [y]\n";
    let v2 = "version: 2\nbudget:\n  max_layers: 100\n  reserve: 1\n";
    let ok = HintFile::parse(&format!("{v2}{groups}merges:\n  - [b, a]\n")).unwrap();
    assert_eq!(ok.merges, vec![["b".to_string(), "a".to_string()]]);
    // A version-1 file has no plan; version 1 files without one still parse.
    check(&format!("{HEAD}{groups}merges:\n  - [b, a]\n"), ErrorKind::UnsupportedVersion, 11, 3, &["`merges` needs version 2"]);
    assert!(HintFile::parse(&format!("{HEAD}{groups}")).is_ok());
    check(&format!("{v2}{groups}merges:\n  - [a, b]\n  - [b, zz]\n"), ErrorKind::UnknownGroup, 12, 9, &["`zz`", "not a group id"]);
    check(&format!("{v2}{groups}merges:\n  - [a, a]\n"), ErrorKind::UnknownGroup, 11, 9, &["`a` twice"]);
    check(&format!("{v2}{groups}merges:\n  - [a]\n"), ErrorKind::Syntax, 11, 5, &["invalid length 1"]);
}

#[test]
fn opt_outs() {
    let groups = "groups:\n  - id: a\n    members: [x]\n  - id: b\n    members: [y]\n";
    let v2 = "version: 2\nbudget:\n  max_layers: 100\n  reserve: 1\n";
    let ok = HintFile::parse(&format!("{v2}{groups}opt_outs:\n  api: [b]\n")).unwrap();
    assert_eq!(ok.opt_outs["api"], ["b"]);
    let api = ok.for_image(Some("api"));
    assert_eq!(api.groups.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["a"], "api lays out without `b`");
    assert!(api.validate().is_ok());
    assert_eq!(ok.for_image(Some("worker")).groups.len(), 2, "other images keep it");
    assert_eq!(ok.for_image(None).groups.len(), 2, "and so does an image not named");
    let both = HintFile::parse(&format!("{v2}{groups}size_first_images: [db]\nopt_outs:\n  api: [a, b]\n  db: [a]\n")).unwrap();
    let treatment = |image: &str| both.treatment(image).to_string();
    assert_eq!([treatment("api"), treatment("db"), treatment("worker")], ["its groups, less groups a, b", "size-first", "its groups"]);
    check(&format!("{HEAD}{groups}opt_outs:\n  api: [b]\n"), ErrorKind::UnsupportedVersion, 11, 3, &["`opt_outs` needs version 2"]);
    check(&format!("{v2}{groups}opt_outs:\n  api: [a, zz]\n"), ErrorKind::UnknownGroup, 11, 12, &["`api`", "`zz`", "not a group id"]);
    check(&format!("{v2}{groups}opt_outs:\n  api:\n    - a\n    - a\n"), ErrorKind::UnknownGroup, 13, 7, &["`a` twice"]);
    check(&format!("{v2}{groups}opt_outs:\n  api: b\n"), ErrorKind::Syntax, 11, 8, &["invalid type", "sequence"]);
}

#[test]
fn path_hazard() {
    let v2 = "version: 2\nbudget:\n  max_layers: 100\n  reserve: 1\n";
    let ok = HintFile::parse(&format!("{v2}learned_from:\n  path_hazard: 0.0751\n")).unwrap();
    assert_eq!(ok.learned_from.path_hazard, Some(0.0751));
    check(&format!("{HEAD}learned_from:\n  path_hazard: 0.0751\n"), ErrorKind::UnsupportedVersion, 6, 16, &["`path_hazard` needs version 2"]);
    check(&format!("{v2}learned_from:\n  path_hazard: -1.0\n"), ErrorKind::InvalidHazard, 6, 16, &["non-negative", "-1"]);
    check(&format!("{v2}learned_from:\n  path_hazard: high\n"), ErrorKind::Syntax, 6, 16, &["invalid type"]);
}

#[test]
fn a_change_rate_is_a_probability() {
    for rate in [".nan", ".inf", "-3", "7.5"] {
        let g = format!("{HEAD}groups:\n  - id: a\n    members: [x]\n    stats: {{size: 1, change_rate: {rate}, images: 1}}\n");
        let e = err(&g);
        assert_eq!(e.kind, ErrorKind::InvalidHazard, "{rate}: {e}");
        assert_eq!(e.line, 8, "{rate}: {e}");
        assert!(e.message.contains("probability from 0 to 1"), "{e}");
    }
    let ok = format!("{HEAD}groups:\n  - id: a\n    members: [x]\n    stats: {{size: 1, change_rate: 1.0, images: 1}}\n");
    HintFile::parse(&ok).unwrap();
}

#[test]
fn hostile_nesting_is_refused_at_once() {
    let deep = format!("version: 2\nbudget: {}1\n", "[".repeat(50_000));
    check(&deep, ErrorKind::Syntax, 2, 41, &["nested deeper than 32"]);
    let block = format!("{}x\n", "- ".repeat(200_000));
    check(&block, ErrorKind::Syntax, 1, 65, &["nested deeper than 32"]);
}
