//! Why one image's updates pull what they pull (`hints eval --pulls IMAGE`).
//!
//! # Objective
//! Where an image pulls more with the hint file than with size-first, show where the bytes go:
//! at each replayed update, the layers each layout pulls, and in each the bytes that did not
//! change, so that a loss can be traced to the group, the merge or the departure behind it.
//!
//! # Definitions
//! - A layer is *pulled* at update k when the image's layout at k holds it and its layout at
//!   k − 1 does not (the replay's rule, [`crate::replay`]).
//! - A pulled layer's *changed* paths are those the image did not hold at k − 1 (new store
//!   paths); the others are *carried*: unchanged bytes pulled again because a layer mate
//!   changed, or because the layer's membership did.
//! - The names a pulled layer *lost*: names (identities, versions aside) that shared a layer
//!   at k − 1 with one of its names and that the image no longer holds at k.
//! - Why a pulled layer carried bytes ([`Carry`]): a path of it changed (*beside a change*:
//!   the cost of grouping paths that do not change together); none changed and it lost a name
//!   (a *departure*); or none changed and none left (*re-laid*: layers that each stayed,
//!   joined or split otherwise, as an image over budget merges anew when it grows).
//!
//! # Algorithm
//! Lay the image out at every revision of the range with the hint file and with size-first (the
//! replay's own layouts), take each update's pulled layers and split their bytes by whether the
//! image held each path before; for the lost names, map every name of the layout at k − 1 to its
//! layer and keep the names of those layers that the image holds no more. A pulled layer's
//! reason comes from laying the image out once more at k, with reasons kept (the replay keeps
//! member lists only), matched by its members.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use hints_format::{HintFile, NameKey};
use layering_core::{layer, layer_image, Budget, LayerError, Reason, Strategy};
use serde::Serialize;

use crate::history::History;
use crate::replay::{image_layers, pulled, LayerSet, Replayed};

/// One update of the image.
#[derive(Debug, Clone, Serialize)]
pub struct UpdatePulls {
    /// The revision before (its label).
    pub from: String,
    /// The revision after.
    pub to: String,
    /// The hint file's layout, then size-first's.
    pub layouts: Vec<LayoutPulls>,
}

/// What one layout pulls at one update.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutPulls {
    pub strategy: String,
    pub bytes: u64,
    /// The bytes of carried paths among them, by why their layers carried them.
    pub carried_by: CarriedBytes,
    /// The pulled layers, those with the most carried bytes first.
    pub layers: Vec<PulledLayer>,
}

/// Why a pulled layer carried unchanged bytes (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Carry {
    BesideAChange,
    Departure,
    Relaid,
}

/// Carried bytes, by [`Carry`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CarriedBytes {
    pub beside_a_change: u64,
    pub departure: u64,
    pub relaid: u64,
}

impl CarriedBytes {
    pub fn total(&self) -> u64 {
        self.beside_a_change + self.departure + self.relaid
    }

    fn plus(mut self, carry: Carry, bytes: u64) -> Self {
        *match carry {
            Carry::BesideAChange => &mut self.beside_a_change,
            Carry::Departure => &mut self.departure,
            Carry::Relaid => &mut self.relaid,
        } += bytes;
        self
    }

    fn sum(self, other: CarriedBytes) -> Self {
        CarriedBytes { beside_a_change: self.beside_a_change + other.beside_a_change, departure: self.departure + other.departure, relaid: self.relaid + other.relaid }
    }
}

/// What formed a pulled layer (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Group,
    Merged,
    Fallback,
    Pin,
    Baseline,
}

