//! The recorded history, loaded back from the database for mining and replay.
//!
//! Paths get dense indices; each snapshot is the sorted list of its members' indices. A
//! revision is named on the command line by its label, a commit-id prefix (4+ characters), or
//! its position in history order (`0` is the oldest); `A..B` is the inclusive range.

use std::collections::{HashMap, HashSet};

use hints_format::StorePath;
use layering_core::{Closure, PathRecord, Records, Texts};

use rayon::prelude::*;

use crate::store::{refs_digest_of, sorted_paths_digest, Revision, Store, StoreError, StoredSnapshot};

pub struct History {
    pub images: Vec<String>,
    pub revisions: Vec<Revision>,
    pub paths: Vec<StorePath>,
    pub sizes: Vec<u64>,
    /// References of each path (dense indices, self excluded).
    pub refs: Vec<Vec<u32>>,
    /// (image index, revision index) → sorted member indices.
    pub snapshots: HashMap<(usize, usize), Vec<u32>>,
    /// The database's summary digest ([`Store::summary_hash`]) of the state loaded.
    pub summary: String,
}

impl History {
    /// Loads every snapshot, or those of `only_images`, as of one committed state, and checks
    /// it: every snapshot's members and every path's references exist and form a closure, and
    /// every snapshot still has the paths digest and total size recorded when it was scanned,
    /// and every path the references digest. A damaged database is an error naming what is
    /// wrong, never a different history.
    pub fn load(store: &Store, only_images: Option<&[String]>) -> Result<Self, StoreError> {
        store.read(|store| Self::load_checked(store, store.revisions()?, only_images, None))
    }

    /// [`History::load`], keeping only the snapshots of the revisions `pick` chooses from the
    /// whole list (positions `first..=last`, returned beside the history). Every revision stays
    /// listed, so positions and labels mean what they mean in the whole history.
    pub fn load_range(store: &Store, only_images: Option<&[String]>, pick: impl FnOnce(&[Revision]) -> Result<(usize, usize), StoreError>) -> Result<(Self, (usize, usize)), StoreError> {
        store.read(|store| {
            let revs = store.revisions()?;
            if revs.is_empty() {
                return Err(StoreError::NoRevisions(store.location().to_string()));
            }
            let listed: Vec<Revision> = revs.iter().map(|(_, r)| r.clone()).collect();
            let range = pick(&listed)?;
            Ok((Self::load_checked(store, revs, only_images, Some(range))?, range))
        })
    }

    fn load_checked(store: &Store, revs: Vec<(i64, Revision)>, only_images: Option<&[String]>, range: Option<(usize, usize)>) -> Result<Self, StoreError> {
        let mut images: Vec<(i64, String)> = store.images()?;
        if let Some(only) = only_images {
            images.retain(|(_, n)| only.contains(n));
        }
        let rev_pos: HashMap<i64, usize> = revs.iter().enumerate().map(|(k, (id, _))| (*id, k)).collect();
        let img_pos: HashMap<i64, usize> = images.iter().enumerate().map(|(k, (id, _))| (*id, k)).collect();
        let wanted: Option<Vec<i64>> = range.map(|(first, last)| revs[first..=last].iter().map(|(id, _)| *id).collect());
        let mut stored: Vec<((usize, usize), StoredSnapshot)> =
            store.memberships(wanted.as_deref())?.into_iter().filter_map(|((img, rev), s)| Some(((*img_pos.get(&img)?, *rev_pos.get(&rev)?), s))).collect();
        // One image's snapshots in revision order share most members, so checking them one
        // after another finds those members' records in cache.
        stored.sort_unstable_by_key(|(key, _)| *key);
        // A range needs only its snapshots' paths (closed under references, as checked below).
        let needed: Option<HashSet<i64>> = range.map(|_| stored.iter().flat_map(|(_, s)| s.members.iter().copied()).collect());
        let mut records = store.all_paths(needed.as_ref())?;
        // Dense indices follow the paths' text, so nothing downstream depends on scan order.
        records.par_sort_unstable_by(|(_, a), (_, b)| a.path.cmp(&b.path));
        let dense = DenseIds::new(records.iter().map(|(id, _)| *id));
        let file = store.location();
        let damaged = |what: String| StoreError::Damaged { file: file.to_string(), what };
        let refs: Vec<Vec<u32>> = records
            .par_iter()
            .map(|(_, r)| {
                let refs: Vec<u32> = r.refs.iter().map(|&x| dense.get(x).ok_or_else(|| damaged(format!("{} references path id {x}, which is missing", r.path)))).collect::<Result<_, _>>()?;
                if refs_digest_of(&mut refs.iter().map(|&k| &records[k as usize].1.hash).collect::<Vec<_>>()) != r.refs_digest {
                    return Err(damaged(format!("the references of {} differ from those recorded", r.path)));
                }
                Ok(refs)
            })
            .collect::<Result<_, _>>()?;
        let (paths, sizes): (Vec<StorePath>, Vec<u64>) = records.into_iter().map(|(_, r)| (r.path, r.nar_size)).unzip();
        let dense_paths = Dense::new(&paths, &sizes, &refs);
        // Each thread marks a snapshot's members in its own array, stamped with the snapshot's
        // position, so checking that references stay inside is one lookup each.
        let snapshots: HashMap<(usize, usize), Vec<u32>> = stored
            .par_iter()
            .enumerate()
            .map_init(
                || (vec![u32::MAX; paths.len()], Vec::new()),
                |(inside, text), (k, ((i, r), s))| {
                    let at = || format!("snapshot of {} at {}", images[*i].1, revs[*r].1.label);
                    let mut m: Vec<u32> = s.members.iter().map(|&id| dense.get(id).ok_or_else(|| damaged(format!("{} holds path id {id}, which is missing", at())))).collect::<Result<_, _>>()?;
                    m.sort_unstable();
                    let token = u32::try_from(k).expect("fewer than 2^32 snapshots");
                    dense_paths.check(&m, s, token, inside, text).map_err(|what| damaged(format!("{}: {what}", at())))?;
                    Ok(((*i, *r), m))
                },
            )
            .collect::<Result<_, StoreError>>()?;
        Ok(History { images: images.into_iter().map(|(_, n)| n).collect(), revisions: revs.into_iter().map(|(_, r)| r).collect(), sizes, refs, paths, snapshots, summary: store.summary_hash()? })
    }

