//! Small bar charts as inline SVG, rendered on the server: no script, no library, readable by
//! screen readers through their title and the table each chart comes with.

use std::fmt::Write as _;

use crate::html::escape;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// One stacked series: its name, its CSS class (the colour), a value per column.
#[derive(Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<f64>,
}

/// A bar chart: one column per label, the series stacked in each. `format` writes an axis value.
pub fn bars(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    format: &dyn Fn(f64) -> String,
) -> String {
    let columns = labels.len().max(1);
    let totals: Vec<f64> = (0..columns)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let plot_h = HEIGHT - BOTTOM - TOP;
    let step = (WIDTH - LEFT) / columns as f64;
    let bar_w = (step * 0.7).max(2.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    for tick in [0.0, 0.5, 1.0] {
        let y = TOP + plot_h * (1.0 - tick);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + 4.0,
            escape(&format(max * tick))
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + step * i as f64 + (step - bar_w) / 2.0;
        let mut y = TOP + plot_h;
        for s in series {
            let value = s.values.get(i).copied().unwrap_or(0.0);
            if value <= 0.0 {
                continue;
            }
            let h = plot_h * value / max;
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\"><title>{} {}: {}</title></rect>",
                escape(s.class),
                escape(label),
                escape(s.name),
                escape(&format(value))
            );
        }
        if columns <= 16 || i % 2 == 0 {
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar_w / 2.0,
                HEIGHT - 8.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str("<p class=\"legend\">");
        for s in series {
            let _ = write!(
                svg,
                "<span><svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect class=\"{}\" width=\"12\" height=\"12\"/></svg> {}</span> ",
                escape(s.class),
                escape(s.name)
            );
        }
        svg.push_str("</p>");
    }
    svg
}
