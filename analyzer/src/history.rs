//! The recorded history, loaded back from the database for mining and replay.
//!
//! Paths get dense indices; each snapshot is the sorted list of its members' indices. A
//! revision is named on the command line by its label, a commit-id prefix (4+ characters), or
//! its position in history order (`0` is the oldest); `A..B` is the inclusive range.

use std::collections::HashMap;

use hints_format::StorePath;
use layering_core::{Closure, PathInfo};

use crate::store::{Revision, Store, StoreError};

pub struct History {
    pub images: Vec<String>,
    pub revisions: Vec<Revision>,
    pub paths: Vec<StorePath>,
    pub sizes: Vec<u64>,
    /// References of each path (dense indices, self excluded).
    pub refs: Vec<Vec<u32>>,
    /// (image index, revision index) → sorted member indices.
    pub snapshots: HashMap<(usize, usize), Vec<u32>>,
}

impl History {
    /// Loads every snapshot, or those of `only_images`.
    pub fn load(store: &Store, only_images: Option<&[String]>) -> Result<Self, StoreError> {
        let revs = store.revisions()?;
        let mut images: Vec<(i64, String)> = store.images()?;
        if let Some(only) = only_images {
            images.retain(|(_, n)| only.contains(n));
        }
        let rev_pos: HashMap<i64, usize> = revs.iter().enumerate().map(|(k, (id, _))| (*id, k)).collect();
        let img_pos: HashMap<i64, usize> = images.iter().enumerate().map(|(k, (id, _))| (*id, k)).collect();
        let records = store.all_paths()?;
        // Dense indices follow the paths' text, so nothing downstream depends on scan order.
        let mut ids: Vec<i64> = records.keys().copied().collect();
        ids.sort_unstable_by(|a, b| records[a].path.cmp(&records[b].path));
        let dense: HashMap<i64, u32> = ids.iter().enumerate().map(|(k, id)| (*id, k as u32)).collect();
        let mut snapshots = HashMap::new();
        for ((img, rev), members) in store.memberships()? {
            if let (Some(&i), Some(&r)) = (img_pos.get(&img), rev_pos.get(&rev)) {
                let mut m: Vec<u32> = members.iter().map(|id| dense[id]).collect();
                m.sort_unstable();
                snapshots.insert((i, r), m);
            }
        }
        Ok(History {
            images: images.into_iter().map(|(_, n)| n).collect(),
            revisions: revs.into_iter().map(|(_, r)| r).collect(),
            sizes: ids.iter().map(|id| records[id].nar_size).collect(),
            refs: ids.iter().map(|id| records[id].refs.iter().map(|r| dense[r]).collect()).collect(),
            paths: ids.iter().map(|id| records[id].path.clone()).collect(),
            snapshots,
        })
    }

    /// The closure of one snapshot.
    pub fn closure(&self, image: usize, revision: usize) -> Option<Closure> {
        let members = self.snapshots.get(&(image, revision))?;
        let infos = members
            .iter()
            .map(|&p| PathInfo {
                path: self.paths[p as usize].clone(),
                nar_size: self.sizes[p as usize],
                nar_hash: None,
                closure_size: None,
                references: self.refs[p as usize].iter().map(|&r| self.paths[r as usize].clone()).collect(),
            })
            .collect();
        Some(Closure::new(infos).expect("stored closures were validated when scanned"))
    }

    /// Resolves one revision name to its position.
    pub fn revision(&self, name: &str) -> Result<usize, StoreError> {
        if let Some(k) = self.revisions.iter().position(|r| r.label == name) {
            return Ok(k);
        }
        if name.len() >= 4 {
            let hits: Vec<usize> = (0..self.revisions.len())
                .filter(|&k| self.revisions[k].commit.as_deref().is_some_and(|c| c.starts_with(name)))
                .collect();
            if hits.len() == 1 {
                return Ok(hits[0]);
            }
        }
        match name.parse::<usize>() {
            Ok(k) if k < self.revisions.len() => Ok(k),
            _ => Err(StoreError::UnknownRevision(name.to_string())),
        }
    }

    /// Resolves `A..B` (inclusive), `A..` or `..B`; `None` means everything.
    pub fn range(&self, spec: Option<&str>) -> Result<(usize, usize), StoreError> {
        let last = self.revisions.len().saturating_sub(1);
        let Some(spec) = spec else { return Ok((0, last)) };
        let (a, b) = spec.split_once("..").ok_or_else(|| StoreError::UnknownRevision(format!("{spec} (expected A..B)")))?;
        let a = if a.is_empty() { 0 } else { self.revision(a)? };
        let b = if b.is_empty() { last } else { self.revision(b)? };
        if a > b {
            return Err(StoreError::UnknownRevision(format!("{spec} (the range is backwards)")));
        }
        Ok((a, b))
    }
}