    /// The closure of one snapshot.
    pub fn closure(&self, image: usize, revision: usize) -> Option<Closure> {
        let members = self.snapshots.get(&(image, revision))?;
        // Members are sorted dense ids, so a reference's position among them is a binary search.
        let mut records = Records::with_capacity(members.len());
        for &p in members {
            let p = p as usize;
            let record = PathRecord { path: self.paths[p].clone(), nar_size: self.sizes[p], nar_hash: None, closure_size: None };
            records.push(record, self.refs[p].iter().map(|&r| members.binary_search(&r).map(|k| k as u32).map_err(|_| self.paths[r as usize].clone())));
        }
        Some(Closure::from_records(records).expect("stored closures were validated when scanned"))
    }

    /// Resolves one revision name to its position.
    pub fn revision(&self, name: &str) -> Result<usize, StoreError> {
        revision_position(&self.revisions, name)
    }

    /// Resolves `A..B` (inclusive), `A..` or `..B`; `None` means everything.
    pub fn range(&self, spec: Option<&str>) -> Result<(usize, usize), StoreError> {
        range_positions(&self.revisions, spec)
    }
}

/// The position in `revisions` (history order) of a revision named by its label, a commit-id
/// prefix (4+ characters) or its position.
pub fn revision_position(revisions: &[Revision], name: &str) -> Result<usize, StoreError> {
    if let Some(k) = revisions.iter().position(|r| r.label == name) {
        return match name.parse::<usize>() {
            Ok(p) if p != k && p < revisions.len() => Err(StoreError::AmbiguousRevision { name: name.to_string(), labelled: k }),
            _ => Ok(k),
        };
    }
    if name.len() >= 4 {
        let hits: Vec<usize> = (0..revisions.len()).filter(|&k| revisions[k].commit.as_deref().is_some_and(|c| c.starts_with(name))).collect();
        if hits.len() == 1 {
            return Ok(hits[0]);
        }
    }
    match name.parse::<usize>() {
        Ok(k) if k < revisions.len() => Ok(k),
        _ => Err(StoreError::UnknownRevision(name.to_string())),
    }
}

/// The positions of `A..B` (inclusive), `A..` or `..B` in `revisions`; `None` means all.
pub fn range_positions(revisions: &[Revision], spec: Option<&str>) -> Result<(usize, usize), StoreError> {
    let last = revisions.len().saturating_sub(1);
    let Some(spec) = spec else { return Ok((0, last)) };
    let bad = |why: String| StoreError::BadRange { spec: spec.to_string(), why };
    let (a, b) = spec.split_once("..").ok_or_else(|| bad("expected A..B, A.. or ..B".into()))?;
    let a = if a.is_empty() { 0 } else { revision_position(revisions, a)? };
    let b = if b.is_empty() { last } else { revision_position(revisions, b)? };
    if a > b {
        return Err(bad(format!("the range is backwards: position {a} comes after position {b}")));
    }
    Ok((a, b))
}

