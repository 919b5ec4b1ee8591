//! Self-contained SVG charts for flexc's reports (no dependencies): an X/Y
//! plot (points and lines, e.g. a Pareto front), grouped vertical bars, and
//! horizontal stacked bars. Every chart has a title, labelled axes with
//! units and ticks, and a legend naming each series.

use std::fmt::Write as _;

/// Series colours, in order.
pub const COLORS: [&str; 10] = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"];

/// Escapes text for SVG and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number for a tick label: short, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Tick values over `[lo, hi]`: linear steps of 1, 2 or 5 × 10^k, about `n` of them.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let (k0, k1) = ((lo / step - 1e-9).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    // k · step, rounded to the step's precision (no 0.6000000000000001).
    let digits = (-step.log10().floor()).max(0.0) as i32 + 1;
    let round = |v: f64| (v * 10f64.powi(digits)).round() / 10f64.powi(digits);
    let out: Vec<f64> = (k0..=k1.min(k0 + 49)).map(|k| round(k as f64 * step)).collect();
    out
}

/// A padded range over values (from 0 when `zero`).
fn range(vals: impl Iterator<Item = f64>, zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = vals.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if zero {
        lo = lo.min(0.0);
    }
    if hi - lo < 1e-12 * hi.abs().max(1.0) {
        hi = lo + lo.abs().max(1.0) * 0.1;
    }
    let pad = (hi - lo) * 0.06;
    (if zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad)
}

/// One series of an X/Y plot.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Points (x, y) and a label drawn beside each (may be empty).
    pub points: Vec<(f64, f64, String)>,
    /// Join the points with a line (in the given order).
    pub line: bool,
}

/// An X/Y plot: `x_label`/`y_label` name the quantity and its unit.
pub fn xy(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (580.0, 380.0, 80.0, 150.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(all().map(|p| p.0), false);
    let (y0, y1) = range(all().map(|p| p.1), false);
    let px = |x: f64| left + pw * (x - x0) / (x1 - x0);
    let py = |y: f64| top + ph - ph * (y - y0) / (y1 - y0);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">");
    let _ = write!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/><text x=\"{left}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    axes(&mut s, (left, top, pw, ph), (x0, x1), (y0, y1), x_label, y_label);
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        if se.line && se.points.len() > 1 {
            let pts: Vec<String> = se.points.iter().map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1))).collect();
            let _ = write!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>", pts.join(" "));
        }
        for (x, y, label) in &se.points {
            let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{c}\"><title>{}: {} {}, {} {}</title></circle>", px(*x), py(*y), esc(&se.name), esc(x_label), fmt_num(*x), esc(y_label), fmt_num(*y));
            if !label.is_empty() {
                let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"{c}\">{}</text>", px(*x) + 6.0, py(*y) - 5.0, esc(label));
            }
        }
    }
    legend(&mut s, left + pw + 16.0, top, &series.iter().map(|x| x.name.clone()).collect::<Vec<_>>());
    s + "</svg>"
}

