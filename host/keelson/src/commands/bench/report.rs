//! Result tables: one per backend (or per section) with the DESIGN targets next to the numbers,
//! and the "embedded vs etcd" ratio per metric.

use std::fmt::Write as _;

use super::load::Outcome;

/// What a number measures, which decides how it prints and which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Operations per second (higher is better).
    PerSec,
    /// Milliseconds (lower is better).
    Millis,
    /// Microseconds (lower is better).
    Micros,
    /// Mebibytes of memory (lower is better).
    Mebibytes,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::PerSec => format!("{v:.0} /s"),
            Unit::Millis if v < 10.0 => format!("{v:.2} ms"),
            Unit::Millis if v < 100.0 => format!("{v:.1} ms"),
            Unit::Millis => format!("{v:.0} ms"),
            Unit::Micros if v.abs() < 100.0 => format!("{v:.1} µs"),
            Unit::Micros => format!("{v:.0} µs"),
            Unit::Mebibytes => format!("{v:.1} MiB"),
        }
    }
}

/// A DESIGN.md target: the metric must be at most `max` (in the metric's unit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// Upper bound.
    pub(crate) max: f64,
}

/// One measured number.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    /// Stable key, used to pair the backends' rows.
    pub(crate) key: &'static str,
    /// What it is, for the table.
    pub(crate) label: String,
    /// The number; None when the phase failed.
    pub(crate) value: Option<f64>,
    /// Its unit.
    pub(crate) unit: Unit,
    /// The DESIGN target it is held to, if any.
    pub(crate) target: Option<Target>,
}

impl Metric {
    /// A metric without a target.
    pub(crate) fn new(key: &'static str, label: String, value: Option<f64>, unit: Unit) -> Self {
        Self {
            key,
            label,
            value,
            unit,
            target: None,
        }
    }

    /// The same metric held to a target.
    pub(crate) fn with_target(mut self, target: Option<Target>) -> Self {
        self.target = target;
        self
    }
}

/// Milliseconds at percentile `p` of a load run, as a metric.
pub(crate) fn latency(key: &'static str, label: String, out: &Outcome, p: f64) -> Metric {
    Metric::new(key, label, out.percentile_ms(p), Unit::Millis)
}

/// Everything measured on one backend.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Backend name (`embedded`, `etcd`).
    pub(crate) backend: String,
    /// Heading of the table; empty means `backend: <backend>`.
    pub(crate) title: String,
    /// One line about the setup (protocol, build).
    pub(crate) setup: String,
    /// Rows in print order.
    pub(crate) metrics: Vec<Metric>,
    /// Errors and remarks.
    pub(crate) notes: Vec<String>,
}

/// The width of the label column.
fn label_width(metrics: &[Metric]) -> usize {
    metrics
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(10)
        .max(6)
}

/// Renders one backend's (or section's) table.
pub(crate) fn table(report: &Report) -> String {
    let mut out = String::new();
    if report.title.is_empty() {
        let _ = writeln!(out, "\n== backend: {} ==", report.backend);
    } else {
        let _ = writeln!(out, "\n== {} ==", report.title);
    }
    if !report.setup.is_empty() {
        let _ = writeln!(out, "   {}", report.setup);
    }
    let width = label_width(&report.metrics);
    let _ = writeln!(out, "   {:<width$}  {:>12}  target", "metric", "value");
    for m in &report.metrics {
        let value = m
            .value
            .map_or_else(|| "error".to_string(), |v| m.unit.format(v));
        let target = match (m.target, m.value) {
            (None, _) => String::new(),
            (Some(t), Some(v)) if v <= t.max => format!("≤{}  met", m.unit.format(t.max)),
            (Some(t), _) => format!("≤{}  MISSED", m.unit.format(t.max)),
        };
        let _ = writeln!(out, "   {:<width$}  {value:>12}  {target}", m.label);
    }
    for n in &report.notes {
        let _ = writeln!(out, "   note: {n}");
    }
    out
}

/// Renders the ratio of each metric on `ours` to the same metric on `baseline`.
pub(crate) fn comparison(ours: &Report, baseline: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== {} vs {} (ratio {}/{}; the baseline ran in the same process) ==",
        ours.backend, baseline.backend, ours.backend, baseline.backend
    );
    let width = label_width(&ours.metrics);
    for m in &ours.metrics {
        let Some(b) = baseline.metrics.iter().find(|b| b.key == m.key) else {
            continue;
        };
        let line = match (m.value, b.value) {
            (Some(x), Some(y)) if y > 0.0 && x > 0.0 => {
                let ratio = x / y;
                let better = match m.unit {
                    Unit::PerSec => ratio >= 1.0,
                    Unit::Millis | Unit::Micros | Unit::Mebibytes => ratio <= 1.0,
                };
                let factor = if ratio >= 1.0 { ratio } else { 1.0 / ratio };
                let verdict = if factor < 1.03 {
                    "about equal".to_string()
                } else {
                    let word = if better { "better" } else { "worse" };
                    format!("{} {factor:.2}× {word}", ours.backend)
                };
                format!("{ratio:>6.2}×  ({verdict})")
            }
            _ => "n/a (missing value)".to_string(),
        };
        let _ = writeln!(out, "   {:<width$}  {line}", m.label);
    }
    out
}

/// The first lines of a benchmark's output: build type, CPUs and where data lives.
pub(crate) fn banner(name: &str, shared_by: &str, base: &std::path::Path) {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "keelson bench {name} ({build} build, {cpus} CPUs shared by {shared_by}; data under {})",
        base.display()
    );
    if cfg!(debug_assertions) {
        println!(
            "   note: debug build; numbers are pessimistic (cargo build --release -p keelson)"
        );
    }
}
