//! The ingest pipeline: snapshot jobs from any source, stored in order. `hints scan`,
//! `hints-bench dataset` and (later) the service all ingest through [`ingest`].
//!
//! # Objective
//! Store many snapshots quickly without holding a whole dataset in memory, skip the ones already
//! recorded before any parsing work, and leave the database consistent whatever fails.
//!
//! # Definitions
//! - A [`Job`] is one snapshot to store: an image, a revision, and the closure texts (several
//!   texts are one closure). Texts are either read already ([`Sources::Read`]: files named on
//!   the command line, `nix path-info`, git objects) or files read when their chunk comes up
//!   ([`Sources::Files`]: datasets).
//! - A snapshot is *known* when the store holds one for the same image and revision with the
//!   same paths digest ([`scan::quick_digest`], from the paths alone): recorded store paths are
//!   immutable, so the same paths are the same closure.
//!
//! # Algorithm
//! For each chunk of [`CHUNK`] jobs, in order:
//! 1. look up the digest recorded for each job's image and revision;
//! 2. read each job in parallel, on other threads while this one stores the previous chunk:
//!    load its texts; a job with a recorded digest gets the quick digest, and is known when it
//!    matches (a new revision costs no quick digest); the others are parsed and prepared
//!    (validated, hashed, sorted). Every reading thread takes the next job no thread has taken,
//!    so jobs are read about in job order;
//! 3. store them one by one in job order, each in its own transaction as soon as it is read,
//!    and report each outcome. Where the next job to store is not read yet, this thread reads
//!    the next job not taken rather than wait (reading costs more than storing, so the readers
//!    are what a 2-core machine waits on).
//!
//! While the worker threads read a chunk, this thread stores the one before.
//!
//! A job that repeats one of the previous chunk is looked up before that chunk is stored, so it
//! is parsed, and then stored as unchanged.
//!
//! The first failure stops the batch: what was stored before it stays stored (a re-run skips
//! it), and the error says how many were.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use crate::formats::Format;
use crate::scan::{self, Dataset, HistoryStep, ReadClosure, ScanError};
use crate::store::{Outcome, Prepared, Revision, Store, StoreError};

/// Jobs parsed together; also the most texts held in memory at once.
pub const CHUNK: usize = 32;

/// One snapshot to store.
pub struct Job {
    /// The image.
    pub image: String,
    /// The revision.
    pub revision: Revision,
    /// The closure texts.
    pub sources: Sources,
}

/// A job's closure texts (see the module doc).
pub enum Sources {
    /// (name, text) pairs, read already.
    Read(Vec<(String, String)>),
    /// Files, read when the job's chunk comes up.
    Files(Vec<String>),
}

impl Sources {
    /// The texts, read now if they are files.
    pub fn load(&self) -> Result<Cow<'_, [(String, String)]>, ScanError> {
        Ok(match self {
            Sources::Read(v) => Cow::Borrowed(v),
            Sources::Files(files) => Cow::Owned(files.iter().map(|f| Ok((f.clone(), scan::read_text(f)?))).collect::<Result<_, ScanError>>()?),
        })
    }
}

/// Every snapshot of a dataset directory, revision by revision, and the graph files the
/// manifest implies but the directory lacks.
pub fn dataset_jobs(ds: &Dataset) -> (Vec<Job>, Vec<String>) {
    let (mut jobs, mut missing) = (vec![], vec![]);
    for (index, revision) in &ds.revisions {
        for image in &ds.images {
            let file = ds.graph_file(image, *index).display().to_string();
            if std::path::Path::new(&file).exists() {
                jobs.push(Job { image: image.clone(), revision: revision.clone(), sources: Sources::Files(vec![file]) });
            } else {
                missing.push(file);
            }
        }
    }
    (jobs, missing)
}

