//! What changes between two hint files (`hints diff`, and the summary `hints emit --summary`
//! writes for a pull request).
//!
//! # Objective
//! A reviewer of a regenerated hint file sees a YAML diff. What they need is what it means:
//! which groups split, merged, appeared or went, which names moved, and, on the history, what
//! the change saves per update and what it costs once, when clients pull the regrouped layers.
//!
//! # Definitions
//! - Groups are compared by members (patterns), not ids: a group whose members are unchanged
//!   is the same group under any id.
//! - An old group is *split* when its members now lie in two or more new groups; a new group is
//!   *merged* when its members came from two or more old groups. A group with no member in the
//!   other file was *added* or *removed*. A name *moved* when it left the bulk of its old group:
//!   the new group holding it is not the one that took most of the old group's members.
//! - An image *goes to size-first* when the new file lists it in `size_first_images` and the
//!   old one did not (the backtest stopped trusting the groups for it), and *leaves size-first*
//!   the other way round. Either changes that image's layers, so it is a change to review.
//! - An image's *opt-outs changed* when the groups it lays out without (`opt_outs`, compared by
//!   members) differ between the files.
//! - With a history: the *saving per update* is the update bytes of the old file less those of
//!   the new one, replayed over the last [`REPLAYED`] updates the history holds, per update (per image,
//!   summed). The *one-time cost* is what clients of every image pull once at the switch: at the
//!   last revision, the bytes of the new file's layers that the old file's layout does not have.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hints_format::HintFile;
use layering_core::{layer_image, Budget, LayerError};
use serde::Serialize;

use crate::history::History;
use crate::replay::{replay, Replayed};

/// Updates the saving is measured over, at most (the last ones of the history).
pub const REPLAYED: usize = 6;

/// The structural changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Groups of the new file whose members are those of an old group (ids may differ).
    pub unchanged: usize,
    /// Old group id → the new group ids its members went to.
    pub split: BTreeMap<String, Vec<String>>,
    /// New group id → the old group ids its members came from.
    pub merged: BTreeMap<String, Vec<String>>,
    /// New groups with no member from the old file.
    pub added: Vec<String>,
    /// Old groups with no member in the new file.
    pub removed: Vec<String>,
    /// Member → (old group, new group), for names that moved.
    pub moved: BTreeMap<String, (String, String)>,
    /// Images the new file lays out as size-first and the old one did not.
    pub to_size_first: Vec<String>,
    /// Images the old file laid out as size-first and the new one does not.
    pub from_size_first: Vec<String>,
    /// Images whose opt-outs differ: image → the new file's opted-out group ids.
    pub opt_outs: BTreeMap<String, Vec<String>>,
    /// Whether anything above changed: a file worth proposing.
    pub changed: bool,
}

/// The costs on a history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Costs {
    /// Updates replayed, per image.
    pub updates: usize,
    /// Update bytes per update (summed over images) with the old file and with the new one.
    pub old_per_update: u64,
    pub new_per_update: u64,
    /// Bytes clients pull once at the switch, summed over images.
    pub one_time: u64,
}

/// Compares the groups of `old` and `new`.
pub fn changes(old: &HintFile, new: &HintFile) -> Changes {
    let (old_of, new_of) = (owners(old), owners(new));
    let mut c = Changes::default();
    let old_sets: HashSet<BTreeSet<&str>> = old.groups.iter().map(|g| g.members.iter().map(String::as_str).collect()).collect();
    for g in &new.groups {
        let members: BTreeSet<&str> = g.members.iter().map(String::as_str).collect();
        if old_sets.contains(&members) {
            c.unchanged += 1;
            continue;
        }
        let sources: BTreeSet<&str> = g.members.iter().filter_map(|m| old_of.get(m.as_str()).copied()).collect();
        match sources.len() {
            0 => c.added.push(g.id.clone()),
            1 => {}
            _ => {
                c.merged.insert(g.id.clone(), sources.iter().map(|s| s.to_string()).collect());
            }
        }
    }
    let listed = |f: &HintFile| -> BTreeSet<String> { f.size_first_images.iter().cloned().collect() };
    let (was, now) = (listed(old), listed(new));
    c.to_size_first = now.difference(&was).cloned().collect();
    c.from_size_first = was.difference(&now).cloned().collect();
    let (was, now) = (opted_out(old), opted_out(new));
    for image in was.keys().chain(now.keys()).collect::<BTreeSet<_>>() {
        if was.get(image) != now.get(image) {
            c.opt_outs.insert(image.to_string(), new.opt_outs.get(*image).cloned().unwrap_or_default());
        }
    }
    for g in &old.groups {
        if let Some(main) = main_destination(g, &new_of) {
            for m in &g.members {
                if let Some(&to) = new_of.get(m.as_str()).filter(|&&to| to != main) {
                    c.moved.insert(m.clone(), (g.id.clone(), to.to_string()));
                }
            }
        }
        let targets: BTreeSet<&str> = g.members.iter().filter_map(|m| new_of.get(m.as_str()).copied()).collect();
        match targets.len() {
            0 => c.removed.push(g.id.clone()),
            1 => {}
            _ => {
                c.split.insert(g.id.clone(), targets.iter().map(|s| s.to_string()).collect());
            }
        }
    }
    c.changed = !(c.split.is_empty()
        && c.merged.is_empty()
        && c.added.is_empty()
        && c.removed.is_empty()
        && c.moved.is_empty()
        && c.to_size_first.is_empty()
        && c.from_size_first.is_empty()
        && c.opt_outs.is_empty());
    c
}

