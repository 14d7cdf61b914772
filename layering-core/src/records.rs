//! Path records as an input format states them, before they are checked as a closure.
//!
//! A format lists each store path with its size and references. [`PathInfo`] is one such
//! record with its references as paths. [`Records`] is a whole list with every reference
//! already turned into the position of the record it names, which is what a parser that looks
//! references up while reading produces, and what [`crate::Closure::from_records`] takes: the
//! closure then neither looks a reference up again nor copies its path. A reference to a path
//! the list does not hold stays a path (`unlisted`), for the closure's error to name it.

use hints_format::StorePath;

/// One store path's record, without its references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRecord {
    /// The store path.
    pub path: StorePath,
    /// Bytes of its NAR serialisation (what a layer holding it costs, near enough).
    pub nar_size: u64,
    /// `sha256:…` of the NAR, where the format gives it.
    pub nar_hash: Option<String>,
    /// Bytes of its whole closure, where the format gives it.
    pub closure_size: Option<u64>,
}

/// One store path's record with its references, as an input format describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The path, its size and what else the format says of it.
    pub record: PathRecord,
    /// References, possibly including the path itself.
    pub references: Vec<StorePath>,
}

impl PathInfo {
    /// A record that gives only a size and references, as generated closures do.
    pub fn new(path: StorePath, nar_size: u64, references: Vec<StorePath>) -> Self {
        PathInfo { record: PathRecord { path, nar_size, nar_hash: None, closure_size: None }, references }
    }
}

/// Path records with references as positions in the list.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub(crate) records: Vec<PathRecord>,
    /// Record `k`'s listed references are `targets[offsets[k]..offsets[k + 1]]`, in the order
    /// the input gave them.
    pub(crate) offsets: Vec<usize>,
    pub(crate) targets: Vec<u32>,
    /// References to paths no record has: (the referring record's position, the path), in
    /// input order.
    pub(crate) unlisted: Vec<(u32, StorePath)>,
}

impl Records {
    /// Room for `n` records.
    pub fn with_capacity(n: usize) -> Self {
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        Records { records: Vec::with_capacity(n), offsets, targets: Vec::with_capacity(3 * n), unlisted: vec![] }
    }

    /// Appends a record. Each reference is `Ok(position)` of a record in this list (before or
    /// after this one), or `Err(path)` for a path that no record lists.
    pub fn push(&mut self, record: PathRecord, references: impl IntoIterator<Item = Result<u32, StorePath>>) {
        let at = self.records.len() as u32;
        for r in references {
            match r {
                Ok(position) => self.targets.push(position),
                Err(path) => self.unlisted.push((at, path)),
            }
        }
        self.offsets.push(self.targets.len());
        self.records.push(record);
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, in input order.
    pub fn records(&self) -> &[PathRecord] {
        &self.records
    }

    /// Record `k`'s references that are in the list, as positions.
    pub fn listed(&self, k: usize) -> &[u32] {
        &self.targets[self.offsets[k]..self.offsets[k + 1]]
    }

    /// Resolves each record's references by path; a path listed twice resolves to its first
    /// record.
    pub fn from_infos(infos: Vec<PathInfo>) -> Self {
        let mut first: foldhash::HashMap<StorePath, u32> = foldhash::HashMap::default();
        first.reserve(infos.len());
        for (k, info) in infos.iter().enumerate() {
            first.entry(info.record.path.clone()).or_insert(k as u32);
        }
        let mut out = Records::with_capacity(infos.len());
        for info in infos {
            let references = info.references.into_iter().map(|r| first.get(&r).copied().ok_or(r));
            out.push(info.record, references);
        }
        out
    }

    /// The records with their references as paths again: listed ones first, in input order,
    /// then unlisted ones.
    pub fn into_infos(self) -> Vec<PathInfo> {
        let mut unlisted = self.unlisted.into_iter().peekable();
        let paths: Vec<StorePath> = self.records.iter().map(|r| r.path.clone()).collect();
        self.records
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let mut references: Vec<StorePath> = self.targets[self.offsets[k]..self.offsets[k + 1]].iter().map(|&j| paths[j as usize].clone()).collect();
                while let Some((_, path)) = unlisted.next_if(|(from, _)| *from as usize == k) {
                    references.push(path);
                }
                PathInfo { record: r, references }
            })
            .collect()
    }

    /// The records of several lists as one, with references across them resolved.
    pub fn concat(parts: Vec<Records>) -> Self {
        match <[Records; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => Records::from_infos(parts.into_iter().flat_map(Records::into_infos).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::{info, sp};

    #[test]
    fn positions_and_paths_round_trip() {
        let infos = vec![info("a-1", 1, &["b-1", "x-1", "a-1"]), info("b-1", 2, &[]), info("a-1", 1, &["y-1"])];
        let r = Records::from_infos(infos.clone());
        assert_eq!(r.len(), 3);
        // "a-1" resolves to its first record, "x-1" is in no record.
        assert_eq!(r.listed(0), &[1, 0]);
        assert_eq!(r.unlisted, vec![(0, sp("x-1")), (2, sp("y-1"))]);
        let back = r.into_infos();
        assert_eq!(back[0].references, vec![sp("b-1"), sp("a-1"), sp("x-1")]);
        assert_eq!(back[1], infos[1]);
        assert_eq!(back[2], infos[2]);
    }

    #[test]
    fn concatenated_lists_resolve_across_each_other() {
        let one = Records::from_infos(vec![info("a-1", 1, &["b-1"])]);
        let two = Records::from_infos(vec![info("b-1", 2, &["c-1"])]);
        let all = Records::concat(vec![one, two]);
        assert_eq!(all.listed(0), &[1]);
        assert_eq!(all.unlisted, vec![(1, sp("c-1"))]);
    }
}
