//! `--plot FILE`: the report as a PNG. One horizontal bar per row (a
//! contender's median for one metric at one size), grouped by scenario,
//! metric and size, each group scaled to its own largest value, with a
//! whisker from min to max and the median written at the bar's end.
//!
//! Drawn with `plotters`' bitmap backend; text needs a TrueType font from
//! the system (DejaVu Sans, Debian's `fonts-dejavu-core`), read at run
//! time: no font, no chart (and an error that says so).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::{Report, Row};

const WIDTH: u32 = 1400;
const ROW_HEIGHT: u32 = 22;
const GROUP_GAP: u32 = 14;
const LABEL_WIDTH: i32 = 560;
const BAR_SPACE: i32 = 640;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Colors per contender: wgd's in blue, anchors in other hues.
fn color_of(contender: &str) -> RGBColor {
    match contender {
        name if name.starts_with("wgd") => RGBColor(31, 119, 180),
        "netlink packed" => RGBColor(44, 160, 44),
        "ip -batch" => RGBColor(255, 127, 14),
        "bird" => RGBColor(148, 103, 189),
        "frr" => RGBColor(214, 39, 40),
        _ => RGBColor(127, 127, 127),
    }
}

fn load_font() -> anyhow::Result<()> {
    let path = FONTS
        .iter()
        .find(|path| Path::new(path).is_file())
        .context("no TrueType font found (install fonts-dejavu-core)")?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{path} is not a font plotters can read"))?;
    Ok(())
}

/// Rows worth a bar (not the context ones, such as the RSS before).
fn plotted(row: &Row) -> bool {
    matches!(row.unit.as_str(), "s" | "bytes" | "routes/s")
}

pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    load_font()?;
    let rows: Vec<&Row> = report.rows.iter().filter(|row| plotted(row)).collect();
    anyhow::ensure!(!rows.is_empty(), "nothing to plot");
    let mut groups: Vec<Vec<&Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|group| {
            group[0].scenario == row.scenario
                && group[0].table == row.table
                && group[0].metric == row.metric
                && group[0].size == row.size
        }) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    let bars: u32 = groups.iter().map(|group| group.len() as u32).sum();
    let height = 90 + bars * ROW_HEIGHT + groups.len() as u32 * (GROUP_GAP + ROW_HEIGHT);
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = ("sans-serif", 22).into_font();
    let text = ("sans-serif", 15).into_font();
    let small = ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80));
    root.draw(&Text::new(
        format!(
            "wgd-bench: medians of {} run(s), bars scaled per group, whiskers min..max ({} CPUs, kernel {})",
            report.rows.first().map_or(0, |row| row.values.len()),
            report.machine.cpus,
            report.machine.kernel
        ),
        (20, 20),
        title,
    ))?;
    let mut y = 60;
    for group in &groups {
        let first = group[0];
        root.draw(&Text::new(
            format!(
                "{} · {} · {} ({})",
                first.labelled_scenario(),
                first.metric,
                first.size,
                first.unit
            ),
            (20, y),
            ("sans-serif", 16).into_font().style(FontStyle::Bold),
        ))?;
        y += ROW_HEIGHT as i32;
        let largest = group
            .iter()
            .map(|row| row.max.max(row.median))
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        for row in group {
            let scale = |value: f64| LABEL_WIDTH + (value / largest * f64::from(BAR_SPACE)) as i32;
            root.draw(&Text::new(row.contender.clone(), (40, y + 3), text.clone()))?;
            let color = color_of(&row.contender);
            root.draw(&Rectangle::new(
                [
                    (LABEL_WIDTH, y + 2),
                    (
                        scale(row.median).max(LABEL_WIDTH + 1),
                        y + ROW_HEIGHT as i32 - 4,
                    ),
                ],
                color.filled(),
            ))?;
            let middle = y + ROW_HEIGHT as i32 / 2 - 1;
            root.draw(&PathElement::new(
                [(scale(row.min), middle), (scale(row.max), middle)],
                BLACK.stroke_width(2),
            ))?;
            root.draw(&Text::new(
                format!("{} {}", short(row.median), row.unit),
                (scale(row.max.max(row.median)) + 8, y + 4),
                small.clone(),
            ))?;
            y += ROW_HEIGHT as i32;
        }
        y += GROUP_GAP as i32;
    }
    root.present()?;
    Ok(())
}

fn short(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}