/// Image → the member sets of the groups it opts out of.
fn opted_out(f: &HintFile) -> BTreeMap<&str, BTreeSet<BTreeSet<&str>>> {
    let members: BTreeMap<&str, BTreeSet<&str>> = f.groups.iter().map(|g| (g.id.as_str(), g.members.iter().map(String::as_str).collect())).collect();
    f.opt_outs.iter().map(|(image, ids)| (image.as_str(), ids.iter().filter_map(|id| members.get(id.as_str()).cloned()).collect())).collect()
}

/// Member → the id of the group holding it.
fn owners(f: &HintFile) -> BTreeMap<&str, &str> {
    f.groups.iter().flat_map(|g| g.members.iter().map(move |m| (m.as_str(), g.id.as_str()))).collect()
}

/// The new group that took most of the old group `g`'s members (ties: the one with `g`'s id,
/// then the smaller id).
fn main_destination<'a>(g: &hints_format::Group, new_of: &BTreeMap<&str, &'a str>) -> Option<&'a str> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &g.members {
        if let Some(&to) = new_of.get(m.as_str()) {
            *count.entry(to).or_default() += 1;
        }
    }
    count.into_iter().max_by(|a, b| a.1.cmp(&b.1).then((a.0 == g.id).cmp(&(b.0 == g.id))).then(b.0.cmp(a.0))).map(|(to, _)| to)
}

/// The costs of switching from `old` to `new` on `history`, laid out with `budget`.
pub fn costs(history: &History, old: &HintFile, new: &HintFile, budget: Budget) -> Result<Costs, LayerError> {
    // The last revision the loaded history holds snapshots of (a report loads only its range).
    let last = history.snapshots.keys().map(|&(_, r)| r).max().unwrap_or(0);
    let first = last.saturating_sub(REPLAYED);
    let updates = last - first;
    let per_update = |f: &HintFile| -> Result<u64, LayerError> { Ok(replay(history, first, last, budget, Replayed::Hints(f))?.update_bytes / updates.max(1) as u64) };
    let mut one_time = 0u64;
    for i in 0..history.images.len() {
        let Some(closure) = history.closure(i, last) else { continue };
        let sets = |f: &HintFile| -> Result<Vec<(Vec<String>, u64)>, LayerError> {
            Ok(layer_image(&closure, budget, f, Some(&history.images[i]))?.into_iter().map(|l| (l.paths.iter().map(|p| p.to_string()).collect(), l.size)).collect())
        };
        let before: HashSet<Vec<String>> = sets(old)?.into_iter().map(|(p, _)| p).collect();
        one_time += sets(new)?.into_iter().filter(|(p, _)| !before.contains(p)).map(|(_, s)| s).sum::<u64>();
    }
    Ok(Costs { updates, old_per_update: per_update(old)?, new_per_update: per_update(new)?, one_time })
}

/// The changes (and costs) as Markdown, for a pull request.
pub fn markdown(old_name: &str, new_name: &str, c: &Changes, costs: Option<&Costs>) -> String {
    let mut s = format!("### Hint file changes: `{old_name}` → `{new_name}`\n\n");
    if !c.changed {
        s += &format!("No group changed ({} groups).\n", c.unchanged);
    } else {
        s += &format!("{} groups unchanged, {} split, {} merged, {} added, {} removed; {} names moved.\n\n", c.unchanged, c.split.len(), c.merged.len(), c.added.len(), c.removed.len(), c.moved.len());
        let list = |v: &[String]| v.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ");
        for (g, into) in &c.split {
            s += &format!("- split: `{g}` → {}\n", list(into));
        }
        for (g, from) in &c.merged {
            s += &format!("- merged: {} → `{g}`\n", list(from));
        }
        for g in &c.added {
            s += &format!("- added: `{g}`\n");
        }
        for g in &c.removed {
            s += &format!("- removed: `{g}`\n");
        }
        if !c.to_size_first.is_empty() {
            s += &format!("- laid out as size-first now (the backtest no longer trusts the groups for them): {}\n", list(&c.to_size_first));
        }
        if !c.from_size_first.is_empty() {
            s += &format!("- no longer laid out as size-first: {}\n", list(&c.from_size_first));
        }
        for (image, ids) in &c.opt_outs {
            s += &format!("- `{image}` opts out of: {}\n", if ids.is_empty() { "no group now".to_string() } else { list(ids) });
        }
        if !c.moved.is_empty() {
            s += "\n| name | from | to |\n|---|---|---|\n";
            for (m, (from, to)) in &c.moved {
                s += &format!("| `{m}` | `{from}` | `{to}` |\n");
            }
        }
    }
    if let Some(k) = costs {
        let saving = k.old_per_update as i128 - k.new_per_update as i128;
        s += &format!(
            "\nOn the last {} updates of the history: {} per update with the old file, {} with the new one ({} {} per update). Switching costs clients {} once.\n",
            k.updates,
            mib(k.old_per_update as i128),
            mib(k.new_per_update as i128),
            if saving >= 0 { "saves" } else { "adds" },
            mib(saving.abs()),
            mib(k.one_time as i128)
        );
    }
    s
}

