//! `hints`: layers from a hint file, with a size-aware fallback for what it does not cover.
//!
//! Objective: reproduce the groups the analyzer learned (paths that share images and change
//! together) as layers, so that an update re-downloads only the groups that really changed, and
//! place anything the file does not know without ever collapsing it into one unbounded layer.
//!
//! Algorithm, with `n` store layers:
//! 1. Match every path's name against the file ([`hints_format::Matcher`]). A placing pin wins
//!    over a group: `own-layer` gives each matching path a layer, `together` one layer for all
//!    of them. Otherwise a group match puts the path in its group's layer. A name the file
//!    places nowhere that is a rename of a group member (`libperl5.42` for `libperl5.40`;
//!    [`Matcher::place_closure`]) gets a layer of its own beside that group's, whether the
//!    member is still in this closure or not: a library or interpreter bump leaves the
//!    fallback's layers as they were, and a rename that arrives beside its predecessor keeps
//!    its layer when the predecessor leaves (in the group's layer it would be pulled again
//!    then, with the group's other members). A group with no path in this closure costs
//!    nothing; a group partly present is still one layer.
//! 2. A path that nothing places but a `not-catch-all` pin covers gets a layer of its own.
//! 3. The rest (names the history never saw) are the fallback. It is promised at least
//!    `min(count, fallback_reserve(n))` layers, and at least its share of the budget by what
//!    layers protect, the bytes expected to stay unchanged at an update (each unit's bytes times
//!    one minus its change rate; the fallback's rate is 0.75, see step 7), in steps of
//!    `fallback_reserve(n)`. Sharing by bytes or paths instead over-splits a big fallback beside
//!    stable groups, and step 7 then throws its surplus layers into one volatile layer.
//! 4. While the units and the fallback's promise exceed `n`, the file's `merges` (an optional,
//!    hand-written plan; `hints emit` writes none) are applied in order: each joins the unit
//!    holding one group with the unit holding another, so an image merges only as far as its
//!    own budget requires and a small image keeps the finer groups. Entries naming an absent
//!    group are skipped; a joined unit takes the lower of the two positions.
//! 5. The fallback then gets whatever the units leave (at least its promise), and its paths are
//!    split by the `size-first` rule (primaries get their own layers, dependencies follow the
//!    set of primaries that need them). A path the fallback reaches only through a path the
//!    file places belongs to that path as much as to the primary, as it would to a primary
//!    in size-first: it does not follow the primary, whose bytes its changes would pull
//!    (a new binutils library below a new gcc reached through the file's binutils). Primaries are
//!    the largest paths; with the history's per-path hazard `h` (`learned_from.path_hazard`)
//!    they are the paths with the most bytes likely to stay unchanged, `narSize·e^(−h·c)` for a
//!    closure of `c` other paths, since in Nix a path changes when anything below it does. So
//!    the fallback is size- and churn-aware and has no catch-all layer that grows with the
//!    closure.
//! 6. Order, bottom-up: units with a `bottom` pin, then groups in file order (the analyzer
//!    writes stable groups first), then placing pins, then `not-catch-all` layers, then the
//!    fallback (new names are the most likely to change). Docker keys unpacked layers by their
//!    chain, so stable layers belong at the bottom.
//! 7. While there are still more than `n` layers, merge the pair that wastes least in
//!    expectation: each unit's bytes re-downloaded when it stays unchanged and the other does
//!    not, `S_a·(1 − p_a − q) + S_b·(1 − p_b − q)` with `q` the chance that neither changes,
//!    and both units' bytes when the merge is new (an image that grows merges anew), one update
//!    in twenty: `0.05·q·(S_a + S_b)`. A group's `p` is the change rate the analyzer wrote for
//!    it, shrunk towards ½ by one pseudo-update (an estimate from `t` learned updates,
//!    Jeffreys-style: `(p·t + ½)/(t + 1)`); anything without history (unseen names, pins)
//!    counts as one observed change (0.75). Two units change independently,
//!    `q = (1 − p_a)(1 − p_b)`, unless one's closure holds the other's: in Nix a path changes
//!    when anything below it does, so the pair then changes when the outer one does. With
//!    hazards `λ = −ln(1 − p)` spread evenly over each unit's closure, the pair's hazard is the
//!    outer one's, or the inner one's plus the outer's on the paths outside the inner closure,
//!    whichever is larger (the learned rates need not agree). This is how an image over budget
//!    (a big one, one that grew, one with many unseen names) coarsens the groups: the analyzer
//!    leaves such merges to it rather than impose them on every image. Any pair, not only
//!    neighbours: which layers a pull downloads does not depend on their order, and two
//!    stable groups far apart in it are the cheapest pair. The joined layer takes the lower
//!    position, so the order stays bottom-up. Beyond 512 units (a hand-written file with
//!    thousands of groups) neighbours are merged first, priced as if independent.
//!
//! Paths inside a layer are sorted by (name, hash), as auto-layer.py sorts them, so with an
//! empty hint file the output is exactly `size-first`'s. Nothing here depends on input order or
//! hash-map order.

use std::collections::{BTreeMap, HashMap};

use hints_format::{HintFile, Matcher, PinRule, Placement};

use crate::closure::Closure;
use crate::{size_first, Layer, LayerError, Reason};

/// Layers the fallback is always promised, out of `n` store layers, for names the history never
/// saw: one in [`FALLBACK_SHARE`], at least 1, never all.
fn fallback_reserve(n: usize) -> usize {
    (n / FALLBACK_SHARE).max(1).min(n.saturating_sub(1).max(1))
}

/// The fallback is promised one store layer in this many.
const FALLBACK_SHARE: usize = 10;

/// Where a unit sorts before merging: (0 for `bottom`-pinned units else 1, class, index, node).
/// `node` tells apart the units of one class and index: a group's is 0 and a rename's beside
/// it is 1 + the rename's path; an `own-layer` pin's and a `not-catch-all` path's are the path.
type UnitKey = (u8, u8, usize, usize);

/// The classes of units in a [`UnitKey`]: groups sort first, then placing pins, then
/// `not-catch-all` layers.
const GROUP_CLASS: u8 = 0;
const PIN_CLASS: u8 = 1;
const NOT_CATCH_ALL_CLASS: u8 = 2;
/// The first element of a [`UnitKey`]: `bottom`-pinned units sort below all others.
const BOTTOM: u8 = 0;
const NOT_BOTTOM: u8 = 1;

struct Unit {
    nodes: Vec<usize>,
    size: u64,
    reason: Reason,
    /// Probability that the layer changes at an update, for the last-resort merging.
    rate: f64,
}

/// The change rate assumed for what the file has no history of (names it never saw, pins): one
/// observed change (a new name is new because something changed), Jeffreys-smoothed:
/// `(1 + ½) / (1 + 1)`.
const NO_HISTORY_RATE: f64 = 0.75;

