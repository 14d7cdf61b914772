//! `hints`: layer hints for Nix-built container images. The CLI edge: argument parsing, output,
//! and exit codes (2 for bad input, 1 for anything else that failed).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use hints_analyzer::diff;
use hints_analyzer::formats::{Format, InputError};
use hints_analyzer::history::{range_positions, History};
use hints_analyzer::human_bytes;
use hints_analyzer::image::{self, Compression, Description, ImageError, LayerPlan, RuntimeConfig, WriteOptions, Written};
use hints_analyzer::ingest::{self, IngestError, Job, Sources, Tally};
use hints_analyzer::mine::{self, EmitOptions};
use hints_analyzer::pulls;
use hints_analyzer::recover::registry::Repository;
use hints_analyzer::recover::{self, Image, RecoverError};
use hints_analyzer::replay::{self, Metrics, Overlap, Replayed};
use hints_analyzer::report;
use hints_analyzer::scan::{self, Dataset, ScanError};
use hints_analyzer::serve;
use hints_analyzer::serve::client::{Client, ClientError, HintRequest};
use hints_analyzer::store::copy::Copied;
use hints_analyzer::store::{Location, Outcome, Revision, Store, StoreError};
use hints_format::{FormatError, HintFile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use layering_core::{Budget, Strategy as CoreStrategy};

/// mimalloc: the CLI allocates and frees millions of small strings and vectors per closure
/// and history, where it is markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hints",
    version,
    about = "Layer hints for Nix-built container images, learned from history",
    after_help = "Exit status: 0 on success; 2 for bad input (a file, flag, revision or database that is not what was expected; the message names it); 1 for any other failure.\nStart with `hints scan`, then `hints emit`, `hints eval` and `hints layer` or `hints image`; `hints help COMMAND` for more."
)]
struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors (a scan still prints its one-line summary).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DbArg {
    /// The history: an SQLite file, or a PostgreSQL database as a postgres:// URL [default:
    /// .hints/hints.db at the top of the git work tree, or here].
    #[arg(long, env = "HINTS_DB")]
    db: Option<String>,
}

impl DbArg {
    fn location(&self) -> Result<Location> {
        match &self.db {
            Some(db) => Ok(Location::parse(db).map_err(|e| BadInput(format!("--db {e}")))?),
            None => Ok(Location::File(default_hints_dir().join("hints.db"))),
        }
    }
}

/// `.hints/` at the top of the git work tree, or here: where the default database and the
/// image cache live.
fn default_hints_dir() -> PathBuf {
    let top = git2::Repository::discover(".").ok().and_then(|r| r.workdir().map(Path::to_path_buf));
    top.unwrap_or_else(|| PathBuf::from(".")).join(".hints")
}

