//! Closure input formats, detected automatically.
//!
//! | format          | what it is                                                                 |
//! |-----------------|----------------------------------------------------------------------------|
//! | `graph-json`    | `exportReferencesGraph` with `__structuredAttrs`: the bare array, or the   |
//! |                 | `.attrs.json` object with any one key holding it; also `nix path-info     |
//! |                 | --json -r` of Nix ≤ 2.18 (same array shape)                                 |
//! | `graph-text`    | classic `exportReferencesGraph`: path, deriver, count, references…        |
//! | `path-info`     | `nix path-info --json -r` of Nix ≥ 2.19 (object keyed by path, `null` for |
//! |                 | invalid paths) and `--json-format 2` (`{version, storeDir, info}`)        |
//! | `nix2container` | nix2container's image JSON (`layers[].paths[].path`): no sizes or refs    |
//!
//! Every error names the file and the JSON location (`[3].narSize`) or the line.

use std::fmt;

use hints_format::locate::without_serde_position;
use hints_format::StorePath;
use layering_core::{PathInfo, PathRecord, Records};
use serde_json::{Map, Value};

/// A closure input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// exportReferencesGraph JSON: a bare array, or a `.attrs.json` key holding one.
    GraphJson,
    /// Classic exportReferencesGraph text.
    GraphText,
    /// `nix path-info --json --recursive`, in any of its shapes.
    PathInfo,
    /// nix2container's image JSON (paths only).
    Nix2container,
}

impl Format {
    /// Every format, as `--format` names them.
    pub const ALL: [Format; 4] = [Format::GraphJson, Format::GraphText, Format::PathInfo, Format::Nix2container];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::GraphJson => "graph-json",
            Format::GraphText => "graph-text",
            Format::PathInfo => "path-info",
            Format::Nix2container => "nix2container",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| format!("expected one of {}", Format::ALL.map(Format::name).join(", ")))
    }
}

/// An input error: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}: {message}")]
pub struct InputError {
    pub file: String,
    /// `line L, column C`, `line L`, or a JSON location such as `[3].narSize`.
    pub location: String,
    pub message: String,
}

/// What a file held.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    /// The records in file order, references resolved to positions where a record has them.
    pub records: Records,
    /// Things the format could not say (nix2container has no sizes or references).
    pub warnings: Vec<String>,
}

/// Parses `text` from `file` (a name for messages), detecting the format unless forced.
pub fn parse(file: &str, text: &str, forced: Option<Format>) -> Result<Parsed, InputError> {
    let err = |location: String, message: String| InputError { file: file.to_string(), location, message };
    // A byte-order mark is not content (editors on some systems write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(err("line 1".into(), "the file is empty; expected a closure graph".into()));
    }
    let is_json = trimmed.starts_with(['[', '{', '"']) || trimmed.parse::<f64>().is_ok() || ["true", "false", "null"].contains(&trimmed.trim_end());
    if forced == Some(Format::GraphText) || (forced.is_none() && !is_json) {
        return parse_text(text).map_err(|(line, m)| err(format!("line {line}"), m));
    }
    // Fast path for the common shape: a bare array of well-formed records, parsed straight into
    // typed structs. Anything else (or any error) takes the general path, which locates errors.
    if forced.is_none_or(|f| f == Format::GraphJson) && trimmed.starts_with('[') {
        if let Ok(records) = serde_json::from_str::<Vec<RawRecord>>(text) {
            if let Ok(records) = RawRecord::into_records(records) {
                return Ok(Parsed { format: Format::GraphJson, records, warnings: vec![] });
            }
        }
    }
    let value: Value = serde_json::from_str(text).map_err(|e| err(format!("line {}, column {}", e.line(), e.column()), format!("invalid JSON: {}", without_serde_position(&e.to_string()))))?;
    let format = match forced {
        Some(f) => f,
        None => detect(&value),
    };
    let mut warnings = vec![];
    let infos = match format {
        Format::GraphJson => {
            let (key, arr) = graph_array(&value).map_err(|m| err("top level".into(), m))?;
            graph_records(arr, &key, None)
        }
        Format::PathInfo => path_info(&value),
        Format::Nix2container => {
            warnings.push(format!(
                "{file}: nix2container image JSON lists paths only: sizes (narSize) are taken as 0 and references as none, so size-aware layering and validation of the graph are not possible"
            ));
            nix2container(&value)
        }
        Format::GraphText => unreachable!("handled above"),
    }
    .map_err(|(loc, m)| err(loc, m))?;
    Ok(Parsed { format, records: Records::from_infos(infos), warnings })
}

