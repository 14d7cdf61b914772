//! `popularity`: nixpkgs' `referencesByPopularity` (closure-graph.py, 2018), reproduced exactly.
//!
//! Objective (theirs): put the paths most images are likely to share in their own layers.
//!
//! Algorithm:
//! 1. Roots are the paths no other path references.
//! 2. Each root's references are expanded into a tree, so a path reached along several routes
//!    occurs several times. Popularity is counted bottom-up with closure-graph.py's nested rule:
//!    for a node `p` with children `c`, `C(p)[c] += 1` and `C(p)[s] += C(c)[s] + 1` for every `s`
//!    below `c`; at the top the roots are the children. Counts grow with the number of routes,
//!    so they are kept as u128 and an overflow is an error rather than a wrong order.
//! 3. Paths sort by descending popularity, ties by ascending `package_name`: the path with its
//!    leading `/nix/store/<hash>` segment moved to the end.
//! 4. Grouping follows `buildLayeredImage`'s `limit_layers`: with a budget of `n` store layers,
//!    the first `n - 1` paths get a layer each and the rest share the last one.
//!
//! The per-node count maps are computed once per node in topological order (as the script's
//! caches do) and freed when the node's last parent has used them.

use crate::closure::Closure;
use crate::{Layer, LayerError, Reason};

/// The popularity order, most popular first.
pub fn order(closure: &Closure) -> Result<Vec<usize>, LayerError> {
    let n = closure.len();
    let mut maps: Vec<Option<Vec<(u32, u128)>>> = vec![None; n];
    let mut parents_left: Vec<usize> = (0..n).map(|i| closure.users(i).len()).collect();
    let mut acc = vec![0u128; n];
    let mut touched: Vec<u32> = Vec::new();

    // Adds one child's contribution to the accumulator.
    let add_child = |c: usize, maps: &[Option<Vec<(u32, u128)>>], acc: &mut [u128], touched: &mut Vec<u32>| {
        let mut bump = |s: usize, v: u128, acc: &mut [u128]| -> Result<(), LayerError> {
            if acc[s] == 0 {
                touched.push(s as u32);
            }
            acc[s] = acc[s].checked_add(v).ok_or_else(|| overflow(closure, s))?;
            Ok(())
        };
        bump(c, 1, acc)?;
        for &(s, v) in maps[c].as_deref().expect("children are computed first") {
            bump(s as usize, v.checked_add(1).ok_or_else(|| overflow(closure, s as usize))?, acc)?;
        }
        Ok::<(), LayerError>(())
    };
    let drain = |acc: &mut [u128], touched: &mut Vec<u32>| -> Vec<(u32, u128)> {
        touched.sort_unstable();
        let out = touched.iter().map(|&s| (s, std::mem::take(&mut acc[s as usize]))).collect();
        touched.clear();
        out
    };

    for p in closure.topo_order() {
        for &c in closure.refs(p) {
            add_child(c as usize, &maps, &mut acc, &mut touched)?;
        }
        maps[p] = Some(drain(&mut acc, &mut touched));
        for &c in closure.refs(p) {
            let c = c as usize;
            parents_left[c] -= 1;
            if parents_left[c] == 0 {
                maps[c] = None;
            }
        }
    }
    for r in closure.roots() {
        add_child(r, &maps, &mut acc, &mut touched)?;
    }
    let popularity = drain(&mut acc, &mut touched);

    let keys: Vec<String> = (0..n).map(|i| package_name(closure.path(i).as_str())).collect();
    let mut ranked: Vec<(u128, usize)> = popularity.iter().map(|&(s, v)| (v, s as usize)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| keys[a.1].cmp(&keys[b.1])));
    // closure-graph.py appends paths no root reaches; a validated closure has none, because
    // following users from any path ends at a root.
    debug_assert_eq!(ranked.len(), n);
    Ok(ranked.into_iter().map(|(_, i)| i).collect())
}

fn overflow(closure: &Closure, s: usize) -> LayerError {
    LayerError::PopularityOverflow(closure.path(s).to_string())
}

/// closure-graph.py's tie-break key: the first `-`-separated segment moved to the end.
fn package_name(path: &str) -> String {
    match path.split_once('-') {
        Some((first, rest)) => format!("{rest}-{first}"),
        None => path.to_string(),
    }
}

/// `limit_layers` over the popularity order.
pub fn layers(closure: &Closure, store_layers: usize) -> Result<Vec<Layer>, LayerError> {
    let order = order(closure)?;
    let singles = store_layers.saturating_sub(1).min(order.len());
    let mut out: Vec<Layer> = order[..singles].iter().enumerate().map(|(rank, &i)| Layer::new(closure, vec![i], Reason::Popular { rank: rank + 1 })).collect();
    if order.len() > singles {
        out.push(Layer::new(closure, order[singles..].to_vec(), Reason::PopularRemainder));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::tests::info;

    /// The worked example at the top of closure-graph.py.
    #[test]
    fn documented_example() {
        let c = Closure::new(vec![info("A", 1, &["B", "G"]), info("B", 1, &["C", "E"]), info("C", 1, &["D", "E"]), info("D", 1, &["F"]), info("E", 1, &["F"]), info("F", 1, &[]), info("G", 1, &[])])
            .unwrap();
        let names: Vec<&str> = order(&c).unwrap().into_iter().map(|i| c.path(i).name()).collect();
        // F 9, E 5, D 4, C 3, then B and G tie at 2 (ordered by name), then A 1.
        assert_eq!(names, ["F", "E", "D", "C", "B", "G", "A"]);
    }

    #[test]
    fn package_name_moves_hash_last() {
        assert_eq!(package_name("/nix/store/abc-foo-1.0"), "foo-1.0-/nix/store/abc");
    }
}
