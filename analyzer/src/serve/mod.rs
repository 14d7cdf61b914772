//! The analyzer as a service: `hints serve`.
//!
//! # Objective
//! CI pipelines in many repositories push the closures they build, a periodic job asks for the
//! hint file, and people look at what the history shows, without a shell on the machine that
//! holds the database. The server stands between every client and the data: each request names
//! a project and carries a token that allows it.
//!
//! # Definitions
//! - A *project* is a namespace of images ([`auth::valid_project`]). Its image `api` is stored
//!   as `PROJECT/api`, so one database (either backend) holds many projects, and a project's
//!   hint file is learned from its own images only.
//! - A *token* ([`auth`]) belongs to one project and has one scope: `read`, `push` or `admin`.
//!
//! # API (v1; every endpoint but `/healthz` needs `Authorization: Bearer TOKEN`)
//! - `POST /v1/projects/P/snapshots?image=I&revision=R&time=T[&commit=C][&branch=B][&format=F]`:
//!   the body is one closure in any input format `hints scan` reads, plain or with
//!   `Content-Encoding: gzip` or `zstd` (push). Answers what `hints scan --json` says of it.
//! - `GET /v1/projects/P/snapshots`: every snapshot of the project, as `hints ls --json` lists
//!   them (read).
//! - `GET /v1/projects/P/hints[?max_layers=100&reserve=1&range=A..B&images=a,b&min_gain=0.02&
//!   registry_weight=1]`: the hint file `hints emit --no-previous` writes from the project's
//!   history (read); `POST` with the current hint file as the body learns with hysteresis, as
//!   `hints emit --previous` does. Its `ETag` is a digest of the database's summary, the
//!   parameters and the body; `If-None-Match` answers 304.
//! - `POST /v1/projects/P/eval?range=A..B[&max_layers=N&reserve=N]`: the body is a hint file;
//!   answers the replay of every strategy, as `hints eval --json` prints it (read).
//! - `POST /v1/projects/P/explain/NAME[?range=A..B&image=I&rev=R]`: the body is a hint file;
//!   answers why NAME (a name or a store path) is where it is, as `hints explain --json` (read).
//! - `GET /healthz`; `GET /metrics` (Prometheus text; an `admin` token of any project).
//!
//! Errors are JSON `{"error": "..."}` with the codes people expect: 400 with the CLI's located
//! message, 401 without a known token, 403 for another project or a narrower scope, 404, 408
//! past the request time, 413 past the body size (before or after decompression), 429 while
//! [`MAX_EMITS`] hint files are being computed (with `Retry-After`), 500.
//!
//! # Algorithm
//! - Database work runs on tokio's blocking pool, so an emit never holds up other requests.
//!   Pushes are parsed in parallel, then share one writer connection, one at a time (the store
//!   makes writers take turns in any case). Every other request opens its own connection and reads in one transaction.
//! - A hint file is cached under its ETag: a push changes the database's summary, and so the
//!   key; an unchanged history is emitted once per set of parameters. The newest
//!   [`CACHED_HINT_FILES`] are kept.
//! - SIGTERM or Ctrl-C stops accepting connections and lets the requests in flight finish.
//! - Every request is logged through `tracing` with its method, path, status and time.

pub mod auth;
pub mod client;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use layering_core::Budget;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::history::{range_positions, History};
use crate::ingest::{self, IngestError, Job, Sources};
use crate::mine::{self, EmitOptions};
use crate::replay::{self, Replayed};
use crate::store::{Location, Outcome, Revision, Store, StoreError};
use auth::{AuthError, Scope};
use hints_format::HintFile;

