//! The report's charts, drawn by `plotters` into SVG strings that the page inlines.
//!
//! Byte axes use one binary unit per chart, the largest that keeps the maximum at 1 or more.
//! Strategies keep one colour each across charts; a layer's colour runs from green (never
//! changed in the range) to red (changed at every update).

use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LayerMap, TradeoffPoint, Update};
use crate::binary_unit as unit;

/// A chart that could not be drawn (plotters' error, as text).
#[derive(Debug, thiserror::Error)]
#[error("drawing the {chart} chart: {error}")]
pub struct ChartError {
    chart: &'static str,
    error: String,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const SIZE: (u32, u32) = (720, 340);
const FONT: &str = "sans-serif";

/// The colour of a strategy by name, the same in every chart.
pub fn strategy_colour(name: &str) -> RGBColor {
    match name {
        "single" => RGBColor(127, 127, 127),
        "popularity" => RGBColor(148, 103, 189),
        "size-first" => RGBColor(31, 119, 180),
        "hints" => RGBColor(214, 39, 40),
        _ => RGBColor(44, 160, 44),
    }
}

fn draw(chart: &'static str, size: (u32, u32), paint: impl FnOnce(&Area<'_>) -> Result<(), DrawingAreaErrorKind<std::io::Error>>) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| ChartError { chart, error: e.to_string() };
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        paint(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

type Categorical<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordusize>, RangedCoordf64>>;

/// The axes of a chart with one column per label.
fn categorical_mesh(chart: &mut Categorical<'_, '_>, labels: &[&str], y_desc: &str) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 13))
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(labels.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(k) => labels.get(*k).map_or(String::new(), |l| l.to_string()),
            _ => String::new(),
        })
        .draw()
}

/// One bar per strategy: `values` are (strategy, bytes).
pub fn strategy_bars(title: &'static str, values: &[(String, u64)]) -> Result<String, ChartError> {
    let (per, unit_name) = unit(values.iter().map(|v| v.1).max().unwrap_or(0));
    let top = values.iter().map(|v| v.1 as f64 / per).fold(0.0, f64::max).max(1e-9) * 1.1;
    draw(title, (360, 260), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d((0..values.len().saturating_sub(1)).into_segmented(), 0.0..top)?;
        categorical_mesh(&mut chart, &values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), unit_name)?;
        for (k, (name, bytes)) in values.iter().enumerate() {
            let bar = Rectangle::new([(SegmentValue::Exact(k), 0.0), (SegmentValue::Exact(k + 1), *bytes as f64 / per)], strategy_colour(name).filled());
            chart.draw_series(std::iter::once(bar))?;
        }
        Ok(())
    })
}

/// Update bytes against the layer budget, for size-first and hints.
pub fn tradeoff(points: &[TradeoffPoint]) -> Result<String, ChartError> {
    let (per, unit_name) = unit(points.iter().map(|p| p.size_first.max(p.hints)).max().unwrap_or(0));
    let top = points.iter().map(|p| p.size_first.max(p.hints) as f64 / per).fold(0.0, f64::max).max(1e-9) * 1.1;
    let right = points.iter().map(|p| p.max_layers).max().unwrap_or(1);
    draw("trade-off", SIZE, |root| {
        let mut chart = ChartBuilder::on(root).margin(10).x_label_area_size(36).y_label_area_size(60).build_cartesian_2d(0..right + 5, 0.0..top)?;
        chart.configure_mesh().light_line_style(TRANSPARENT).label_style((FONT, 13)).axis_desc_style((FONT, 13)).x_desc("max layers").y_desc(format!("update {unit_name}")).draw()?;
        for (name, pick) in [("size-first", (|p: &TradeoffPoint| p.size_first) as fn(&TradeoffPoint) -> u64), ("hints", |p| p.hints)] {
            let colour = strategy_colour(name);
            let series = points.iter().map(|p| (p.max_layers, pick(p) as f64 / per));
            chart.draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))?.label(name).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
            chart.draw_series(series.map(|(x, y)| Circle::new((x, y), 3, colour.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// The colour of a layer that changed at `rate` of the updates.
pub fn change_colour(rate: f64) -> HSLColor {
    HSLColor((1.0 - rate.clamp(0.0, 1.0)) / 3.0, 0.65, 0.5)
}

/// One column per image: its layers stacked bottom-up, height by bytes, colour by change rate.
pub fn layer_map(maps: &[LayerMap]) -> Result<String, ChartError> {
    let totals: Vec<u64> = maps.iter().map(|m| m.layers.iter().map(|l| l.bytes).sum()).collect();
    let (per, unit_name) = unit(totals.iter().copied().max().unwrap_or(0));
    let top = totals.iter().map(|&t| t as f64 / per).fold(0.0, f64::max).max(1e-9) * 1.05;
    let width = (120 + 70 * maps.len() as u32).clamp(SIZE.0, 2400);
    draw("layer map", (width, 420), |root| {
        let mut chart = ChartBuilder::on(root).margin(10).x_label_area_size(40).y_label_area_size(60).build_cartesian_2d((0..maps.len().saturating_sub(1)).into_segmented(), 0.0..top)?;
        categorical_mesh(&mut chart, &maps.iter().map(|m| m.image.as_str()).collect::<Vec<_>>(), unit_name)?;
        for (k, map) in maps.iter().enumerate() {
            let mut base = 0.0;
            let bars = map.layers.iter().map(|l| {
                let (from, to) = (base, base + l.bytes as f64 / per);
                base = to;
                Rectangle::new([(SegmentValue::Exact(k), from), (SegmentValue::Exact(k + 1), to)], change_colour(l.change_rate).filled().stroke_width(1))
            });
            chart.draw_series(bars.collect::<Vec<_>>())?;
        }
        Ok(())
    })
}

/// Bytes pulled over all images at each update, one line per strategy.
pub fn timeline(strategies: &[String], updates: &[Update]) -> Result<String, ChartError> {
    let (per, unit_name) = unit(updates.iter().flat_map(|u| u.pulled.iter().copied()).max().unwrap_or(0));
    let top = updates.iter().flat_map(|u| u.pulled.iter()).map(|&b| b as f64 / per).fold(0.0, f64::max).max(1e-9) * 1.1;
    draw("churn timeline", SIZE, |root| {
        let mut chart = ChartBuilder::on(root).margin(10).x_label_area_size(40).y_label_area_size(60).build_cartesian_2d(0..updates.len().max(1) + 1, 0.0..top)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .y_desc(format!("pulled {unit_name}"))
            .x_labels(updates.len().clamp(1, 12))
            .x_label_formatter(&|k| if *k == 0 { String::new() } else { updates.get(k - 1).map_or(String::new(), |u| u.revision.clone()) })
            .draw()?;
        for (s, name) in strategies.iter().enumerate() {
            let colour = strategy_colour(name);
            let series = updates.iter().enumerate().map(|(k, u)| (k + 1, u.pulled[s] as f64 / per));
            chart.draw_series(LineSeries::new(series, colour.stroke_width(2)))?.label(name.as_str()).legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}