/// The `path` of every record of a bare graph array, borrowed from the text and nothing else
/// parsed: enough to recognise an already recorded snapshot by its digest. `None` for any other
/// shape (the full parse then takes over).
pub fn quick_paths(text: &str) -> Option<Vec<&str>> {
    #[derive(serde::Deserialize)]
    struct PathOnly<'a> {
        #[serde(borrow)]
        path: &'a str,
    }
    if !text.trim_start().starts_with('[') {
        return None;
    }
    let records: Vec<PathOnly<'_>> = serde_json::from_str(text).ok()?;
    Some(records.into_iter().map(|r| r.path).collect())
}

/// One exportReferencesGraph / path-info record, for the typed fast path. Its strings are
/// borrowed from the text, so reading them allocates nothing. A string with an escape cannot be
/// borrowed (and is no valid store path or hash); the general path then reads the file.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord<'a> {
    path: &'a str,
    nar_size: u64,
    #[serde(default)]
    nar_hash: Option<&'a str>,
    #[serde(default)]
    closure_size: Option<u64>,
    #[serde(borrow)]
    references: Vec<&'a str>,
}

impl RawRecord<'_> {
    /// The records, each reference resolved to the position of the first record of its path
    /// (nearly all are some record's path) and parsed only where none is.
    fn into_records(raw: Vec<RawRecord<'_>>) -> Result<Records, hints_format::StorePathError> {
        let mut first: foldhash::HashMap<&str, u32> = foldhash::HashMap::default();
        first.reserve(raw.len());
        for (k, r) in raw.iter().enumerate() {
            first.entry(r.path).or_insert(k as u32);
        }
        let mut records = Records::with_capacity(raw.len());
        let mut references = vec![];
        for r in &raw {
            let path = StorePath::parse(r.path)?;
            for &text in &r.references {
                references.push(match first.get(text) {
                    Some(&k) => Ok(k),
                    None => Err(StorePath::parse(text)?),
                });
            }
            let record = PathRecord { path, nar_size: r.nar_size, nar_hash: r.nar_hash.map(str::to_owned), closure_size: r.closure_size };
            records.push(record, references.drain(..));
        }
        Ok(records)
    }
}

fn detect(v: &Value) -> Format {
    match v {
        Value::Array(_) => Format::GraphJson,
        Value::Object(m) if m.contains_key("info") && m.contains_key("version") => Format::PathInfo,
        Value::Object(m) if m.get("layers").is_some_and(Value::is_array) => Format::Nix2container,
        Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('/')) => Format::PathInfo,
        _ => Format::GraphJson,
    }
}

/// The bare array, or the one key of a `.attrs.json` object that holds a graph array.
fn graph_array(v: &Value) -> Result<(String, &Vec<Value>), String> {
    match v {
        Value::Array(a) => Ok((String::new(), a)),
        Value::Object(m) => {
            let candidates: Vec<(&String, &Vec<Value>)> = m.iter().filter_map(|(k, v)| v.as_array().map(|a| (k, a))).filter(|(_, a)| a.first().is_some_and(|x| x.get("path").is_some())).collect();
            match candidates.as_slice() {
                [(k, a)] => Ok(((*k).clone(), a)),
                [] => Err("expected an array of {path, narSize, references} records, or an object with one key holding such an array".into()),
                many => Err(format!("several keys hold closure graphs ({}); pass one graph per file", many.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "))),
            }
        }
        v => Err(format!("found {}; expected a closure graph: a JSON array of records or an object holding one", kind(v))),
    }
}

type Loc = (String, String);

fn loc(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}{rest}")
    }
}

fn store_path(s: &str, store_dir: Option<&str>, at: &str) -> Result<StorePath, Loc> {
    let parsed = match (s.starts_with('/'), store_dir) {
        (false, Some(dir)) => StorePath::from_base(dir, s),
        _ => StorePath::parse(s),
    };
    parsed.map_err(|e| (at.to_string(), format!("malformed store path: {e}")))
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a Value, Loc> {
    obj.get(key).ok_or_else(|| (at.to_string(), format!("missing field `{key}`")))
}

fn u64_field(obj: &Map<String, Value>, key: &str, at: &str, required: bool) -> Result<Option<u64>, Loc> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        None => Err((at.to_string(), format!("missing field `{key}` (expected a non-negative integer)"))),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| (format!("{at}.{key}"), format!("expected a non-negative integer, found {}", kind(v)))),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// One record of the graph / path-info shape. `path` comes from the record or from its key.
fn record(obj: &Map<String, Value>, path: StorePath, at: &str, store_dir: Option<&str>) -> Result<PathInfo, Loc> {
    let refs = match field(obj, "references", at)? {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(j, r)| {
                let rat = format!("{at}.references[{j}]");
                let s = r.as_str().ok_or_else(|| (rat.clone(), format!("expected a store path string, found {}", kind(r))))?;
                store_path(s, store_dir, &rat)
            })
            .collect::<Result<Vec<_>, _>>()?,
        v => return Err((format!("{at}.references"), format!("expected an array of store paths, found {}", kind(v)))),
    };
    let nar_hash = match obj.get("narHash") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err((format!("{at}.narHash"), format!("expected a string, found {}", kind(v)))),
    };
    let record = PathRecord { path, nar_size: u64_field(obj, "narSize", at, true)?.unwrap_or_default(), nar_hash, closure_size: u64_field(obj, "closureSize", at, false)? };
    Ok(PathInfo { record, references: refs })
}

