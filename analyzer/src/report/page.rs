//! The report's HTML, written with `maud` (which escapes every value it inserts).
//!
//! The page is one file: styles, charts (SVG) and a small script are inline, and a
//! Content-Security-Policy allows nothing else, so opening it never touches the network. Tables
//! sort by a click on a column head; numeric cells carry their raw value in `data-v` for that.
//! The script also records in `<body>` whether it ran (`data-ready`), how many errors or blocked
//! requests the page met (`data-errors`) and how many resources it fetched (`data-resources`).

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::charts::{self, ChartError};
use super::{LayerMap, Regeneration, Report};
use crate::human_bytes;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The whole page.
pub fn render(r: &Report) -> Result<String, ChartError> {
    let title = format!("hints report: {} ({}..{})", r.hints_name, r.range.0, r.range.1);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
                script { (PreEscaped(SCRIPT)) }
            }
            body {
                header {
                    h1 { (title) }
                    p.meta { "History " code { (r.source) } ", " (r.images.len()) " images, revisions " (r.range.0) ".." (r.range.1) " (" (r.churn.len()) " updates), " (r.budget.max_layers) " layers (" (r.budget.reserve) " reserved)." }
                    p.verdict { (verdict(r)) }
                    nav { a href="#replay" { "Replay" } a href="#tradeoff" { "Trade-off" } a href="#layers" { "Layer map" } a href="#churn" { "Churn" } @if r.previous.is_some() { a href="#regenerate" { "Regenerating" } } }
                }
                (replay_section(r)?)
                (tradeoff_section(r)?)
                (layer_section(r)?)
                (churn_section(r)?)
                @if let Some(p) = &r.previous { (regeneration_section(p)) }
            }
        }
    };
    Ok(page.into_string())
}

fn verdict(r: &Report) -> String {
    let get = |name: &str| r.strategies.iter().find(|m| m.strategy == name);
    let (Some(h), Some(d)) = (get("hints"), get("size-first")) else { return String::new() };
    let change = |h: u64, d: u64| {
        let delta = h as i128 - d as i128;
        format!("{} {:.1}% ({})", if delta <= 0 { "saves" } else { "adds" }, 100.0 * delta.unsigned_abs() as f64 / d.max(1) as f64, human_bytes(delta.unsigned_abs() as u64))
    };
    format!(
        "Against size-first (nixpkgs' default), the hint file {} of image updates, {} of a node's pulls (fleet) and {} of registry storage.",
        change(h.update_bytes, d.update_bytes),
        change(h.fleet_bytes, d.fleet_bytes),
        change(h.storage_bytes, d.storage_bytes)
    )
}

/// A table cell holding bytes: human-readable text, the raw value for sorting.
fn bytes_cell(b: u64) -> Markup {
    html! { td.num data-v=(b) { (human_bytes(b)) } }
}

fn chart(svg: String) -> Markup {
    html! { div.chart { (PreEscaped(svg)) } }
}

fn replay_section(r: &Report) -> Result<Markup, ChartError> {
    let pick = |f: fn(&crate::replay::Metrics) -> u64| r.strategies.iter().map(|m| (m.strategy.clone(), f(m))).collect::<Vec<_>>();
    let floor = r.strategies.iter().find(|m| m.strategy == "floor").map_or(1, |m| m.update_bytes.max(1));
    Ok(html! {
        section #replay {
            h2 { "Replay per strategy" }
            p { "What clients would have pulled at each update (update bytes), what a node running every image would have pulled (fleet), and what the registry would store, had each strategy laid out every image. " b { "floor" } " is one layer per path: only changed paths are pulled." }
            div.charts {
                (chart(charts::strategy_bars("update bytes", &pick(|m| m.update_bytes))?))
                (chart(charts::strategy_bars("fleet bytes", &pick(|m| m.fleet_bytes))?))
                (chart(charts::strategy_bars("storage", &pick(|m| m.storage_bytes))?))
            }
            table.sortable #strategies {
                thead { tr { th { "strategy" } th { "update bytes" } th { "× floor" } th { "fleet bytes" } th { "storage" } th { "layers pulled per update" } th { "layers per image" } } }
                tbody {
                    @for m in &r.strategies {
                        tr data-strategy=(m.strategy) {
                            td { span.swatch style=(swatch(&m.strategy)) {} (m.strategy) }
                            (bytes_cell(m.update_bytes))
                            td.num data-v=(m.update_bytes as f64 / floor as f64) { (format!("{:.3}", m.update_bytes as f64 / floor as f64)) }
                            (bytes_cell(m.fleet_bytes)) (bytes_cell(m.storage_bytes))
                            td.num data-v=(m.layers_pulled as f64 / m.updates.max(1) as f64) { (format!("{:.1}", m.layers_pulled as f64 / m.updates.max(1) as f64)) }
                            td.num data-v=(m.avg_layers) { (m.avg_layers) }
                        }
                    }
                }
            }
            h3 { "Update bytes per image" }
            table.sortable #per-image {
                thead { tr { th { "image" } @for m in &r.strategies { th { (m.strategy) } } th { "hints ÷ size-first" } th { "the hint file lays it out by" } } }
                tbody { @for (i, image) in r.images.iter().enumerate() { (image_row(r, i, image)) } }
            }
        }
    })
}

