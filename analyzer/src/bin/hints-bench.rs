//! `hints-bench`: the figures the README quotes. Run `bench/run.sh` for all of them.
//!
//! Each subcommand prints one block of `key: value` lines, including the process's peak
//! resident memory, so run one subcommand per process for a per-benchmark peak.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hints_analyzer::history::History;
use hints_analyzer::ingest;
use hints_analyzer::mine::{self, EmitOptions};
use hints_analyzer::replay::{replay, Replayed};
use hints_analyzer::scan::{self, Dataset};
use hints_analyzer::serve::client::Client;
use hints_analyzer::store::{Location, Store};
use hints_analyzer::synth::{self, GraphShape, Shape, Synth};
use hints_format::{BudgetHeader, Group, HintFile, Matcher, MemberPattern, StorePath};
use layering_core::{layer, Budget, Closure, Strategy};
use rayon::prelude::*;

/// The allocator `hints` itself uses, so in-process timings match the command's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ingest a large synthetic history into a fresh database (an SQLite file, replaced, or
    /// an empty PostgreSQL database given by URL).
    Scan {
        #[arg(long, default_value_t = 20)]
        images: usize,
        #[arg(long, default_value_t = 500)]
        revisions: usize,
        #[arg(long, default_value = "/tmp/hints-bench.db")]
        db: String,
    },
    /// Ingest a dataset directory (e.g. ../shared/data/dev-history) into a fresh database.
    Dataset {
        dir: PathBuf,
        #[arg(long, default_value = "/tmp/hints-bench-dev.db")]
        db: PathBuf,
    },
    /// Match a 20,000-path closure against a 1,500-member hint file, as the layerer does (renames included).
    Match {
        #[arg(long, default_value_t = 20_000)]
        paths: usize,
        #[arg(long, default_value_t = 1_500)]
        members: usize,
    },
    /// Layer synthetic closures of several sizes with every strategy; with --python DIR, time
    /// the nixpkgs originals (closure-graph.py, auto-layer.py in DIR, unmodified) on the same
    /// graphs.
    Layer {
        #[arg(long, value_delimiter = ',', default_value = "500,2000,5000,20000,50000")]
        sizes: Vec<usize>,
        #[arg(long)]
        python: Option<PathBuf>,
        /// Largest closure to time the Python originals on (closure-graph.py is quadratic).
        #[arg(long, default_value_t = 5000)]
        python_max: usize,
        /// The `hints` binary, for whole-command timings.
        #[arg(long, default_value = "target/release/hints")]
        hints: PathBuf,
    },
    /// Layer closures of each graph shape (preferential attachment, chain, fan, hub) with every
    /// strategy, and fit each one's growth exponent: in-process, then the layering step of fresh
    /// `hints layer` commands.
    Shapes {
        #[arg(long, value_delimiter = ',', default_value = "1000,3000,10000,30000,100000,200000")]
        sizes: Vec<usize>,
        /// Then time the whole `hints layer` command on closures of this many paths, each shape
        /// and strategy (median of 7 runs), beside `serde_json` parsing the same file.
        #[arg(long, default_value_t = 20_000)]
        whole: usize,
        /// The `hints` binary, for whole-command timings.
        #[arg(long, default_value = "target/release/hints")]
        hints: PathBuf,
        /// Then time the nixpkgs originals (closure-graph.py, auto-layer.py in DIR, unmodified)
        /// on each shape's closures, beside whole `hints layer` commands on the same files.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Largest closure to time the Python originals on (closure-graph.py is quadratic).
        #[arg(long, default_value_t = 3000)]
        python_max: usize,
    },
    /// Emit from a database (e.g. the one `scan` wrote), over all its revisions; writes the hint
    /// file to --out (for `hints report` on the same history).
    Emit {
        #[arg(long, default_value = "/tmp/hints-bench.db")]
        db: String,
        #[arg(long, default_value = "/tmp/hints-bench.yaml")]
        out: PathBuf,
    },
    /// `hints serve` under load (concurrent clients pushing small snapshots: latency), then its
    /// throughput against a local scan of the same synthetic history, in the same run (pushed
    /// as `hints scan --server` pushes, several in flight).
    Serve {
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        per_client: usize,
        #[arg(long, default_value_t = 20)]
        images: usize,
        #[arg(long, default_value_t = 500)]
        revisions: usize,
        /// The `hints` binary that serves.
        #[arg(long, default_value = "target/release/hints")]
        hints: PathBuf,
        /// Measure the throughput on this dataset directory (e.g. ../shared/data/dev-history)
        /// instead of the synthetic history.
        #[arg(long)]
        dataset: Option<PathBuf>,
    },
    /// `hints emit` (the whole command) on one wide image: a root over N leaves of their own
    /// names, 3 revisions, for the growth of its time and memory.
    Wide {
        #[arg(long, value_delimiter = ',', default_value = "10000,20000,50000,100000,200000")]
        sizes: Vec<usize>,
        /// The `hints` binary.
        #[arg(long, default_value = "target/release/hints")]
        hints: PathBuf,
    },
    /// Nix's reference scan alone over every file and symlink under DIR (a store, or any
    /// tree), read with recovery's buffer size, on the threads RAYON_NUM_THREADS allows.
    Refscan { dir: PathBuf },
    /// Replay revisions of a database under every strategy.
    Eval {
        db: PathBuf,
        hints: PathBuf,
        #[arg(long, default_value = "6..12")]
        range: String,
    },
}

