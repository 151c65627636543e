//! Server-rendered horizontal bar charts: the geometry is computed here, `statistics.html` draws
//! it as inline SVG with presentation attributes only (`fill=`, `x=`, `width=` — no `style=`,
//! which the Content-Security-Policy forbids), so the page needs no script and no image request.

/// One series (转入, 转出; 中位数, 90%分位) with its colour and legend position.
pub struct Series {
    pub label: &'static str,
    pub color: &'static str,
    pub legend_x: i64,
}

pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub color: &'static str,
    /// The value printed after the bar, and where.
    pub value: String,
    pub value_x: i64,
    pub value_y: i64,
    /// The tooltip (`<title>`): 郑州市 转入 12.
    pub title: String,
}

/// One category (a region, a step) with its bars.
pub struct Group {
    pub label: String,
    pub label_y: i64,
    pub bars: Vec<Bar>,
}

pub struct Tick {
    pub x: i64,
    pub label: String,
}

pub struct Chart {
    /// Accessible name of the chart.
    pub title: String,
    pub width: i64,
    pub height: i64,
    pub label_width: i64,
    pub plot_top: i64,
    pub plot_bottom: i64,
    pub axis_label_y: i64,
    /// Unit under the axis, e.g. 件, 工作日.
    pub unit: &'static str,
    pub unit_x: i64,
    pub series: Vec<Series>,
    pub groups: Vec<Group>,
    pub ticks: Vec<Tick>,
}

const WIDTH: i64 = 760;
const LABEL_WIDTH: i64 = 140;
const RIGHT_MARGIN: i64 = 60;
const TOP: i64 = 30;
const BAR_HEIGHT: i64 = 12;
const BAR_GAP: i64 = 2;
const GROUP_GAP: i64 = 10;
const AXIS_HEIGHT: i64 = 34;
/// Characters of a category label shown at most.
const LABEL_CHARS: usize = 10;

/// The smallest "nice" number (1, 2, 2.5, 5 × 10^k) not below `v`, and how many equal steps
/// divide it into nice ticks.
fn nice_ceiling(v: f64) -> (f64, u32) {
    if v <= 0.0 || !v.is_finite() {
        return (1.0, 5);
    }
    let mag = 10f64.powf(v.log10().floor());
    for (m, steps) in [(1.0, 5), (2.0, 4), (2.5, 5), (5.0, 5), (10.0, 5)] {
        if m * mag >= v - 1e-9 {
            return (m * mag, steps);
        }
    }
    (10.0 * mag, 5)
}

/// The axis of counts (whole numbers): at least 0..5 so that ticks fall on whole numbers.
fn axis(max: f64, whole: bool) -> (f64, u32) {
    let (top, steps) = nice_ceiling(max);
    if whole && top < 5.0 {
        (5.0, 5)
    } else {
        (top, steps)
    }
}

/// A number as the chart prints it: whole numbers plain, others with one decimal.
pub fn fmt_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn short(label: &str) -> String {
    if label.chars().count() > LABEL_CHARS {
        let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
        s.push('…');
        s
    } else {
        label.to_string()
    }
}

/// A grouped horizontal bar chart: `rows` are (category, one value per series); `whole` when
/// the values are counts.
pub fn bar_chart(
    title: impl Into<String>,
    unit: &'static str,
    whole: bool,
    series: &[(&'static str, &'static str)],
    rows: &[(String, Vec<f64>)],
) -> Chart {
    let n = series.len().max(1) as i64;
    let group_height = n * BAR_HEIGHT + (n - 1) * BAR_GAP + GROUP_GAP;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let (top, steps) = axis(max, whole);
    let scale = |v: f64| ((v / top) * plot_width as f64).round() as i64;
    let plot_bottom = TOP + rows.len() as i64 * group_height;
    let mut groups = vec![];
    for (i, (label, values)) in rows.iter().enumerate() {
        let y0 = TOP + i as i64 * group_height + GROUP_GAP / 2;
        let bars = values
            .iter()
            .zip(series)
            .enumerate()
            .map(|(j, (v, (name, color)))| {
                let y = y0 + j as i64 * (BAR_HEIGHT + BAR_GAP);
                // A non-zero value stays visible.
                let width = if *v > 0.0 { scale(*v).max(1) } else { 0 };
                Bar {
                    x: LABEL_WIDTH,
                    y,
                    width,
                    height: BAR_HEIGHT,
                    color,
                    value: fmt_value(*v),
                    value_x: LABEL_WIDTH + width + 4,
                    value_y: y + BAR_HEIGHT - 2,
                    title: format!("{label} {name} {}", fmt_value(*v)),
                }
            })
            .collect();
        groups.push(Group {
            label: short(label),
            label_y: y0 + (n * BAR_HEIGHT + (n - 1) * BAR_GAP) / 2 + 4,
            bars,
        });
    }
    let ticks = (0..=steps)
        .map(|k| {
            let v = top * k as f64 / steps as f64;
            Tick {
                x: LABEL_WIDTH + scale(v),
                label: fmt_value(v),
            }
        })
        .collect();
    let mut legend_x = LABEL_WIDTH;
    let series = series
        .iter()
        .map(|(label, color)| {
            let s = Series {
                label,
                color,
                legend_x,
            };
            legend_x += 24 + 14 * label.chars().count() as i64;
            s
        })
        .collect();
    Chart {
        title: title.into(),
        width: WIDTH,
        height: plot_bottom + AXIS_HEIGHT,
        label_width: LABEL_WIDTH,
        plot_top: TOP,
        plot_bottom,
        axis_label_y: plot_bottom + 14,
        unit,
        unit_x: LABEL_WIDTH + plot_width + 8,
        series,
        groups,
        ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), (1.0, 5));
        assert_eq!(nice_ceiling(1.0), (1.0, 5));
        assert_eq!(nice_ceiling(3.0), (5.0, 5));
        assert_eq!(nice_ceiling(11.0), (20.0, 4));
        assert_eq!(nice_ceiling(22.0), (25.0, 5));
        assert_eq!(nice_ceiling(99.0), (100.0, 5));
        assert_eq!(axis(1.0, true), (5.0, 5), "counts tick on whole numbers");
        assert_eq!(axis(1.0, false), (1.0, 5));
    }

    #[test]
    fn bars_scale_to_the_axis() {
        let c = bar_chart(
            "转入转出",
            "件",
            false,
            &[("转入", "#1f4e8c"), ("转出", "#e67e00")],
            &[
                ("郑州市".into(), vec![10.0, 0.0]),
                ("一个名字非常长的地区行政单位".into(), vec![5.0, 1.0]),
            ],
        );
        let full = WIDTH - LABEL_WIDTH - RIGHT_MARGIN;
        assert_eq!(c.groups[0].bars[0].width, full);
        assert_eq!(c.groups[0].bars[1].width, 0);
        assert_eq!(c.groups[1].bars[0].width, full / 2);
        assert!(c.groups[1].label.ends_with('…'));
        assert_eq!(c.ticks.last().unwrap().label, "10");
        assert!(c.height > c.plot_bottom);
        assert_eq!(fmt_value(2.5), "2.5");
    }
}