/// Every file of every commit of a git history walk. A file's image is its stem, or `single`
/// where a commit has only one file.
pub fn git_history_jobs(steps: Vec<HistoryStep>, single: Option<&str>) -> Vec<Job> {
    steps
        .into_iter()
        .flat_map(|s| {
            let revision = s.revision;
            let n = s.files.len();
            s.files.into_iter().map(move |(stem, rel, text)| Job {
                image: match single {
                    Some(image) if n == 1 => image.to_string(),
                    _ => stem,
                },
                sources: Sources::Read(vec![(format!("{rel}@{}", &revision.label[..12.min(revision.label.len())]), text)]),
                revision: revision.clone(),
            })
        })
        .collect()
}

/// What became of one job.
pub struct Stored<'a> {
    /// The job.
    pub job: &'a Job,
    /// Added, replaced or unchanged.
    pub outcome: Outcome,
    /// Paths in the closure.
    pub paths: usize,
    /// Warnings about the input (e.g. a format without sizes).
    pub warnings: Vec<String>,
    /// The revision's metadata before, where this job changed it.
    pub revised: Option<Revision>,
}

/// Counts over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Snapshots added.
    pub added: usize,
    /// Snapshots already recorded.
    pub unchanged: usize,
    /// Snapshots that replaced another closure for the same image and revision.
    pub replaced: usize,
    /// Store paths the database had not held.
    pub new_paths: usize,
}

impl Tally {
    /// Counts one stored snapshot.
    pub fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Added { new_paths } => (self.added, self.new_paths) = (self.added + 1, self.new_paths + new_paths),
            Outcome::Replaced { new_paths } => (self.replaced, self.new_paths) = (self.replaced + 1, self.new_paths + new_paths),
            Outcome::Unchanged => self.unchanged += 1,
        }
    }

    /// Snapshots handled.
    pub fn done(&self) -> usize {
        self.added + self.unchanged + self.replaced
    }
}

/// Why a batch stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading or parsing a job's input.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Storing it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reporting an outcome (e.g. writing to a closed pipe).
    #[error("reporting a stored snapshot: {0}")]
    Report(#[from] std::io::Error),
    /// A job of a batch of several failed; those before it are stored.
    #[error("{image} @ {revision}: {stored} of the {total} snapshots of this scan were stored before it (kept; a re-run skips them); it and the {} after it were not", total - stored - 1)]
    Batch {
        /// The failed job's image.
        image: String,
        /// Its revision.
        revision: String,
        /// Jobs stored before it.
        stored: usize,
        /// Jobs in the batch.
        total: usize,
        /// What went wrong.
        #[source]
        source: Box<IngestError>,
    },
}

impl IngestError {
    /// Whether the error is in a job's input (exit 2; HTTP 400 from `hints serve`).
    pub fn is_bad_input(&self) -> bool {
        match self {
            IngestError::Scan(e) => e.is_bad_input(),
            IngestError::Store(e) => e.is_bad_input(),
            IngestError::Batch { source, .. } => source.is_bad_input(),
            IngestError::Report(_) => false,
        }
    }
}

/// A chunk of jobs being read: each job's [`Read`] arrives on `read`, in any order, or is read
/// by the store side itself ([`PendingChunk::next_read`]).
struct PendingChunk<'a> {
    reads: Arc<ChunkReads<'a>>,
    read: mpsc::Receiver<(usize, ReadResult)>,
}

/// A chunk's jobs, each read by whichever thread takes it first ([`ChunkReads::take`]).
struct ChunkReads<'a> {
    jobs: &'a [Job],
    /// The digest the store holds for each job's image and revision.
    recorded: Vec<Option<[u8; 32]>>,
    format: Option<Format>,
    /// The first job no thread has taken.
    next: AtomicUsize,
}

impl ChunkReads<'_> {
    /// The next job no thread has taken, now taken.
    fn take(&self) -> Option<usize> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < self.jobs.len()).then_some(k)
    }

    fn read(&self, k: usize) -> ReadResult {
        read_job(&self.jobs[k], self.recorded[k], self.format)
    }

    /// Reads jobs on every thread of the pool until none is left to take, sending each read
    /// with its index. A send fails only when the store side stopped on an error; the rest is
    /// then left unread.
    fn read_on_pool(&self, read: mpsc::Sender<(usize, ReadResult)>) {
        rayon::broadcast(|_| {
            let read = read.clone();
            while let Some(k) = self.take() {
                if read.send((k, self.read(k))).is_err() {
                    break;
                }
            }
        });
    }
}