/// The layers of `closure` in `n` store layers by `file` (the module doc's algorithm).
pub fn layers(closure: &Closure, n: usize, file: &HintFile) -> Result<Vec<Layer>, LayerError> {
    layers_matched(closure, n, file, &Matcher::new(file))
}

/// [`layers`] with `file` already compiled (`matcher` is `Matcher::new(file)`), for laying out
/// many closures with one file.
pub fn layers_matched(closure: &Closure, n: usize, file: &HintFile, matcher: &Matcher) -> Result<Vec<Layer>, LayerError> {
    let mut units: BTreeMap<UnitKey, (Vec<usize>, Reason)> = BTreeMap::new();
    let mut fallback = vec![false; closure.len()];
    let mut fallback_count = 0;
    for (i, p) in placements(closure, matcher)? {
        let (class, index, node, reason) = match (p.pin, p.group, p.not_catch_all) {
            (Some(k), _, _) => {
                let pin = &file.pins[k];
                let node = if pin.rule == PinRule::OwnLayer { i } else { 0 };
                (PIN_CLASS, k, node, Reason::Pin { id: pin.id.clone(), rule: pin.rule })
            }
            (None, Some(g), _) => (GROUP_CLASS, g, p.succeeds.map_or(0, |_| i + 1), Reason::Group { id: file.groups[g].id.clone() }),
            (None, None, Some(k)) => (NOT_CATCH_ALL_CLASS, k, i, Reason::Pin { id: file.pins[k].id.clone(), rule: PinRule::NotCatchAll }),
            (None, None, None) => {
                fallback[i] = true;
                fallback_count += 1;
                continue;
            }
        };
        // A unit sorts to the bottom when any `bottom` pin covers one of its members.
        let key = (NOT_BOTTOM, class, index, node);
        let bottom_key = (BOTTOM, class, index, node);
        let key = if p.bottom.is_some() || units.contains_key(&bottom_key) {
            if let Some(existing) = units.remove(&key) {
                units.insert(bottom_key, existing);
            }
            bottom_key
        } else {
            key
        };
        units.entry(key).or_insert_with(|| (vec![], reason)).0.push(i);
    }
    // A group's change rate, shrunk towards ½ by one pseudo-update of the learned transitions.
    let t = file.learned_from.revisions.count.saturating_sub(1) as f64;
    let group_rate: HashMap<&str, f64> = file.groups.iter().map(|g| (g.id.as_str(), (g.stats.change_rate * t + 0.5) / (t + 1.0))).collect();
    let rate = |reason: &Reason| -> f64 {
        let one = |r: &Reason| match r {
            Reason::Group { id } => group_rate.get(id.as_str()).copied().unwrap_or(NO_HISTORY_RATE),
            _ => NO_HISTORY_RATE,
        };
        match reason {
            Reason::Merged(parts) => 1.0 - parts.iter().map(|p| 1.0 - one(p)).product::<f64>(),
            r => one(r),
        }
    };
    let promise = if fallback_count > 0 {
        let placed_stable: f64 = units.values().map(|(nodes, reason)| nodes.iter().map(|&i| closure.nar_size(i)).sum::<u64>() as f64 * (1.0 - rate(reason))).sum();
        fallback_promise(closure, &fallback, fallback_count, n, placed_stable)
    } else {
        0
    };
    apply_merges(file, &mut units, n.saturating_sub(promise));
    let mut ordered: Vec<Unit> = units.into_values().map(|(nodes, reason)| Unit { size: nodes.iter().map(|&i| closure.nar_size(i)).sum(), rate: rate(&reason), nodes, reason }).collect();

    if fallback_count > 0 {
        let budget = n.saturating_sub(ordered.len()).max(promise);
        // With the history's per-path hazard, big stable paths become primaries first; a
        // closure the file places nothing of is laid out exactly as size-first lays it out.
        let order = match file.learned_from.path_hazard {
            Some(hazard) if hazard > 0.0 && !ordered.is_empty() => size_first::Order::Stability { hazard },
            _ => size_first::Order::Size,
        };
        let (split, named) = size_first::split(closure, Some(&fallback), budget, order);
        for (set, nodes) in size_first::group(closure, &split, Some(&fallback)) {
            let used_by = named[set as usize].iter().map(|&p| closure.path(p).to_string()).collect();
            let size = nodes.iter().map(|&i| closure.nar_size(i)).sum();
            ordered.push(Unit { nodes, size, reason: Reason::Fallback { used_by }, rate: NO_HISTORY_RATE });
        }
    }

    Ok(merge_to_fit(closure, ordered, n)
        .into_iter()
        .map(|mut u| {
            // The fallback's sets come sorted; groups and merged units do not.
            let key = |&i: &usize| size_first::path_key(closure.path(i).as_str());
            if !u.nodes.is_sorted_by_key(key) {
                size_first::sort_by_path_key(closure, &mut u.nodes);
            }
            Layer::new(closure, u.nodes, u.reason)
        })
        .collect())
}

/// Every path's placement by `matcher`, with its index. The names are read in the order the
/// closure's records came in, where their text lies in memory in that order; an ambiguous name
/// is reported as in path order (the first in path order), so that no outcome depends on the
/// input's order.
fn placements<'c>(closure: &'c Closure, matcher: &Matcher) -> Result<impl Iterator<Item = (usize, Placement)> + 'c, LayerError> {
    let by_input = closure.input_order();
    let names: Vec<&str> = by_input.iter().map(|&i| closure.path(i as usize).name()).collect();
    match matcher.place_closure(&names) {
        Ok(placed) => Ok(by_input.iter().map(|&i| i as usize).zip(placed)),
        Err(_) => {
            let in_path_order: Vec<&str> = (0..closure.len()).map(|i| closure.path(i).name()).collect();
            Err(matcher.place_closure(&in_path_order).expect_err("the same names in another order").into())
        }
    }
}

/// The layers the fallback is promised: at least `min(count, fallback_reserve(n))`, and beyond
/// that its share of what layers protect, the bytes expected to stay unchanged at an update:
/// the fallback's `S·(1 − 0.75)` against the placed units' `Σ S·(1 − p)` (`placed_stable`).
/// Quantised to steps of `fallback_reserve(n)` so that small changes do not reshuffle. A
/// fallback of stable-looking bytes beside volatile groups gets more layers, one beside stable
/// groups fewer; an image the file does not know at all gets the whole budget (`size-first`).
fn fallback_promise(closure: &Closure, fallback: &[bool], count: usize, n: usize, placed_stable: f64) -> usize {
    let floor = count.min(fallback_reserve(n));
    let bytes: u64 = (0..closure.len()).filter(|&i| fallback[i]).map(|i| closure.nar_size(i)).sum();
    let stable = bytes as f64 * (1.0 - NO_HISTORY_RATE);
    let step = fallback_reserve(n);
    let by_stable = if stable > 0.0 { (n as f64 * stable / (stable + placed_stable)) as usize } else { 0 };
    let share = (by_stable / step * step).min(count);
    floor.max(share)
}