fn graph_records(arr: &[Value], key: &str, store_dir: Option<&str>) -> Result<Vec<PathInfo>, Loc> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            let at = loc(key, &format!("[{i}]"));
            let obj = v.as_object().ok_or_else(|| (at.clone(), format!("expected an object, found {}", kind(v))))?;
            let p = field(obj, "path", &at)?;
            let s = p.as_str().ok_or_else(|| (format!("{at}.path"), format!("expected a string, found {}", kind(p))))?;
            let path = store_path(s, store_dir, &format!("{at}.path"))?;
            record(obj, path, &at, store_dir)
        })
        .collect()
}

fn path_info(v: &Value) -> Result<Vec<PathInfo>, Loc> {
    match v {
        Value::Array(a) => graph_records(a, "", None),
        Value::Object(m) if m.contains_key("info") => {
            let version = m.get("version").and_then(Value::as_u64);
            if version != Some(2) {
                return Err(("version".into(), format!("expected path-info JSON format version 2, found {:?}", m.get("version"))));
            }
            let dir = m.get("storeDir").and_then(Value::as_str).ok_or_else(|| ("storeDir".to_string(), "missing or not a string".to_string()))?;
            let info = m.get("info").and_then(Value::as_object).ok_or_else(|| ("info".to_string(), "expected an object keyed by store path base name".to_string()))?;
            keyed(info, Some(dir), "info")
        }
        Value::Object(m) => keyed(m, None, ""),
        _ => Err(("top level".into(), "expected nix path-info JSON".into())),
    }
}

fn keyed(m: &Map<String, Value>, store_dir: Option<&str>, prefix: &str) -> Result<Vec<PathInfo>, Loc> {
    m.iter()
        .map(|(k, v)| {
            let at = if prefix.is_empty() { format!("{k:?}") } else { format!("{prefix}.{k:?}") };
            let path = store_path(k, store_dir, &at)?;
            match v {
                Value::Null => Err((at, "the path is not valid in the store (null)".into())),
                Value::Object(obj) => record(obj, path, &at, store_dir),
                v => Err((at, format!("expected an object, found {}", kind(v)))),
            }
        })
        .collect()
}

fn nix2container(v: &Value) -> Result<Vec<PathInfo>, Loc> {
    let layers = v.get("layers").and_then(Value::as_array).ok_or_else(|| ("layers".to_string(), "expected an array".to_string()))?;
    let mut out = vec![];
    for (i, l) in layers.iter().enumerate() {
        let paths = l.get("paths").and_then(Value::as_array).ok_or_else(|| (format!("layers[{i}].paths"), "expected an array".to_string()))?;
        for (j, p) in paths.iter().enumerate() {
            let at = format!("layers[{i}].paths[{j}].path");
            let s = p.get("path").and_then(Value::as_str).ok_or_else(|| (at.clone(), "expected a store path string".to_string()))?;
            out.push(PathInfo::new(store_path(s, None, &at)?, 0, vec![]));
        }
    }
    Ok(out)
}

