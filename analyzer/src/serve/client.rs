//! The client side of `hints serve`: `hints scan --server` pushes snapshots, `hints emit
//! --server` fetches the hint file. The token comes from `HINTS_TOKEN`.
//!
//! A batch is pushed [`IN_FLIGHT`] snapshots at a time, so the server parses them in parallel.
//! A push is idempotent (the same snapshot again is `unchanged`), so a push that meets a lost
//! connection, a timeout, 429 or a 5xx is sent again, up to [`ATTEMPTS`] times with doubling
//! waits, and then reported. The server stores a snapshot in one transaction: a failed push
//! leaves nothing behind.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::formats::Format;
use crate::ingest::Job;
use crate::scan::{self, ScanError};

/// Pushes in flight at once.
pub const IN_FLIGHT: usize = 8;
/// Tries per request.
pub const ATTEMPTS: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error: the request itself is wrong, or not allowed.
    #[error("{url}: {status}: {message}")]
    Refused { url: String, status: u16, message: String },
    /// No answer, or only errors worth retrying, every time.
    #[error("{url}: {message} (after {ATTEMPTS} attempts)")]
    Unreachable { url: String, message: String },
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("{0}")]
    Usage(String),
    /// Reporting an answer (e.g. writing to a closed pipe).
    #[error("reporting a pushed snapshot: {0}")]
    Report(std::io::Error),
}

impl ClientError {
    /// Whether the error is in what the user gave (exit 2): the server found the input bad.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ClientError::Refused { status, .. } => matches!(status, 400 | 404 | 413 | 415),
            ClientError::Scan(e) => e.is_bad_input(),
            ClientError::Usage(_) => true,
            ClientError::Unreachable { .. } | ClientError::Report(_) => false,
        }
    }
}

/// A push of a batch that failed: which job, and how many of the batch were pushed.
#[derive(Debug)]
pub struct PushFailed {
    pub index: usize,
    pub pushed: usize,
    pub error: ClientError,
}

/// A server, one of its projects, and the token to use there.
pub struct Client {
    base: String,
    project: String,
    token: String,
    agent: ureq::Agent,
}

/// What to ask a hint file for, as `hints emit` takes it.
#[derive(Debug, Clone)]
pub struct HintRequest<'a> {
    pub max_layers: u32,
    pub reserve: u32,
    pub range: Option<&'a str>,
    pub images: Option<&'a [String]>,
    pub min_gain: f64,
    pub registry_weight: f64,
}

impl Client {
    /// A client of project `project` at `base` (`http://host:port` or `https://…`), with the
    /// token in `HINTS_TOKEN`.
    pub fn new(base: &str, project: &str) -> Result<Self, ClientError> {
        let token = std::env::var("HINTS_TOKEN").map_err(|_| ClientError::Usage("--server needs a token in HINTS_TOKEN (hints token create prints one)".into()))?;
        Ok(Self::with_token(base, project, token))
    }