fn peak_rss_mb() -> f64 {
    hints_analyzer::peak_rss_kb().map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// The CPU time this process has used, all threads, user and system (`/proc/self/stat`, in the
/// kernel's fixed 100 ticks a second); NaN where the system does not report it.
fn cpu_seconds() -> f64 {
    let ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    ticks().map_or(f64::NAN, |t| t as f64 / 100.0)
}

/// Revision `r` of the synthetic history, an hour apart.
fn synthetic_revision(r: usize) -> hints_analyzer::store::Revision {
    hints_analyzer::store::Revision {
        label: format!("r{r}"),
        commit: None,
        time: (chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::TimeDelta::hours(480_000 + r as i64)).to_rfc3339(),
        branch: None,
        dirty: false,
    }
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"].iter().filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok()).map(|m| m.len()).sum()
}

/// A database to fill: an SQLite file, removed first, or an empty PostgreSQL database.
fn fresh_db(db: &Location) -> Result<Store> {
    if let Location::File(path) = db {
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{s}", path.display()));
        }
    }
    let store = Store::open(db)?;
    if !store.snapshot_rows()?.is_empty() {
        bail!("{} already holds snapshots: give an empty database", store.location());
    }
    Ok(store)
}

/// The large history: `images` images sharing a base, ~3,000 paths each, ~90% of paths
/// unchanged between consecutive revisions.
fn large_shape(images: usize) -> Shape {
    Shape { packages: 9000, base: 600, images, share: 0.19, bump: 0.0035, seed: 7 }
}

fn bench_scan(images: usize, revisions: usize, db: &Location) -> Result<()> {
    let mut store = fresh_db(db)?;
    let mut synth = Synth::new(large_shape(images));
    // Only the ingest is timed: the JSON texts stand for the files a user's scan reads.
    let (mut timed, mut timed_cpu) = (std::time::Duration::ZERO, 0.0);
    let (mut paths, mut snapshots, mut unchanged_paths, mut compared_paths) = (0usize, 0usize, 0usize, 0usize);
    let mut previous: std::collections::HashSet<String> = Default::default();
    for r in 0..revisions {
        if r > 0 {
            synth.advance();
        }
        let revision = synthetic_revision(r);
        let jobs: Vec<ingest::Job> = (0..images)
            .into_par_iter()
            .map(|i| ingest::Job { image: synth.image_name(i), revision: revision.clone(), sources: ingest::Sources::Read(vec![(format!("image {i}"), synth.closure_json(i))]) })
            .collect();
        let (t, cpu) = (Instant::now(), cpu_seconds());
        ingest::ingest(&mut store, &jobs, None, |s| {
            paths += s.paths;
            snapshots += 1;
            Ok(())
        })?;
        timed += t.elapsed();
        timed_cpu += cpu_seconds() - cpu;
        let now: std::collections::HashSet<String> = synth.closure(0).iter().map(|p| p.record.path.to_string()).collect();
        if r > 0 {
            unchanged_paths += now.intersection(&previous).count();
            compared_paths += now.len();
        }
        previous = now;
    }
    let secs = timed.as_secs_f64();
    // Re-scanning an unchanged snapshot: the last revision again.
    let revision = synthetic_revision(revisions - 1);
    let json = synth.closure_json(0);
    let reps = 50;
    let t1 = Instant::now();
    for _ in 0..reps {
        // What `hints scan` does first: the paths' digest, one lookup.
        let (_, digest) = scan::quick_digest(&[("bench".to_string(), json.clone())]).expect("bare array");
        if store.snapshot_digest(&synth.image_name(0), &revision.label)? != Some(digest) {
            bail!("re-scan was not a no-op");
        }
    }
    let rescan_ms = t1.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    drop(store);
    println!("bench: scan (synthetic large history, through the pipeline of `hints scan`: parse, digest, ingest)");
    println!("snapshots: {snapshots} ({images} images x {revisions} revisions)");
    println!("paths ingested: {paths} (avg {:.0} per snapshot)", paths as f64 / snapshots as f64);
    println!("unchanged between consecutive revisions: {:.1}%", 100.0 * unchanged_paths as f64 / compared_paths.max(1) as f64);
    println!("seconds: {secs:.1}");
    println!("CPU seconds: {timed_cpu:.1} ({:.2} cores busy on average)", timed_cpu / secs);
    println!("paths per second: {:.0}", paths as f64 / secs);
    if let Location::File(path) = db {
        println!("database bytes: {} ({:.1} MB)", db_bytes(path), db_bytes(path) as f64 / 1e6);
    }
    println!("re-scan of an unchanged {}-path snapshot (parse + digest + lookup): {rescan_ms:.2} ms", synth.closure(0).len());
    println!("peak memory: {:.0} MB", peak_rss_mb());
    Ok(())
}