/// What reading a job found.
enum Read {
    /// The store holds this snapshot already; it has this many paths.
    Known(usize),
    /// A closure to store.
    Parsed(Box<Parsed>),
}

type ReadResult = Result<Read, IngestError>;

/// Stores `jobs` in order (see the module doc), calling `report` after each.
pub fn ingest(store: &mut Store, jobs: &[Job], format: Option<Format>, mut report: impl FnMut(&Stored<'_>) -> std::io::Result<()>) -> Result<Tally, IngestError> {
    let mut tally = Tally::default();
    std::thread::scope(|s| {
        let mut pending: Option<PendingChunk<'_>> = None;
        for chunk in jobs.chunks(CHUNK) {
            let recorded = chunk.iter().map(|job| store.snapshot_digest(&job.image, &job.revision.label)).collect::<Result<_, _>>()?;
            let reads = Arc::new(ChunkReads { jobs: chunk, recorded, format, next: AtomicUsize::new(0) });
            let (tx, read) = mpsc::channel();
            let on_pool = Arc::clone(&reads);
            s.spawn(move || on_pool.read_on_pool(tx));
            if let Some(p) = pending.take() {
                store_chunk(store, p, &mut tally, jobs.len(), &mut report)?;
            }
            pending = Some(PendingChunk { reads, read });
        }
        if let Some(p) = pending {
            store_chunk(store, p, &mut tally, jobs.len(), &mut report)?;
        }
        Ok(tally)
    })
}

/// Loads a job's texts: known when the paths digest is the `recorded` one (from its paths
/// alone, [`scan::quick_digest`]), parsed and prepared otherwise.
fn read_job(job: &Job, recorded: Option<[u8; 32]>, format: Option<Format>) -> ReadResult {
    let texts = job.sources.load()?;
    let known = recorded.and_then(|r| scan::quick_digest(&texts).filter(|(_, digest)| *digest == r));
    match known {
        Some((paths, _)) => Ok(Read::Known(paths)),
        None => parse(&texts, format).map(|parsed| Read::Parsed(Box::new(parsed))),
    }
}

/// Stores a chunk's jobs one by one in order, each as soon as it is read, counting and
/// reporting each.
fn store_chunk(store: &mut Store, chunk: PendingChunk<'_>, tally: &mut Tally, total: usize, report: &mut impl FnMut(&Stored<'_>) -> std::io::Result<()>) -> Result<(), IngestError> {
    let mut arrived: HashMap<usize, ReadResult> = HashMap::new();
    for (k, job) in chunk.reads.jobs.iter().enumerate() {
        let stored = chunk.next_read(&mut arrived, k).and_then(|read| match read {
            Read::Known(paths) => Ok(Stored { job, outcome: Outcome::Unchanged, paths, warnings: vec![], revised: None }),
            Read::Parsed(parsed) => store_parsed(store, job, *parsed),
        });
        let stored = stored.map_err(|e| in_batch(e, job, tally.done(), total))?;
        tally.count(stored.outcome);
        report(&stored)?;
    }
    Ok(())
}

impl PendingChunk<'_> {
    /// Job `k`'s read; those that arrive before it are kept in `arrived`. While it is not
    /// there, this thread reads the next job not taken, and waits only when none is left.
    fn next_read(&self, arrived: &mut HashMap<usize, ReadResult>, k: usize) -> ReadResult {
        loop {
            if let Some(r) = arrived.remove(&k) {
                return r;
            }
            let (j, r) = match self.read.try_recv() {
                Ok(sent) => sent,
                Err(_) => match self.reads.take() {
                    Some(j) => (j, self.reads.read(j)),
                    None => self.read.recv().expect("every job taken by another thread is sent before its sender drops"),
                },
            };
            arrived.insert(j, r);
        }
    }
}

/// One job's closure, parsed and prepared: the part of an ingest that needs no database, so a
/// server parses many pushes at once and stores them one at a time.
pub struct Parsed {
    read: ReadClosure,
    prep: Prepared,
}