/// Applies the file's `merges`, in order, while there are more than `budget` units. A merged
/// unit keeps the lower of the two positions.
fn apply_merges(file: &HintFile, units: &mut BTreeMap<UnitKey, (Vec<usize>, Reason)>, budget: usize) {
    if units.len() <= budget.max(1) || file.merges.is_empty() {
        return;
    }
    let index: HashMap<&str, usize> = file.groups.iter().enumerate().map(|(g, grp)| (grp.id.as_str(), g)).collect();
    // The unit currently holding each group present (a rename's own layer is no group's).
    let mut holder: HashMap<usize, UnitKey> = units.keys().filter(|k| k.1 == GROUP_CLASS && k.3 == 0).map(|&k| (k.2, k)).collect();
    for [a, b] in &file.merges {
        if units.len() <= budget.max(1) {
            break;
        }
        let (Some(&ka), Some(&kb)) = (holder.get(&index[a.as_str()]), holder.get(&index[b.as_str()])) else { continue };
        if ka == kb {
            continue;
        }
        let (keep, gone) = (ka.min(kb), ka.max(kb));
        let (nodes, reason) = units.remove(&gone).expect("holders are units");
        for k in holder.values_mut().filter(|k| **k == gone) {
            *k = keep;
        }
        let unit = units.get_mut(&keep).expect("holders are units");
        unit.0.extend(nodes);
        unit.1 = join(std::mem::replace(&mut unit.1, Reason::Merged(vec![])), reason);
    }
}

/// The reason of two merged units: one flat list.
fn join(a: Reason, b: Reason) -> Reason {
    let mut parts = match a {
        Reason::Merged(p) => p,
        r => vec![r],
    };
    match b {
        Reason::Merged(p) => parts.extend(p),
        r => parts.push(r),
    }
    Reason::Merged(parts)
}

/// Beyond this many units the last-resort merging first joins neighbours (in the bottom-up,
/// stable-to-volatile order) down to this count, so that it stays `O(u log u)`; below it every
/// pair is a candidate.
const ALL_PAIRS: usize = 512;

/// Merges the pair of units that wastes least until at most `n` remain (the module doc's step
/// 7, priced by [`Rates::key`]). The joined unit takes the lower position, so the order stays
/// bottom-up.
fn merge_to_fit(closure: &Closure, units: Vec<Unit>, n: usize) -> Vec<Unit> {
    let n = n.max(1);
    if units.len() <= n {
        return units;
    }
    let units = if units.len() > ALL_PAIRS.max(n) { merge_neighbours(units, ALL_PAIRS.max(n)) } else { units };
    merge_any_pair(closure, units, n)
}

/// The chance, per update, that a merge is new: an image over budget merges anew as it grows,
/// and a new merge pulls both units again though neither changed. One update in twenty; on the
/// generalization suite 0, 0.05, 0.1 and 0.2 were measured (`docs/bench.md`).
const RELAY_RATE: f64 = 0.05;

/// Every unit's size and change rate, side by side for the pair scans of [`merge_to_fit`]
/// (a dead unit keeps its last values and is never read), and for the scan over every pair,
/// every unit's closure.
struct Rates {
    size: Vec<f64>,
    rate: Vec<f64>,
    /// Per unit, `−ln(1 − rate)`.
    hazard: Vec<f64>,
    /// Per unit, its paths, where `below` is known.
    members: Vec<Vec<usize>>,
    /// Per unit, the paths below its paths (its own included), as bits over the closure's
    /// paths; empty where pairs are priced without them (among neighbours).
    below: Vec<Vec<u64>>,
    /// Per unit, how many paths `below` holds.
    below_count: Vec<f64>,
}

impl Rates {
    fn of(slot: &[Option<Unit>]) -> Self {
        let each = |f: fn(&Unit) -> f64| slot.iter().map(|u| u.as_ref().map_or(0.0, f)).collect();
        let n = slot.len();
        Rates { size: each(|u| u.size as f64), rate: each(|u| u.rate), hazard: each(|u| -(1.0 - u.rate).ln()), members: vec![vec![]; n], below: vec![vec![]; n], below_count: vec![0.0; n] }
    }

    /// [`Rates::of`] with every unit's closure: one sweep from users to references gives each
    /// path the set of units above it (its own, or-ed with its users'), read back per unit.
    fn with_closure(closure: &Closure, slot: &[Option<Unit>]) -> Self {
        let words = slot.len().div_ceil(64);
        let mut above = vec![0u64; closure.len() * words];
        for (u, unit) in slot.iter().enumerate() {
            for &x in unit.iter().flat_map(|unit| &unit.nodes) {
                above[x * words + u / 64] |= 1 << (u % 64);
            }
        }
        for &x in closure.topo_order().iter().rev() {
            for &r in closure.refs(x) {
                for w in 0..words {
                    above[r as usize * words + w] |= above[x * words + w];
                }
            }
        }
        // `below` is `above` transposed, 64 paths by 64 units at a time.
        let mut below = vec![vec![0u64; closure.len().div_ceil(64)]; slot.len()];
        for (k, paths) in above.chunks(64 * words).enumerate() {
            for w in 0..words {
                let mut block = [0u64; 64];
                paths.chunks_exact(words).zip(&mut block).for_each(|(units, row)| *row = units[w]);
                transpose(&mut block);
                below[w * 64..].iter_mut().zip(block).for_each(|(row, paths)| row[k] = paths);
            }
        }
        let below_count = below.iter().map(|b| count_ones(b)).collect();
        let members = slot.iter().map(|u| u.as_ref().map_or(vec![], |u| u.nodes.clone())).collect();
        Rates { below, below_count, members, ..Rates::of(slot) }
    }

    /// Whether unit `i`'s closure holds all of unit `j`'s: whether it holds `j`'s paths, as a
    /// closure holds everything below what it holds.
    fn holds(&self, i: usize, j: usize) -> bool {
        let outer = &self.below[i];
        !outer.is_empty() && self.below_count[j] <= self.below_count[i] && self.members[j].iter().all(|&x| outer[x / 64] >> (x % 64) & 1 == 1)
    }

    /// The chance that neither of units `i` and `j` changes at an update. Each unit's hazard
    /// `λ = −ln(1 − p)` is taken as spread evenly over its closure. Where one closure holds the
    /// other's, the pair changes when the outer unit does (in Nix a path changes when anything
    /// below it does): the pair's hazard is the outer one's, or the inner one's plus the outer's
    /// on the paths outside the inner closure, whichever is larger (the learned rates need not
    /// agree). Otherwise the two change independently.
    fn both_unchanged(&self, i: usize, j: usize) -> f64 {
        let h = &self.hazard;
        let around = |outer: usize, inner: usize| {
            let outside = 1.0 - self.below_count[inner] / self.below_count[outer];
            let through_inner = if outside > 0.0 { h[inner] + h[outer] * outside } else { h[inner] };
            (-h[outer].max(through_inner)).exp()
        };
        if self.holds(i, j) {
            around(i, j)
        } else if self.holds(j, i) {
            around(j, i)
        } else {
            (1.0 - self.rate[i]) * (1.0 - self.rate[j])
        }
    }

