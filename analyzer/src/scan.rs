//! Where closures come from: files, a live Nix store, a git repository's history, a dataset
//! directory; and which revision they belong to.
//!
//! - Files: any format of [`crate::formats`]; several files for one image are one closure.
//! - `nix path-info --json --recursive INSTALLABLE`, run with the real `nix`; a flake's image
//!   outputs are found by [`crate::flake`].
//! - The revision of the current git work tree (HEAD commit, commit time, branch, dirty), read
//!   with git2; `--rev`/`--time` override it and are required outside a repository.
//! - `--git-history PATHSPEC`: every commit in a range, oldest first, and every file matching
//!   the pathspec *as it stood at that commit*, read from the object database without checkout.
//!   The image is the file's stem (`closures/api.json` → `api`).
//! - A dataset directory as `deb2nix.py` writes it: `manifest.json` + `graphs/<image>/<rev>.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use layering_core::{Closure, ClosureError, Records};

use crate::formats::{self, Format, InputError};
use crate::store::paths_digest;
use crate::store::Revision;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{file}: {error}")]
    Closure { file: String, error: ClosureError },
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: not text (UTF-8); expected a closure graph, a hint file or JSON")]
    NotText { file: String },
    #[error("{file}: no such file")]
    Missing { file: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("`nix {command}` failed: {message}")]
    Nix { command: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {size} bytes is more than this machine can parse ({limit} bytes, a quarter of the memory available; set HINTS_MAX_INPUT_BYTES to change it)")]
    TooLarge { file: String, size: u64, limit: u64 },
}

impl ScanError {
    /// Whether the error is in what the user gave (exit 2; HTTP 400 from `hints serve`), not
    /// in the machine or a tool.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ScanError::Input(_) | ScanError::Closure { .. } | ScanError::Usage(_) | ScanError::TooLarge { .. } | ScanError::NotText { .. } | ScanError::Missing { .. })
    }
}

/// The largest input file read: `HINTS_MAX_INPUT_BYTES`, else a quarter of the memory available
/// (parsing takes about three times the file), else 4 GiB where the system does not say.
pub fn max_input_bytes() -> u64 {
    if let Some(v) = std::env::var("HINTS_MAX_INPUT_BYTES").ok().and_then(|v| v.parse().ok()) {
        return v;
    }
    let available_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| m.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse::<u64>().ok());
    available_kb.map_or(4 << 30, |kb| kb * 1024 / 4)
}

/// A closure read from one or more sources, ready to store.
#[derive(Debug)]
pub struct ReadClosure {
    pub closure: Closure,
    /// False when a format had no sizes or references (nix2container, classic text).
    pub complete: bool,
    pub warnings: Vec<String>,
}

/// The snapshot digest and path count of sources in the common bare-array shape, from the
/// paths alone; `None` when any source has another shape.
pub fn quick_digest(sources: &[(String, String)]) -> Option<(usize, [u8; 32])> {
    let mut paths = vec![];
    for (_, text) in sources {
        paths.extend(formats::quick_paths(text)?);
    }
    let digest = paths_digest(paths.iter().copied());
    paths.sort_unstable();
    paths.dedup();
    Some((paths.len(), digest))
}

/// Parses and validates the texts of one image's closure.
pub fn read_closure(sources: &[(String, String)], format: Option<Format>) -> Result<ReadClosure, ScanError> {
    let mut parts = vec![];
    let mut warnings = vec![];
    let mut complete = true;
    for (name, text) in sources {
        let parsed = formats::parse(name, text, format)?;
        complete &= matches!(parsed.format, Format::GraphJson | Format::PathInfo);
        warnings.extend(parsed.warnings);
        parts.push(parsed.records);
    }
    let file = sources.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    let closure = Closure::from_records(Records::concat(parts)).map_err(|error| ScanError::Closure { file, error })?;
    Ok(ReadClosure { closure, complete, warnings })
}

/// Reads a file, `-` being standard input.
pub fn read_text(path: &str) -> Result<String, ScanError> {
    let io = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::InvalidData => ScanError::NotText { file: path.to_string() },
        std::io::ErrorKind::NotFound => ScanError::Missing { file: path.to_string() },
        _ => ScanError::Io { file: path.to_string(), error },
    };
    if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(io)?;
        Ok(s)
    } else {
        let size = std::fs::metadata(path).map_err(io)?.len();
        let limit = max_input_bytes();
        if size > limit {
            return Err(ScanError::TooLarge { file: path.to_string(), size, limit });
        }
        std::fs::read_to_string(path).map_err(io)
    }
}

/// Runs the real `nix path-info --json --recursive` on an installable.
pub fn nix_path_info(installable: &str) -> Result<String, ScanError> {
    run_nix(&["path-info", "--json", "--recursive", installable])
}