fn mib(b: i128) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(groups: &[(&str, &[&str])]) -> HintFile {
        let mut text = String::from("version: 2\nbudget: {max_layers: 100, reserve: 1}\ngroups:\n");
        for (id, members) in groups {
            text += &format!("  - id: {id}\n    members: [{}]\n", members.join(", "));
        }
        HintFile::parse(&text).unwrap()
    }

    #[test]
    fn identical_files_have_no_changes_whatever_the_ids() {
        let a = file(&[("x", &["a", "b"]), ("y", &["c"])]);
        let b = file(&[("renamed", &["b", "a"]), ("y", &["c"])]);
        assert_eq!(changes(&a, &b), Changes { unchanged: 2, ..Default::default() });
        assert!(!changes(&a, &b).changed);
        assert!(markdown("a", "b", &changes(&a, &b), None).contains("No group changed (2 groups)"));
    }

    #[test]
    fn a_split_and_a_merge() {
        let old = file(&[("x", &["a", "b", "c"]), ("y", &["d"]), ("z", &["e"])]);
        let new = file(&[("x", &["a", "b"]), ("c", &["c"]), ("yz", &["d", "e"])]);
        let c = changes(&old, &new);
        assert_eq!(c.split, BTreeMap::from([("x".to_string(), vec!["c".to_string(), "x".to_string()])]));
        assert_eq!(c.merged, BTreeMap::from([("yz".to_string(), vec!["y".to_string(), "z".to_string()])]));
        assert_eq!(c.unchanged, 0);
        assert!(c.added.is_empty() && c.removed.is_empty() && c.changed);
        let md = markdown("old", "new", &c, None);
        assert!(md.contains("- split: `x` → `c`, `x`") && md.contains("- merged: `y`, `z` → `yz`"), "{md}");
    }

    #[test]
    fn a_moved_name_an_added_and_a_removed_group() {
        let old = file(&[("x", &["a", "b", "c"]), ("y", &["d", "e"]), ("gone", &["f"])]);
        let new = file(&[("x", &["a", "b", "c", "d"]), ("y", &["e"]), ("fresh", &["g"])]);
        let c = changes(&old, &new);
        assert_eq!(c.moved, BTreeMap::from([("d".to_string(), ("y".to_string(), "x".to_string()))]));
        assert_eq!((c.added.clone(), c.removed.clone()), (vec!["fresh".to_string()], vec!["gone".to_string()]));
        assert!(markdown("o", "n", &c, None).contains("| `d` | `y` | `x` |"));
    }

    #[test]
    fn an_image_going_to_size_first_is_a_change_even_with_the_same_groups() {
        let old = file(&[("x", &["a"])]);
        let mut new = old.clone();
        new.size_first_images = vec!["api".into()];
        let c = changes(&old, &new);
        assert!(c.changed && c.to_size_first == ["api"] && c.from_size_first.is_empty(), "{c:?}");
        assert!(markdown("o", "n", &c, None).contains("laid out as size-first now (the backtest no longer trusts the groups for them): `api`"));
        let back = changes(&new, &old);
        assert!(back.changed && back.from_size_first == ["api"], "{back:?}");
        assert!(!changes(&new, &new).changed);
    }

    #[test]
    fn an_image_opting_out_is_a_change_even_with_the_same_groups() {
        let old = file(&[("x", &["a"]), ("y", &["b"])]);
        let mut new = old.clone();
        new.opt_outs = BTreeMap::from([("api".to_string(), vec!["x".to_string()])]);
        let c = changes(&old, &new);
        assert!(c.changed && c.opt_outs == BTreeMap::from([("api".to_string(), vec!["x".to_string()])]), "{c:?}");
        assert!(markdown("o", "n", &c, None).contains("- `api` opts out of: `x`"));
        let back = changes(&new, &old);
        assert!(back.changed && back.opt_outs["api"].is_empty(), "{back:?}");
        assert!(markdown("n", "o", &back, None).contains("- `api` opts out of: no group now"));
        // The same opted-out group under another id is no change.
        let mut renamed = file(&[("z", &["a"]), ("y", &["b"])]);
        renamed.opt_outs = BTreeMap::from([("api".to_string(), vec!["z".to_string()])]);
        assert!(!changes(&new, &renamed).changed);
    }
}