    /// A client with the token given.
    pub fn with_token(base: &str, project: &str, token: String) -> Self {
        let tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::NativeTls).build();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).timeout_global(Some(Duration::from_secs(900))).build().into();
        Client { base: base.trim_end_matches('/').to_string(), project: project.to_string(), token, agent }
    }

    /// Pushes one snapshot; returns the server's answer (image, revision, paths, result).
    pub fn push(&self, job: &Job, format: Option<Format>) -> Result<serde_json::Value, ClientError> {
        let texts = job.sources.load()?;
        // Several texts are one closure: sent as one `nix path-info --json` array.
        let (text, format) = match &texts[..] {
            [(_, text)] => (text.clone(), format),
            _ => (merged(&texts, format)?, Some(Format::PathInfo)),
        };
        let body = gzip(text.as_bytes());
        let r = &job.revision;
        let mut query = vec![("image", job.image.as_str()), ("revision", &r.label), ("time", &r.time)];
        query.extend(r.commit.as_deref().map(|c| ("commit", c)));
        query.extend(r.branch.as_deref().map(|b| ("branch", b)));
        let format_name = format.map(|f| f.to_string());
        query.extend(format_name.as_deref().map(|f| ("format", f)));
        let answer = self.send("snapshots", &query, Some(("gzip", &body)))?;
        serde_json::from_str(&answer).map_err(|e| ClientError::Unreachable { url: self.url("snapshots"), message: format!("an answer that is not JSON: {e}") })
    }

    /// Pushes `jobs` with up to [`IN_FLIGHT`] requests in flight (the server parses them in
    /// parallel), calling `report` with each answer in the jobs' order. After a failure no new
    /// push starts; the failure comes with the failed job's index and how many jobs were
    /// pushed (those before it, and any after it that were in flight and succeeded).
    pub fn push_all(&self, jobs: &[Job], format: Option<Format>, mut report: impl FnMut(&Job, serde_json::Value) -> Result<(), ClientError>) -> Result<(), PushFailed> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (sender, answers) = mpsc::channel::<(usize, Result<serde_json::Value, ClientError>)>();
        std::thread::scope(|s| {
            for _ in 0..IN_FLIGHT.min(jobs.len()) {
                let sender = sender.clone();
                let (next, stop) = (&next, &stop);
                s.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        let Some(job) = jobs.get(k) else { break };
                        let answer = self.push(job, format);
                        stop.fetch_or(answer.is_err(), Ordering::SeqCst);
                        if sender.send((k, answer)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            // Answers arrive in any order; they are reported in the jobs' order.
            let mut waiting = std::collections::BTreeMap::new();
            let (mut reported, mut pushed, mut failed) = (0, 0, None);
            for (k, answer) in answers {
                pushed += usize::from(answer.is_ok());
                waiting.insert(k, answer);
                while failed.is_none() {
                    let Some(answer) = waiting.remove(&reported) else { break };
                    match answer.and_then(|a| report(&jobs[reported], a)) {
                        Ok(()) => reported += 1,
                        Err(error) => {
                            stop.store(true, Ordering::SeqCst);
                            failed = Some((reported, error));
                        }
                    }
                }
            }
            match failed.or_else(|| waiting.into_iter().find_map(|(k, a)| a.err().map(|e| (k, e)))) {
                Some((index, error)) => Err(PushFailed { index, pushed, error }),
                None => Ok(()),
            }
        })
    }

    /// The hint file learned on the server, with hysteresis against `previous` (its text) when
    /// given.
    pub fn hint_file(&self, request: &HintRequest<'_>, previous: Option<&str>) -> Result<String, ClientError> {
        let (max_layers, reserve, min_gain, weight) = (request.max_layers.to_string(), request.reserve.to_string(), request.min_gain.to_string(), request.registry_weight.to_string());
        let mut query = vec![("max_layers", max_layers.as_str()), ("reserve", &reserve), ("min_gain", &min_gain), ("registry_weight", &weight)];
        query.extend(request.range.map(|r| ("range", r)));
        let images = request.images.map(|i| i.join(","));
        query.extend(images.as_deref().map(|i| ("images", i)));
        self.send("hints", &query, previous.map(|text| ("identity", text.as_bytes())))
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}/v1/projects/{}/{endpoint}", self.base, self.project)
    }

    /// Sends a request (a POST with `body`, (encoding, bytes), else a GET), retrying what is
    /// worth retrying; returns the body of a 2xx answer.
    fn send(&self, endpoint: &str, query: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Result<String, ClientError> {
        let url = self.url(endpoint);
        let auth = format!("Bearer {}", self.token);
        let mut wait = FIRST_WAIT;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(wait);
                wait *= 2;
            }
            let sent = match body {
                None => query.iter().fold(self.agent.get(&url), |r, (k, v)| r.query(*k, *v)).header("Authorization", &auth).call(),
                Some((encoding, bytes)) => query.iter().fold(self.agent.post(&url), |r, (k, v)| r.query(*k, *v)).header("Authorization", &auth).header("Content-Encoding", encoding).send(bytes),
            };
            match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let text = response.body_mut().with_config().limit(1 << 30).read_to_string().unwrap_or_default();
                    if response.status().is_success() {
                        return Ok(text);
                    }
                    let message = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_string)).unwrap_or(text);
                    if !matches!(status, 408 | 429 | 500..=599) {
                        return Err(ClientError::Refused { url, status, message });
                    }
                    last = format!("{status}: {message}");
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(ClientError::Unreachable { url, message: last })
    }
}

/// Several texts of one closure as one `nix path-info --json` array.
fn merged(texts: &[(String, String)], format: Option<Format>) -> Result<String, ClientError> {
    let read = scan::read_closure(texts, format)?;
    if !read.complete {
        return Err(ClientError::Usage("several files without sizes or references cannot be pushed as one snapshot; push them as one file".into()));
    }
    let c = &read.closure;
    let records: Vec<serde_json::Value> = (0..c.len())
        .map(|i| {
            let info = c.record(i);
            let mut record = serde_json::json!({"path": info.path.as_str(), "narSize": info.nar_size, "references": c.refs(i).iter().map(|&r| c.path(r as usize).as_str()).collect::<Vec<_>>()});
            if let Some(hash) = &info.nar_hash {
                record["narHash"] = hash.as_str().into();
            }
            record
        })
        .collect();
    Ok(serde_json::Value::Array(records).to_string())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}