fn image_row(r: &Report, i: usize, image: &str) -> Markup {
    let of = |name: &str| r.strategies.iter().find(|m| m.strategy == name).map_or(0, |m| m.per_image_update_bytes[i].1);
    let ratio = of("hints") as f64 / of("size-first").max(1) as f64;
    html! {
        tr data-image=(image) {
            td { (image) }
            @for m in &r.strategies {
                td.num data-image=(image) data-strategy=(m.strategy) data-bytes=(m.per_image_update_bytes[i].1) data-v=(m.per_image_update_bytes[i].1) { (human_bytes(m.per_image_update_bytes[i].1)) }
            }
            td.num.(if ratio > 1.0 { "worse" } else { "better" }) data-v=(ratio) { (format!("{ratio:.3}")) }
            td.treatment { (r.treatments[i]) }
        }
    }
}

fn swatch(strategy: &str) -> String {
    let c = charts::strategy_colour(strategy);
    format!("background: rgb({}, {}, {})", c.0, c.1, c.2)
}

fn tradeoff_section(r: &Report) -> Result<Markup, ChartError> {
    Ok(html! {
        section #tradeoff {
            h2 { "Trade-off: update bytes against the layer budget" }
            p { "The same range replayed at each budget. More layers let more unchanged bytes stay in layers clients already hold." }
            (chart(charts::tradeoff(&r.tradeoff)?))
            table.sortable {
                thead { tr { th { "max layers" } th { "size-first" } th { "hints" } th { "hints ÷ size-first" } } }
                tbody {
                    @for p in &r.tradeoff {
                        tr.(if p.max_layers == r.budget.max_layers { "chosen" } else { "" }) {
                            td.num data-v=(p.max_layers) { (p.max_layers) }
                            (bytes_cell(p.size_first)) (bytes_cell(p.hints))
                            td.num data-v=(p.hints as f64 / p.size_first.max(1) as f64) { (format!("{:.3}", p.hints as f64 / p.size_first.max(1) as f64)) }
                        }
                    }
                }
            }
        }
    })
}

fn layer_section(r: &Report) -> Result<Markup, ChartError> {
    Ok(html! {
        section #layers {
            h2 { "Layer map at " (r.range.1) }
            p { "Each column is an image's layers under the hint file, bottom-up, height by bytes. Colour is how often a layer changed over the range: "
                span.scale { span style=(scale_stop(0.0)) { "never" } span style=(scale_stop(0.5)) { "half the updates" } span style=(scale_stop(1.0)) { "every update" } }
                ". Hover a layer's row below for its members and why they are together." }
            (chart(charts::layer_map(&r.layer_maps)?))
            @for map in &r.layer_maps { (layer_table(map)) }
        }
    })
}

fn scale_stop(rate: f64) -> String {
    use plotters::style::Color as _;
    let (r, g, b) = charts::change_colour(rate).to_rgba().rgb();
    format!("background: rgb({r}, {g}, {b})")
}