/// Where fetched and converted images are kept: beside an SQLite database, or in the default
/// `.hints/` directory.
fn oci_cache(db: &Location) -> PathBuf {
    match db {
        Location::File(path) => path.parent().unwrap_or(Path::new(".")).join("oci-cache"),
        Location::Postgres(_) => default_hints_dir().join("oci-cache"),
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The largest request body, and the largest closure once decompressed, in MiB.
    #[arg(long, default_value_t = 256)]
    max_body_mib: usize,
    /// The longest a request may take, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for one project and print it (once: the database keeps only its hash).
    Create {
        #[command(flatten)]
        db: DbArg,
        /// The project (1 to 64 of a-z 0-9 . _ -).
        #[arg(long)]
        project: String,
        /// What it allows: read (list, hint files, eval), push (read and push snapshots), admin
        /// (push and /metrics).
        #[arg(long, value_parser = ["read", "push", "admin"])]
        scope: String,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy a whole history into an empty database, losslessly and checked (SQLite files and
    /// postgres:// URLs, either way).
    Copy {
        /// The history to copy: an SQLite file or a postgres:// URL.
        from: String,
        /// The database to copy into: it must hold no history (its schema is created).
        to: String,
        /// Print what was copied as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Ingest closure graphs into the history database.
    Scan(ScanArgs),
    /// List images, revisions and snapshots.
    Ls {
        #[command(flatten)]
        db: DbArg,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Split one closure into layers; prints store_layers JSON.
    Layer(LayerArgs),
    /// Write a reproducible OCI image of one closure, laid out by a strategy or a layers file.
    Image(Box<ImageCmd>),
    /// Print a stored snapshot as `nix path-info --json --recursive` would.
    Export(ExportArgs),
    /// Manage history databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run the analyzer as an HTTP service: CI pushes snapshots, jobs fetch hint files (see the
    /// README's API section). Stops on SIGTERM or Ctrl-C after the requests in flight.
    Serve(ServeArgs),
    /// Manage the service's access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// What changes between two hint files: groups split, merged, added or removed, names that
    /// moved, and (with the history) the saving per update and the one-time cost (Markdown).
    Diff(DiffArgs),
    /// Learn groups from the history and write the hint file.
    Emit(EmitArgs),
    /// Replay revisions under every strategy and compare bytes.
    Eval(EvalArgs),
    /// Show a path's or name's group and why it is there.
    Explain(ExplainArgs),
    /// Write one self-contained HTML page with charts: the replay per strategy, the trade-off
    /// against the layer budget, each image's layer map, the churn timeline, and (with
    /// --previous) what regenerating changes.
    Report(ReportArgs),
    /// Rewrite a hint file canonically (or check that it is).
    Fmt {
        /// Fail if the file is not canonical instead of rewriting it.
        #[arg(long)]
        check: bool,
        /// The hint file.
        file: PathBuf,
    },
    /// Validate a hint file and print a summary.
    Validate {
        /// The hint file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the hint file's JSON Schema.
    Schema,
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), for `man -l -` or a package's man1/hints.1; with a command,
    /// that command's page (hints-scan.1, …).
    Man {
        /// A command, e.g. `scan`.
        command: Option<String>,
    },
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    db: DbArg,
    /// The image the files belong to.
    #[arg(long)]
    image: Option<String>,
    /// Force the input format instead of detecting it: graph-json, graph-text, path-info or
    /// nix2container.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    /// Revision label (e.g. a commit id or release name) instead of git's HEAD.
    #[arg(long)]
    rev: Option<String>,
    /// Revision time, RFC 3339, instead of the commit time.
    #[arg(long)]
    time: Option<String>,
    /// NAME=INSTALLABLE: run `nix path-info --json --recursive INSTALLABLE` for image NAME.
    #[arg(long, value_name = "NAME=INSTALLABLE")]
    nix: Vec<String>,
    /// A flake (`.`, a path or a flake URL): build and scan its image outputs, the attributes of
    /// `packages.<system>` named `image` or `*-image` (or those `hints.toml` lists under `[scan]
    /// images`), each under its attribute name.
    #[arg(long, value_name = "FLAKE", conflicts_with = "image")]
    flake: Option<String>,
    /// Walk git history, ingesting files matching this pathspec at every commit.
    #[arg(long, value_name = "PATHSPEC")]
    git_history: Option<String>,
    /// With --git-history: the commits, `A..B` or a single end commit (default: HEAD).
    #[arg(long, requires = "git_history")]
    range: Option<String>,
    /// A dataset directory (`manifest.json` + `graphs/<image>/<rev>.json`), e.g. from deb2nix.py.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["image", "rev", "time"])]
    dataset: Option<PathBuf>,
    /// A built image, `oci:DIR` or `oci:DIR:TAG`: its embedded closure graph, or the graph
    /// recovered from its layers. The revision is --rev or the tag, at --time or the image's
    /// creation time.
    #[arg(long, value_name = "oci:DIR[:TAG]")]
    oci: Option<String>,
    /// A registry repository, `docker://HOST/REPO`: each tag matching --tags is a revision
    /// (ordered by the images' creation times), fetched with skopeo into `oci-cache/` beside the
    /// database (a re-run fetches only new blobs). Credentials come from the containers auth file.
    #[arg(long, value_name = "docker://HOST/REPO", requires = "image", conflicts_with_all = ["rev", "time"])]
    registry: Option<String>,
    /// With --registry: the tags to scan, a glob.
    #[arg(long, value_name = "GLOB", default_value = "*")]
    tags: String,
    /// With --registry: verify TLS (`false` is allowed for a registry on this machine only).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// A docker archive (`docker save`, `streamLayeredImage`): converted with skopeo into
    /// `oci-cache/` beside the database, then read as --oci is. The revision is --rev.
    #[arg(long, value_name = "FILE", requires_all = ["image", "rev"])]
    docker_archive: Option<PathBuf>,
    /// With --oci, --registry or --docker-archive: recover the graph from the layers even when
    /// the image embeds one.
    #[arg(long)]
    from_layers: bool,
    /// Print what was stored as JSON: each snapshot's outcome and the batch's counts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: ServerArg,
    /// Closure files (`-` for standard input); several files are one closure.
    files: Vec<String>,
}

#[derive(Args, Clone)]
struct ServerArg {
    /// A `hints serve` URL: push the snapshots there (scan), or learn there (emit), instead of
    /// using a local database. The token comes from HINTS_TOKEN.
    #[arg(long, value_name = "URL", requires = "project")]
    server: Option<String>,
    /// The server's project.
    #[arg(long, requires = "server")]
    project: Option<String>,
}

impl ServerArg {
    fn client(&self) -> Result<Option<Client>> {
        match (&self.server, &self.project) {
            (Some(server), Some(project)) => Ok(Some(Client::new(server, project)?)),
            _ => Ok(None),
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StrategyArg {
    Popularity,
    SizeFirst,
    Hints,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// nixpkgs `store_layers`: a JSON list of lists of store paths, bottom layer first.
    StoreLayers,
    /// nix2container's `layersFile` (PR #220): the same lists, one layer per line.
    Nix2container,
}

#[derive(Args)]
struct LayerArgs {
    /// The closure graph (any scan format; `-` for standard input).
    #[arg(long, required_unless_present = "nix_build")]
    graph: Option<String>,
    /// Run as a Nix builder (`nix/lib.nix`): read the graph from $NIX_ATTRS_JSON_FILE and write
    /// the layers to the derivation's `out`.
    #[arg(long, conflicts_with = "graph")]
    nix_build: bool,
    /// Hint file; makes `hints` the default strategy.
    #[arg(long)]
    hints: Option<PathBuf>,
    /// The image's name in the history (as `hints scan --image` stored it): an image the hint
    /// file lists in `size_first_images` is laid out as size-first, and one with `opt_outs`
    /// without those groups.
    #[arg(long, value_name = "NAME")]
    image: Option<String>,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Default: hints with --hints, else size-first.
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// Print each layer's size, members and reason instead of JSON; with --image, also how the
    /// hint file treats that image (laid out as size-first, or the groups it opts out of).
    #[arg(long)]
    explain: bool,
    #[arg(long, value_enum, default_value = "store-layers")]
    format: OutputFormat,
    /// Force the input format: graph-json, graph-text, path-info or nix2container.
    #[arg(long, value_name = "FORMAT")]
    input_format: Option<Format>,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct ImageCmd {
    #[command(subcommand)]
    copy: Option<ImageSub>,
    #[command(flatten)]
    args: ImageArgs,
}

#[derive(Subcommand)]
enum ImageSub {
    /// Materialise a description (`hints image --describe`, or `imageFromHints` in nix/lib.nix)
    /// into an OCI directory, reading the layers from the store and checking every digest.
    Copy {
        /// The description JSON.
        description: PathBuf,
        /// `oci:DIR`, or `oci:DIR:TAG` (tag `latest` by default).
        #[arg(long, value_name = "oci:DIR[:TAG]")]
        out: String,
        /// Read `/nix/store` under this directory instead of `/`.
        #[arg(long, value_name = "DIR", default_value = "/")]
        store_root: PathBuf,
        /// Print what was written as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an image's closure graph as `nix path-info --json --recursive` would: the graph
    /// `hints image` embedded, or one recovered from the layers' files (narSize, narHash and
    /// references, as Nix computes them).
    Closure {
        /// `oci:DIR` (its only image) or `oci:DIR:TAG`.
        #[arg(value_name = "oci:DIR[:TAG]")]
        image: String,
        /// Recover from the layers even when the image embeds its graph.
        #[arg(long)]
        from_layers: bool,
        /// Recover from the layers and require the embedded graph to agree.
        #[arg(long, conflicts_with = "from_layers")]
        verify: bool,
    },
}

#[derive(Args)]
struct ImageArgs {
    /// The closure graph (any scan format; `-` for standard input).
    #[arg(long, required_unless_present = "nix_build")]
    graph: Option<String>,
    /// Run as a Nix builder (`imageFromHints` in nix/lib.nix): read the graph and the runtime
    /// settings (`imageConfig`) from $NIX_ATTRS_JSON_FILE and write the description to `out`.
    #[arg(long, conflicts_with_all = ["graph", "out", "describe", "config"])]
    nix_build: bool,
    /// Write the image's description (layers' digests, config; no layer bytes) to FILE instead
    /// of an OCI directory; `hints image copy` materialises it.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    describe: Option<PathBuf>,
    /// Force the graph's format: graph-json, graph-text, path-info or nix2container.
    #[arg(long, value_name = "FORMAT")]
    input_format: Option<Format>,
    /// Hint file; makes `hints` the default strategy.
    #[arg(long)]
    hints: Option<PathBuf>,
    /// The image's name in the history (as `hints scan --image` stored it): an image the hint
    /// file lists in `size_first_images` is laid out as size-first, and one with `opt_outs`
    /// without those groups.
    #[arg(long, value_name = "NAME")]
    image: Option<String>,
    /// Default: hints with --hints, else size-first.
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// Take the layers from a `store_layers` JSON file (as `hints layer` prints) instead.
    #[arg(long, conflicts_with_all = ["hints", "strategy"])]
    store_layers: Option<PathBuf>,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Where to write: `oci:DIR`, or `oci:DIR:TAG` (tag `latest` by default); or
    /// `docker-archive:FILE[:NAME:TAG]` (`hints:latest` by default), whose OCI directory, with
    /// its layer cache, is kept beside it as FILE.oci.
    #[arg(long, value_name = "oci:DIR[:TAG]", required_unless_present_any = ["describe", "nix_build"])]
    out: Option<String>,
    /// Layer blob compression (deterministic at a fixed level).
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// Runtime settings as JSON: Cmd, Entrypoint, Env, WorkingDir, Labels, architecture. The
    /// flags below override its fields.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The command, one argument per flag (`--cmd sh --cmd -c --cmd 'echo hi'`).
    #[arg(long, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// The entrypoint, one argument per flag.
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// An environment variable, `NAME=VALUE` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    #[arg(long)]
    workdir: Option<String>,
    /// A label, `KEY=VALUE` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// OCI architecture (default: this machine's).
    #[arg(long)]
    arch: Option<String>,
    /// A directory whose contents become the top layer (the image's customisation).
    #[arg(long, value_name = "DIR")]
    top_layer: Option<PathBuf>,
    /// Read `/nix/store` under this directory instead of `/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    store_root: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    db: DbArg,
    /// The current hint file.
    old: PathBuf,
    /// The proposed one.
    new: PathBuf,
    /// Print the changes (and costs) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// Nix 2.19+: an object keyed by store path.
    PathInfo,
    /// Nix 2.8: an array of records with a `path` field.
    PathInfoArray,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    db: DbArg,
    /// The image.
    #[arg(long)]
    image: String,
    /// The revision: label, commit prefix or position.
    #[arg(long)]
    rev: String,
    /// The output shape.
    #[arg(long, value_enum, default_value = "path-info")]
    format: ExportFormat,
}

/// The layer budget of `layer`, `image` and `eval`.
#[derive(Args, Clone, Copy)]
struct BudgetArgs {
    /// Layers in the image, store and non-store [default: the hint file's budget, else 100].
    #[arg(long)]
    max_layers: Option<usize>,
    /// Layers kept for non-store content: a customisation layer (`image --top-layer`) or a base
    /// image [default: the hint file's budget, else 1, as nixpkgs].
    #[arg(long)]
    reserve: Option<usize>,
}

impl BudgetArgs {
    /// The budget: the flags, else the hint file's, else nixpkgs' (100, 1). A flag that differs
    /// from the file's budget is allowed (an image may have fewer layers) but said.
    fn budget(&self, hints: Option<&HintFile>) -> Result<Budget> {
        let file = hints.map(|h| (h.budget.max_layers as usize, h.budget.reserve as usize));
        let (default_max, default_reserve) = file.unwrap_or((100, 1));
        let budget = Budget::new(self.max_layers.unwrap_or(default_max), self.reserve.unwrap_or(default_reserve)).map_err(|e| BadInput(e.to_string()))?;
        if let Some((max, reserve)) = file.filter(|&(m, r)| (m, r) != (budget.max_layers, budget.reserve)) {
            tracing::warn!("the hint file was learned for {max} layers ({reserve} reserved); laying out for {} ({} reserved)", budget.max_layers, budget.reserve);
        }
        Ok(budget)
    }
}

#[derive(Args)]
struct EmitArgs {
    #[command(flatten)]
    db: DbArg,
    /// Layers in each image, store and non-store, that the groups are learned for.
    #[arg(long, default_value_t = 100)]
    max_layers: u32,
    /// Layers kept for non-store content (a customisation layer or a base image).
    #[arg(long, default_value_t = 1)]
    reserve: u32,
    /// Only these images (comma-separated).
    #[arg(long, value_delimiter = ',')]
    images: Option<Vec<String>>,
    /// Revisions to learn from, `A..B` (labels, commit prefixes or positions).
    #[arg(long)]
    range: Option<String>,
    /// The hint file to write (through a temporary file and a rename).
    #[arg(long, default_value = "layer-hints.yaml")]
    out: PathBuf,
    /// The current hint file, for hysteresis: its groups are kept unless regrouping saves more
    /// than --min-gain [default: --out when it exists].
    #[arg(long, conflicts_with = "no_previous")]
    previous: Option<PathBuf>,
    /// Learn afresh, ignoring any current hint file (no hysteresis).
    #[arg(long)]
    no_previous: bool,
    /// Also write a Markdown summary for a pull request: what changed against the previous
    /// file (as `hints diff` prints it, with its costs), the backtest and hysteresis's decision.
    #[arg(long, value_name = "FILE.md")]
    summary: Option<PathBuf>,
    /// Regroup only when the expected saving exceeds this fraction of the current expected cost.
    #[arg(long, default_value_t = mine::DEFAULT_MIN_GAIN, allow_negative_numbers = true)]
    min_gain: f64,
    /// What one more distinct layer (a registry copy, one more pull for a node running every
    /// image) weighs against one image's update bytes. Lower keeps small images' layers finer
    /// (fewer update bytes per image); higher shares more layers between images.
    #[arg(long, default_value_t = mine::DEFAULT_REGISTRY_WEIGHT, allow_negative_numbers = true)]
    registry_weight: f64,
    /// Print the summary (groups, backtest per image, hysteresis) as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: ServerArg,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    db: DbArg,
    /// The hint file to replay beside today's algorithms.
    #[arg(long)]
    hints: PathBuf,
    /// Revisions to replay, `C..D`; C is the starting state.
    #[arg(long)]
    range: String,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Only these images (comma-separated).
    #[arg(long, value_delimiter = ',')]
    images: Option<Vec<String>>,
    /// Replay even if the hint file was learned from revisions being replayed.
    #[arg(long)]
    allow_overlap: bool,
    /// Instead of the totals, show for this image at every update the layers the hint file's
    /// layout and size-first's pull, the bytes in them that did not change (beside a change, a
    /// departure or re-laid), and the names a pulled layer lost.
    #[arg(long, value_name = "IMAGE")]
    pulls: Option<String>,
    /// Print the results (per strategy, and per image) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    db: DbArg,
    /// The hint file `hints emit` wrote.
    #[arg(long, default_value = "layer-hints.yaml")]
    hints: PathBuf,
    /// Revisions the statistics cover, `A..B` [default: the range the file was learned from].
    #[arg(long)]
    range: Option<String>,
    /// Also say which layer the name lands in for this image (its snapshot at --rev, laid out
    /// with the file's budget).
    #[arg(long)]
    image: Option<String>,
    /// With --image: the revision [default: the latest].
    #[arg(long, requires = "image")]
    rev: Option<String>,
    /// Print the explanation (and, with --image, where each path lands) as JSON.
    #[arg(long)]
    json: bool,
    /// A store path, a name such as `glibc` or `gcc:lib`.
    path_or_name: String,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    db: DbArg,
    /// The hint file to report on.
    #[arg(long, default_value = "layer-hints.yaml")]
    hints: PathBuf,
    /// Revisions to replay, `C..D` [default: the last 10 updates].
    #[arg(long)]
    range: Option<String>,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Only these images (comma-separated).
    #[arg(long, value_delimiter = ',')]
    images: Option<Vec<String>>,
    /// The hint file this one would replace: the report then shows what regenerating changes.
    #[arg(long)]
    previous: Option<PathBuf>,
    /// Where to write the HTML page.
    #[arg(long)]
    out: PathBuf,
}

/// Prints a line to standard output; a reader that went away (`| head`) is not an error.
macro_rules! outln {
    ($($t:tt)*) => {{
        let mut line = format!($($t)*);
        line.push('\n');
        match std::io::stdout().lock().write_all(line.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            r => r,
        }
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).with_target(false).init();
    let result = run(cli);
    if let Some(kb) = hints_analyzer::peak_rss_kb() {
        tracing::info!("peak memory: {:.1} MB", kb as f64 / 1024.0);
    }
    match result {
        Ok(code) => code,
        Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 2 for bad input (files, hint files, closures, contradictions), 1 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(is_bad_input) {
        2
    } else {
        1
    }
}

fn is_bad_input(c: &(dyn std::error::Error + 'static)) -> bool {
    c.is::<InputError>()
        || c.is::<FormatError>()
        || c.is::<BadInput>()
        || matches!(
            c.downcast_ref::<RecoverError>(),
            Some(
                RecoverError::Blob { .. }
                    | RecoverError::Entry { .. }
                    | RecoverError::NotNix(_)
                    | RecoverError::Disagree { .. }
                    | RecoverError::Contradicted { .. }
                    | RecoverError::Image { .. }
                    | RecoverError::Registry { .. }
            )
        )
        || matches!(c.downcast_ref::<ImageError>(), Some(ImageError::Config(_) | ImageError::Layers { .. } | ImageError::SpecialFile(_) | ImageError::Mismatch { .. }))
        || c.downcast_ref::<ScanError>().is_some_and(ScanError::is_bad_input)
        || c.downcast_ref::<StoreError>().is_some_and(StoreError::is_bad_input)
        || c.downcast_ref::<IngestError>().is_some_and(IngestError::is_bad_input)
        || c.downcast_ref::<ClientError>().is_some_and(ClientError::is_bad_input)
}

/// A usage or input problem found at the CLI edge.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn run(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Scan(a) => cmd_scan(a, quiet, cli.verbose > 0),
        Command::Ls { db, json } => cmd_ls(&db, json),
        Command::Layer(a) => cmd_layer(a),
        Command::Image(a) => cmd_image(*a),
        Command::Emit(a) => cmd_emit(a, quiet),
        Command::Export(a) => cmd_export(a),
        Command::Db(DbCommand::Copy { from, to, json }) => cmd_db_copy(&from, &to, json),
        Command::Serve(a) => cmd_serve(a),
        Command::Token(TokenCommand::Create { db, project, scope }) => cmd_token_create(&db, &project, &scope),
        Command::Diff(a) => cmd_diff(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Report(a) => cmd_report(a),
        Command::Explain(a) => cmd_explain(a),
        Command::Fmt { check, file } => cmd_fmt(&file, check),
        Command::Validate { file, json } => cmd_validate(&file, json),
        Command::Schema => {
            outln!("{}", HintFile::json_schema())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            // Into a buffer first: `generate` panics when its writer fails (a closed pipe).
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hints", &mut out);
            std::io::stdout().write_all(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { command } => cmd_man(command.as_deref()),
    }
}

fn load_hints(path: &Path) -> Result<HintFile> {
    let text = scan::read_text(&path.display().to_string())?;
    HintFile::parse(&text).map_err(|e| anyhow::Error::new(e).context(format!("{}", path.display())))
}

fn progress(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} snapshots {msg} ({eta})").expect("valid template"));
    bar
}

/// Batches up to this many snapshots print a line per snapshot; larger ones only with `-v`.
const SNAPSHOT_LINES: usize = 20;

fn cmd_scan(a: ScanArgs, quiet: bool, verbose: bool) -> Result<ExitCode> {
    let modes = [!a.files.is_empty(), !a.nix.is_empty(), a.flake.is_some(), a.git_history.is_some(), a.dataset.is_some(), a.oci.is_some(), a.registry.is_some(), a.docker_archive.is_some()];
    if modes.iter().filter(|m| **m).count() != 1 {
        bail!(BadInput(
            "give exactly one of: FILE…, --nix NAME=INSTALLABLE…, --flake FLAKE, --git-history PATHSPEC, --dataset DIR, --oci oci:DIR[:TAG], --registry docker://HOST/REPO, --docker-archive FILE"
                .into()
        ));
    }
    let db = a.db.location()?;
    let client = a.remote.client()?;
    let mut store = if client.is_none() { Some(Store::open(&db)?) } else { None };
    if let (Location::File(path), Some(_)) = (&db, &store) {
        ignore_database_dir(path)?;
    }
    let jobs = match (&a.registry, &a.docker_archive) {
        (Some(reference), _) => registry_jobs(&a, reference, &db)?,
        (None, Some(archive)) => vec![archive_job(&a, archive, &db)?],
        (None, None) => scan_jobs(&a)?,
    };
    let per_snapshot = !quiet && !a.json && (verbose || jobs.len() <= SNAPSHOT_LINES);
    let Some(store) = store.as_mut() else {
        return push_jobs(&a, client.as_ref().expect("a client when there is no store"), &jobs, per_snapshot);
    };
    let bar = progress(jobs.len() as u64, quiet);
    let mut out = std::io::stdout().lock();
    let mut stored = vec![];
    let tally = ingest::ingest(store, &jobs, a.format, |s| {
        if a.json {
            stored.push(serde_json::json!({"image": s.job.image, "revision": s.job.revision.label, "paths": s.paths, "result": s.outcome}));
        }
        for w in &s.warnings {
            tracing::warn!("{w}");
        }
        if let Some(before) = &s.revised {
            warn_revised(before, &s.job.revision);
        }
        if per_snapshot {
            writeln!(out, "{} @ {}: {}", s.job.image, s.job.revision.label, outcome_text(s.outcome, s.paths))?;
            out.flush()?;
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!({"snapshots": stored, "tally": tally}))?)?;
    } else if jobs.len() > 1 {
        let Tally { added, unchanged, replaced, new_paths } = tally;
        writeln!(out, "{} snapshots: {added} added, {replaced} replaced, {unchanged} unchanged; {new_paths} new store paths", jobs.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `hints scan --server`: pushes every snapshot, reporting each as a local scan does.
fn push_jobs(a: &ScanArgs, client: &Client, jobs: &[Job], per_snapshot: bool) -> Result<ExitCode> {
    let mut tally = ingest::Tally::default();
    let mut answers = vec![];
    let pushed = client.push_all(jobs, a.format, |job, answer| {
        let outcome: Outcome = serde_json::from_value(answer["result"].clone()).map_err(|e| ClientError::Usage(format!("the server's answer: {e}")))?;
        tally.count(outcome);
        if per_snapshot {
            let paths = answer["paths"].as_u64().unwrap_or_default() as usize;
            outln!("{} @ {}: {}", job.image, job.revision.label, outcome_text(outcome, paths)).map_err(ClientError::Report)?;
        }
        answers.push(answer);
        Ok(())
    });
    if let Err(failed) = pushed {
        let job = &jobs[failed.index];
        let context = format!("{} @ {}: {} of the {} snapshots of this scan were pushed (kept; a re-run skips them)", job.image, job.revision.label, failed.pushed, jobs.len());
        return Err(anyhow::Error::new(failed.error).context(context));
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"snapshots": answers, "tally": tally}))?)?;
    } else if jobs.len() > 1 {
        let ingest::Tally { added, unchanged, replaced, new_paths } = tally;
        outln!("{} snapshots pushed: {added} added, {replaced} replaced, {unchanged} unchanged; {new_paths} new store paths", jobs.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// In the default `.hints/` directory, a `.gitignore` that keeps the database out of version
/// control (the hint file is what to commit).
fn ignore_database_dir(db: &Path) -> Result<()> {
    let Some(dir) = db.parent().filter(|d| d.file_name().is_some_and(|n| n == ".hints")) else { return Ok(()) };
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# The hints database: not for version control (commit the hint file instead).\n*\n").with_context(|| format!("writing {}", ignore.display()))?;
    }
    Ok(())
}

/// The snapshots a scan's arguments name.
fn scan_jobs(a: &ScanArgs) -> Result<Vec<Job>> {
    Ok(if !a.files.is_empty() {
        let image = a.image.clone().ok_or_else(|| BadInput("--image NAME is required when scanning files".into()))?;
        let sources = a.files.iter().map(|f| Ok((f.clone(), scan::read_text(f)?))).collect::<Result<Vec<_>>>()?;
        vec![Job { image, revision: explicit_revision(a, Path::new("."))?, sources: Sources::Read(sources) }]
    } else if !a.nix.is_empty() {
        let revision = explicit_revision(a, Path::new("."))?;
        a.nix
            .iter()
            .map(|spec| {
                let (name, installable) = spec.split_once('=').ok_or_else(|| BadInput(format!("--nix {spec:?}: expected NAME=INSTALLABLE")))?;
                Ok(Job { image: name.to_string(), revision: revision.clone(), sources: Sources::Read(vec![(format!("nix path-info {installable}"), scan::nix_path_info(installable)?)]) })
            })
            .collect::<Result<_>>()?
    } else if let Some(flake) = &a.flake {
        let revision = explicit_revision(a, hints_analyzer::flake::local_dir(flake).unwrap_or(Path::new(".")))?;
        let images = hints_analyzer::flake::images(flake)?;
        images
            .into_iter()
            .map(|i| {
                hints_analyzer::flake::build(&i.installable)?;
                Ok(Job { image: i.name, revision: revision.clone(), sources: Sources::Read(vec![(i.installable.clone(), scan::nix_path_info(&i.installable)?)]) })
            })
            .collect::<Result<_>>()?
    } else if let Some(image) = &a.oci {
        vec![oci_job(a, image)?]
    } else if let Some(spec) = &a.git_history {
        ingest::git_history_jobs(scan::git_history(Path::new("."), spec, a.range.as_deref())?, a.image.as_deref())
    } else {
        let ds = Dataset::open(a.dataset.as_deref().expect("mode checked"))?;
        let (jobs, missing) = ingest::dataset_jobs(&ds);
        if let Some(first) = missing.first() {
            tracing::warn!("{} graph files the manifest lists are missing (the first: {first}); those snapshots were not scanned", missing.len());
        }
        jobs
    })
}

/// A built image's closure as one snapshot: image `--image`, revision `--rev` or the tag.
fn oci_job(a: &ScanArgs, source: &str) -> Result<Job> {
    let image_name = a.image.clone().ok_or_else(|| BadInput("--image NAME is required with --oci".into()))?;
    let (dir, tag) = oci_source(source)?;
    let image = Image::open(Path::new(dir), tag)?;
    let records = image.closure(a.from_layers, false)?.records;
    let label = a.rev.clone().or(tag.map(str::to_string)).ok_or_else(|| BadInput(format!("--oci {source}: give --rev LABEL, or name the image by its tag (oci:DIR:TAG)")))?;
    let time = match a.time.as_deref().or(image.created()) {
        Some(t) => scan::parse_time(t)?,
        None => bail!(BadInput(format!("--oci {source}: the image has no creation time; give --time RFC3339"))),
    };
    let revision = Revision { label, commit: None, time, branch: None, dirty: false };
    Ok(Job { image: image_name, revision, sources: Sources::Read(vec![(source.to_string(), serde_json::to_string(&records)?)]) })
}

/// Every tag of a registry repository matching `--tags`, as snapshots of `--image`, in the
/// order the images were created.
fn registry_jobs(a: &ScanArgs, reference: &str, db: &Location) -> Result<Vec<Job>> {
    let repo = Repository::new(reference, a.tls_verify)?;
    let cache = oci_cache(db).join(reference.trim_start_matches("docker://").replace(['/', ':'], "_"));
    let tags = repo.tags(&a.tags)?;
    if tags.is_empty() {
        bail!(BadInput(format!("--registry {reference}: no tag matches `{}`", a.tags)));
    }
    let image_name = a.image.clone().expect("clap requires --image");
    let mut jobs = vec![];
    for tag in tags {
        let image = repo.fetch(&tag, &cache)?;
        let created = image.created().ok_or_else(|| BadInput(format!("{reference}:{tag}: the image has no creation time")))?;
        let revision = Revision { label: tag.clone(), commit: None, time: scan::parse_time(created)?, branch: None, dirty: false };
        let records = image.closure(a.from_layers, false)?.records;
        jobs.push(Job { image: image_name.clone(), revision, sources: Sources::Read(vec![(format!("{reference}:{tag}"), serde_json::to_string(&records)?)]) });
    }
    jobs.sort_by(|x, y| x.revision.time.cmp(&y.revision.time).then_with(|| x.revision.label.cmp(&y.revision.label)));
    Ok(jobs)
}

/// A docker archive, converted into the OCI cache beside the database, as one snapshot.
fn archive_job(a: &ScanArgs, archive: &Path, db: &Location) -> Result<Job> {
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "archive".into());
    let cache = oci_cache(db).join(format!("archive-{name}"));
    let dir = recover::from_docker_archive(archive, &cache)?;
    oci_job(a, &format!("oci:{}:{}", dir.display(), recover::ARCHIVE_TAG))
}

/// The revision of files, `nix` and flake scans: the HEAD of the git work tree at `dir`, or
/// `--rev` and `--time`.
fn explicit_revision(a: &ScanArgs, dir: &Path) -> Result<Revision> {
    let git = scan::git_revision(dir)?;
    let time = a.time.as_deref().map(scan::parse_time).transpose()?;
    Ok(match (git, &a.rev) {
        (Some(g), None) => Revision { time: time.unwrap_or(g.time.clone()), ..g },
        (g, Some(label)) => {
            let time = time.or(g.as_ref().map(|g| g.time.clone())).ok_or_else(|| BadInput("--time is required with --rev outside a git repository".into()))?;
            let commit = g.as_ref().and_then(|g| g.commit.clone()).filter(|c| c == label);
            Revision { label: label.clone(), commit, time, branch: g.as_ref().and_then(|g| g.branch.clone()), dirty: g.is_some_and(|g| g.dirty) }
        }
        (None, None) => bail!(BadInput("not in a git repository: give --rev LABEL and --time RFC3339".into())),
    })
}

fn outcome_text(outcome: Outcome, paths: usize) -> String {
    match outcome {
        Outcome::Added { new_paths } => format!("added: {paths} paths, {new_paths} new"),
        Outcome::Unchanged => "unchanged (identical snapshot already recorded)".to_string(),
        Outcome::Replaced { new_paths } => format!("replaced the earlier closure: {paths} paths, {new_paths} new"),
    }
}

/// Says that a scan changed a known revision's metadata.
fn warn_revised(before: &Revision, now: &Revision) {
    let mut changes = vec![];
    if before.time != now.time {
        changes.push(format!("time {} -> {}", before.time, now.time));
    }
    if before.commit != now.commit {
        changes.push(format!("commit {:?} -> {:?}", before.commit, now.commit));
    }
    if before.branch != now.branch {
        changes.push(format!("branch {:?} -> {:?}", before.branch, now.branch));
    }
    if before.dirty != now.dirty {
        changes.push(format!("dirty {} -> {}", before.dirty, now.dirty));
    }
    eprintln!("warning: revision {}: {} (recorded for every image at this revision)", now.label, changes.join(", "));
}

fn cmd_ls(db: &DbArg, json: bool) -> Result<ExitCode> {
    let store = Store::open_existing(&db.location()?)?;
    let rows = store.snapshot_rows()?;
    let position: std::collections::HashMap<String, usize> = store.revisions()?.into_iter().enumerate().map(|(k, (_, r))| (r.label, k)).collect();
    if json {
        let revisions: Vec<_> = store
            .revisions()?
            .into_iter()
            .enumerate()
            .map(|(k, (_, r))| serde_json::json!({"position": k, "label": r.label, "commit": r.commit, "time": r.time, "branch": r.branch, "dirty": r.dirty}))
            .collect();
        let images: Vec<String> = store.images()?.into_iter().map(|(_, n)| n).collect();
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"images": images, "revisions": revisions, "snapshots": rows}))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let images = store.images()?.len();
    let revisions = store.revisions()?.len();
    outln!("{images} images, {revisions} revisions, {} snapshots", rows.len())?;
    outln!("{:<24} {:>4} {:<42} {:<26} {:>7} {:>11}", "IMAGE", "POS", "REVISION", "TIME", "PATHS", "SIZE")?;
    for r in rows {
        let note = if r.complete { "" } else { "  (no sizes)" };
        outln!("{:<24} {:>4} {:<42} {:<26} {:>7} {:>11}{note}", r.image, position[&r.revision], r.revision, r.time, r.paths, human_bytes(r.bytes))?;
    }
    outln!("Name revisions by label, commit prefix or position (POS; positions follow time, so scanning an older revision shifts them).")?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_layer(a: LayerArgs) -> Result<ExitCode> {
    let (graph, output) = if a.nix_build {
        let (attrs, _, out) = nix_build_attrs()?;
        (attrs, Some(out))
    } else {
        (a.graph.clone().expect("clap requires --graph"), None)
    };
    let started = Instant::now();
    let text = scan::read_text(&graph)?;
    let read = scan::read_closure(&[(graph.clone(), text)], a.input_format)?;
    for w in &read.warnings {
        tracing::warn!("{w}");
    }
    let hints = a.hints.as_deref().map(load_hints).transpose()?;
    let budget = a.budget.budget(hints.as_ref())?;
    let read_ms = started.elapsed().as_secs_f64() * 1000.0;
    let layers = chosen_layers(&read.closure, budget, a.strategy, hints.as_ref(), a.image.as_deref())?;
    tracing::info!("{} paths read in {read_ms:.1} ms, laid out in {:.3} ms", read.closure.len(), started.elapsed().as_secs_f64() * 1000.0 - read_ms);
    let text = if a.explain {
        let by = applied_hints(a.strategy, hints.as_ref())?.map(|file| (file, a.image.as_deref()));
        hints_analyzer::explain::layers_text(&read.closure, budget, &layers, by)
    } else {
        let lists = layering_core::store_layers(&layers);
        match a.format {
            OutputFormat::StoreLayers => serde_json::to_string(&lists)? + "\n",
            OutputFormat::Nix2container => {
                let mut text = "[\n".to_string();
                for (k, l) in lists.iter().enumerate() {
                    text += &format!("  {}{}\n", serde_json::to_string(l)?, if k + 1 < lists.len() { "," } else { "" });
                }
                text + "]\n"
            }
        }
    };
    match output {
        Some(out) => std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?,
        None => outln!("{}", text.trim_end_matches('\n'))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_man(command: Option<&str>) -> Result<ExitCode> {
    let cli = Cli::command();
    let page = match command {
        None => cli,
        Some(name) => cli.find_subcommand(name).cloned().ok_or_else(|| BadInput(format!("no command `{name}` (see `hints --help`)")))?.name(format!("hints-{name}")),
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The layers of `--strategy`, defaulting to hints when a hint file is given and size-first
/// otherwise; with hints, what the file says for `--image`.
fn chosen_layers(closure: &layering_core::Closure, budget: layering_core::Budget, strategy: Option<StrategyArg>, hints: Option<&HintFile>, image: Option<&str>) -> Result<Vec<layering_core::Layer>> {
    Ok(match (strategy, applied_hints(strategy, hints)?) {
        (_, Some(h)) => {
            if image.is_none() {
                warn_unnamed_image(h);
            }
            layering_core::layer_image(closure, budget, h, image)?
        }
        (Some(StrategyArg::Popularity), None) => layering_core::layer(closure, budget, CoreStrategy::Popularity)?,
        _ => layering_core::layer(closure, budget, CoreStrategy::SizeFirst)?,
    })
}

/// Without `--image`, the file's groups lay the closure out as they do for an image the file
/// trusts: say so when the file lays some images out otherwise.
fn warn_unnamed_image(file: &HintFile) {
    let own_way: Vec<&str> = file.size_first_images.iter().map(String::as_str).chain(file.opt_outs.keys().map(String::as_str)).collect();
    if !own_way.is_empty() {
        tracing::warn!("the hint file lays out {} its own way (`size_first_images`, `opt_outs`); without --image this closure gets the groups as a trusted image does", own_way.join(", "));
    }
}

/// The hint file the layers follow: the one given, unless another `--strategy` is asked for.
fn applied_hints(strategy: Option<StrategyArg>, hints: Option<&HintFile>) -> Result<Option<&HintFile>> {
    match (strategy, hints) {
        (Some(StrategyArg::Hints) | None, Some(h)) => Ok(Some(h)),
        (Some(StrategyArg::Hints), None) => bail!(BadInput("--strategy hints needs --hints FILE".into())),
        _ => Ok(None),
    }
}

fn cmd_image(cmd: ImageCmd) -> Result<ExitCode> {
    match cmd.copy {
        Some(ImageSub::Copy { description, out, store_root, json }) => {
            let name = description.display().to_string();
            let desc: Description = serde_json::from_str(&scan::read_text(&name)?).map_err(|e| BadInput(format!("{name}: not an image description: {e}")))?;
            let (dir, tag) = oci_target(&out)?;
            let written = image::copy(&desc, Path::new(dir), tag, &store_root)?;
            return print_written(&written, dir, json);
        }
        Some(ImageSub::Closure { image, from_layers, verify }) => {
            let (dir, tag) = oci_source(&image)?;
            let closure = Image::open(Path::new(dir), tag)?.closure(from_layers, verify)?;
            if let Some(checked) = closure.checked {
                eprintln!("recovered from the layers; {checked}");
            }
            outln!("{}", serde_json::to_string(&closure.records)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let a = cmd.args;
    let (graph, nix) = match a.nix_build {
        true => {
            let (attrs_file, attrs, out) = nix_build_attrs()?;
            (attrs_file, Some((attrs, out)))
        }
        false => (a.graph.clone().expect("clap requires --graph"), None),
    };
    let text = scan::read_text(&graph)?;
    let read = scan::read_closure(&[(graph.clone(), text)], a.input_format)?;
    if !read.complete {
        bail!(BadInput(format!("{graph}: the graph has no sizes or references; an image needs the full closure graph")));
    }
    let plans = match &a.store_layers {
        Some(file) => {
            let name = file.display().to_string();
            LayerPlan::from_store_layers(&name, &scan::read_text(&name)?, &read.closure, a.top_layer.as_deref())?
        }
        None => {
            let hints = a.hints.as_deref().map(load_hints).transpose()?;
            let budget = a.budget.budget(hints.as_ref())?;
            let layers = chosen_layers(&read.closure, budget, a.strategy, hints.as_ref(), a.image.as_deref())?;
            LayerPlan::from_layers(&layers, a.top_layer.as_deref())
        }
    };
    let runtime = runtime_config(&a, nix.as_ref().and_then(|(attrs, _)| attrs.get("imageConfig")))?;
    let opts = WriteOptions {
        compression: match a.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
        },
        epoch: image::source_date_epoch()?,
        store_root: a.store_root.clone(),
    };
    let describe_to = nix.map(|(_, out)| out).or(a.describe.clone());
    if let Some(file) = describe_to {
        let desc = image::describe(&read.closure, &plans, &runtime, &opts)?;
        write_atomic(&file, &(serde_json::to_string_pretty(&desc)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let out = a.out.as_deref().expect("clap requires --out");
    if let Some(target) = out.strip_prefix("docker-archive:") {
        let (file, reference) = match target.split_once(':') {
            Some((file, name)) if name.contains(':') => (file, name.to_string()),
            Some((file, name)) => (file, format!("{name}:latest")),
            None => (target, "hints:latest".to_string()),
        };
        let dir = format!("{file}.oci");
        let written = image::write_oci(Path::new(&dir), &reference, &read.closure, &plans, &runtime, &opts)?;
        image::archive::write(Path::new(&dir), &written.manifest_digest, &reference, Path::new(file), opts.epoch)?;
        return print_written(&written, &dir, a.json);
    }
    let (dir, tag) = oci_target(out)?;
    let written = image::write_oci(Path::new(dir), tag, &read.closure, &plans, &runtime, &opts)?;
    print_written(&written, dir, a.json)
}

/// An image to read: `oci:DIR` (its only image) or `oci:DIR:TAG`.
fn oci_source(image: &str) -> Result<(&str, Option<&str>)> {
    let Some(target) = image.strip_prefix("oci:") else {
        bail!(BadInput(format!("{image}: expected oci:DIR or oci:DIR:TAG")));
    };
    Ok(match target.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') => (dir, Some(tag)),
        _ => (target, None),
    })
}

/// `oci:DIR` or `oci:DIR:TAG` as (DIR, TAG), the tag `latest` by default.
fn oci_target(out: &str) -> Result<(&str, &str)> {
    let Some(target) = out.strip_prefix("oci:") else {
        bail!(BadInput(format!("--out {out}: expected oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]")));
    };
    Ok(match target.rsplit_once(':') {
        Some((dir, tag)) if !tag.contains('/') => (dir, tag),
        _ => (target, "latest"),
    })
}

fn print_written(w: &Written, dir: &str, json: bool) -> Result<ExitCode> {
    if json {
        outln!("{}", serde_json::to_string_pretty(w)?)?;
    } else {
        let reused = w.layers.iter().filter(|l| l.reused).count();
        let bytes: u64 = w.layers.iter().map(|l| l.blob.size).sum();
        outln!("oci:{dir}:{} {} ({} layers, {} as blobs; {reused} already in the directory)", w.tag, w.manifest_digest, w.layers.len(), human_bytes(bytes))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// In a `__structuredAttrs` Nix build: the attrs file's name, its JSON, and the output path.
fn nix_build_attrs() -> Result<(String, serde_json::Value, PathBuf)> {
    let attrs = std::env::var("NIX_ATTRS_JSON_FILE").map_err(|_| BadInput("--nix-build: NIX_ATTRS_JSON_FILE is not set (not in a __structuredAttrs build)".into()))?;
    let text = scan::read_text(&attrs)?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{attrs}: invalid JSON"))?;
    let out = v["outputs"]["out"].as_str().ok_or_else(|| BadInput(format!("{attrs}: no outputs.out")))?.to_string();
    Ok((attrs, v, PathBuf::from(out)))
}

/// The runtime settings: `--config`'s file (or a Nix build's `imageConfig`), then the flags
/// over it.
fn runtime_config(a: &ImageArgs, from_nix: Option<&serde_json::Value>) -> Result<RuntimeConfig> {
    let mut c: RuntimeConfig = match (&a.config, from_nix) {
        (Some(f), _) => {
            let name = f.display().to_string();
            serde_json::from_str(&scan::read_text(&name)?).map_err(|e| BadInput(format!("{name}: {e}")))?
        }
        (None, Some(v)) => serde_json::from_value(v.clone()).map_err(|e| BadInput(format!("imageConfig: {e}")))?,
        (None, None) => RuntimeConfig::default(),
    };
    let pair = |flag: &str, kv: &str| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| BadInput(format!("--{flag} {kv}: expected KEY=VALUE")));
    for e in &a.env {
        let (name, _) = pair("env", e)?;
        c.env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != name);
        c.env.push(e.clone());
    }
    for l in &a.label {
        let (k, v) = pair("label", l)?;
        c.labels.insert(k, v);
    }
    if !a.cmd.is_empty() {
        c.cmd = a.cmd.clone();
    }
    if !a.entrypoint.is_empty() {
        c.entrypoint = a.entrypoint.clone();
    }
    c.working_dir = a.workdir.clone().or(c.working_dir);
    c.architecture = a.arch.clone().or(c.architecture);
    Ok(c)
}

fn cmd_fmt(file: &Path, check: bool) -> Result<ExitCode> {
    let text = scan::read_text(&file.display().to_string())?;
    let parsed = HintFile::parse(&text).map_err(|e| anyhow::Error::new(e).context(format!("{}", file.display())))?;
    let canonical = HintFile::keep_pins_text(&parsed.to_canonical_string(), &text);
    if canonical == text {
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        eprintln!("{}: not in canonical form (run `hints fmt {}`)", file.display(), file.display());
        return Ok(ExitCode::from(1));
    }
    write_atomic(file, &canonical)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
fn write_atomic(file: &Path, text: &str) -> Result<()> {
    let tmp = file.with_extension("tmp~");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("renaming onto {}", file.display()))?;
    Ok(())
}

fn cmd_validate(file: &Path, json: bool) -> Result<ExitCode> {
    let f = load_hints(file)?;
    let members: usize = f.groups.iter().map(|g| g.members.len()).sum();
    let bytes: u64 = f.groups.iter().map(|g| g.stats.size).sum();
    if json {
        let summary = serde_json::json!({
            "file": file, "valid": true, "version": f.version, "budget": f.budget, "groups": f.groups.len(), "members": members,
            "bytes": bytes, "merges": f.merges.len(), "pins": f.pins.len(), "learned_from": f.learned_from,
        });
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}: valid, version {}, budget {} layers ({} reserved), {} groups with {members} members ({}), {} plan entries, {} pins",
        file.display(),
        f.version,
        f.budget.max_layers,
        f.budget.reserve,
        f.groups.len(),
        human_bytes(bytes),
        f.merges.len(),
        f.pins.len()
    )?;
    let lf = &f.learned_from;
    if lf.revisions.count > 0 {
        outln!("learned from {} images, {} revisions ({} .. {}), database {}", lf.images.len(), lf.revisions.count, lf.revisions.first, lf.revisions.last, lf.db_summary)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The history of `images` (all when `None`); naming an image the database lacks is an error.
fn load_history(store: &Store, images: Option<&[String]>) -> Result<History> {
    check_images(store, images)?;
    Ok(History::load(store, images)?)
}

/// [`load_history`] with only the snapshots of the revisions `pick` chooses.
fn load_history_range(store: &Store, images: Option<&[String]>, pick: impl FnOnce(&[Revision]) -> Result<(usize, usize), StoreError>) -> Result<(History, (usize, usize))> {
    check_images(store, images)?;
    Ok(History::load_range(store, images, pick)?)
}

fn check_images(store: &Store, images: Option<&[String]>) -> Result<()> {
    if let Some(images) = images {
        let known: Vec<String> = store.images()?.into_iter().map(|(_, n)| n).collect();
        if let Some(unknown) = images.iter().find(|i| !known.contains(i)) {
            bail!(BadInput(format!("--images: no image `{unknown}` in {} (it has: {})", store.location(), known.join(", "))));
        }
    }
    Ok(())
}

fn cmd_diff(a: DiffArgs) -> Result<ExitCode> {
    let (old, new) = (load_hints(&a.old)?, load_hints(&a.new)?);
    let changes = diff::changes(&old, &new);
    let costs = history_costs(&a.db.location()?, &old, &new)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"changes": changes, "costs": costs}))?)?;
    } else {
        outln!("{}", diff::markdown(&a.old.display().to_string(), &a.new.display().to_string(), &changes, costs.as_ref()).trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The costs of switching from `old` to `new` on the database at `db`, where there is one.
fn history_costs(db: &Location, old: &HintFile, new: &HintFile) -> Result<Option<diff::Costs>> {
    let store = match Store::open_existing(db) {
        Err(StoreError::Missing(_)) => return Ok(None),
        opened => opened?,
    };
    let history = History::load(&store, None)?;
    let budget = Budget::new(new.budget.max_layers as usize, new.budget.reserve as usize).map_err(|e| BadInput(e.to_string()))?;
    Ok(Some(diff::costs(&history, old, new, budget)?))
}

fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    let options = serve::Options { db: a.db.location()?, listen: a.listen, max_body: a.max_body_mib << 20, timeout: std::time::Duration::from_secs(a.timeout) };
    serve::serve(options, |address| {
        // The first line of standard output, for whoever started the server on port 0.
        println!("listening on {address}");
    })?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_token_create(db: &DbArg, project: &str, scope: &str) -> Result<ExitCode> {
    if !serve::auth::valid_project(project) {
        bail!(BadInput(format!("--project {project}: expected 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")));
    }
    let scope = serve::auth::Scope::parse(scope).expect("clap checks the scope");
    let store = Store::open(&db.location()?)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    outln!("{}", serve::auth::create(&store, project, scope, &now)?)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_db_copy(from: &str, to: &str, json: bool) -> Result<ExitCode> {
    let source = Store::open_existing(&Location::parse(from).map_err(BadInput)?)?;
    let target = Store::open(&Location::parse(to).map_err(BadInput)?)?;
    let copied = hints_analyzer::store::copy::copy(&source, &target)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&copied)?)?;
    } else {
        let Copied { snapshots, paths, images, revisions, summary } = copied;
        outln!("copied {snapshots} snapshots ({images} images, {revisions} revisions, {paths} store paths) from {} to {}; both hold {summary}", source.location(), target.location())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(a: ExportArgs) -> Result<ExitCode> {
    let store = Store::open_existing(&a.db.location()?)?;
    let history = load_history(&store, Some(std::slice::from_ref(&a.image)))?;
    let revision = history.revision(&a.rev)?;
    let closure = history.closure(0, revision).ok_or_else(|| BadInput(format!("{} has no snapshot at revision {}", a.image, history.revisions[revision].label)))?;
    let label = &history.revisions[revision].label;
    if store.snapshot_rows()?.iter().any(|r| r.image == a.image && &r.revision == label && !r.complete) {
        tracing::warn!("{} @ {label} was scanned from a format without sizes or references: narSize is 0 and references are empty", a.image);
    }
    let record = |i: usize| serde_json::json!({"narSize": closure.nar_size(i), "references": closure.refs(i).iter().map(|&r| closure.path(r as usize).as_str()).collect::<Vec<_>>()});
    let json = match a.format {
        ExportFormat::PathInfo => serde_json::Value::Object((0..closure.len()).map(|i| (closure.path(i).to_string(), record(i))).collect()),
        ExportFormat::PathInfoArray => (0..closure.len())
            .map(|i| {
                let mut r = record(i);
                r["path"] = closure.path(i).as_str().into();
                r
            })
            .collect(),
    };
    outln!("{}", serde_json::to_string(&json)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The current hint file, for hysteresis: --previous, else --out where it exists, unless
/// --no-previous.
fn previous_hints(a: &EmitArgs) -> Option<PathBuf> {
    if a.no_previous {
        return None;
    }
    a.previous.clone().or_else(|| a.out.exists().then(|| a.out.clone()))
}

/// `hints emit --server`: the same file, learned on the server (with the previous file's text
/// sent for hysteresis, and its pins kept here as a local emit keeps them).
fn emit_remote(a: &EmitArgs, client: &Client, quiet: bool) -> Result<ExitCode> {
    if a.summary.is_some() || a.json {
        bail!(BadInput("--summary and --json need the history here; with --server, run `hints diff` on the file it writes".into()));
    }
    let previous_path = previous_hints(a);
    let previous = previous_path.as_deref().map(|p| scan::read_text(&p.display().to_string())).transpose()?;
    let request = HintRequest { max_layers: a.max_layers, reserve: a.reserve, range: a.range.as_deref(), images: a.images.as_deref(), min_gain: a.min_gain, registry_weight: a.registry_weight };
    let text = client.hint_file(&request, previous.as_deref())?;
    write_atomic(&a.out, &previous.map_or(text.clone(), |old| HintFile::keep_pins_text(&text, &old)))?;
    if !quiet {
        outln!("wrote {} (learned on {})", a.out.display(), a.remote.server.as_deref().unwrap_or_default())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_emit(a: EmitArgs, quiet: bool) -> Result<ExitCode> {
    if let Some(client) = a.remote.client()? {
        return emit_remote(&a, &client, quiet);
    }
    let db = a.db.location()?;
    let store = Store::open_existing(&db)?;
    let history = load_history(&store, a.images.as_deref())?;
    if history.snapshots.is_empty() {
        bail!(BadInput(format!("{}: no snapshots to learn from (run `hints scan` first)", store.location())));
    }
    let (first, last) = history.range(a.range.as_deref())?;
    let previous_path = previous_hints(&a);
    let previous = previous_path.as_deref().map(load_hints).transpose()?;
    let opts = EmitOptions { max_layers: a.max_layers, reserve: a.reserve, first, last, min_gain: a.min_gain, registry_weight: a.registry_weight, db_summary: history.summary.clone() };
    let emitted = mine::emit(&history, &opts, previous.as_ref()).map_err(|e| BadInput(e.to_string()))?;
    // The pins come from the previous file: their text, comments included, is kept.
    let previous_text = previous_path.as_deref().map(|p| scan::read_text(&p.display().to_string())).transpose()?;
    let text = emitted.file.to_canonical_string();
    write_atomic(&a.out, &previous_text.map_or(text.clone(), |old| HintFile::keep_pins_text(&text, &old)))?;
    if let Some(summary) = &a.summary {
        let before = previous.clone().unwrap_or_else(|| HintFile::new(emitted.file.budget));
        let budget = Budget::new(a.max_layers as usize, a.reserve as usize).map_err(|e| BadInput(e.to_string()))?;
        let costs = hints_analyzer::diff::costs(&history, &before, &emitted.file, budget)?;
        let old_name = previous_path.as_ref().map_or("(none)".to_string(), |p| p.display().to_string());
        let text = format!(
            "{}\n<details><summary>emit: backtest and hysteresis</summary>\n\n```\n{}\n```\n</details>\n",
            diff::markdown(&old_name, &a.out.display().to_string(), &diff::changes(&before, &emitted.file), Some(&costs)),
            emitted.report.trim_end()
        );
        write_atomic(summary, &text)?;
    }
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "out": a.out, "previous": previous_path, "groups": emitted.file.groups.len(), "range": [first, last],
                "unseen_joins": emitted.unseen_joins, "backtest": emitted.backtest, "hysteresis": emitted.hysteresis,
            }))?
        )?;
    } else if !quiet {
        if let Some(p) = &previous_path {
            outln!("previous file: {} (its groups stay unless regrouping saves more than --min-gain; --no-previous learns afresh)", p.display())?;
        }
        outln!("{}", emitted.report)?;
        outln!("wrote {} ({} groups)", a.out.display(), emitted.file.groups.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_eval(a: EvalArgs) -> Result<ExitCode> {
    let store = Store::open_existing(&a.db.location()?)?;
    let (history, (first, last)) = load_history_range(&store, a.images.as_deref(), |revs| range_positions(revs, Some(&a.range)))?;
    let hints = load_hints(&a.hints)?;
    match replay::training_overlap(&history, &hints, first, last) {
        Overlap::Overlaps(lo, hi) => {
            let msg = format!("{} was learned from revisions {lo}..{hi}, which overlap the replayed updates {}..{last}: that is testing on the training data", a.hints.display(), first + 1);
            if !a.allow_overlap {
                bail!(BadInput(format!("{msg} (pass --allow-overlap to replay anyway)")));
            }
            eprintln!("WARNING: {msg}");
        }
        Overlap::Disjoint => {}
        Overlap::Unknown => eprintln!("warning: the revisions {} was learned from are not in this database; cannot check for overlap", a.hints.display()),
    }
    let budget = a.budget.budget(Some(&hints))?;
    if let Some(image) = &a.pulls {
        let Some(i) = history.images.iter().position(|n| n == image) else {
            bail!(BadInput(format!("--pulls {image}: the history has no such image (it has {})", history.images.join(", "))));
        };
        let updates = pulls::pulls(&history, i, first, last, budget, &hints)?;
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "image": image, "max_layers": budget.max_layers, "reserve": budget.reserve, "updates": updates }))?)?;
        } else {
            print!("{}", pulls::render(image, &updates));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let results: Vec<Metrics> = replay::replay_many(&history, first, last, &Replayed::all(&hints).map(|s| (budget, s)))?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "range": [history.revisions[first].label, history.revisions[last].label],
                "max_layers": budget.max_layers, "reserve": budget.reserve, "images": history.images, "results": results
            }))?
        )?;
    } else {
        print!("{}", eval_table(&history, first, last, budget.max_layers, &results));
    }
    Ok(ExitCode::SUCCESS)
}

fn eval_table(history: &History, first: usize, last: usize, max_layers: usize, results: &[Metrics]) -> String {
    let get = |name: &str| results.iter().find(|m| m.strategy == name).expect("strategy replayed");
    let (floor, single) = (get("floor"), get("single"));
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let mut s = format!("replayed revisions {first}..{last} ({} updates per image), {} images, max layers {max_layers}\n", last - first, history.images.len());
    s += &format!(
        "{:<11} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>11} {:>8} {:>10}\n",
        "strategy", "update GiB", "x floor", "% single", "fleet GiB", "x floor", "% single", "storage GiB", "x floor", "pulls/upd"
    );
    for m in results {
        s += &format!(
            "{:<11} {:>10.3} {:>8.3} {:>8.1} {:>10.3} {:>8.3} {:>8.1} {:>11.3} {:>8.3} {:>10.1}\n",
            m.strategy,
            gib(m.update_bytes),
            ratio(m.update_bytes, floor.update_bytes),
            100.0 * ratio(m.update_bytes, single.update_bytes),
            gib(m.fleet_bytes),
            ratio(m.fleet_bytes, floor.fleet_bytes),
            100.0 * ratio(m.fleet_bytes, single.fleet_bytes),
            gib(m.storage_bytes),
            ratio(m.storage_bytes, floor.storage_bytes),
            ratio(m.layers_pulled, m.updates),
        );
    }
    let (hinted, default) = (get("hints"), get("size-first"));
    let change = |h: u64, d: u64| {
        let delta = h as f64 - d as f64;
        format!("{} {:.1}% ({:.2} GiB)", if delta <= 0.0 { "saves" } else { "adds" }, 100.0 * delta.abs() / d.max(1) as f64, gib(delta.abs() as u64))
    };
    s += &format!(
        "against size-first (nixpkgs' default), the hint file {} of image updates, {} of a node's pulls (fleet) and {} of registry storage\n",
        change(hinted.update_bytes, default.update_bytes),
        change(hinted.fleet_bytes, default.fleet_bytes),
        change(hinted.storage_bytes, default.storage_bytes)
    );
    s
}

fn cmd_report(a: ReportArgs) -> Result<ExitCode> {
    let db = a.db.location()?;
    let store = Store::open_existing(&db)?;
    let (history, (first, last)) = load_history_range(&store, a.images.as_deref(), |revs| match &a.range {
        Some(r) => range_positions(revs, Some(r)),
        None => {
            let last = revs.len().saturating_sub(1);
            Ok((last.saturating_sub(REPORT_UPDATES), last))
        }
    })?;
    let hints = load_hints(&a.hints)?;
    if let Overlap::Overlaps(lo, hi) = replay::training_overlap(&history, &hints, first, last) {
        eprintln!("warning: {} was learned from revisions {lo}..{hi}, which overlap the replayed updates {}..{last}: the figures are on the training data", a.hints.display(), first + 1);
    }
    let previous = a.previous.as_deref().map(|p| Ok::<_, anyhow::Error>((p.display().to_string(), load_hints(p)?))).transpose()?;
    let request = report::Request {
        source: store.location().to_string(),
        hints_name: a.hints.display().to_string(),
        hints: &hints,
        budget: a.budget.budget(Some(&hints))?,
        previous: previous.as_ref().map(|(name, file)| (name.clone(), file)),
    };
    let built = report::build(&history, (first, last), &request).map_err(|e| match e {
        report::ReportError::NoUpdate(..) => anyhow::Error::new(BadInput(e.to_string())),
        e => anyhow::Error::new(e),
    })?;
    write_atomic(&a.out, &report::page::render(&built)?).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {} ({} images, revisions {}..{})", a.out.display(), built.images.len(), built.range.0, built.range.1);
    Ok(ExitCode::SUCCESS)
}

/// Updates `hints report` replays when no range is given.
const REPORT_UPDATES: usize = 10;

fn cmd_explain(a: ExplainArgs) -> Result<ExitCode> {
    let store = Store::open_existing(&a.db.location()?)?;
    let history = History::load(&store, None)?;
    if !a.hints.exists() {
        bail!(BadInput(format!("no hint file at {}: give --hints FILE (the file `hints emit` wrote)", a.hints.display())));
    }
    let hints = load_hints(&a.hints)?;
    let range = match &a.range {
        Some(r) => history.range(Some(r))?,
        None => hints_analyzer::explain::learned_range(&history, &hints),
    };
    let explained = hints_analyzer::explain::explain(&history, range, &hints, &a.path_or_name).map_err(|e| BadInput(e.to_string()))?;
    let landings = match &a.image {
        Some(image) => {
            let i = history.images.iter().position(|x| x == image).ok_or_else(|| BadInput(format!("--image: no image `{image}` in {}", store.location())))?;
            let r = match &a.rev {
                Some(r) => history.revision(r)?,
                None => history.revisions.len() - 1,
            };
            Some(hints_analyzer::explain::in_image(&history, i, r, &hints, &a.path_or_name).map_err(|e| BadInput(e.to_string()))?)
        }
        None => None,
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"explanation": explained, "in_image": landings}))?)?;
    } else {
        print!("{}{}", explained.text(), landings.as_deref().map(hints_analyzer::explain::landings_text).unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
