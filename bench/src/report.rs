//! What a scenario measured, and how it is shown: one [`Row`] per
//! contender and metric, with every run's value kept; the table prints
//! median, min and max, then the ratios of the median of wgd to each
//! anchor's; `--json` prints the same as one JSON document. The shape of
//! each route table sent ([`Shape`]) comes first, one line a table.

use serde::{Deserialize, Serialize};

use crate::table::Shape;

/// One metric of one contender at one size, over every run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    /// The route table sent, where the scenario sends one (`real`,
    /// `uniform`, a dump's name): rows of different tables are not
    /// compared.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    /// What ran: `wgd session`, `ip -batch`, `netlink packed`, `bird`, ...
    pub contender: String,
    /// What was measured: `add`, `withdraw`, `rss per prefix`, ...
    pub metric: String,
    /// The size the metric is for (prefixes, tunnels).
    pub size: usize,
    pub unit: String,
    /// One value per run, in order.
    pub values: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Row {
    /// The scenario, and the table in brackets where there is one:
    /// `bgp-replay [uniform]`.
    pub fn labelled_scenario(&self) -> String {
        if self.table.is_empty() {
            self.scenario.clone()
        } else {
            format!("{} [{}]", self.scenario, self.table)
        }
    }
}

/// Everything one invocation measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    /// The table the rows added now are of ([`Row::table`]).
    #[serde(skip)]
    pub table: String,
    /// The route tables sent, one per scenario and size.
    #[serde(default)]
    pub tables: Vec<Shape>,
    pub rows: Vec<Row>,
    /// Routes each contender left in the kernel, checked in every run:
    /// what a test compares (timings are never asserted).
    pub counts: Vec<Count>,
    /// Anchors that could not run, and why.
    pub skipped: Vec<String>,
    /// Things worth knowing to read the numbers (poll resolution, ...).
    pub notes: Vec<String>,
}

/// What the kernel held after a contender's add and after its withdraw,
/// and after its session went down where a scenario takes it down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Count {
    pub scenario: String,
    pub contender: String,
    pub size: usize,
    pub run: usize,
    pub after_add: usize,
    pub after_withdraw: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_session_down: Option<usize>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub load_average: String,
}

impl Machine {
    pub fn here() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease"),
            load_average: read("/proc/loadavg"),
        }
    }
}

impl Report {
    pub fn add(
        &mut self,
        scenario: &str,
        contender: &str,
        metric: &str,
        size: usize,
        unit: &str,
        values: Vec<f64>,
    ) {
        if values.is_empty() {
            return;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[middle]
        } else {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        };
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            table: self.table.clone(),
            contender: contender.to_owned(),
            metric: metric.to_owned(),
            size,
            unit: unit.to_owned(),
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            values,
        });
    }

    /// Takes in another report's rows, counts and notes (for `show`).
    pub fn merge(&mut self, other: Report) {
        if self.rows.is_empty() {
            self.machine = other.machine;
        }
        self.tables.extend(other.tables);
        self.rows.extend(other.rows);
        self.counts.extend(other.counts);
        self.skipped.extend(other.skipped);
        self.notes.extend(other.notes);
    }

    pub fn shape(&mut self, shape: Shape) {
        self.tables.push(shape);
    }

    pub fn count(&mut self, count: Count) {
        self.counts.push(count);
    }

    pub fn skip(&mut self, what: impl Into<String>) {
        self.skipped.push(what.into());
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// The table, as printed.
    pub fn table(&self) -> String {
        let header = [
            "scenario",
            "size",
            "contender",
            "metric",
            "median",
            "min",
            "max",
            "unit",
            "runs",
        ];
        let mut lines: Vec<[String; 9]> = vec![header.map(str::to_owned)];
        for row in &self.rows {
            lines.push([
                row.labelled_scenario(),
                row.size.to_string(),
                row.contender.clone(),
                row.metric.clone(),
                number(row.median),
                number(row.min),
                number(row.max),
                row.unit.clone(),
                row.values.len().to_string(),
            ]);
        }
        let mut widths = [0; 9];
        for line in &lines {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.len());
            }
        }
        let mut text = String::new();
        for shape in &self.tables {
            text.push_str(&shape.line());
            text.push('\n');
        }
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(column, (cell, width))| {
                    if (4..=6).contains(&column) || column == 1 || column == 8 {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        for ratio in self.ratios() {
            text.push_str(&ratio);
            text.push('\n');
        }
        for skipped in &self.skipped {
            text.push_str(&format!("not run: {skipped}\n"));
        }
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }

    /// "wgd session / netlink packed, add, 1000000: 1.35x" for every metric
    /// that wgd and an anchor both have at the same size.
    pub fn ratios(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for ours in self
            .rows
            .iter()
            .filter(|row| row.contender.starts_with("wgd"))
        {
            for anchor in self.rows.iter().filter(|row| {
                !row.contender.starts_with("wgd")
                    && row.scenario == ours.scenario
                    && row.table == ours.table
                    && row.metric == ours.metric
                    && row.size == ours.size
                    && row.unit == "s"
            }) {
                if anchor.median > 0.0 {
                    lines.push(format!(
                        "ratio: {} {} {}: {} / {} = {:.2}x",
                        ours.labelled_scenario(),
                        ours.metric,
                        ours.size,
                        ours.contender,
                        anchor.contender,
                        ours.median / anchor.median
                    ));
                }
            }
        }
        lines
    }
}

/// Three significant digits, enough for noisy timings.
fn number(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_median_min_and_max() {
        let mut report = Report::default();
        report.add("fib", "wgd session", "add", 10, "s", vec![3.0, 1.0, 2.0]);
        report.add("fib", "netlink packed", "add", 10, "s", vec![1.0, 1.0]);
        let row = &report.rows[0];
        assert_eq!((row.median, row.min, row.max), (2.0, 1.0, 3.0));
        let table = report.table();
        assert!(
            table.contains("wgd session / netlink packed = 2.00x"),
            "{table}"
        );
    }

    #[test]
    fn rows_of_different_tables_are_not_compared() {
        let mut report = Report::default();
        for table in ["real", "uniform"] {
            report.table = table.to_owned();
            report.add("bgp-replay", "wgd speaker", "add", 10, "s", vec![2.0]);
            report.add("bgp-replay", "bird", "add", 10, "s", vec![1.0]);
        }
        assert_eq!(report.ratios().len(), 2, "{:?}", report.ratios());
        let table = report.table();
        assert!(
            table
                .lines()
                .any(|line| line.starts_with("bgp-replay [uniform] ") && line.contains("bird")),
            "{table}"
        );
        assert!(
            table.contains("ratio: bgp-replay [real] add 10: wgd speaker / bird = 2.00x"),
            "{table}"
        );
    }

    #[test]
    fn numbers_have_three_significant_digits() {
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.012345), "0.0123");
        assert_eq!(number(1234.4), "1234");
    }
}
