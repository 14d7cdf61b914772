//! `hints explain`: where a path or name goes under a hint file, and the history's evidence for
//! it (sizes, changes, own bumps against cascades, co-changing and co-bumping names, images).

use std::fmt::Write as _;

use hints_format::{HintFile, Matcher, NameKey, StorePath};

use crate::history::History;
use crate::mine::{MineError, NameStats};

/// `hints explain`: a path's or name's group and the evidence.
pub fn explain(h: &History, (first, last): (usize, usize), hints: &HintFile, query: &str) -> Result<String, MineError> {
    let stats = NameStats::build(h, first, last)?;
    let label = match StorePath::parse(query) {
        _ if stats.labels.iter().any(|l| l == query) => query.to_string(),
        Ok(p) => NameKey::identity(p.name()).label(),
        Err(_) if query.contains('/') => return Err(MineError::Unknown(query.to_string())),
        Err(_) => NameKey::identity(query).label(),
    };
    let n = stats.labels.iter().position(|l| *l == label).ok_or_else(|| MineError::Unknown(query.to_string()))?;
    let mut o = String::new();
    let placement = Matcher::new(hints).place(&stats.samples[n])?;
    let _ = writeln!(o, "{label}");
    match (placement.pin, placement.group) {
        (Some(p), _) => {
            let _ = writeln!(o, "  layer: pin `{}` ({})", hints.pins[p].id, hints.pins[p].rule.as_str());
        }
        (None, Some(g)) => {
            let grp = &hints.groups[g];
            let _ = writeln!(
                o,
                "  layer: group `{}` (group {} of {} in the file, bottom-up; one layer in every image that holds it, unless an image over budget merges it), {} members, {} bytes, expected to change at {:.0}% of updates, in {} images",
                grp.id,
                g + 1,
                hints.groups.len(),
                grp.members.len(),
                grp.stats.size,
                grp.stats.change_rate * 100.0,
                grp.stats.images
            );
            let _ = writeln!(o, "  with: {}", grp.members.join(", "));
            let plan: Vec<String> = hints
                .merges
                .iter()
                .enumerate()
                .filter_map(|(k, [x, y])| {
                    let other = if *x == grp.id {
                        y
                    } else if *y == grp.id {
                        x
                    } else {
                        return None;
                    };
                    Some(format!("`{other}` (entry {})", k + 1))
                })
                .collect();
            if !plan.is_empty() {
                let _ = writeln!(o, "  in an image over budget, joined with: {} of {} plan entries, applied in order until it fits", plan.join(", "), hints.merges.len());
            }
        }
        (None, None) => {
            let _ = writeln!(o, "  layer: none of the groups; the layerer places it by its size-first fallback");
        }
    }
    let sizes: Vec<String> = stats.size_over_time[n].iter().map(|s| s.to_string()).collect();
    let _ = writeln!(o, "  size over revisions {first}..{last}: {}", sizes.join(" "));
    let changes: Vec<String> = (0..stats.transitions).filter(|&t| stats.changed[t].get(n)).map(|t| format!("{}->{}", first + t, first + t + 1)).collect();
    let bumps = (0..stats.transitions).filter(|&t| stats.bumped[t].get(n)).count();
    let _ = writeln!(
        o,
        "  changed at: {} ({} of {} transitions; {bumps} of them its own bump, the rest cascaded from dependencies)",
        if changes.is_empty() { "never".to_string() } else { changes.join(", ") },
        stats.change_count(n),
        stats.transitions
    );
    let mine: Vec<usize> = (0..stats.transitions).filter(|&t| stats.changed[t].get(n)).collect();
    let together: Vec<&str> = (0..stats.labels.len())
        .filter(|&m| m != n && stats.present(m) && !mine.is_empty())
        .filter(|&m| (0..stats.transitions).all(|t| stats.changed[t].get(m) == stats.changed[t].get(n)))
        .map(|m| stats.labels[m].as_str())
        .take(20)
        .collect();
    let _ = writeln!(o, "  always changed together with: {}", if together.is_empty() { "-".to_string() } else { together.join(", ") });
    let cobump: Vec<&str> = (0..stats.labels.len()).filter(|&m| m != n && stats.source[m] == stats.source[n]).map(|m| stats.labels[m].as_str()).collect();
    let _ = writeln!(o, "  bumps together with (one source: same bump transitions and version): {}", if cobump.is_empty() { "-".to_string() } else { cobump.join(", ") });
    let imgs: Vec<&str> = stats.images[n].ones().map(|i| stats.image_names[i].as_str()).collect();
    let _ = writeln!(o, "  in images: {}", imgs.join(", "));
    Ok(o)
}

/// Where the paths named `query` land in one image: its snapshot at `revision` laid out by
/// `hints` with the file's budget, each matching path's layer (counted from the bottom), the
/// layer's bytes and paths, and why the layer exists.
pub fn in_image(h: &History, image: usize, revision: usize, hints: &HintFile, query: &str) -> Result<String, MineError> {
    let closure = h.closure(image, revision).ok_or_else(|| MineError::Unknown(format!("{query} in {} at {}", h.images[image], h.revisions[revision].label)))?;
    let budget = layering_core::Budget::new(hints.budget.max_layers as usize, hints.budget.reserve as usize).map_err(MineError::Layer)?;
    let layers = layering_core::layer(&closure, budget, layering_core::Strategy::Hints(hints)).map_err(MineError::Layer)?;
    let label = match StorePath::parse(query) {
        Ok(p) => NameKey::identity(p.name()).label(),
        Err(_) => NameKey::identity(query).label(),
    };
    let mut o = format!("in {} at {} ({} layers):\n", h.images[image], h.revisions[revision].label, layers.len());
    let mut found = false;
    for (k, l) in layers.iter().enumerate() {
        for p in l.paths.iter().filter(|p| p.as_str() == query || NameKey::identity(p.name()).label() == label) {
            found = true;
            let _ = writeln!(o, "  {}: layer {} of {} from the bottom, {} bytes in {} paths: {}", p.name(), k + 1, layers.len(), l.size, l.paths.len(), l.reason);
        }
    }
    if !found {
        return Err(MineError::Unknown(format!("{query} (not in {} at {})", h.images[image], h.revisions[revision].label)));
    }
    Ok(o)
}