/// Hint files computed at once; a request for another uncached one is answered 429.
pub const MAX_EMITS: usize = 2;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: Location,
    pub listen: SocketAddr,
    /// The largest request body, and the largest decompressed closure.
    pub max_body: usize,
    /// The longest a request may take.
    pub timeout: Duration,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A refused or failed request.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!("{}", self.message);
        }
        let retry = (self.status == StatusCode::TOO_MANY_REQUESTS).then_some([(header::RETRY_AFTER, "5")]);
        (self.status, retry, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// Hint files kept for their ETags.
pub const CACHED_HINT_FILES: usize = 32;

/// The last [`CACHED_HINT_FILES`] hint files emitted, by ETag. Every push makes a new key, so
/// older entries are dropped rather than kept for ever.
#[derive(Default)]
struct HintCache(std::collections::VecDeque<(String, Arc<String>)>);

impl HintCache {
    fn get(&self, etag: &str) -> Option<Arc<String>> {
        self.0.iter().find(|(k, _)| k == etag).map(|(_, v)| v.clone())
    }

    fn insert(&mut self, etag: String, file: Arc<String>) {
        if self.get(&etag).is_none() {
            self.0.push_back((etag, file));
        }
        while self.0.len() > CACHED_HINT_FILES {
            self.0.pop_front();
        }
    }
}

/// One of the [`MAX_EMITS`] places to compute a hint file, given back when dropped.
struct EmitSlot<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> EmitSlot<'a> {
    fn take(emitting: &'a std::sync::atomic::AtomicUsize) -> ApiResult<Self> {
        use std::sync::atomic::Ordering::SeqCst;
        emitting
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_EMITS).then_some(n + 1))
            .map_err(|_| ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("{MAX_EMITS} hint files are being computed; retry shortly")))?;
        Ok(EmitSlot(emitting))
    }
}

impl Drop for EmitSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = if e.is_bad_input() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
        ApiError::new(status, e.to_string())
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let status = if e.is_bad_input() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
        ApiError::new(status, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match &e {
            AuthError::Missing | AuthError::Unknown => StatusCode::UNAUTHORIZED,
            AuthError::OtherProject(_) | AuthError::Scope { .. } => StatusCode::FORBIDDEN,
            AuthError::Store(inner) => return ApiError::from(StoreError::Damaged { file: "tokens".into(), what: inner.to_string() }),
            AuthError::Randomness(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

/// What `/metrics` reports.
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    snapshots: Counter,
    bytes: Counter,
    emit_seconds: Histogram,
}

impl Metrics {
    fn new() -> Self {
        let (requests, snapshots, bytes) = (Family::default(), Counter::default(), Counter::default());
        let emit_seconds = Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0]);
        let mut registry = Registry::with_prefix("hints");
        registry.register("requests", "Requests answered, by endpoint and status", requests.clone());
        registry.register("snapshots_ingested", "Snapshots pushed and stored (added or replaced)", snapshots.clone());
        registry.register("ingested_bytes", "Bytes of pushed closures, as sent", bytes.clone());
        registry.register("emit_seconds", "Time to emit a hint file that was not cached", emit_seconds.clone());
        Metrics { registry, requests, snapshots, bytes, emit_seconds }
    }

    fn count(&self, endpoint: &'static str, status: StatusCode) {
        self.requests.get_or_create(&RequestLabels { endpoint, status: status.as_u16() }).inc();
    }
}

struct AppState {
    db: Location,
    max_body: usize,
    writer: Mutex<Store>,
    /// Emitted hint files by ETag.
    hint_files: Mutex<HintCache>,
    /// Hint files being computed.
    emitting: std::sync::atomic::AtomicUsize,
    /// The tokens, as last read: read again when a request brings one not among them (a token
    /// created since).
    tokens: std::sync::RwLock<auth::Tokens>,
    metrics: Metrics,
}

type Shared = Arc<AppState>;

/// Runs the server until SIGTERM or Ctrl-C; `ready` gets the bound address (the port, when
/// `listen` asked for port 0) before the first request is accepted.
pub fn serve(options: Options, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let writer = Store::open(&options.db)?;
    let tokens = std::sync::RwLock::new(writer.tokens()?);
    let state = Arc::new(AppState {
        db: options.db.clone(),
        max_body: options.max_body,
        writer: Mutex::new(writer),
        hint_files: Mutex::default(),
        emitting: Default::default(),
        tokens,
        metrics: Metrics::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        ready(listener.local_addr()?);
        axum::serve(listener, router(state.clone(), &options)).with_graceful_shutdown(shutdown()).await?;
        Ok(())
    });
    // The state goes last, outside the runtime: a PostgreSQL connection closes by blocking on
    // its own runtime, which tokio forbids inside another.
    drop(runtime);
    drop(state);
    served
}