/// The frame, ticks, grid and axis labels of a plot area.
fn axes(s: &mut String, (left, top, pw, ph): (f64, f64, f64, f64), (x0, x1): (f64, f64), (y0, y1): (f64, f64), x_label: &str, y_label: &str) {
    let _ = write!(s, "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>");
    for t in ticks(x0, x1, 6) {
        let x = left + pw * (t - x0) / (x1 - x0);
        let _ = write!(s, "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", top + ph, top + ph, top + ph + 4.0, top + ph + 16.0, fmt_num(t));
    }
    for t in ticks(y0, y1, 6) {
        let y = top + ph - ph * (t - y0) / (y1 - y0);
        let _ = write!(s, "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{left}\" y2=\"{y:.1}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", left + pw, left - 4.0, left - 6.0, y + 4.0, fmt_num(t));
    }
    let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>", left + pw / 2.0, top + ph + 38.0, esc(x_label));
    let _ = write!(s, "<text transform=\"translate({:.1},{:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">{}</text>", left - 56.0, top + ph / 2.0, esc(y_label));
}

fn legend(s: &mut String, x: f64, y: f64, names: &[String]) {
    let _ = write!(s, "<text x=\"{x}\" y=\"{}\" font-weight=\"bold\">legend</text>", y + 10.0);
    for (i, n) in names.iter().enumerate() {
        let yy = y + 20.0 + 18.0 * i as f64;
        let _ = write!(s, "<rect x=\"{x}\" y=\"{yy}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>", COLORS[i % COLORS.len()], x + 16.0, yy + 10.0, esc(n));
    }
}

/// Grouped vertical bars: one group per category (x axis), one bar per
/// series; `y_label` names the quantity and unit. `below` is an optional
/// second line under each category label.
pub fn grouped_bars(title: &str, x_label: &str, categories: &[String], below: &[String], y_label: &str, series: &[(String, Vec<f64>)]) -> String {
    let n = categories.len().max(1);
    let per = (series.len().max(1) as f64 * 10.0 + 8.0).max(22.0);
    let (left, right, top, bottom) = (80.0, 250.0, 40.0, 76.0);
    let (pw, ph) = (per * n as f64, 260.0);
    let (w, h) = (left + pw + right, top + ph + bottom);
    let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().copied()), true);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"11\">");
    let _ = write!(s, "<rect width=\"{w:.0}\" height=\"{h:.0}\" fill=\"white\"/><text x=\"{left}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    let _ = write!(s, "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>");
    for t in ticks(y0, y1, 6) {
        let y = top + ph - ph * (t - y0) / (y1 - y0);
        let _ = write!(s, "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", left + pw, left - 6.0, y + 4.0, fmt_num(t));
    }
    let bw = (per - 8.0) / series.len().max(1) as f64;
    for (ci, c) in categories.iter().enumerate() {
        let gx = left + per * ci as f64 + 4.0;
        for (si, (name, vals)) in series.iter().enumerate() {
            let v = vals.get(ci).copied().unwrap_or(0.0);
            let bh = ph * (v - y0) / (y1 - y0);
            let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>", gx + bw * si as f64, top + ph - bh, bw.max(1.0), COLORS[si % COLORS.len()], esc(c), esc(name), fmt_num(v));
        }
        let cx = gx + (per - 8.0) / 2.0;
        let _ = write!(s, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>", top + ph + 13.0, esc(c));
        if let Some(b) = below.get(ci) {
            let _ = write!(s, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\" fill=\"#555\">{}</text>", top + ph + 25.0, esc(b));
        }
    }
    let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>", left + pw / 2.0, top + ph + 48.0, esc(x_label));
    let _ = write!(s, "<text transform=\"translate({:.1},{:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">{}</text>", left - 56.0, top + ph / 2.0, esc(y_label));
    legend(&mut s, left + pw + 16.0, top, &series.iter().map(|x| x.0.clone()).collect::<Vec<_>>());
    s + "</svg>"
}

/// Horizontal stacked bars: one bar per row, one segment per part
/// (`values[row][part]`), a value axis in `unit` and a legend of the parts.
pub fn stacked_bars(title: &str, rows: &[String], parts: &[&str], values: &[Vec<f64>], unit: &str) -> String {
    let (left, right, top) = (260.0, 200.0, 40.0);
    let (pw, bh) = (420.0, 20.0);
    let ph = (bh + 8.0) * rows.len().max(1) as f64;
    let (w, h) = (left + pw + right, top + ph + 56.0);
    let max = values.iter().map(|v| v.iter().sum::<f64>()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let (x0, x1) = (0.0, max * 1.04);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" font-size=\"11\">");
    let _ = write!(s, "<rect width=\"{w:.0}\" height=\"{h:.0}\" fill=\"white\"/><text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    for t in ticks(x0, x1, 5) {
        let x = left + pw * t / x1;
        let _ = write!(s, "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", top + ph, top + ph + 14.0, fmt_num(t));
    }
    for (ri, (r, vals)) in rows.iter().zip(values).enumerate() {
        let y = top + 4.0 + (bh + 8.0) * ri as f64;
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", left - 6.0, y + 14.0, esc(r));
        let mut x = left;
        for (pi, v) in vals.iter().enumerate() {
            let bw = pw * v / x1;
            let _ = write!(s, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh}\" fill=\"{}\"><title>{} {}: {} {}</title></rect>", COLORS[pi % COLORS.len()], esc(r), esc(parts.get(pi).copied().unwrap_or("")), fmt_num(*v), esc(unit));
            x += bw;
        }
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\">{}</text>", x + 4.0, y + 14.0, fmt_num(vals.iter().sum()));
    }
    let _ = write!(s, "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>", top + ph, left + pw, top + ph, left + pw / 2.0, top + ph + 34.0, esc(unit));
    legend(&mut s, left + pw + 16.0, top, &parts.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    s + "</svg>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.13, 0.61, 4), vec![0.2, 0.4, 0.6]);
        assert_eq!(ticks(-3.0, 3.0, 3), vec![-2.0, 0.0, 2.0]);
        assert_eq!(fmt_num(0.30000000000000004), "0.3");
        assert_eq!(fmt_num(12345.0), "12345");
        assert_eq!(fmt_num(2.5e7), "2.5e7");
    }

    #[test]
    fn charts_have_titles_axes_and_legends() {
        let s = xy("t <1>", "latency (µs)", "energy (µJ)", &[Series { name: "a&b".into(), points: vec![(1.0, 2.0, "p".into()), (2.0, 1.0, String::new())], line: true }]);
        for want in ["t &lt;1&gt;", "latency (µs)", "energy (µJ)", "a&amp;b", "<polyline", "legend"] {
            assert!(s.contains(want), "{want}: {s}");
        }
        let b = grouped_bars("g", "block", &["0".into()], &["2:4".into()], "ratio (%)", &[("r".into(), vec![3.0])]);
        assert!(b.contains("ratio (%)") && b.contains("2:4") && b.contains(">block<"));
        let st = stacked_bars("s", &["x".into()], &["compute", "select"], &[vec![1.0, 2.0]], "cycles");
        assert!(st.contains(">compute<") && st.contains(">cycles<"));
    }
}