impl Origin {
    fn of(reason: &Reason) -> Self {
        match reason {
            Reason::Group { .. } => Origin::Group,
            Reason::Merged(_) => Origin::Merged,
            Reason::Fallback { .. } => Origin::Fallback,
            Reason::Pin { .. } => Origin::Pin,
            Reason::SizeFirst { .. } | Reason::Popular { .. } | Reason::PopularRemainder => Origin::Baseline,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Origin::Group => "group",
            Origin::Merged => "merged",
            Origin::Fallback => "fallback",
            Origin::Pin => "pin",
            Origin::Baseline => "baseline",
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One pulled layer.
#[derive(Debug, Clone, Serialize)]
pub struct PulledLayer {
    pub bytes: u64,
    pub carried_bytes: u64,
    pub carry: Carry,
    pub origin: Origin,
    /// The layering's reason for it, as `hints layer --explain` words it.
    pub reason: String,
    /// The names of its changed paths, largest first.
    pub changed: Vec<String>,
    /// The names of its carried paths, largest first.
    pub carried: Vec<String>,
    /// The names it lost, in order.
    pub lost: Vec<String>,
}

/// The pulls of image `image` at every update of `first..=last`, with `hints` and with
/// size-first, at `budget`. An update where the image has no snapshot at either end is left out.
pub fn pulls(history: &History, image: usize, first: usize, last: usize, budget: Budget, hints: &HintFile) -> Result<Vec<UpdatePulls>, LayerError> {
    let jobs = [(budget, Replayed::Hints(hints)), (budget, Replayed::SizeFirst)];
    let laid_out = image_layers(history, image, first, last, &jobs)?;
    let mut updates = vec![];
    for k in first + 1..=last {
        let (Some(held_before), Some(held_now)) = (history.snapshots.get(&(image, k - 1)), history.snapshots.get(&(image, k))) else { continue };
        let mut layouts = vec![];
        for ((_, strategy), by_revision) in jobs.iter().zip(&laid_out) {
            let (Some(before), Some(now)) = (&by_revision[k - 1 - first], &by_revision[k - first]) else { break };
            let reasons = reasons(history, image, k, budget, *strategy)?;
            layouts.push(layout_pulls(history, strategy.name(), (before, held_before), (now, held_now), &reasons));
        }
        if layouts.len() == jobs.len() {
            updates.push(UpdatePulls { from: history.revisions[k - 1].label.clone(), to: history.revisions[k].label.clone(), layouts });
        }
    }
    Ok(updates)
}

/// The reason of each layer of the image's layout at revision `k` (which must have a snapshot)
/// under `strategy` (the hint file or size-first), by its sorted members.
fn reasons(history: &History, image: usize, k: usize, budget: Budget, strategy: Replayed<'_>) -> Result<HashMap<Vec<u32>, Reason>, LayerError> {
    let members = &history.snapshots[&(image, k)];
    let closure = history.closure(image, k).expect("the snapshot exists");
    let layers = match strategy {
        Replayed::Hints(file) => layer_image(&closure, budget, file, Some(&history.images[image]))?,
        _ => layer(&closure, budget, Strategy::SizeFirst)?,
    };
    Ok(layers
        .into_iter()
        .map(|l| {
            let mut m: Vec<u32> = l.paths.iter().map(|p| members[closure.index_of(p).expect("a layer holds closure paths")]).collect();
            m.sort_unstable();
            (m, l.reason)
        })
        .collect())
}

/// One layout's pulls from `before` to `now`, each a layout and the image's sorted paths.
fn layout_pulls(history: &History, strategy: &str, (before, held_before): (&LayerSet, &[u32]), (now, held_now): (&LayerSet, &[u32]), reasons: &HashMap<Vec<u32>, Reason>) -> LayoutPulls {
    let label = |p: u32| NameKey::identity(history.paths[p as usize].name()).label();
    let largest_first = |mut paths: Vec<u32>| {
        paths.sort_by_key(|&p| std::cmp::Reverse(history.sizes[p as usize]));
        paths.into_iter().map(label).collect()
    };
    let layer_before: HashMap<String, usize> = before.iter().enumerate().flat_map(|(k, (l, _))| l.iter().map(move |&p| (label(p), k))).collect();
    let names_now: HashSet<String> = held_now.iter().map(|&p| label(p)).collect();
    let mut layers: Vec<PulledLayer> = pulled(now, before)
        .map(|(paths, bytes)| {
            let (changed, carried): (Vec<u32>, Vec<u32>) = paths.iter().partition(|p| held_before.binary_search(p).is_err());
            let carried_bytes = carried.iter().map(|&p| history.sizes[p as usize]).sum();
            // Each layer at k − 1 that held one of its names, once however many it held.
            let previous: BTreeSet<usize> = paths.iter().filter_map(|&p| layer_before.get(&label(p)).copied()).collect();
            let lost: BTreeSet<String> = previous.into_iter().flat_map(|k| before[k].0.iter().map(|&q| label(q))).filter(|name| !names_now.contains(name)).collect();
            let carry = match (changed.is_empty(), lost.is_empty()) {
                (false, _) => Carry::BesideAChange,
                (true, false) => Carry::Departure,
                (true, true) => Carry::Relaid,
            };
            let reason = &reasons[paths];
            PulledLayer {
                bytes: *bytes,
                carried_bytes,
                carry,
                origin: Origin::of(reason),
                reason: reason.to_string(),
                changed: largest_first(changed),
                carried: largest_first(carried),
                lost: lost.into_iter().collect(),
            }
        })
        .collect();
    layers.sort_by_key(|l| (std::cmp::Reverse(l.carried_bytes), std::cmp::Reverse(l.bytes)));
    let carried_by = layers.iter().fold(CarriedBytes::default(), |c, l| c.plus(l.carry, l.carried_bytes));
    LayoutPulls { strategy: strategy.to_string(), bytes: layers.iter().map(|l| l.bytes).sum(), carried_by, layers }
}

/// Layers listed per layout and update in the text report (the JSON has them all).
const LISTED: usize = 6;
/// Names listed per kind in a layer's line.
const NAMED: usize = 4;

/// The text report: per update, each layout's bytes and the layers that carried unchanged bytes,
/// then the totals.
pub fn render(image: &str, updates: &[UpdatePulls]) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let names = |v: &[String]| match v.len() {
        0 => "none".to_string(),
        n if n <= NAMED => v.join(", "),
        n => format!("{} (+{} more)", v[..NAMED].join(", "), n - NAMED),
    };
    let mut s = format!("{image}: what each update pulls, and the bytes in it that did not change\n");
    for u in updates {
        let _ = writeln!(s, "update {} -> {}", u.from, u.to);
        for l in &u.layouts {
            let _ = writeln!(s, "  {:<10} {:>9.1} MiB in {:>3} layers, {:>8.1} MiB of it unchanged", l.strategy, mib(l.bytes), l.layers.len(), mib(l.carried_by.total()));
        }
        for l in &u.layouts {
            for layer in l.layers.iter().filter(|layer| layer.carried_bytes > 0).take(LISTED) {
                let lost = if layer.lost.is_empty() { String::new() } else { format!("; lost {}", names(&layer.lost)) };
                let _ = writeln!(
                    s,
                    "    {:<10} {:>7.1} MiB ({:.1} unchanged, {}): changed {}; unchanged {}{lost}",
                    l.strategy,
                    mib(layer.bytes),
                    mib(layer.carried_bytes),
                    layer.origin.as_str(),
                    names(&layer.changed),
                    names(&layer.carried)
                );
            }
        }
    }
    let strategies = updates.first().map_or(vec![], |u| u.layouts.iter().map(|l| l.strategy.as_str()).collect());
    let totals: Vec<String> = strategies
        .iter()
        .enumerate()
        .map(|(k, strategy)| {
            let (bytes, carried) = updates.iter().fold((0, CarriedBytes::default()), |(b, c), u| (b + u.layouts[k].bytes, c.sum(u.layouts[k].carried_by)));
            format!(
                "{strategy} {:.1} MiB ({:.1} unchanged: {:.1} beside a change, {:.1} departures, {:.1} re-laid)",
                mib(bytes),
                mib(carried.total()),
                mib(carried.beside_a_change),
                mib(carried.departure),
                mib(carried.relaid)
            )
        })
        .collect();
    let _ = writeln!(s, "over {} updates: {}", updates.len(), totals.join("; "));
    s
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use hints_format::{BudgetHeader, Group, HintFile, StorePath};
    use layering_core::Budget;

    use super::{pulls, CarriedBytes, Carry, Origin};
    use crate::history::History;
    use crate::store::Revision;

    /// One image whose root drops `s2` at revision 1, and whose `s1` changes at revision 2; the
    /// file groups `big` with `s1` and `s2`.
    fn departure_then_change() -> (History, HintFile) {
        let path = |digit: char, name: &str| StorePath::parse(&format!("/nix/store/{}-{name}", digit.to_string().repeat(32))).expect("a store path");
        let names = ["big-1.0", "root-1.0", "root-2.0", "s1-1.0", "s2-1.0", "root-3.0", "s1-2.0"];
        let paths = names.iter().zip('0'..).map(|(name, digit)| path(digit, name)).collect();
        let revision = |r: usize| Revision { label: format!("r{r}"), commit: None, time: format!("2026-01-0{}T00:00:00Z", r + 1), branch: None, dirty: false };
        let history = History {
            images: vec!["app".into()],
            revisions: (0..3).map(revision).collect(),
            sizes: vec![10_000_000, 1_000_000, 1_100_000, 200_000, 300_000, 1_200_000, 250_000],
            refs: vec![vec![], vec![0, 3, 4], vec![0, 3], vec![], vec![], vec![0, 6], vec![]],
            paths,
            snapshots: HashMap::from([((0, 0), vec![0, 1, 3, 4]), ((0, 1), vec![0, 2, 3]), ((0, 2), vec![0, 5, 6])]),
            summary: String::new(),
        };
        let mut file = HintFile::new(BudgetHeader { max_layers: 100, reserve: 1 });
        file.groups = vec![Group { id: "big".into(), members: vec!["big".into(), "s1".into(), "s2".into()], stats: Default::default() }];
        file.validate().expect("a valid file");
        (history, file)
    }

    #[test]
    fn a_group_that_loses_a_member_is_pulled_with_its_unchanged_bytes_and_names_the_loss() {
        let (history, file) = departure_then_change();
        let updates = pulls(&history, 0, 0, 2, Budget::default(), &file).unwrap();
        let [departure, change] = &updates[..] else { panic!("two updates: {updates:?}") };
        let (hinted, size_first) = (&departure.layouts[0], &departure.layouts[1]);
        assert_eq!((hinted.strategy.as_str(), size_first.strategy.as_str()), ("hints", "size-first"));
        assert_eq!(hinted.carried_by, CarriedBytes { departure: 10_200_000, ..Default::default() }, "big and s1 did not change: {hinted:?}");
        let group = &hinted.layers[0];
        assert_eq!((group.changed.len(), group.carried.as_slice(), group.lost.as_slice()), (0, &["big".to_string(), "s1".to_string()][..], &["s2".to_string()][..]));
        assert_eq!((group.carry, group.origin, group.reason.as_str()), (Carry::Departure, Origin::Group, "hint group `big`"));
        assert!(hinted.layers[1..].iter().all(|l| l.origin == Origin::Fallback), "the new root is no group's: {hinted:?}");
        assert!(size_first.layers.iter().all(|l| l.origin == Origin::Baseline), "{size_first:?}");
        assert_eq!((size_first.bytes, size_first.carried_by.total()), (1_100_000, 0), "size-first pulls the new root alone: {size_first:?}");
        assert_eq!(hinted.bytes, 11_300_000);
        // Then s1 changes: big comes with it, beside a change, where size-first pulls s1 alone.
        let (hinted, size_first) = (&change.layouts[0], &change.layouts[1]);
        assert_eq!(hinted.carried_by, CarriedBytes { beside_a_change: 10_000_000, ..Default::default() }, "{hinted:?}");
        assert_eq!((hinted.layers[0].carry, hinted.layers[0].changed.as_slice()), (Carry::BesideAChange, &["s1".to_string()][..]));
        assert_eq!((size_first.bytes, size_first.carried_by.total()), (1_450_000, 0), "{size_first:?}");
        let report = super::render("app", &updates);
        assert!(report.ends_with("over 2 updates: hints 21.7 MiB (19.3 unchanged: 9.5 beside a change, 9.7 departures, 0.0 re-laid); size-first 2.4 MiB (0.0 unchanged: 0.0 beside a change, 0.0 departures, 0.0 re-laid)\n"), "{report}");
    }
}