fn router(state: Shared, options: &Options) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/projects/{project}/snapshots", post(push).get(list))
        .route("/v1/projects/{project}/hints", get(hint_file).post(hint_file))
        .route("/v1/projects/{project}/eval", post(eval))
        .route("/v1/projects/{project}/explain/{name}", post(explain))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint (see the README's API section)") })
        // A body declared larger than the limit is refused before it is read; one that runs
        // past it while streaming, as it passes.
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(options.max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, options.timeout))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One `info` event per request, with its method, path, status and time as fields (`-v` or
/// `RUST_LOG=info` shows them).
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(%method, path, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    response
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => drop(s.recv().await),
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// The status an answer goes out with, for the request counter.
trait Answer {
    fn status(&self) -> StatusCode;
}

impl Answer for Response {
    fn status(&self) -> StatusCode {
        Response::status(self)
    }
}

impl<T> Answer for Json<T> {
    fn status(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// Runs `work` on the blocking pool, counting the answer's status under `endpoint`.
async fn blocking<T: Answer + Send + 'static>(state: &Shared, endpoint: &'static str, work: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    let out = tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the request's task failed: {e}"))));
    state.metrics.count(endpoint, out.as_ref().map_or_else(|e| e.status, Answer::status));
    out
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// Checks the request's token for `project` (any project when `None`).
fn check(state: &AppState, headers: &HeaderMap, project: Option<&str>, needed: Scope) -> ApiResult<()> {
    if let Some(p) = project.filter(|p| !auth::valid_project(p)) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("`{p}` is not a project name (1 to 64 of a-z 0-9 . _ -)")));
    }
    let token = bearer(headers);
    let known = auth::authorize(&state.tokens.read().unwrap_or_else(|p| p.into_inner()), token.as_deref(), project, needed);
    match known {
        Err(AuthError::Unknown) => {
            let tokens = Store::open_existing(&state.db)?.tokens()?;
            let again = auth::authorize(&tokens, token.as_deref(), project, needed);
            *state.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
            Ok(again?)
        }
        other => Ok(other?),
    }
}

/// Checks the request's token for `project`, then opens a reading connection.
fn reader(state: &AppState, headers: &HeaderMap, project: &str, needed: Scope) -> ApiResult<Store> {
    check(state, headers, Some(project), needed)?;
    Ok(Store::open_existing(&state.db)?)
}

#[derive(Deserialize)]
struct PushQuery {
    image: String,
    revision: String,
    time: String,
    commit: Option<String>,
    branch: Option<String>,
    format: Option<String>,
}

async fn push(State(state): State<Shared>, Path(project): Path<String>, Query(q): Query<PushQuery>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let s = state.clone();
    blocking(&state, "push", move || {
        check(&s, &headers, Some(&project), Scope::Push)?;
        let text = decode(&headers, &body, s.max_body)?;
        let format = q.format.as_deref().map(str::parse).transpose().map_err(|e: String| ApiError::bad(format!("format: {e}")))?;
        let time = crate::scan::parse_time(&q.time).map_err(|e| ApiError::bad(format!("time: {e}")))?;
        let revision = Revision { label: q.revision.clone(), commit: q.commit, time, branch: q.branch, dirty: false };
        let source = format!("{}@{}", q.image, q.revision);
        let job = Job { image: format!("{project}/{}", q.image), revision, sources: Sources::Read(vec![(source, text)]) };
        // Parsed before taking the writer: pushes parse in parallel and store one at a time.
        let parsed = ingest::parse_job(&job, format)?;
        let stored = ingest::store_parsed(&mut s.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()), &job, parsed)?;
        s.metrics.bytes.inc_by(body.len() as u64);
        if stored.outcome != Outcome::Unchanged {
            s.metrics.snapshots.inc();
        }
        Ok(Json(serde_json::json!({"image": q.image, "revision": q.revision, "paths": stored.paths, "result": stored.outcome})))
    })
    .await
}

/// The body as text, decompressed as its `Content-Encoding` says, at most `limit` bytes.
fn decode(headers: &HeaderMap, body: &[u8], limit: usize) -> ApiResult<String> {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let reader: Box<dyn Read + '_> = match encoding {
        "identity" => Box::new(body),
        "gzip" => Box::new(flate2::read::GzDecoder::new(body)),
        "zstd" => Box::new(zstd::Decoder::new(body).map_err(|e| ApiError::bad(format!("zstd: {e}")))?),
        other => return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Content-Encoding `{other}`: send identity, gzip or zstd"))),
    };
    let mut bytes = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut bytes).map_err(|e| ApiError::bad(format!("the {encoding} body: {e}")))?;
    if bytes.len() > limit {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body decompresses to more than {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad("the body is not text (UTF-8); expected a closure graph"))
}

