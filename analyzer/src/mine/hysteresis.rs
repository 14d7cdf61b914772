//! Hysteresis: keep the previous file's groups unless regrouping saves enough.
//!
//! Regrouping makes every client download the regrouped layers once. The previous groups (and
//! plan, if the file has one) and the new ones are costed the same way, with the images over
//! budget merging as the layerer would (`greedy::layered_cost`); the previous ones are kept unless the
//! new ones' expected saving exceeds `--min-gain` of the previous expected cost.

use std::collections::{BTreeMap, HashMap, HashSet};

use hints_format::{Group, HintFile, Matcher};

use super::greedy::layered_cost;
use super::model::{GroupState, Model};
use super::output::{refresh_stats, sorted};
use super::MineError;

/// What hysteresis decided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    /// Expected update bytes per transition with the previous groups.
    pub previous_cost: f64,
    /// The same with the new groups.
    pub new_cost: f64,
    /// Bytes that clients download once when the layers regroup.
    pub regroup_bytes: u64,
    pub kept_previous: bool,
}

/// The groups and plan to write, and why.
pub(super) struct Chosen {
    pub(super) groups: Vec<Group>,
    pub(super) merges: Vec<[String; 2]>,
    pub(super) decision: Decision,
}

/// The groups and plan to write: the previous file's (statistics refreshed) or the new ones.
pub(super) fn choose(model: &Model<'_>, names: &[u32], groups: &[GroupState], new_groups: Vec<Group>, prev: &HintFile, min_gain: f64, store_layers: usize) -> Result<Chosen, MineError> {
    let stats = model.stats;
    let matcher = Matcher::new(prev);
    let mut by_prev: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    let mut loose = vec![];
    for &n in names {
        match matcher.place(&stats.samples[n as usize])?.group {
            Some(g) => by_prev.entry(g).or_default().push(n),
            None => loose.push(vec![n]),
        }
    }
    let position: HashMap<usize, usize> = by_prev.keys().enumerate().map(|(k, &g)| (g, k)).collect();
    let id_index: HashMap<&str, usize> = prev.groups.iter().enumerate().map(|(g, grp)| (grp.id.as_str(), g)).collect();
    let prev_plan: Vec<(usize, usize)> = prev.merges.iter().filter_map(|[a, b]| Some((*position.get(id_index.get(a.as_str())?)?, *position.get(id_index.get(b.as_str())?)?))).collect();
    let prev_groups: Vec<Vec<u32>> = by_prev.into_values().chain(loose).collect();
    let previous_cost = layered_cost(model, &prev_groups, &prev_plan, store_layers);
    let member_lists: Vec<Vec<u32>> = groups.iter().map(|g| g.members.clone()).collect();
    let new_cost = layered_cost(model, &member_lists, &[], store_layers);
    let prev_sets: HashSet<Vec<String>> = prev.groups.iter().map(|g| sorted(&g.members)).collect();
    let regroup_bytes: u64 = new_groups.iter().filter(|g| !prev_sets.contains(&sorted(&g.members))).map(|g| g.stats.size * g.stats.images as u64).sum();
    let kept_previous = previous_cost - new_cost <= min_gain * previous_cost;
    let decision = Decision { previous_cost, new_cost, regroup_bytes, kept_previous };
    if kept_previous {
        let mut kept = prev.groups.clone();
        refresh_stats(model, &mut kept);
        Ok(Chosen { groups: kept, merges: prev.merges.clone(), decision })
    } else {
        Ok(Chosen { groups: new_groups, merges: vec![], decision })
    }
}