/// Reads every file and symlink under `dir` through the reference scanner, in parallel over
/// files; prints bytes, time and MB/s.
fn bench_refscan(dir: &Path) -> Result<()> {
    let mut files = vec![];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    let t = Instant::now();
    let (bytes, windows) = files.par_iter().map_init(|| vec![0u8; 128 << 10], |buf, f| refscan_file(f, buf)).try_reduce(|| (0, 0), |a, b| Ok((a.0 + b.0, a.1 + b.1)))?;
    let secs = t.elapsed().as_secs_f64();
    println!("bench: reference scan of {} ({} files, {} thread(s))", dir.display(), files.len(), rayon::current_num_threads());
    println!("bytes: {bytes} ({:.0} MiB)", bytes as f64 / 1048576.0);
    println!("32-digit windows found: {windows}");
    println!("seconds: {secs:.3}");
    println!("MB/s: {:.0}", bytes as f64 / secs / 1e6);
    println!("peak memory: {:.0} MB", peak_rss_mb());
    Ok(())
}

/// One file's (or symlink's) bytes scanned through `buf`: (bytes, windows found).
fn refscan_file(file: &Path, buf: &mut [u8]) -> Result<(u64, usize)> {
    use std::io::Read;
    let mut scanner = hints_analyzer::recover::stream::Scanner::default();
    let mut found = std::collections::HashSet::new();
    if std::fs::symlink_metadata(file)?.file_type().is_symlink() {
        let target = std::fs::read_link(file)?;
        scanner.feed(target.as_os_str().as_encoded_bytes(), &mut found);
        return Ok((target.as_os_str().len() as u64, found.len()));
    }
    let mut reader = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut bytes = 0u64;
    loop {
        let n = reader.read(buf)?;
        if n == 0 {
            return Ok((bytes, found.len()));
        }
        scanner.feed(&buf[..n], &mut found);
        bytes += n as u64;
    }
}