    /// The pair of live units `i < j` as one `u128` that orders as (waste, `i`, `j`): cheapest
    /// first, ties to the pair lowest in the order. The waste is the bytes re-downloaded per
    /// update when the two share a layer: each one's bytes when it stays unchanged and the
    /// other does not, `S_i·(1 − p_i − q) + S_j·(1 − p_j − q)` with `q` the chance that neither
    /// changes ([`Rates::both_unchanged`]; independent changes make it
    /// `S_i·p_j·(1−p_i) + S_j·p_i·(1−p_j)`), and both when the merge is new
    /// ([`RELAY_RATE`]`·q·(S_i + S_j)`). Wastes are non-negative, and non-negative floats order
    /// as their bits.
    fn key(&self, i: usize, j: usize) -> u128 {
        let (s, p) = (&self.size, &self.rate);
        let q = self.both_unchanged(i, j);
        let w = (s[i] * (1.0 - p[i] - q)).max(0.0) + (s[j] * (1.0 - p[j] - q)).max(0.0) + RELAY_RATE * q * (s[i] + s[j]);
        u128::from(w.to_bits()) << 64 | (i as u128) << 32 | j as u128
    }

    /// Joins unit `j` into unit `i`.
    fn absorb(&mut self, slot: &mut [Option<Unit>], i: usize, j: usize) {
        let q = self.both_unchanged(i, j);
        let b = slot[j].take().expect("live unit");
        let a = slot[i].as_mut().expect("live unit");
        a.nodes.extend(b.nodes);
        a.rate = 1.0 - q;
        a.size += b.size;
        a.reason = join(std::mem::replace(&mut a.reason, Reason::Merged(vec![])), b.reason);
        (self.size[i], self.rate[i], self.hazard[i]) = (a.size as f64, a.rate, -(1.0 - a.rate).ln());
        let gone = std::mem::take(&mut self.below[j]);
        self.below[i].iter_mut().zip(&gone).for_each(|(x, y)| *x |= y);
        self.below_count[i] = count_ones(&self.below[i]);
        let joined = std::mem::take(&mut self.members[j]);
        self.members[i].extend(joined);
    }
}

/// Transposes a 64 × 64 bit matrix, row `r` bit `c` (bit 0 the least significant) becoming
/// row `c` bit `r`: swaps of ever smaller blocks, halves, then quarters, down to single bits
/// (Hacker's Delight, §7-3).
fn transpose(rows: &mut [u64; 64]) {
    let (mut width, mut mask) = (32, 0x0000_0000_FFFF_FFFF_u64);
    while width != 0 {
        let mut k = 0;
        while k < 64 {
            let swapped = ((rows[k] >> width) ^ rows[k + width]) & mask;
            rows[k] ^= swapped << width;
            rows[k + width] ^= swapped;
            k = (k + width + 1) & !width;
        }
        width >>= 1;
        mask ^= mask << width;
    }
}

fn count_ones(bits: &[u64]) -> f64 {
    bits.iter().map(|w| w.count_ones()).sum::<u32>() as f64
}

/// The positions `(i, j)` of a [`Rates::key`].
fn pair_of(key: u128) -> (usize, usize) {
    ((key >> 32) as u32 as usize, key as u32 as usize)
}

/// [`merge_to_fit`] among neighbours only, down to `n` units: a lazy heap of [`Rates::key`]s.
/// An entry is skipped when it surfaces if its pair is no longer live with that key (one side
/// has merged since); one that still is names the cheapest adjacent pair, whether it is the
/// pair's latest entry or an equal copy.
fn merge_neighbours(units: Vec<Unit>, n: usize) -> Vec<Unit> {
    use std::cmp::Reverse;
    let m = units.len();
    let mut slot: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
    let mut rates = Rates::of(&slot);
    // The live units as a linked list.
    let mut next: Vec<usize> = (1..=m).collect();
    let mut prev: Vec<usize> = (0..m).map(|i| i.wrapping_sub(1)).collect();
    let mut heap: std::collections::BinaryHeap<Reverse<u128>> = (1..m).map(|j| Reverse(rates.key(j - 1, j))).collect();
    let mut live = m;
    while live > n {
        let Reverse(key) = heap.pop().expect("more than one unit, so a pair");
        let (i, j) = pair_of(key);
        if slot[i].is_none() || slot[j].is_none() || rates.key(i, j) != key {
            continue;
        }
        rates.absorb(&mut slot, i, j);
        live -= 1;
        if prev[j] < m {
            next[prev[j]] = next[j];
        }
        if next[j] < m {
            prev[next[j]] = prev[j];
        }
        for k in [prev[i], next[i]].into_iter().filter(|&k| k < m) {
            heap.push(Reverse(rates.key(i.min(k), i.max(k))));
        }
    }
    slot.into_iter().flatten().collect()
}

/// [`merge_to_fit`] over every pair, down to `n` units. Each live unit keeps the key of its
/// cheapest pair: exact while `fresh`, else a lower bound, recomputed only when it is the
/// smallest of all. A merge of `j` into `i` offers the new `i` to every row: a row whose
/// cheapest pair held `i` or `j` keeps its old key as a lower bound unless the new pair is
/// cheaper still. The smallest fresh key is then the cheapest live pair, as a heap over every
/// pair would find it, for `O(u)` keys per merge and `O(u)` per stale row that surfaces, in
/// `O(u)` memory; [`merge_to_fit`] calls it with at most [`ALL_PAIRS`] units when there is
/// merging to do.
fn merge_any_pair(closure: &Closure, units: Vec<Unit>, n: usize) -> Vec<Unit> {
    merge_any_pair_observed(closure, units, n, |_, _, _, _| {})
}