/// Reads and parses `job` (see [`Parsed`]).
pub fn parse_job(job: &Job, format: Option<Format>) -> Result<Parsed, IngestError> {
    parse(&job.sources.load()?, format)
}

/// Stores a job parsed by [`parse_job`].
pub fn store_parsed<'a>(store: &mut Store, job: &'a Job, parsed: Parsed) -> Result<Stored<'a>, IngestError> {
    let Parsed { read, prep } = parsed;
    let before = store.revision(&job.revision.label)?;
    let outcome = store.ingest_prepared(&job.image, &job.revision, &read.closure, &prep, read.complete)?;
    let revised = before.filter(|b| *b != job.revision && outcome != Outcome::Unchanged);
    Ok(Stored { job, outcome, paths: read.closure.len(), warnings: read.warnings, revised })
}

fn parse(text: &[(String, String)], format: Option<Format>) -> Result<Parsed, IngestError> {
    let read = scan::read_closure(text, format)?;
    let prep = Prepared::new(&read.closure)?;
    Ok(Parsed { read, prep })
}

/// In a batch of several, an error names the job and how many were stored before it.
fn in_batch(e: IngestError, job: &Job, stored: usize, total: usize) -> IngestError {
    match total {
        1 => e,
        _ => IngestError::Batch { image: job.image.clone(), revision: job.revision.label.clone(), stored, total, source: Box::new(e) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Shape, Synth};

    /// Three images over 30 revisions: 90 jobs, so chunks overlap and either side reads.
    fn jobs() -> Vec<Job> {
        let mut synth = Synth::new(Shape { packages: 300, base: 20, images: 3, share: 0.3, bump: 0.05, seed: 3 });
        let mut jobs = vec![];
        for r in 0..30 {
            if r > 0 {
                synth.advance();
            }
            let revision = Revision { label: format!("r{r}"), commit: None, time: format!("2026-01-01T00:{r:02}:00Z"), branch: None, dirty: false };
            jobs.extend((0..3).map(|i| Job { image: synth.image_name(i), revision: revision.clone(), sources: Sources::Read(vec![(format!("{i}@{r}"), synth.closure_json(i))]) }));
        }
        jobs
    }

    /// The labels of the jobs `ingest` reported, in the order it reported them.
    fn reported(store: &mut Store, jobs: &[Job]) -> (Result<Tally, IngestError>, Vec<String>) {
        let mut order = vec![];
        let tally = ingest(store, jobs, None, |s| {
            order.push(format!("{} @ {}", s.job.image, s.job.revision.label));
            Ok(())
        });
        (tally, order)
    }

    #[test]
    fn jobs_are_stored_in_job_order_whichever_thread_reads_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(&tmp.path().join("h.db")).unwrap();
        let jobs = jobs();
        let expected: Vec<String> = jobs.iter().map(|j| format!("{} @ {}", j.image, j.revision.label)).collect();
        let (tally, order) = reported(&mut store, &jobs);
        assert_eq!(order, expected);
        assert_eq!(tally.unwrap().added, 90);
        let (tally, order) = reported(&mut store, &jobs);
        assert_eq!(order, expected);
        assert_eq!(tally.unwrap().unchanged, 90);
    }

    #[test]
    fn the_first_bad_job_in_job_order_stops_the_batch_with_those_before_it_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(&tmp.path().join("h.db")).unwrap();
        let mut jobs = jobs();
        for k in [50, 70] {
            jobs[k].sources = Sources::Read(vec![("broken".into(), "[{".into())]);
        }
        let (tally, order) = reported(&mut store, &jobs);
        let error = tally.expect_err("a bad job stops the batch");
        assert!(error.is_bad_input());
        assert!(error.to_string().contains("50 of the 90 snapshots of this scan were stored before it"), "{error}");
        assert_eq!(order.len(), 50);
        assert!(store.snapshot_digest(&jobs[49].image, &jobs[49].revision.label).unwrap().is_some());
        assert_eq!(store.snapshot_digest(&jobs[51].image, &jobs[51].revision.label).unwrap(), None);
    }
}