/// A `hints serve` on a fresh SQLite database in `dir`, with a push token for project
/// `bench`; stopped (SIGTERM) by the caller.
fn start_server(bin: &Path, dir: &Path) -> Result<(std::process::Child, String, String)> {
    let db = dir.join("served.db");
    let out = Command::new(bin).args(["token", "create", "--db"]).arg(&db).args(["--project", "bench", "--scope", "push"]).output()?;
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let mut child = Command::new(bin).args(["serve", "--listen", "127.0.0.1:0", "--db"]).arg(&db).stdout(std::process::Stdio::piped()).spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    let address = line.trim().strip_prefix("listening on ").with_context(|| format!("the server said `{line}`"))?.to_string();
    Ok((child, format!("http://{address}"), token))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What `hints-bench serve` pushes for its throughput figure.
enum ServedHistory<'a> {
    Synthetic { images: usize, revisions: usize },
    Dataset(&'a Path),
}

fn bench_serve(clients: usize, per_client: usize, history: ServedHistory<'_>, bin: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("hints-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut server, base, token) = start_server(bin, &dir)?;
    // Load: every client its own image, pushing its revisions one after another.
    let t0 = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                let (base, token) = (base.clone(), token.clone());
                s.spawn(move || -> Result<Vec<f64>> {
                    let client = Client::with_token(&base, "bench", token);
                    let mut synth = Synth::new(Shape { packages: 300, base: 40, images: 1, share: 0.5, bump: 0.05, seed: k as u64 });
                    let mut out = vec![];
                    for r in 0..per_client {
                        if r > 0 {
                            synth.advance();
                        }
                        let job = ingest::Job { image: format!("client{k}"), revision: synthetic_revision(r), sources: ingest::Sources::Read(vec![("bench".into(), synth.closure_json(0))]) };
                        let t = Instant::now();
                        client.push(&job, None)?;
                        out.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client thread")).collect::<Result<Vec<_>>>().map(|v| v.concat())
    })?;
    let load_secs = t0.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let stored = Store::open_existing(&dir.join("served.db"))?.snapshot_rows()?.len();
    println!("bench: serve");
    println!("load: {clients} clients x {per_client} snapshots: {} acknowledged, {stored} stored, {load_secs:.1} s", latencies.len());
    println!("push latency ms: p50 {:.1}, p99 {:.1}, max {:.1}", percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies[latencies.len() - 1]);
    // Throughput: one client pushing the history, then a local ingest of the same, batch by batch.
    let client = Client::with_token(&base, "bench", token);
    let mut store = fresh_db(&Location::File(dir.join("local.db")))?;
    let (mut http, mut local, mut snapshots) = (std::time::Duration::ZERO, std::time::Duration::ZERO, 0);
    let mut measure = |jobs: &[ingest::Job]| -> Result<()> {
        let t = Instant::now();
        client.push_all(jobs, None, |_, _| Ok(())).map_err(|f| f.error)?;
        http += t.elapsed();
        let t = Instant::now();
        ingest::ingest(&mut store, jobs, None, |_| Ok(()))?;
        local += t.elapsed();
        snapshots += jobs.len();
        Ok(())
    };
    let what = match history {
        ServedHistory::Dataset(dir) => {
            measure(&ingest::dataset_jobs(&Dataset::open(dir)?).0)?;
            dir.display().to_string()
        }
        ServedHistory::Synthetic { images, revisions } => {
            let mut synth = Synth::new(large_shape(images));
            for r in 0..revisions {
                if r > 0 {
                    synth.advance();
                }
                let jobs: Vec<ingest::Job> = (0..images)
                    .into_par_iter()
                    .map(|i| ingest::Job { image: synth.image_name(i), revision: synthetic_revision(r), sources: ingest::Sources::Read(vec![(format!("image {i}"), synth.closure_json(i))]) })
                    .collect();
                measure(&jobs)?;
            }
            format!("synthetic, {images} images x {revisions} revisions")
        }
    };
    let (n, http, local) = (snapshots as f64, http.as_secs_f64(), local.as_secs_f64());
    println!(
        "throughput ({what}, {snapshots} snapshots): over HTTP {:.1} snapshots/s ({http:.1} s), local {:.1} snapshots/s ({local:.1} s): {:.0}% of local (target >= 50%)",
        n / http,
        n / local,
        100.0 * local / http
    );
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status()?;
    let status = server.wait()?;
    println!("server stopped by SIGTERM: {status}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn bench_dataset(dir: &Path, db: &Path) -> Result<()> {
    let mut store = fresh_db(&db.into())?;
    let ds = Dataset::open(dir)?;
    let t0 = Instant::now();
    let mut paths = 0;
    let (jobs, _) = ingest::dataset_jobs(&ds);
    ingest::ingest(&mut store, &jobs, None, |s| {
        paths += s.paths;
        Ok(())
    })?;
    let secs = t0.elapsed().as_secs_f64();
    println!("bench: scan {} (the pipeline of `hints scan --dataset`)", dir.display());
    println!("snapshots: {}, paths: {paths}, seconds: {secs:.2}, paths per second: {:.0}", jobs.len(), paths as f64 / secs);
    println!("database bytes: {}", db_bytes(db));
    println!("peak memory: {:.0} MB", peak_rss_mb());
    Ok(())
}

/// A synthetic closure of about `n` paths and a hint file over its names.
fn closure_and_hints(n: usize, members: usize) -> (Closure, HintFile) {
    let synth = Synth::new(Shape { packages: n, base: n / 20, images: 1, share: 1.0, bump: 0.0, seed: 11 });
    let closure = Closure::new(synth.closure(0)).expect("valid");
    let file = hints_over(&closure, members);
    (closure, file)
}

/// A hint file of 80 groups over `members` of the closure's names, spread evenly.
fn hints_over(closure: &Closure, members: usize) -> HintFile {
    let n = closure.len();
    let mut file = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
    // As `hints emit` writes it: unknown paths are ranked by stability, which walks closures.
    file.learned_from.path_hazard = Some(0.075);
    let mut labels: Vec<String> = closure.paths().map(|p| MemberPattern::identity_of(p.name())).collect();
    labels.sort();
    labels.dedup();
    let chosen: Vec<String> = labels.into_iter().step_by((n / members).max(1)).take(members).collect();
    let per = chosen.len().div_ceil(80).max(1);
    file.groups = chosen.chunks(per).enumerate().map(|(k, c)| Group { id: format!("g{k}"), members: c.to_vec(), stats: Default::default() }).collect();
    file.validate().expect("valid hint file");
    file
}

fn bench_match(paths: usize, members: usize) -> Result<()> {
    let (closure, file) = closure_and_hints(paths, members);
    let names: Vec<&str> = closure.paths().map(StorePath::name).collect();
    let mut times = vec![];
    let mut matched = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let m = Matcher::new(&file);
        matched = m.place_closure(&names).expect("no conflicts").iter().filter(|p| p.group.is_some()).count();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!("bench: match");
    println!("closure paths: {}, hint members: {}, groups: {}, paths matched: {matched}", names.len(), file.groups.iter().map(|g| g.members.len()).sum::<usize>(), file.groups.len());
    println!("compile + match all paths: median {:.2} ms, min {:.2} ms (21 runs)", times[10], times[0]);
    Ok(())
}

fn best_ms(runs: usize, f: impl Fn()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

/// The best time of at least `runs` runs of `f`, run until they take `total_ms` in all.
fn best_ms_within(runs: usize, total_ms: f64, f: impl Fn()) -> f64 {
    let (mut best, mut spent, mut done) = (f64::INFINITY, 0.0, 0);
    while done < runs || spent < total_ms {
        let ms = best_ms(1, &f);
        (best, spent, done) = (best.min(ms), spent + ms, done + 1);
    }
    best
}

fn bench_layer(sizes: &[usize], python: Option<&Path>, python_max: usize, hints_bin: &Path) -> Result<()> {
    println!("bench: layer (best of 3, in-process; `hints layer` = whole command incl. JSON parse, median of 5)");
    println!("{:>7} {:>12} {:>12} {:>12} {:>14} {:>10} {:>12} {:>12}", "paths", "popularity", "size-first", "hints", "hints layer", "peak MB", "py pop", "py auto");
    let dir = std::env::temp_dir().join("hints-bench-layer");
    std::fs::create_dir_all(&dir)?;
    for &n in sizes {
        let (closure, file) = closure_and_hints(n, 1500.min(n / 2));
        let b = Budget::default();
        let pop = best_ms(3, || drop(layer(&closure, b, Strategy::Popularity)));
        let sf = best_ms(3, || drop(layer(&closure, b, Strategy::SizeFirst)));
        let hi = best_ms(3, || drop(layer(&closure, b, Strategy::Hints(&file))));
        let graph = dir.join(format!("graph-{n}.json"));
        let hints_file = dir.join(format!("hints-{n}.yaml"));
        let synth = Synth::new(Shape { packages: n, base: n / 20, images: 1, share: 1.0, bump: 0.0, seed: 11 });
        std::fs::write(&graph, synth.closure_json(0))?;
        std::fs::write(&hints_file, file.to_canonical_string())?;
        let (cmd_ms, peak) = run_hints_layer(hints_bin, &graph, &["--hints", hints_file.to_str().expect("utf-8 path")], 5)?;
        let (py_pop, py_auto) = match python.filter(|_| n <= python_max) {
            Some(py) => match python_originals(py, &graph)? {
                (Ok(popularity), Ok(size_first)) => (popularity, size_first),
                (Err(why), _) | (_, Err(why)) => bail!("a nixpkgs original failed on {}: {why}", graph.display()),
            },
            None => (f64::NAN, f64::NAN),
        };
        println!("{n:>7} {pop:>10.1}ms {sf:>10.1}ms {hi:>10.1}ms {cmd_ms:>12.1}ms {peak:>10.0} {py_pop:>10.0}ms {py_auto:>10.0}ms");
        if python.is_some() && n <= python_max {
            let (cmd_pop, _) = run_hints_layer(hints_bin, &graph, &["--strategy", "popularity"], 5)?;
            let (cmd_sf, _) = run_hints_layer(hints_bin, &graph, &["--strategy", "size-first"], 5)?;
            println!(
                "        python / hints: popularity {:.0}x in-process, {:.0}x whole command ({cmd_pop:.1} ms); size-first {:.0}x in-process, {:.1}x whole command ({cmd_sf:.1} ms)",
                py_pop / pop,
                py_pop / cmd_pop,
                py_auto / sf,
                py_auto / cmd_sf
            );
        }
    }
    Ok(())
}

/// Runs per size and strategy in `bench_shapes`, the best one kept: at least this many, and
/// more until they take [`SHAPE_MS`] in all, so that neither the largest sizes (a single run
/// takes the machine's noise) nor the smallest (a run of 0.1 ms takes a timer's) carry noise into
/// the fitted exponent.
const SHAPE_RUNS: usize = 5;
const SHAPE_MS: f64 = 200.0;

fn bench_shapes(sizes: &[usize]) -> Result<()> {
    println!("bench: layer by graph shape (in-process, best of {SHAPE_RUNS} runs or of {SHAPE_MS} ms of runs at every size)");
    println!("{:>13} {:>7} {:>9} {:>12} {:>12} {:>12}", "shape", "paths", "edges", "popularity", "size-first", "hints");
    let budget = Budget::default();
    for shape in GraphShape::ALL {
        let mut times: Vec<(usize, [f64; 3])> = vec![];
        for &n in sizes {
            let closure = Closure::new(shape.closure(n, 5)).context("a generated closure")?;
            let file = hints_over(&closure, 1500.min(n / 2));
            let edges: usize = (0..closure.len()).map(|i| closure.refs(i).len()).sum();
            let t = [Strategy::Popularity, Strategy::SizeFirst, Strategy::Hints(&file)].map(|s| best_ms_within(SHAPE_RUNS, SHAPE_MS, || drop(layer(&closure, budget, s))));
            println!("{:>13} {n:>7} {edges:>9} {:>10.2}ms {:>10.2}ms {:>10.2}ms", shape.name(), t[0], t[1], t[2]);
            times.push((n, t));
        }
        let fit = |k: usize| growth_exponent(&times.iter().map(|&(n, t)| (n as f64, t[k])).collect::<Vec<_>>());
        println!("{:>13} {:>7} {:>9} {:>12.2} {:>12.2} {:>12.2}", shape.name(), "exponent", "", fit(0), fit(1), fit(2));
    }
    println!("peak memory: {:.0} MB", peak_rss_mb());
    Ok(())
}

/// Fresh `hints layer` commands per shape, size and strategy in `bench_shapes_fresh`.
const FRESH_RUNS: usize = 7;

/// The layering step as a fresh `hints layer` process runs it (the time it logs between reading
/// the closure and writing the layers, median of [`FRESH_RUNS`]), for each shape, size and
/// strategy, with the fitted growth exponent and the slope between the two largest sizes. The
/// in-process table above runs each closure again and again with everything in the caches;
/// here, as in a build, the step meets its data once.
fn bench_shapes_fresh(sizes: &[usize], bin: &Path) -> Result<()> {
    println!("bench: the layering step in a fresh `hints layer` process (median of {FRESH_RUNS} runs), growth exponent and the slope between the two largest sizes");
    println!("{:>13} {:>7} {:>21} {:>12} {:>12}", "shape", "paths", "popularity", "size-first", "hints");
    let dir = std::env::temp_dir().join("hints-bench-shapes");
    std::fs::create_dir_all(&dir)?;
    for shape in GraphShape::ALL {
        let mut times: Vec<(usize, [f64; 3])> = vec![];
        for &n in sizes {
            let (graph, hints_file) = shape_files(&dir, shape, n)?;
            let hints_arg = hints_file.to_str().context("a UTF-8 temporary path")?;
            let mut t = [0.0; 3];
            for (k, extra) in [&["--strategy", "popularity"][..], &["--strategy", "size-first"], &["--hints", hints_arg]].into_iter().enumerate() {
                let mut step: Vec<f64> = (0..FRESH_RUNS).map(|_| run_hints_layer_once(bin, &graph, extra).map(|stderr| logged_step_ms(&stderr))).collect::<Result<_>>()?;
                step.sort_by(f64::total_cmp);
                t[k] = step[FRESH_RUNS / 2];
            }
            println!("{:>13} {n:>7} {:>19.3}ms {:>10.3}ms {:>10.3}ms", shape.name(), t[0], t[1], t[2]);
            times.push((n, t));
        }
        let fit = |k: usize| growth_exponent(&times.iter().map(|&(n, t)| (n as f64, t[k])).collect::<Vec<_>>());
        let last = |k: usize| growth_exponent(&times[times.len().saturating_sub(2)..].iter().map(|&(n, t)| (n as f64, t[k])).collect::<Vec<_>>());
        println!("{:>13} {:>7} {:>12.2} ({:.2}) {:>5.2} ({:.2}) {:>5.2} ({:.2})", shape.name(), "exponent", fit(0), last(0), fit(1), last(1), fit(2), last(2));
    }
    Ok(())
}

/// The closure of `shape` with `n` paths and a hint file over it, written to `dir` as graph
/// JSON and YAML.
fn shape_files(dir: &Path, shape: GraphShape, n: usize) -> Result<(PathBuf, PathBuf)> {
    let closure_infos = shape.closure(n, 5);
    let graph = dir.join(format!("{}-{n}.json", shape.name()));
    std::fs::write(&graph, synth::graph_json(&closure_infos))?;
    let hints_file = dir.join(format!("{}-{n}.yaml", shape.name()));
    std::fs::write(&hints_file, hints_over(&Closure::new(closure_infos).context("a generated closure")?, 1500.min(n / 2)).to_canonical_string())?;
    Ok((graph, hints_file))
}

/// Whole `hints layer` commands on one closure of each shape, every strategy, beside the floor:
/// `serde_json` reading and parsing the same file, in this process.
fn bench_shapes_whole(n: usize, bin: &Path) -> Result<()> {
    const RUNS: usize = 7;
    println!("bench: whole `hints layer` command on {n} paths (median of {RUNS} runs; peak: the most any strategy took)");
    println!("{:>13} {:>14} {:>12} {:>12} {:>12} {:>8}", "shape", "serde_json MB/s", "parse ms", "popularity", "size-first", "hints");
    let dir = std::env::temp_dir().join("hints-bench-shapes");
    std::fs::create_dir_all(&dir)?;
    for shape in GraphShape::ALL {
        let (graph, hints_file) = shape_files(&dir, shape, n)?;
        let mut parse_ms: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let text = std::fs::read_to_string(&graph)?;
                let _: serde_json::Value = serde_json::from_str(&text)?;
                Ok(t.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<Result<_>>()?;
        parse_ms.sort_by(f64::total_cmp);
        let parse = parse_ms[RUNS / 2];
        let mb_s = std::fs::metadata(&graph)?.len() as f64 / 1e6 / (parse / 1000.0);
        let hints_arg = hints_file.to_str().context("a UTF-8 temporary path")?;
        let mut peak: f64 = 0.0;
        let mut ms = vec![];
        for extra in [&["--strategy", "popularity"][..], &["--strategy", "size-first"], &["--hints", hints_arg]] {
            let (t, p) = run_hints_layer(bin, &graph, extra, RUNS)?;
            peak = peak.max(p);
            ms.push(t);
        }
        println!("{:>13} {mb_s:>14.0} {parse:>10.1}ms {:>10.1}ms {:>10.1}ms {:>6.1}ms  peak {peak:.0} MB", shape.name(), ms[0], ms[1], ms[2]);
    }
    Ok(())
}

/// The nixpkgs originals on each shape's closures of `sizes` paths, whole script against whole
/// `hints layer` command (median of 5) on the same file.
fn bench_shapes_python(sizes: &[usize], bin: &Path, py: &Path) -> Result<()> {
    println!("bench: the nixpkgs originals against whole `hints layer` commands on the same files (hints: median of 5 runs)");
    println!("{:>13} {:>7} {:>16} {:>12} {:>7} {:>16} {:>12} {:>7}", "shape", "paths", "closure-graph.py", "popularity", "ratio", "auto-layer.py", "size-first", "ratio");
    let dir = std::env::temp_dir().join("hints-bench-shapes");
    std::fs::create_dir_all(&dir)?;
    for shape in GraphShape::ALL {
        for &n in sizes {
            let (graph, _) = shape_files(&dir, shape, n)?;
            let (py_pop, py_auto) = python_originals(py, &graph)?;
            let (pop, _) = run_hints_layer(bin, &graph, &["--strategy", "popularity"], 5)?;
            let (sf, _) = run_hints_layer(bin, &graph, &["--strategy", "size-first"], 5)?;
            let (pop_cells, sf_cells) = (against_python(&py_pop, pop), against_python(&py_auto, sf));
            println!("{:>13} {n:>7} {:>16} {pop:>10.1}ms {:>7} {:>16} {sf:>10.1}ms {:>7}", shape.name(), pop_cells.0, pop_cells.1, sf_cells.0, sf_cells.1);
            for (script, why) in [("closure-graph.py", py_pop.err()), ("auto-layer.py", py_auto.err())] {
                if let Some(why) = why {
                    println!("{:>21} {script} failed: {why}", "");
                }
            }
        }
    }
    Ok(())
}

/// A Python original's time and its ratio to the `hints` command's, as table cells ("failed"
/// where the script failed).
fn against_python(python: &ScriptRun, hints_ms: f64) -> (String, String) {
    match python {
        Ok(ms) => (format!("{ms:.0}ms"), format!("{:.0}x", ms / hints_ms)),
        Err(_) => ("failed".into(), "-".into()),
    }
}

/// One run of a script: its time in ms, or the last line it wrote to standard error where it
/// failed.
type ScriptRun = Result<f64, String>;

/// One run of each nixpkgs original in `py`, unmodified, on the graph array in `graph`:
/// closure-graph.py (it reads the array under a key of a JSON object, as
/// `exportReferencesGraph` writes it in `.attrs.json`) and auto-layer.py with 99 layers.
fn python_originals(py: &Path, graph: &Path) -> Result<(ScriptRun, ScriptRun)> {
    let attrs = graph.with_extension("attrs.json");
    std::fs::write(&attrs, format!("{{\"graph\": {}}}", std::fs::read_to_string(graph)?))?;
    let popularity = run_script(Command::new("python3").arg(py.join("closure-graph.py")).arg(&attrs).arg("graph"))?;
    let size_first = run_script(Command::new("python3").arg(py.join("auto-layer.py")).arg(graph).arg("/dev/null").arg("99"))?;
    Ok((popularity, size_first))
}

fn run_script(cmd: &mut Command) -> Result<ScriptRun> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok(match out.status.success() {
        true => Ok(ms),
        false => Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("no message").to_string()),
    })
}

/// The slope of log(time) against log(size), by least squares: 1 is linear, 2 quadratic.
fn growth_exponent(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|&(n, t)| (n.ln(), t.max(1e-3).ln())).collect();
    let k = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|p| p.0).sum::<f64>() / k, logs.iter().map(|p| p.1).sum::<f64>() / k);
    let cov: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let var: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    cov / var
}