async fn list(State(state): State<Shared>, Path(project): Path<String>, headers: HeaderMap) -> ApiResult<Json<serde_json::Value>> {
    let s = state.clone();
    blocking(&state, "list", move || {
        let store = reader(&s, &headers, &project, Scope::Read)?;
        let prefix = format!("{project}/");
        let rows: Vec<serde_json::Value> = store
            .snapshot_rows()?
            .into_iter()
            .filter_map(|r| {
                let image = r.image.strip_prefix(&prefix)?.to_string();
                Some(serde_json::json!({"image": image, "revision": r.revision, "time": r.time, "paths": r.paths, "bytes": r.bytes, "complete": r.complete}))
            })
            .collect();
        Ok(Json(serde_json::json!({ "project": project, "snapshots": rows })))
    })
    .await
}

#[derive(Deserialize)]
struct HintsQuery {
    max_layers: Option<u32>,
    reserve: Option<u32>,
    range: Option<String>,
    images: Option<String>,
    min_gain: Option<f64>,
    registry_weight: Option<f64>,
}

/// The project's history (its images, named without the project) and the positions of the
/// revisions `range` names (all, when `None`). Only the revisions in `range` are loaded when
/// `range_only` (a replay); else all of them, as `hints emit` learns from a whole history.
fn project_history(store: &Store, project: &str, images: Option<&str>, range: Option<&str>, range_only: bool) -> ApiResult<(History, (usize, usize))> {
    let prefix = format!("{project}/");
    let stored: Vec<String> = store.images()?.into_iter().map(|(_, name)| name).filter(|n| n.starts_with(&prefix)).collect();
    let wanted: Vec<String> = match images {
        None => stored,
        Some(list) => list
            .split(',')
            .map(|i| format!("{prefix}{i}"))
            .map(|i| if stored.contains(&i) { Ok(i) } else { Err(ApiError::bad(format!("images: no image `{}` in project `{project}`", &i[prefix.len()..]))) })
            .collect::<ApiResult<_>>()?,
    };
    if wanted.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("project `{project}` has no snapshots yet")));
    }
    let pick = |revisions: &[Revision]| if range_only { range_positions(revisions, range) } else { Ok((0, revisions.len().saturating_sub(1))) };
    let (mut history, _) = History::load_range(store, Some(&wanted), pick)?;
    history.images = history.images.iter().map(|i| i[prefix.len()..].to_string()).collect();
    let positions = history.range(range)?;
    Ok((history, positions))
}