/// [`merge_any_pair`], showing `observe` the units, the live ones, and each row's key and
/// whether it is exact, after every merge (tests check every key against a full scan).
fn merge_any_pair_observed(closure: &Closure, units: Vec<Unit>, n: usize, mut observe: impl FnMut(&[Option<Unit>], &[usize], &[u128], &[bool])) -> Vec<Unit> {
    let m = units.len();
    if m <= n {
        return units;
    }
    let mut slot: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
    let mut rates = Rates::with_closure(closure, &slot);
    let mut best = vec![u128::MAX; m];
    let mut fresh = vec![true; m];
    for j in 1..m {
        for i in 0..j {
            let key = rates.key(i, j);
            best[i] = best[i].min(key);
            best[j] = best[j].min(key);
        }
    }
    let mut live: Vec<usize> = (0..m).collect();
    let row_min = |rates: &Rates, live: &[usize], r: usize| live.iter().filter(|&&k| k != r).map(|&k| rates.key(r.min(k), r.max(k))).min().expect("another live unit");
    while live.len() > n {
        let (i, j) = loop {
            let r = *live.iter().min_by_key(|&&r| best[r]).expect("live units");
            if fresh[r] {
                break pair_of(best[r]);
            }
            (best[r], fresh[r]) = (row_min(&rates, &live, r), true);
        };
        rates.absorb(&mut slot, i, j);
        live.retain(|&k| k != j);
        best[i] = u128::MAX;
        fresh[i] = true;
        for &k in live.iter().filter(|&&k| k != i) {
            let key = rates.key(i.min(k), i.max(k));
            best[i] = best[i].min(key);
            let (a, b) = pair_of(best[k]);
            if key < best[k] {
                (best[k], fresh[k]) = (key, true);
            } else if [i, j].iter().any(|u| [a, b].contains(u)) {
                fresh[k] = false;
            }
        }
        observe(&slot, &live, &best, &fresh);
    }
    slot.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hints_format::{BudgetHeader, Group, HintFile, Pin, PinRule};

    use crate::closure::tests::info;
    use crate::closure::Closure;
    use crate::{layer, store_layers, Budget, Reason, Strategy};

    fn file(groups: &[(&str, &[&str])], pins: &[(&str, PinRule, &[&str])]) -> HintFile {
        let mut f = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
        f.groups = groups.iter().map(|(id, m)| Group { id: id.to_string(), members: m.iter().map(|s| s.to_string()).collect(), stats: Default::default() }).collect();
        f.pins = pins.iter().map(|(id, r, m)| Pin { id: id.to_string(), rule: *r, members: m.iter().map(|s| s.to_string()).collect() }).collect();
        f.validate().unwrap();
        f
    }

    /// A file with one group per name, each holding just that name.
    fn singletons(names: &[String]) -> HintFile {
        let groups: Vec<(&str, [&str; 1])> = names.iter().map(|n| (n.as_str(), [n.as_str()])).collect();
        let groups: Vec<(&str, &[&str])> = groups.iter().map(|(id, m)| (*id, &m[..])).collect();
        file(&groups, &[])
    }

    fn world() -> Closure {
        Closure::new(vec![
            info("libc-2.39", 2_000_000, &[]),
            info("zlib-1.3", 100_000, &["libc-2.39"]),
            info("openssl-3.0", 3_000_000, &["libc-2.39", "zlib-1.3"]),
            info("python-3.12", 30_000_000, &["libc-2.39", "openssl-3.0"]),
            info("numpy-1.26", 8_000_000, &["python-3.12"]),
            info("app-1.0", 10_000, &["numpy-1.26", "python-3.12"]),
        ])
        .unwrap()
    }

    fn names(c: &Closure, b: Budget, f: &HintFile) -> Vec<Vec<String>> {
        layer(c, b, Strategy::Hints(f)).unwrap().iter().map(|l| l.paths.iter().map(|p| p.name().to_string()).collect()).collect()
    }

    #[test]
    fn without_hints_it_is_size_first() {
        let c = world();
        for max in [2, 3, 4, 8] {
            let b = Budget::new(max, 1).unwrap();
            let ours = store_layers(&layer(&c, b, Strategy::Hints(&file(&[], &[]))).unwrap());
            assert_eq!(ours, store_layers(&layer(&c, b, Strategy::SizeFirst).unwrap()), "max {max}");
        }
    }

    #[test]
    fn groups_absent_cost_nothing_and_partial_groups_are_one_layer() {
        let f = file(&[("base", &["libc", "zlib", "glibc-extra"]), ("ghost", &["not-here"]), ("py", &["python", "numpy"])], &[]);
        let got = names(&world(), Budget::new(10, 1).unwrap(), &f);
        assert_eq!(got[0], ["libc-2.39", "zlib-1.3"], "partly present group is one layer: {got:?}");
        assert_eq!(got[1], ["numpy-1.26", "python-3.12"]);
        // openssl and app are not in the file: the fallback places them, one layer each here.
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn pins_place_and_order() {
        let f = file(
            &[("base", &["libc", "zlib"]), ("py", &["python", "numpy"])],
            &[("own", PinRule::OwnLayer, &["numpy"]), ("deep", PinRule::Bottom, &["python"]), ("nca", PinRule::NotCatchAll, &["app"])],
        );
        let layers = layer(&world(), Budget::new(10, 1).unwrap(), Strategy::Hints(&f)).unwrap();
        let got: Vec<(Vec<&str>, &Reason)> = layers.iter().map(|l| (l.paths.iter().map(|p| p.name()).collect(), &l.reason)).collect();
        assert_eq!(got[0].0, ["python-3.12"], "the bottom pin moves its group down: {got:?}");
        assert!(got.iter().any(|(p, r)| p == &["numpy-1.26"] && matches!(r, Reason::Pin { rule: PinRule::OwnLayer, .. })));
        assert!(got.iter().any(|(p, r)| p == &["app-1.0"] && matches!(r, Reason::Pin { rule: PinRule::NotCatchAll, .. })));
    }

    #[test]
    fn the_plan_applies_in_order_and_only_as_far_as_the_budget_requires() {
        let mut f = file(&[("c", &["libc"]), ("z", &["zlib"]), ("o", &["openssl"]), ("p", &["python"]), ("n", &["numpy"]), ("a", &["app"])], &[]);
        f.version = 2;
        // `ghost` is absent from the closure; `p`+`a` comes before `c`+`z`.
        f.groups.push(Group { id: "ghost".into(), members: vec!["not-here".into()], stats: Default::default() });
        f.merges = [["ghost", "c"], ["p", "a"], ["c", "z"], ["a", "n"], ["o", "c"]].iter().map(|[x, y]| [x.to_string(), y.to_string()]).collect();
        f.validate().unwrap();
        // Room for all six: the plan is not used.
        assert_eq!(names(&world(), Budget::new(7, 1).unwrap(), &f).len(), 6);
        // One layer short: only the first applicable entry.
        let five = names(&world(), Budget::new(6, 1).unwrap(), &f);
        assert_eq!(five.len(), 5);
        assert!(five.contains(&vec!["app-1.0".to_string(), "python-3.12".to_string()]), "{five:?}");
        // Three short: the first three applicable entries, `a`+`n` joining the `p`+`a` layer.
        let three = names(&world(), Budget::new(4, 1).unwrap(), &f);
        assert_eq!(three, [vec!["libc-2.39", "zlib-1.3"], vec!["openssl-3.0"], vec!["app-1.0", "numpy-1.26", "python-3.12"]], "{three:?}");
    }

    #[test]
    fn with_a_learned_hazard_stable_unknown_paths_become_primaries_first() {
        // The file groups only `app`; the rest is unknown to it; 4 store layers, 3 for the
        // fallback. Size-first takes python, numpy as primaries and leaves libc (a 2 MB leaf)
        // with openssl. With a hazard, primaries rank by bytes likely to stay unchanged: libc
        // gets a layer of its own.
        let mut f = file(&[("app", &["app"])], &[]);
        let by_size = names(&world(), Budget::new(5, 1).unwrap(), &f);
        assert!(!by_size.contains(&vec!["libc-2.39".to_string()]), "{by_size:?}");
        f.learned_from.path_hazard = Some(1.0);
        let by_stability = names(&world(), Budget::new(5, 1).unwrap(), &f);
        assert!(by_stability.contains(&vec!["libc-2.39".to_string()]), "{by_stability:?}");
        assert!(by_stability.contains(&vec!["app-1.0".to_string()]), "{by_stability:?}");
    }

    #[test]
    fn a_closure_the_file_places_nothing_of_is_laid_out_exactly_as_size_first() {
        // A learned hazard changes the fallback's primaries only beside placed units: an image
        // whose groups were all dropped (or that the file never saw) is exactly size-first.
        let mut f = file(&[("other", &["unrelated"])], &[]);
        f.learned_from.path_hazard = Some(1.0);
        let c = world();
        for max in [2, 3, 5, 8] {
            let b = Budget::new(max, 1).unwrap();
            let ours = store_layers(&layer(&c, b, Strategy::Hints(&f)).unwrap());
            assert_eq!(ours, store_layers(&layer(&c, b, Strategy::SizeFirst).unwrap()), "max {max}");
        }
    }

    #[test]
    fn a_renamed_package_keeps_its_predecessors_layer_and_leaves_the_others() {
        // 3 store layers: the file groups only `libperl5.40`; a, b and c are unseen. When the
        // package is renamed, `libperl5.42` takes its group's layer. As a new name it would join
        // the fallback, whose size-first split would then break up {b, c}.
        let f = file(&[("perl", &["libperl5.40"])], &[]);
        let at = |perl: &str| {
            let c = Closure::new(vec![info("a-1.0", 10_000_000, &[]), info("b-1.0", 1_000_000, &[]), info("c-1.0", 1_000_000, &[]), info(perl, 500_000, &[])]).unwrap();
            names(&c, Budget::new(4, 1).unwrap(), &f)
        };
        let (before, after) = (at("libperl5.40-5.40.1-6"), at("libperl5.42-5.42.3-1"));
        assert_eq!(before[0], ["libperl5.40-5.40.1-6"]);
        assert_eq!(after[0], ["libperl5.42-5.42.3-1"], "{after:?}");
        assert_eq!(before[1..], after[1..], "the other layers are unchanged");
        assert_eq!(after[1..], [vec!["b-1.0", "c-1.0"], vec!["a-1.0"]]);
    }

    #[test]
    fn a_rename_that_arrives_beside_its_predecessor_keeps_its_layer_when_the_predecessor_leaves() {
        // `libicu78` arrives while `libicu76` is still there, then `libicu76` leaves. Had it
        // joined its predecessor's group once that left, its layer would be new then, and its
        // bytes pulled again with the group's other member.
        let f = file(&[("icu", &["libicu76", "gcc-base"])], &[]);
        let at = |icu: &[&str]| {
            let mut infos = vec![info("a-1.0", 10_000_000, &[]), info("gcc-base-16.2", 100_000, &[])];
            infos.extend(icu.iter().map(|name| info(name, 30_000_000, &[])));
            names(&Closure::new(infos).unwrap(), Budget::new(6, 1).unwrap(), &f)
        };
        let (both, successor) = (at(&["libicu76-76.1-4", "libicu78-78.3-2"]), at(&["libicu78-78.3-2"]));
        let icu78 = vec!["libicu78-78.3-2".to_string()];
        assert!(both.contains(&icu78) && successor.contains(&icu78), "{both:?} {successor:?}");
        assert!(both.contains(&vec!["gcc-base-16.2".to_string(), "libicu76-76.1-4".to_string()]), "{both:?}");
        assert!(successor.contains(&vec!["gcc-base-16.2".to_string()]), "the group keeps what is left of it: {successor:?}");
        assert!(both.contains(&vec!["a-1.0".to_string()]) && successor.contains(&vec!["a-1.0".to_string()]));
    }

    #[test]
    fn the_fallback_shares_the_budget_by_bytes_likely_to_stay_unchanged() {
        // Ten 1 MB leaves the file knows, each its own group, and ten it has never seen; 10
        // layers. Layers protect unchanged bytes: beside stable groups the unseen half (rate
        // 0.75) is worth few layers, beside volatile ones most of them.
        let known: Vec<String> = (0..10).map(|i| format!("known{i}")).collect();
        let mut infos: Vec<_> = known.iter().map(|k| info(&format!("{k}-1.0"), 1_000_000, &[])).collect();
        infos.extend((0..10).map(|i| info(&format!("unseen{i}-1.0"), 1_000_000, &[])));
        let c = Closure::new(infos).unwrap();
        let mut f = singletons(&known);
        f.learned_from.revisions.count = 7;
        let unseen_layers = |f: &HintFile| {
            let got = names(&c, Budget::new(11, 1).unwrap(), f);
            assert_eq!(got.len(), 10);
            assert_eq!(got.concat().len(), 20, "every path exactly once: {got:?}");
            got.iter().filter(|l| l.iter().any(|p| p.starts_with("unseen"))).count()
        };
        // Stable groups (p = 1/14 after shrinking): 10·2.5 / (2.5 + 9.29) → 2 layers.
        assert_eq!(unseen_layers(&f), 2);
        // Volatile groups (p = 13/14): 10·2.5 / (2.5 + 0.71) → 7 layers.
        for g in &mut f.groups {
            g.stats.change_rate = 1.0;
        }
        assert_eq!(unseen_layers(&f), 7);
    }

    #[test]
    fn last_resort_merges_follow_learned_change_rates() {
        // Four independent leaves; the file knows s1, s2 as stable and v1, v2 as volatile, in
        // the order s1, v1, s2, v2, and has no plan. One merge: by size it would be s1 + v1
        // (the smallest pair), which re-downloads stable s1 at every v1 change; by expected
        // waste it is the two stable ones, though they are not neighbours.
        let c = Closure::new(vec![info("s1-1.0", 100_000, &[]), info("v1-1.0", 100_000, &[]), info("s2-1.0", 150_000, &[]), info("v2-1.0", 400_000, &[])]).unwrap();
        let mut f = file(&[("s1", &["s1"]), ("v1", &["v1"]), ("s2", &["s2"]), ("v2", &["v2"])], &[]);
        f.learned_from.revisions.count = 7;
        for g in &mut f.groups {
            g.stats.change_rate = if g.id.starts_with('s') { 0.0 } else { 1.0 };
        }
        assert_eq!(names(&c, Budget::new(4, 1).unwrap(), &f), [vec!["s1-1.0", "s2-1.0"], vec!["v1-1.0"], vec!["v2-1.0"]]);
        // Two merges: then the volatile pair, at v1's place.
        assert_eq!(names(&c, Budget::new(3, 1).unwrap(), &f), [vec!["s1-1.0", "s2-1.0"], vec!["v1-1.0", "v2-1.0"]]);
    }

    #[test]
    fn a_unit_below_another_changes_with_it_and_merges_with_it_first() {
        // Three volatile groups of equal size; numpy references python, tool stands alone. As if
        // they changed independently every pair would waste the same, and the first two in the
        // file (tool, python) would merge; but python lies below numpy, so numpy changes
        // whenever python does, and sharing a layer with it wastes least.
        let c = Closure::new(vec![info("tool-1.0", 8_000_000, &[]), info("python-3.12", 8_000_000, &[]), info("numpy-1.26", 8_000_000, &["python-3.12"])]).unwrap();
        let mut f = file(&[("t", &["tool"]), ("p", &["python"]), ("n", &["numpy"])], &[]);
        f.learned_from.revisions.count = 7;
        for g in &mut f.groups {
            g.stats.change_rate = 1.0;
        }
        assert_eq!(names(&c, Budget::new(3, 1).unwrap(), &f), [vec!["tool-1.0"], vec!["numpy-1.26", "python-3.12"]]);
    }

    #[test]
    fn over_budget_merges_smallest_pairs_deterministically() {
        // Without learned history every rate is ½, and the least waste is the smallest size.
        let f = file(&[("c", &["libc"]), ("z", &["zlib"]), ("o", &["openssl"]), ("p", &["python"]), ("n", &["numpy"]), ("a", &["app"])], &[]);
        let b = Budget::new(4, 1).unwrap();
        let got = names(&world(), b, &f);
        // app + zlib (110 kB), then libc joins them (2.1 MB), then openssl (5.1 MB); each
        // joined layer keeps the lower position.
        assert_eq!(got, [vec!["app-1.0", "libc-2.39", "openssl-3.0", "zlib-1.3"], vec!["python-3.12"], vec!["numpy-1.26"]]);
        assert_eq!(got, names(&world(), b, &f));
    }

    /// Pseudo-random numbers from `seed` (xorshift).
    fn random(seed: u64) -> impl FnMut() -> u64 {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Pseudo-random units from `seed`, one per path of a closure of `m` paths: of 5 sizes and
    /// 5 rates when `tied` (many pairs tie on waste), else of sizes and rates drawn from wide
    /// ranges. With `deps`, each path references each path before it with chance 1 in 4, so
    /// that closures hold one another; without, no path references another.
    fn random_units(m: usize, seed: u64, tied: bool, deps: bool) -> (Closure, Vec<super::Unit>) {
        let mut next = random(seed);
        let names: Vec<String> = (0..m).map(|k| format!("p{k:03}-1.0")).collect();
        let infos = (0..m)
            .map(|k| {
                let refs: Vec<&str> = names[..k].iter().filter(|_| deps && next().is_multiple_of(4)).map(String::as_str).collect();
                info(&names[k], 1, &refs)
            })
            .collect();
        let closure = Closure::new(infos).unwrap();
        let units = (0..m)
            .map(|k| {
                let (a, b) = (next(), next());
                let (size, rate) = if tied { (1_000 * (1 + a % 5), [0.0, 0.25, 0.5, 0.9, 1.0][b as usize % 5]) } else { (1 + a % 50_000_000, (b % 1_000_001) as f64 / 1e6) };
                super::Unit { nodes: vec![k], size, reason: Reason::Group { id: format!("g{k}") }, rate }
            })
            .collect();
        (closure, units)
    }

    /// Every path below `nodes` (theirs included), walked one reference at a time.
    fn below(closure: &Closure, nodes: &[usize]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = nodes.to_vec();
        while let Some(x) = stack.pop() {
            if seen.insert(x) {
                stack.extend(closure.refs(x).iter().map(|&r| r as usize));
            }
        }
        seen
    }

    /// The chance that neither of units `a` and `b` changes, as `merge_to_fit` defines it, their
    /// closures taken from `closure` when given (the scan over every pair) and ignored when not
    /// (among neighbours).
    fn defined_unchanged(closure: Option<&Closure>, a: &super::Unit, b: &super::Unit) -> f64 {
        let hazard = |u: &super::Unit| -(1.0 - u.rate).ln();
        let around = |outer: &super::Unit, inner: &super::Unit, (co, ci): (&BTreeSet<usize>, &BTreeSet<usize>)| {
            let outside = 1.0 - ci.len() as f64 / co.len() as f64;
            hazard(outer).max(hazard(inner) + if outside > 0.0 { hazard(outer) * outside } else { 0.0 })
        };
        match closure.map(|c| (below(c, &a.nodes), below(c, &b.nodes))) {
            Some((ca, cb)) if ca.is_superset(&cb) => (-around(a, b, (&ca, &cb))).exp(),
            Some((ca, cb)) if cb.is_superset(&ca) => (-around(b, a, (&cb, &ca))).exp(),
            _ => (1.0 - a.rate) * (1.0 - b.rate),
        }
    }

    /// The pair `i < j` by (waste, `i`, `j`), the waste as `merge_to_fit` defines it.
    fn defined_key(closure: Option<&Closure>, slot: &[Option<super::Unit>], i: usize, j: usize) -> u128 {
        let (a, b) = (slot[i].as_ref().unwrap(), slot[j].as_ref().unwrap());
        let q = defined_unchanged(closure, a, b);
        let (sa, sb) = (a.size as f64, b.size as f64);
        let waste = (sa * (1.0 - a.rate - q)).max(0.0) + (sb * (1.0 - b.rate - q)).max(0.0) + super::RELAY_RATE * q * (sa + sb);
        u128::from(waste.to_bits()) << 64 | (i as u128) << 32 | j as u128
    }

    /// The definition: merge the cheapest live pair (`adjacent`: neighbours only, priced
    /// without closures), by (waste, lower position, higher position), until `n` units remain.
    /// A joined unit changes unless neither part does.
    fn merged_by_definition(closure: &Closure, units: Vec<super::Unit>, n: usize, adjacent: bool) -> Vec<Vec<usize>> {
        let mut slot: Vec<Option<super::Unit>> = units.into_iter().map(Some).collect();
        let closure = (!adjacent).then_some(closure);
        while slot.iter().flatten().count() > n {
            let live: Vec<usize> = (0..slot.len()).filter(|&k| slot[k].is_some()).collect();
            let pairs: Vec<(usize, usize)> =
                if adjacent { live.windows(2).map(|w| (w[0], w[1])).collect() } else { live.iter().flat_map(|&i| live.iter().filter(move |&&j| j > i).map(move |&j| (i, j))).collect() };
            let (i, j) = pairs.into_iter().min_by_key(|&(i, j)| defined_key(closure, &slot, i, j)).unwrap();
            let (a, b) = (slot[i].take().unwrap(), slot[j].take().unwrap());
            let q = defined_unchanged(closure, &a, &b);
            slot[i] = Some(super::Unit { nodes: [a.nodes, b.nodes].concat(), size: a.size + b.size, reason: a.reason, rate: 1.0 - q });
        }
        slot.into_iter().flatten().map(|u| u.nodes).collect()
    }

    /// Every fresh row's key is its cheapest pair; every other row's a lower bound of it.
    fn rows_hold_their_cheapest_pairs(closure: &Closure, slot: &[Option<super::Unit>], live: &[usize], best: &[u128], fresh: &[bool]) {
        for &r in live {
            let Some(cheapest) = live.iter().filter(|&&k| k != r).map(|&k| defined_key(Some(closure), slot, r.min(k), r.max(k))).min() else { continue };
            if fresh[r] {
                assert_eq!(best[r], cheapest, "row {r}'s cheapest pair");
            } else {
                assert!(best[r] <= cheapest, "row {r}'s lower bound");
            }
        }
    }

    #[test]
    fn last_resort_merging_takes_the_cheapest_pair_at_every_step_as_defined() {
        let nodes = |units: Vec<super::Unit>| units.into_iter().map(|u| u.nodes).collect::<Vec<_>>();
        for (tied, deps) in [(true, false), (false, false), (true, true), (false, true)] {
            // The definition walks both closures for every pair at every step: fewer units with references.
            let sizes: &[(usize, usize, u64)] = if deps { &[(2, 1, 3), (9, 3, 20), (40, 5, 5)] } else { &[(2, 1, 3), (9, 3, 20), (40, 5, 10), (120, 20, 2)] };
            for &(m, n, seeds) in sizes {
                for seed in 0..seeds {
                    let (closure, _) = random_units(m, seed, tied, deps);
                    let units = || random_units(m, seed, tied, deps).1;
                    let any_pair = super::merge_any_pair_observed(&closure, units(), n, |s, l, b, f| rows_hold_their_cheapest_pairs(&closure, s, l, b, f));
                    let case = format!("{m} units to {n}, seed {seed}, tied {tied}, references {deps}");
                    assert_eq!(nodes(any_pair), merged_by_definition(&closure, units(), n, false), "any pair: {case}");
                    assert_eq!(nodes(super::merge_neighbours(units(), n)), merged_by_definition(&closure, units(), n, true), "neighbours: {case}");
                }
            }
        }
    }

    #[test]
    fn every_units_closure_is_what_lies_below_its_paths() {
        // More units than a word of bits holds, and paths that end a block of 64 part-way.
        for seed in 0..3 {
            let (closure, units) = random_units(130, seed, false, true);
            let slot: Vec<Option<super::Unit>> = units.into_iter().map(Some).collect();
            let rates = super::Rates::with_closure(&closure, &slot);
            for (u, unit) in slot.iter().enumerate() {
                let expected = below(&closure, &unit.as_ref().unwrap().nodes);
                let held: BTreeSet<usize> = (0..closure.len()).filter(|&x| rates.below[u][x / 64] >> (x % 64) & 1 == 1).collect();
                assert_eq!(held, expected, "unit {u}, seed {seed}");
                assert_eq!(rates.below_count[u], expected.len() as f64);
            }
        }
    }

    #[test]
    fn a_name_two_groups_match_alike_is_reported_whatever_the_input_order() {
        let f = file(&[("a", &["lib*"]), ("b", &["l*6"])], &[]);
        let paths = [info("libc6-1", 1, &[]), info("libx6-1", 1, &[]), info("zlib-1", 1, &[])];
        let error = |order: [usize; 3]| super::layers(&Closure::new(order.map(|k| paths[k].clone()).to_vec()).unwrap(), 10, &f).unwrap_err().to_string();
        let first = error([0, 1, 2]);
        assert!(first.contains("group a") && first.contains("group b"), "{first}");
        assert_eq!(error([1, 0, 2]), first);
        assert_eq!(error([2, 1, 0]), first);
    }

    #[test]
    fn a_transposed_bit_matrix_holds_each_bit_at_its_mirror_place() {
        let mut next = random(7);
        for _ in 0..20 {
            let rows: [u64; 64] = std::array::from_fn(|_| next());
            let mut transposed = rows;
            super::transpose(&mut transposed);
            for (r, c) in (0..64).flat_map(|r| (0..64).map(move |c| (r, c))) {
                assert_eq!(transposed[c] >> r & 1, rows[r] >> c & 1, "row {r}, bit {c}");
            }
        }
    }

    #[test]
    fn thousands_of_groups_still_fit() {
        // 700 one-leaf groups, more than the all-pairs limit: neighbours merge first.
        let leaves: Vec<String> = (0..700).map(|i| format!("leaf{i:03}-1.0")).collect();
        let c = Closure::new(leaves.iter().enumerate().map(|(i, l)| info(l, 1_000 + i as u64, &[])).collect()).unwrap();
        let ids: Vec<String> = (0..700).map(|i| format!("leaf{i:03}")).collect();
        let f = singletons(&ids);
        let got = names(&c, Budget::new(11, 1).unwrap(), &f);
        assert_eq!(got.len(), 10);
        let mut all: Vec<String> = got.concat();
        all.sort();
        assert_eq!(all, leaves, "every path exactly once");
        assert_eq!(got, names(&c, Budget::new(11, 1).unwrap(), &f));
    }

    /// The fallback lays out the paths the file does not know as size-first would, a big one with
    /// the dependencies only it uses; one it reaches only through a path the file places is that
    /// path's too, as it would be a primary's in size-first, and stays out of the big path's
    /// layer, so that its changes do not pull the big path's bytes.
    #[test]
    fn what_a_fallback_path_reaches_only_through_placed_paths_is_not_its_alone() {
        let c = Closure::new(vec![
            info("libc-2.41", 2_000_000, &[]),
            info("libsframe-2.44", 100_000, &[]),
            info("binutils-2.44", 6_000_000, &["libc-2.41", "libsframe-2.44"]),
            info("libcc1-14", 200_000, &["libc-2.41"]),
            info("gcc-14", 60_000_000, &["libc-2.41", "binutils-2.44", "libcc1-14"]),
        ])
        .unwrap();
        let f = file(&[("libc", &["libc"]), ("binutils", &["binutils"])], &[]);
        for max in [4, 5, 10] {
            let got = names(&c, Budget::new(max, 1).unwrap(), &f);
            let with_gcc = got.iter().find(|l| l.iter().any(|p| p == "gcc-14")).expect("gcc is laid out");
            assert!(!with_gcc.iter().any(|p| p == "libsframe-2.44"), "max {max}: {got:?}");
        }
    }
}