fn layer_table(map: &LayerMap) -> Markup {
    let total: u64 = map.layers.iter().map(|l| l.bytes).sum();
    html! {
        details.layers data-image=(map.image) {
            summary { (map.image) ": " (map.layers.len()) " layers, " (human_bytes(total)) }
            table.sortable {
                thead { tr { th { "layer" } th { "bytes" } th { "names" } th { "changed" } th { "why" } } }
                tbody {
                    @for (k, l) in map.layers.iter().enumerate() {
                        tr title=(format!("{}\n{}", l.why, l.names.join(", "))) {
                            td.num data-v=(k + 1) { (k + 1) }
                            (bytes_cell(l.bytes))
                            td.num data-v=(l.names.len()) { (l.names.len()) }
                            td.num data-v=(l.change_rate) { span.swatch style=(scale_stop(l.change_rate)) {} (format!("{:.0}%", 100.0 * l.change_rate)) }
                            td { (l.why) }
                        }
                    }
                }
            }
        }
    }
}

fn churn_section(r: &Report) -> Result<Markup, ChartError> {
    let names: Vec<String> = r.strategies.iter().map(|m| m.strategy.clone()).collect();
    Ok(html! {
        section #churn {
            h2 { "Churn timeline" }
            p { "Bytes pulled over all images at each update, and the names that changed (largest first, with the hint-file group each falls in)." }
            (chart(charts::timeline(&names, &r.churn)?))
            table.sortable {
                thead { tr { th { "revision" } @for n in &names { th { (n) } } th { "changed names" } } }
                tbody {
                    @for (k, u) in r.churn.iter().enumerate() {
                        tr {
                            td data-v=(k) { (u.revision) }
                            @for b in &u.pulled { (bytes_cell(*b)) }
                            td.changed {
                                @for (label, bytes, group) in &u.changed {
                                    span.name { (label) " " small { (human_bytes(*bytes)) @if let Some(g) = group { " → " (g) } } }
                                }
                                @if u.changed_total > u.changed.len() { span.more { "and " (u.changed_total - u.changed.len()) " more" } }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn regeneration_section(p: &Regeneration) -> Markup {
    let c = &p.changes;
    let saving = p.costs.old_per_update as i128 - p.costs.new_per_update as i128;
    html! {
        section #regenerate {
            h2 { "Regenerating from " code { (p.previous_name) } }
            p { (c.unchanged) " groups unchanged, " (c.split.len()) " split, " (c.merged.len()) " merged, " (c.added.len()) " added, " (c.removed.len()) " removed; " (c.moved.len()) " names moved." }
            table #regeneration-costs {
                tbody {
                    tr { th { "update bytes per update, previous file" } (bytes_cell(p.costs.old_per_update)) }
                    tr { th { "update bytes per update, this file" } (bytes_cell(p.costs.new_per_update)) }
                    tr { th { (if saving >= 0 { "expected saving per update" } else { "expected extra per update" }) } (bytes_cell(saving.unsigned_abs() as u64)) }
                    tr { th { "one-time cost (new layers clients pull once)" } (bytes_cell(p.costs.one_time)) }
                }
            }
            p.note { "Measured over the history's last " (p.costs.updates) " updates." }
            @if !c.to_size_first.is_empty() {
                p { "Laid out as size-first now (the backtest no longer trusts the groups for them): " (c.to_size_first.join(", ")) "." }
            }
            @if !c.from_size_first.is_empty() {
                p { "No longer laid out as size-first: " (c.from_size_first.join(", ")) "." }
            }
            @for (image, ids) in &c.opt_outs {
                p { (image) " opts out of: " (if ids.is_empty() { "no group now".to_string() } else { ids.join(", ") }) "." }
            }
            @if !c.split.is_empty() || !c.merged.is_empty() {
                table.sortable {
                    thead { tr { th { "change" } th { "group" } th { "with" } } }
                    tbody {
                        @for (old, new) in &c.split { tr { td { "split" } td { (old) } td { (new.join(", ")) } } }
                        @for (new, old) in &c.merged { tr { td { "merged" } td { (new) } td { (old.join(", ")) } } }
                    }
                }
            }
            @if !c.moved.is_empty() {
                table.sortable {
                    thead { tr { th { "name" } th { "from" } th { "to" } } }
                    tbody { @for (name, (from, to)) in &c.moved { tr { td { (name) } td { (from) } td { (to) } } } }
                }
            }
        }
    }
}