/// The median time of `runs` whole `hints layer` commands, and the largest peak memory.
fn run_hints_layer(bin: &Path, graph: &Path, extra: &[&str], runs: usize) -> Result<(f64, f64)> {
    let (mut times, mut peak) = (vec![], 0.0f64);
    for _ in 0..runs {
        let t = Instant::now();
        let stderr = run_hints_layer_once(bin, graph, extra)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        peak = peak.max(logged_peak_mb(&stderr));
    }
    times.sort_by(f64::total_cmp);
    Ok((times[runs / 2], peak))
}

/// One `hints -v layer` command; its log (standard error).
fn run_hints_layer_once(bin: &Path, graph: &Path, extra: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(bin).args(["-v", "layer", "--graph"]).arg(graph).args(extra).output().with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("hints layer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stderr)
}

/// The layering step's time, as `hints -v layer` logs it.
fn logged_step_ms(stderr: &[u8]) -> f64 {
    String::from_utf8_lossy(stderr).lines().find_map(|l| l.split("laid out in ").nth(1)?.split(' ').next()?.parse().ok()).unwrap_or(f64::NAN)
}

/// The peak memory a `hints -v` command logged, in MB.
fn logged_peak_mb(stderr: &[u8]) -> f64 {
    String::from_utf8_lossy(stderr).lines().find_map(|l| l.split("peak memory: ").nth(1)?.split(' ').next()?.parse().ok()).unwrap_or(f64::NAN)
}

fn bench_emit(db: &Location, out: &Path) -> Result<()> {
    let t0 = Instant::now();
    let store = Store::open_existing(db)?;
    let history = History::load(&store, None)?;
    let load = t0.elapsed().as_secs_f64();
    let last = history.revisions.len() - 1;
    let opts = EmitOptions { max_layers: 100, reserve: 1, first: 0, last, min_gain: 0.02, registry_weight: 1.0, db_summary: history.summary.clone() };
    let t1 = Instant::now();
    let emitted = mine::emit(&history, &opts, None)?;
    let mine_secs = t1.elapsed().as_secs_f64();
    println!("bench: emit");
    println!("snapshots: {}, revisions: {}, images: {}", history.snapshots.len(), history.revisions.len(), history.images.len());
    println!("load seconds: {load:.1}, mine seconds: {mine_secs:.1}, total: {:.1}", load + mine_secs);
    println!("groups: {}", emitted.file.groups.len());
    println!("peak memory: {:.0} MB", peak_rss_mb());
    std::fs::write(out, emitted.file.to_canonical_string()).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn bench_wide(sizes: &[usize], bin: &Path) -> Result<()> {
    println!("bench: hints emit on one wide image (a root over N leaves, 3 revisions; whole command, 1 run)");
    println!("{:>8} {:>10} {:>10}", "paths", "seconds", "peak MB");
    let dir = std::env::temp_dir().join("hints-bench-wide");
    std::fs::create_dir_all(&dir)?;
    let mut points = vec![];
    for &n in sizes {
        let db = dir.join(format!("wide{n}.db"));
        let _ = std::fs::remove_file(dir.join(format!("wide{n}.yaml")));
        let mut store = fresh_db(&Location::File(db.clone()))?;
        let jobs: Vec<ingest::Job> = (0..3)
            .map(|r| ingest::Job { image: "wide".into(), revision: synthetic_revision(r), sources: ingest::Sources::Read(vec![("wide".into(), synth::graph_json(&synth::wide_image(n, r)))]) })
            .collect();
        ingest::ingest(&mut store, &jobs, None, |_| Ok(()))?;
        drop(store);
        let t = Instant::now();
        let out = Command::new(bin).args(["-v", "emit", "--db"]).arg(&db).arg("--out").arg(dir.join(format!("wide{n}.yaml"))).output().with_context(|| format!("running {}", bin.display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("hints emit failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let peak = logged_peak_mb(&out.stderr);
        println!("{n:>8} {secs:>10.2} {peak:>10.1}");
        points.push((n as f64, secs, peak));
    }
    let fit = |k: usize| growth_exponent(&points.iter().map(|p| (p.0, if k == 0 { p.1 } else { p.2 })).collect::<Vec<_>>());
    println!("growth exponent: time {:.2}, memory {:.2}", fit(0), fit(1));
    Ok(())
}

fn bench_eval(db: &Path, hints: &Path, range: &str) -> Result<()> {
    let t0 = Instant::now();
    let store = Store::open(db)?;
    let history = History::load(&store, None)?;
    let (first, last) = history.range(Some(range))?;
    let file = HintFile::parse(&std::fs::read_to_string(hints)?)?;
    let b = Budget::default();
    for s in Replayed::all(&file) {
        replay(&history, first, last, b, s)?;
    }
    println!("bench: eval {range} with every strategy: {:.2} s, peak memory {:.0} MB", t0.elapsed().as_secs_f64(), peak_rss_mb());
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Scan { images, revisions, db } => bench_scan(images, revisions, &Location::parse(&db).map_err(anyhow::Error::msg)?),
        Cmd::Dataset { dir, db } => bench_dataset(&dir, &db),
        Cmd::Match { paths, members } => bench_match(paths, members),
        Cmd::Layer { sizes, python, python_max, hints } => bench_layer(&sizes, python.as_deref(), python_max, &hints),
        Cmd::Shapes { sizes, whole, hints, python, python_max } => {
            bench_shapes(&sizes)?;
            bench_shapes_fresh(&sizes, &hints)?;
            bench_shapes_whole(whole, &hints)?;
            match python {
                Some(py) => bench_shapes_python(&sizes.into_iter().filter(|&n| n <= python_max).collect::<Vec<_>>(), &hints, &py),
                None => Ok(()),
            }
        }
        Cmd::Serve { clients, per_client, images, revisions, hints, dataset } => {
            let history = match &dataset {
                Some(dir) => ServedHistory::Dataset(dir),
                None => ServedHistory::Synthetic { images, revisions },
            };
            bench_serve(clients, per_client, history, &hints)
        }
        Cmd::Emit { db, out } => bench_emit(&Location::parse(&db).map_err(anyhow::Error::msg)?, &out),
        Cmd::Wide { sizes, hints } => bench_wide(&sizes, &hints),
        Cmd::Eval { db, hints, range } => bench_eval(&db, &hints, &range),
        Cmd::Refscan { dir } => bench_refscan(&dir),
    }
}