/// Classic exportReferencesGraph: for each path, the path, its deriver (maybe empty), a count,
/// then that many references. Sizes are unknown (0).
fn parse_text(text: &str) -> Result<Parsed, (usize, String)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    let mut infos = vec![];
    let path_at = |line: usize, s: &str| StorePath::parse(s).map_err(|e| (line, format!("malformed store path: {e}")));
    while let Some((n, l)) = lines.next() {
        if l.is_empty() && lines.peek().is_none() {
            break;
        }
        let path = path_at(n, l)?;
        let (dn, _deriver) = lines.next().ok_or((n + 1, "unexpected end of file: expected the deriver line".to_string()))?;
        let (cn, count) = lines.next().ok_or((dn + 1, "unexpected end of file: expected the reference count".to_string()))?;
        let count: usize = count.trim().parse().map_err(|_| (cn, format!("expected a reference count, found {count:?}")))?;
        // The count is the input's word, not a size to allocate (found by fuzzing).
        let mut references = Vec::with_capacity(count.min(1024));
        for k in 0..count {
            let (rn, r) = lines.next().ok_or((cn + k + 1, format!("unexpected end of file: expected reference {} of {count}", k + 1)))?;
            references.push(path_at(rn, r)?);
        }
        infos.push(PathInfo::new(path, 0, references));
    }
    let warnings = vec!["classic exportReferencesGraph text has no sizes: narSize is taken as 0".to_string()];
    Ok(Parsed { format: Format::GraphText, records: Records::from_infos(infos), warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a-1";
    const B: &str = "/nix/store/0c5b8vw40dy178xlpddw65q9gf1h2186-b-2";

    fn paths(p: &Parsed) -> Vec<(&str, u64, usize)> {
        let mut v: Vec<_> = (0..p.records.len()).map(|k| (p.records.records()[k].path.name(), p.records.records()[k].nar_size, p.records.listed(k).len())).collect();
        v.sort();
        v
    }

    #[test]
    fn every_format() {
        let arr = format!(r#"[{{"path":"{A}","narSize":5,"narHash":"sha256:x","references":["{A}","{B}"],"closureSize":9}},{{"path":"{B}","narSize":4,"references":[]}}]"#);
        let want = vec![("a-1", 5, 2), ("b-2", 4, 0)];
        let p = parse("f", &arr, None).unwrap();
        assert_eq!((p.format, paths(&p)), (Format::GraphJson, want.clone()));
        let attrs = format!(r#"{{"name":"x","graph":{arr},"other":[1]}}"#);
        assert_eq!(paths(&parse("f", &attrs, None).unwrap()), want);
        let keyed = format!(r#"{{"{A}":{{"narSize":5,"references":["{A}","{B}"]}},"{B}":{{"narSize":4,"references":[]}}}}"#);
        let p = parse("f", &keyed, None).unwrap();
        assert_eq!((p.format, paths(&p)), (Format::PathInfo, want.clone()));
        let a = &A[11..];
        let b = &B[11..];
        let v2 = format!(r#"{{"version":2,"storeDir":"/nix/store","info":{{"{a}":{{"narSize":5,"narHash":"sha256-AAA=","references":["{a}","{b}"]}},"{b}":{{"narSize":4,"references":[]}}}}}}"#);
        let p = parse("f", &v2, None).unwrap();
        assert_eq!((p.format, paths(&p)), (Format::PathInfo, want));
        let text = format!("{A}\n\n2\n{A}\n{B}\n{B}\n/nix/store/deriver.drv\n0\n");
        let p = parse("f", &text, None).unwrap();
        assert_eq!((p.format, paths(&p)), (Format::GraphText, vec![("a-1", 0, 2), ("b-2", 0, 0)]));
        let n2c = format!(r#"{{"version":1,"layers":[{{"digest":"sha256:1","paths":[{{"path":"{A}"}},{{"path":"{B}"}}]}}]}}"#);
        let p = parse("f", &n2c, None).unwrap();
        assert_eq!(p.format, Format::Nix2container);
        assert!(p.warnings[0].contains("sizes"));
    }

    #[test]
    fn a_huge_reference_count_is_an_error_not_an_allocation() {
        let text = format!("{A}\n\n55555051453\n{B}\n");
        let e = parse("g.txt", &text, Some(Format::GraphText)).unwrap_err().to_string();
        assert!(e.contains("g.txt") && e.contains("line 5") && e.contains("expected reference 2 of 55555051453"), "{e}");
    }

    #[test]
    fn errors_name_the_location() {
        let e = parse("g.json", "[{\"path\": 1", None).unwrap_err();
        assert_eq!((e.file.as_str(), e.location.as_str()), ("g.json", "line 1, column 11"), "{e}");
        let e = parse("g.json", &format!(r#"[{{"path":"{A}","narSize":"5","references":[]}}]"#), None).unwrap_err();
        assert_eq!(e.location, "[0].narSize");
        assert!(e.message.contains("non-negative integer") && e.message.contains("string"), "{e}");
        let e = parse("g.json", r#"[{"path":"/nix/store/bad-x","narSize":1,"references":[]}]"#, None).unwrap_err();
        assert_eq!(e.location, "[0].path");
        let e = parse("g.json", &format!(r#"{{"{A}":null}}"#), None).unwrap_err();
        assert!(e.message.contains("not valid"), "{e}");
        let e = parse("g.txt", &format!("{A}\n\nx\n"), None).unwrap_err();
        assert_eq!(e.location, "line 3");
        let e = parse("g.txt", &format!("{A}\n\n2\n{B}\n"), None).unwrap_err();
        assert!(e.location == "line 5" && e.message.contains("end of file"), "{e}");
        assert!(parse("e", "  ", Some(Format::GraphJson)).unwrap_err().message.contains("empty"));
    }
}