/// Runs the real `nix` (with the `nix-command` and `flakes` features) and returns what it
/// printed.
pub fn run_nix(args: &[&str]) -> Result<String, ScanError> {
    let err = |message: String| ScanError::Nix { command: args.join(" "), message };
    let features = ["--extra-experimental-features", "nix-command", "--extra-experimental-features", "flakes"];
    let out = Command::new("nix").args(features).args(args).output().map_err(|e| err(format!("cannot run nix: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    String::from_utf8(out.stdout).map_err(|e| err(format!("output is not UTF-8: {e}")))
}

fn rfc3339(seconds: i64, offset_minutes: i32) -> String {
    let tz = FixedOffset::east_opt(offset_minutes * 60).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    tz.timestamp_opt(seconds, 0).single().map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// Checks and normalises an RFC 3339 time given on the command line.
pub fn parse_time(s: &str) -> Result<String, ScanError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc).to_rfc3339()).map_err(|e| ScanError::Usage(format!("--time {s:?}: expected an RFC 3339 time such as 2025-01-06T00:00:00Z ({e})")))
}

/// The revision of the git work tree containing `dir`, if any.
pub fn git_revision(dir: &Path) -> Result<Option<Revision>, ScanError> {
    let repo = match git2::Repository::discover(dir) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let head = match repo.head() {
        Ok(h) => h,
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let commit = head.peel_to_commit()?;
    let branch = head.is_branch().then(|| head.shorthand().map(str::to_string)).flatten();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let dirty = !repo.statuses(Some(&mut opts))?.is_empty();
    let id = commit.id().to_string();
    Ok(Some(Revision { label: id.clone(), commit: Some(id), time: rfc3339(commit.time().seconds(), commit.time().offset_minutes()), branch, dirty }))
}

/// One commit's matching files.
pub struct HistoryStep {
    pub revision: Revision,
    /// (image name, path in the repository, contents).
    pub files: Vec<(String, String, String)>,
}

/// Walks `range` (`A..B`, or everything reachable from HEAD) oldest first, collecting files that
/// match `pathspec` from each commit's tree.
pub fn git_history(dir: &Path, pathspec: &str, range: Option<&str>) -> Result<Vec<HistoryStep>, ScanError> {
    let repo = git2::Repository::discover(dir)?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME | git2::Sort::REVERSE)?;
    match range {
        Some(r) if r.contains("..") => walk.push_range(r)?,
        Some(r) => walk.push(repo.revparse_single(r)?.peel_to_commit()?.id())?,
        None => walk.push_head()?,
    }
    let spec = git2::Pathspec::new([pathspec])?;
    let mut steps = vec![];
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let matches = spec.match_tree(&tree, git2::PathspecFlags::default())?;
        let mut files = vec![];
        for entry in matches.entries() {
            let rel = String::from_utf8_lossy(entry).to_string();
            let object = tree.get_path(Path::new(&rel))?.to_object(&repo)?;
            let Some(blob) = object.as_blob() else { continue };
            let text = String::from_utf8(blob.content().to_vec()).map_err(|e| ScanError::Usage(format!("{rel} at {}: not UTF-8 ({e})", commit.id())))?;
            let image = Path::new(&rel).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or(rel.clone());
            files.push((image, rel, text));
        }
        let id = commit.id().to_string();
        steps.push(HistoryStep {
            revision: Revision { label: id.clone(), commit: Some(id), time: rfc3339(commit.time().seconds(), commit.time().offset_minutes()), branch: None, dirty: false },
            files,
        });
    }
    Ok(steps)
}

/// A dataset directory (`manifest.json` + `graphs/<image>/<index>.json`).
pub struct Dataset {
    pub revisions: Vec<(usize, Revision)>,
    pub images: Vec<String>,
    pub dir: PathBuf,
}

impl Dataset {
    pub fn open(dir: &Path) -> Result<Self, ScanError> {
        let file = dir.join("manifest.json");
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|error| ScanError::Io { file: name.clone(), error })?;
        let bad = |location: &str, message: &str| ScanError::Input(InputError { file: name.clone(), location: location.into(), message: message.into() });
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&format!("line {}, column {}", e.line(), e.column()), &format!("invalid JSON: {e}")))?;
        let mut revisions = vec![];
        for (k, r) in v["revisions"].as_array().ok_or_else(|| bad("revisions", "expected an array"))?.iter().enumerate() {
            let at = format!("revisions[{k}]");
            let s = |f: &str| r[f].as_str().map(str::to_string).ok_or_else(|| bad(&format!("{at}.{f}"), "expected a string"));
            let index = r["index"].as_u64().ok_or_else(|| bad(&format!("{at}.index"), "expected an integer"))? as usize;
            let commit = s("commit")?;
            let label = r["label"].as_str().map(str::to_string);
            revisions.push((index, label, Revision { label: commit.clone(), commit: Some(commit), time: parse_time(&s("time")?)?, branch: None, dirty: false }));
        }
        // The manifest's labels (`trixie`, `forky`) name the revisions when every revision has
        // one and no two share it; otherwise the commit ids do.
        let labels: std::collections::HashSet<&str> = revisions.iter().filter_map(|(_, l, _)| l.as_deref()).collect();
        let use_labels = labels.len() == revisions.len();
        let revisions = revisions
            .into_iter()
            .map(|(index, label, r)| match label.filter(|_| use_labels) {
                Some(label) => (index, Revision { label, ..r }),
                None => (index, r),
            })
            .collect();
        let images = v["images"]
            .as_array()
            .ok_or_else(|| bad("images", "expected an array"))?
            .iter()
            .enumerate()
            .map(|(k, i)| i["name"].as_str().map(str::to_string).ok_or_else(|| bad(&format!("images[{k}].name"), "expected a string")))
            .collect::<Result<_, _>>()?;
        Ok(Dataset { revisions, images, dir: dir.to_path_buf() })
    }

    pub fn graph_file(&self, image: &str, index: usize) -> PathBuf {
        self.dir.join("graphs").join(image).join(format!("{index}.json"))
    }
}