/// Database path ids to dense indices. Ids are given out from 1 upwards, so a table indexed
/// by id is the usual form (also for the paths of a range, which leave gaps), and a snapshot's
/// members, sorted by id, read it in order; ids spread far wider than their count are kept in
/// a hash map instead.
enum DenseIds {
    Table(Vec<u32>),
    Map(foldhash::HashMap<i64, u32>),
}

/// Entries a [`DenseIds`] table may have beyond four per id, whatever the count (4 MB).
const TABLE_SLACK: u64 = 1 << 20;

impl DenseIds {
    /// The dense index of each id is its position in `ids`.
    fn new(ids: impl Iterator<Item = i64> + Clone) -> Self {
        let count = ids.clone().count() as u64;
        let span = ids.clone().try_fold(0u64, |top, id| u64::try_from(id).ok().map(|id| top.max(id)));
        match span {
            Some(top) if top <= 4 * count + TABLE_SLACK => {
                let mut table = vec![u32::MAX; top as usize + 1];
                ids.enumerate().for_each(|(k, id)| table[id as usize] = k as u32);
                DenseIds::Table(table)
            }
            _ => DenseIds::Map(ids.enumerate().map(|(k, id)| (id, k as u32)).collect()),
        }
    }

    fn get(&self, id: i64) -> Option<u32> {
        match self {
            DenseIds::Table(table) => usize::try_from(id).ok().and_then(|i| table.get(i)).copied().filter(|&k| k != u32::MAX),
            DenseIds::Map(map) => map.get(&id).copied(),
        }
    }
}

/// The paths by dense index, for checking snapshots.
struct Dense<'a> {
    paths: &'a [StorePath],
    sizes: &'a [u64],
    refs: &'a [Vec<u32>],
    /// Every path's text, in dense order, in one buffer: a snapshot's members, read in
    /// increasing order for its digest, are read in increasing addresses.
    texts: Texts,
}

impl<'a> Dense<'a> {
    fn new(paths: &'a [StorePath], sizes: &'a [u64], refs: &'a [Vec<u32>]) -> Self {
        let mut texts = Texts::with_capacity(paths.len(), paths.iter().map(|p| p.as_str().len()).sum());
        paths.iter().for_each(|p| texts.push([p.as_str()]));
        Dense { paths, sizes, refs, texts }
    }

    /// Checks one snapshot (dense member indices `m`, sorted) against what was recorded at
    /// ingest: closed under references, the same paths digest and the same total size. `inside`
    /// is scratch space, stamped with `token` for the members; `text` is the digest's buffer.
    fn check(&self, m: &[u32], stored: &StoredSnapshot, token: u32, inside: &mut [u32], text: &mut Vec<u8>) -> Result<(), String> {
        for &p in m {
            inside[p as usize] = token;
        }
        if let Some((p, r)) = m.iter().flat_map(|&p| self.refs[p as usize].iter().map(move |&r| (p, r))).find(|&(_, r)| inside[r as usize] != token) {
            return Err(format!("{} references {}, which the snapshot lacks", self.paths[p as usize], self.paths[r as usize]));
        }
        // Dense order is the paths' text order, so the members come sorted.
        if sorted_paths_digest(m.iter().map(|&p| self.texts.bytes(p as usize)), text) != stored.digest {
            return Err("its paths differ from those recorded".into());
        }
        let total = m.iter().try_fold(0u64, |t, &p| t.checked_add(self.sizes[p as usize]));
        if total != Some(stored.total_size) {
            return Err(format!("its paths add up to {total:?} bytes, not the {} recorded", stored.total_size));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::DenseIds;

    #[test]
    fn path_ids_map_to_their_positions_whether_kept_in_a_table_or_a_map() {
        let close = [7i64, 1, 3, 2];
        let spread = [7i64, 1, 3, 1 << 40];
        let (table, map) = (DenseIds::new(close.iter().copied()), DenseIds::new(spread.iter().copied()));
        assert!(matches!(table, DenseIds::Table(_)) && matches!(map, DenseIds::Map(_)));
        for (dense, ids) in [(&table, &close), (&map, &spread)] {
            for (k, &id) in ids.iter().enumerate() {
                assert_eq!(dense.get(id), Some(k as u32), "id {id}");
            }
            for absent in [0, 4, 6, 8, -1, i64::MAX] {
                assert_eq!(dense.get(absent), None, "id {absent}");
            }
        }
    }
}
