//! The results table and its JSON form.

use serde::Serialize;

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// The workload, e.g. `W1 create`.
    pub workload: String,
    /// What the numbers measure.
    pub unit: String,
    /// esrc's figure.
    pub esrc: f64,
    /// The raw client's figure, when there is a baseline.
    pub raw: Option<f64>,
    /// The ratio the target is about (esrc/raw, or last/first for W2).
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met.
    pub met: bool,
}

/// Prints the report as an aligned table.
pub fn print(store: &str, lines: &[Line]) {
    println!("\nesrc-bench on {store}\n");
    let header = ["workload", "unit", "esrc", "raw", "ratio", "target", "met"];
    let rows: Vec<[String; 7]> = lines
        .iter()
        .map(|line| {
            [
                line.workload.clone(),
                line.unit.clone(),
                format!("{:.1}", line.esrc),
                line.raw.map_or("-".into(), |raw| format!("{raw:.1}")),
                line.ratio.map_or("-".into(), |ratio| format!("{ratio:.2}")),
                line.target.clone(),
                if line.met { "yes" } else { "NO" }.into(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let show = |cells: Vec<&str>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    show(header.to_vec());
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    show(rules.iter().map(String::as_str).collect());
    for row in &rows {
        show(row.iter().map(String::as_str).collect());
    }
}