async fn hint_file(State(state): State<Shared>, Path(project): Path<String>, Query(q): Query<HintsQuery>, headers: HeaderMap, previous: Bytes) -> ApiResult<Response> {
    let s = state.clone();
    blocking(&state, "hints", move || {
        let store = reader(&s, &headers, &project, Scope::Read)?;
        let budget = Budget::default();
        let (max_layers, reserve) = (q.max_layers.unwrap_or(budget.max_layers as u32), q.reserve.unwrap_or(budget.reserve as u32));
        let (min_gain, registry_weight) = (q.min_gain.unwrap_or(mine::DEFAULT_MIN_GAIN), q.registry_weight.unwrap_or(mine::DEFAULT_REGISTRY_WEIGHT));
        let previous_file = match previous.is_empty() {
            true => None,
            false => Some(std::str::from_utf8(&previous).ok().and_then(|t| HintFile::parse(t).ok()).ok_or_else(|| ApiError::bad("the body is not a hint file (the previous one, for hysteresis)"))?),
        };
        let key = format!("{}\0{project}\0{max_layers}\0{reserve}\0{:?}\0{:?}\0{min_gain}\0{registry_weight}\0", store.summary_hash()?, q.range, q.images);
        let etag = format!("\"{}\"", crate::store::hex(&Sha256::new().chain_update(key).chain_update(&previous).finalize()));
        if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        let cached = s.hint_files.lock().unwrap_or_else(|p| p.into_inner()).get(&etag);
        let text = match cached {
            Some(text) => text,
            None => {
                let _slot = EmitSlot::take(&s.emitting)?;
                let started = Instant::now();
                let (history, (first, last)) = project_history(&store, &project, q.images.as_deref(), q.range.as_deref(), false)?;
                let opts = EmitOptions { max_layers, reserve, first, last, min_gain, registry_weight, db_summary: history.summary.clone() };
                let emitted = mine::emit(&history, &opts, previous_file.as_ref()).map_err(|e| ApiError::bad(e.to_string()))?;
                let text = Arc::new(emitted.file.to_canonical_string());
                s.metrics.emit_seconds.observe(started.elapsed().as_secs_f64());
                s.hint_files.lock().unwrap_or_else(|p| p.into_inner()).insert(etag.clone(), text.clone());
                text
            }
        };
        Ok(([(header::ETAG, etag.as_str()), (header::CONTENT_TYPE, "application/yaml")], text.as_str().to_owned()).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct EvalQuery {
    range: String,
    max_layers: Option<usize>,
    reserve: Option<usize>,
}

async fn eval(State(state): State<Shared>, Path(project): Path<String>, Query(q): Query<EvalQuery>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let s = state.clone();
    blocking(&state, "eval", move || {
        let store = reader(&s, &headers, &project, Scope::Read)?;
        let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad("the body is not text; expected a hint file"))?;
        let hints = HintFile::parse(text).map_err(|e| ApiError::bad(format!("the hint file: {e}")))?;
        let (history, (first, last)) = project_history(&store, &project, None, Some(&q.range), true)?;
        let budget = Budget::new(q.max_layers.unwrap_or(hints.budget.max_layers as usize), q.reserve.unwrap_or(hints.budget.reserve as usize)).map_err(|e| ApiError::bad(e.to_string()))?;
        let results = replay::replay_many(&history, first, last, &Replayed::all(&hints).map(|r| (budget, r))).map_err(|e| ApiError::bad(e.to_string()))?;
        Ok(Json(serde_json::json!({
            "range": [history.revisions[first].label, history.revisions[last].label],
            "max_layers": budget.max_layers, "reserve": budget.reserve, "images": history.images, "results": results
        })))
    })
    .await
}

#[derive(Deserialize)]
struct ExplainQuery {
    range: Option<String>,
    image: Option<String>,
    rev: Option<String>,
}

async fn explain(State(state): State<Shared>, Path((project, name)): Path<(String, String)>, Query(q): Query<ExplainQuery>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let s = state.clone();
    blocking(&state, "explain", move || {
        let store = reader(&s, &headers, &project, Scope::Read)?;
        let hints = std::str::from_utf8(&body).ok().and_then(|t| HintFile::parse(t).ok()).ok_or_else(|| ApiError::bad("the body is not a hint file"))?;
        let (history, _) = project_history(&store, &project, None, None, false)?;
        let range = match &q.range {
            Some(r) => history.range(Some(r))?,
            None => crate::explain::learned_range(&history, &hints),
        };
        let explained = crate::explain::explain(&history, range, &hints, &name).map_err(|e| ApiError::bad(e.to_string()))?;
        let landings = match &q.image {
            Some(image) => {
                let i = history.images.iter().position(|x| x == image).ok_or_else(|| ApiError::bad(format!("image: no image `{image}` in project `{project}`")))?;
                let r = match &q.rev {
                    Some(r) => history.revision(r)?,
                    None => history.revisions.len() - 1,
                };
                Some(crate::explain::in_image(&history, i, r, &hints, &name).map_err(|e| ApiError::bad(e.to_string()))?)
            }
            None => None,
        };
        Ok(Json(serde_json::json!({"explanation": explained, "in_image": landings})))
    })
    .await
}

async fn metrics(State(state): State<Shared>, headers: HeaderMap) -> ApiResult<Response> {
    let s = state.clone();
    blocking(&state, "metrics", move || {
        check(&s, &headers, None, Scope::Admin)?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &s.metrics.registry).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_file_cache_keeps_the_newest_files() {
        let mut cache = HintCache::default();
        for k in 0..CACHED_HINT_FILES + 5 {
            cache.insert(format!("e{k}"), Arc::new(format!("file {k}")));
        }
        assert_eq!(cache.0.len(), CACHED_HINT_FILES);
        assert!(cache.get("e0").is_none() && cache.get("e4").is_none());
        assert_eq!(cache.get(&format!("e{}", CACHED_HINT_FILES + 4)).as_deref().map(String::as_str), Some(format!("file {}", CACHED_HINT_FILES + 4)).as_deref());
    }

    #[test]
    fn at_most_max_emits_hint_files_are_computed_at_once() {
        let emitting = std::sync::atomic::AtomicUsize::new(0);
        let held: Vec<EmitSlot<'_>> = (0..MAX_EMITS).map(|_| EmitSlot::take(&emitting).unwrap()).collect();
        let refused = EmitSlot::take(&emitting).err().expect("one too many");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        drop(held);
        assert!(EmitSlot::take(&emitting).is_ok(), "a finished emit gives its place back");
    }
}
