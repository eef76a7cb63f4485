//! One chart per run: each line's ratio as a bar (esrc against its baseline, or the
//! other way a line compares), its target as a tick, in SVG.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::BoxError;
use crate::report::Line;

/// Ratios above this are drawn to the edge, with their value written beside.
const RIGHT_EDGE: f64 = 2.0;

/// Draws the lines of `store`'s run that have a ratio into an SVG file at `path`: a bar
/// per line, green where its target is met, red where it is missed, grey for an
/// informative line; a tick at its target; a rule at 1 (as fast as the baseline).
pub fn write(store: &str, lines: &[Line], path: &Path) -> Result<(), BoxError> {
    let rows: Vec<(&Line, f64)> = lines
        .iter()
        .filter_map(|line| line.ratio.map(|ratio| (line, ratio)))
        .filter(|(_, ratio)| ratio.is_finite())
        .collect();
    let count = rows.len();
    let height = u32::try_from(90 + 22 * count)?;
    let area = SVGBackend::new(path, (1000, height)).into_drawing_area();
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            format!("esrc-bench on {store}: each line's ratio (1 = as fast as its baseline)"),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(400)
        .build_cartesian_2d(0.0..RIGHT_EDGE, (0..count).into_segmented())?;
    // The first line at the top: rows count upwards.
    let row = |index: usize| count - 1 - index;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(count)
        .y_label_formatter(&|value| match value {
            SegmentValue::CenterOf(at) if *at < count => rows[row(*at)].0.workload.clone(),
            _ => String::new(),
        })
        .x_desc("ratio: esrc / baseline (W2: last / first; W8 and W9 times, and bytes: lower is better)")
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(index, (line, ratio))| {
        let color = if line.target.starts_with("informative") {
            RGBColor(160, 160, 160)
        } else if line.met {
            RGBColor(60, 150, 80)
        } else {
            RGBColor(200, 70, 60)
        };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row(index))),
                (ratio.min(RIGHT_EDGE), SegmentValue::Exact(row(index) + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().filter_map(|(index, (line, _))| {
        let target = threshold(&line.target)?.min(RIGHT_EDGE);
        Some(PathElement::new(
            vec![
                (target, SegmentValue::Exact(row(index))),
                (target, SegmentValue::Exact(row(index) + 1)),
            ],
            BLACK.stroke_width(2),
        ))
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(index, (_, ratio))| {
        Text::new(
            format!("{ratio:.2}"),
            (
                ratio.min(RIGHT_EDGE - 0.15) + 0.02,
                SegmentValue::CenterOf(row(index)),
            ),
            ("sans-serif", 11).into_font(),
        )
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![
            (1.0, SegmentValue::Exact(0)),
            (1.0, SegmentValue::Exact(count)),
        ],
        BLACK.mix(0.4).stroke_width(1),
    )))?;
    area.present()?;
    Ok(())
}

/// The number a target names (`esrc/raw >= 0.95` → 0.95), if it names one.
fn threshold(target: &str) -> Option<f64> {
    let (_, number) = target.rsplit_once(['=', '<', '>'])?;
    number.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_their_threshold() {
        assert_eq!(threshold("esrc/raw >= 0.95"), Some(0.95));
        assert_eq!(threshold("<= 1.5"), Some(1.5));
        assert_eq!(threshold("p99 < 10 ms"), None);
        assert_eq!(threshold("informative"), None);
    }

    fn line(workload: &str, ratio: f64, target: &str, met: bool) -> Line {
        Line {
            workload: workload.into(),
            unit: "events/s".into(),
            esrc: ratio,
            raw: Some(1.0),
            ratio: Some(ratio),
            target: target.into(),
            met,
        }
    }

    #[test]
    fn a_chart_shows_every_line_with_a_ratio_coloured_by_its_target() {
        let lines = [
            line("W1 create", 0.97, "esrc/raw >= 0.95", true),
            line("W5 batch", 0.40, "esrc/raw >= 0.95", false),
            line("W5 vs raw atomic batch", 1.01, "informative", true),
            line("W3 load, snapshot", 85.0, "esrc/raw >= 1", true),
            Line {
                ratio: None,
                ..line("W7 subscribe latency p50", 0.0, "-", true)
            },
        ];
        let path = std::env::temp_dir().join(format!("esrc-chart-{}.svg", std::process::id()));
        write("memory", &lines, &path).unwrap_or_else(|error| panic!("{error}"));
        let svg = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::remove_file(&path).ok();
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|text| text.split_once('>')?.1.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect();
        for label in [
            "W1 create",
            "W5 batch",
            "W5 vs raw atomic batch",
            "W3 load, snapshot",
        ] {
            assert!(texts.contains(&label), "{label} is labelled: {texts:?}");
        }
        assert!(
            !svg.contains("W7 subscribe"),
            "a line without a ratio has no bar"
        );
        for value in ["0.97", "0.40", "1.01", "85.00"] {
            assert!(texts.contains(&value), "{value} is written: {texts:?}");
        }
        let bars = |colour: &str| svg.matches(&format!("fill=\"{colour}\"")).count();
        assert_eq!(bars("#3C9650"), 2, "met: green");
        assert_eq!(bars("#C8463C"), 1, "missed: red");
        assert_eq!(bars("#A0A0A0"), 1, "informative: grey");
    }
}