/// A grouped horizontal bar chart, with its `<h3>` title: one group per
/// label, one bar per series, each bar labelled with its value and `unit`.
pub fn horizontal_bars(title: &str, labels: &[String], series: &[(String, Vec<f64>)], unit: &str) -> String {
    let max = series.iter().flat_map(|s| s.1.iter().copied()).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let bar_h = 14.0;
    let group_h = bar_h * series.len() as f64 + 10.0;
    let h = 40.0 + group_h * labels.len() as f64 + 20.0 * series.len() as f64;
    let mut s = format!("<h3>{}</h3><svg width=\"860\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">", esc(title));
    for (li, l) in labels.iter().enumerate() {
        let y0 = 20.0 + li as f64 * group_h;
        let _ = write!(s, "<text x=\"0\" y=\"{}\">{}</text>", y0 + bar_h, esc(l));
        for (si, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(li).copied().unwrap_or(0.0);
            let w = 560.0 * v / max;
            let y = y0 + si as f64 * bar_h;
            let _ = write!(s, "<rect x=\"180\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\">{v:.4e} {unit}</text>", bar_h - 2.0, COLORS[si % COLORS.len()], 184.0 + w, y + bar_h - 4.0);
        }
    }
    let ly = 30.0 + group_h * labels.len() as f64;
    for (si, (name, _)) in series.iter().enumerate() {
        let y = ly + si as f64 * 20.0;
        let _ = write!(s, "<rect x=\"180\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"198\" y=\"{}\">{}</text>", COLORS[si % COLORS.len()], y + 10.0, esc(name));
    }
    s + "</svg>"
}
