//! History charts drawn on the server with plotters: SVG for the status page, PNG for
//! chat. Text in bitmaps is drawn with DejaVu Sans compiled into the binary (no system
//! fonts needed); SVG text names the font family and the browser picks a local one.

use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::actions::history::History;

/// The charts of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Size,
    Duration,
    Rpo,
    Rto,
}

impl Chart {
    pub const ALL: [Chart; 4] = [Chart::Size, Chart::Duration, Chart::Rpo, Chart::Rto];

    /// A stable name (HTML ids, file names).
    pub fn id(self) -> &'static str {
        match self {
            Chart::Size => "size",
            Chart::Duration => "duration",
            Chart::Rpo => "rpo",
            Chart::Rto => "rto",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Chart::Size => "Backup size",
            Chart::Duration => "Backup duration",
            Chart::Rpo => "RPO over time (age of the newest backup)",
            Chart::Rto => "Drill RTO",
        }
    }
}

/// Size of one chart on the page, in pixels.
pub const SIZE: (u32, u32) = (560, 260);
/// The X axis' description on every chart.
pub const X_DESC: &str = "date (UTC)";
const FAMILY: &str = "sans-serif";

/// One chart as an SVG document.
pub fn svg(chart: Chart, h: &History) -> Result<String, String> {
    fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, chart, h)?;
        root.present()
            .map_err(|e| format!("drawing a chart: {e}"))?;
    }
    Ok(out)
}

/// All four charts of a target in one PNG (two by two), for chat.
pub fn png(h: &History) -> Result<Vec<u8>, String> {
    fonts();
    let (w, hgt) = (SIZE.0 * 2, SIZE.1 * 2 + 40);
    let mut pixels = vec![0u8; (w * hgt * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, hgt)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| format!("drawing a chart: {e}"))?;
        let root = root
            .titled(
                &format!("{}: last {} days", h.target, (h.to - h.from).num_days()),
                (FAMILY, 22),
            )
            .map_err(|e| format!("drawing a chart: {e}"))?;
        for (area, chart) in root.split_evenly((2, 2)).iter().zip(Chart::ALL) {
            draw(area, chart, h)?;
        }
        root.present()
            .map_err(|e| format!("drawing a chart: {e}"))?;
    }
    let mut encoded = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut encoded, w, hgt);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| format!("encoding a chart: {e}"))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| format!("encoding a chart: {e}"))?;
    }
    Ok(encoded)
}

/// Register the embedded font with plotters, once.
fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            if plotters::style::register_font(FAMILY, style, bytes).is_err() {
                tracing::error!("the embedded chart font could not be loaded");
            }
        }
    });
}

/// A unit to show values in: the divisor and its name.
struct Unit(f64, &'static str);

fn bytes_unit(max: f64) -> Unit {
    const UNITS: [(f64, &str); 4] = [
        (1024.0 * 1024.0 * 1024.0, "GiB"),
        (1024.0 * 1024.0, "MiB"),
        (1024.0, "KiB"),
        (1.0, "bytes"),
    ];
    let (d, n) = UNITS
        .into_iter()
        .find(|(d, _)| max >= *d)
        .unwrap_or((1.0, "bytes"));
    Unit(d, n)
}

fn time_unit(max_seconds: f64) -> Unit {
    if max_seconds >= 5.0 * 86_400.0 {
        Unit(86_400.0, "days")
    } else if max_seconds >= 2.0 * 3600.0 {
        Unit(3600.0, "hours")
    } else if max_seconds >= 120.0 {
        Unit(60.0, "minutes")
    } else {
        Unit(1.0, "seconds")
    }
}

/// What one chart plots: points, whether to join them, an objective line, and words.
struct Plot {
    points: Vec<(DateTime<Utc>, f64)>,
    /// Points drawn hollow and red (failed drills).
    bad: Vec<(DateTime<Utc>, f64)>,
    joined: bool,
    objective: Option<f64>,
    y_desc: String,
    series: &'static str,
    empty: &'static str,
}

fn plot(chart: Chart, h: &History) -> Plot {
    let max = |v: &[(DateTime<Utc>, f64)], extra: Option<f64>| {
        v.iter().map(|p| p.1).chain(extra).fold(0.0, f64::max)
    };
    let scaled = |v: Vec<(DateTime<Utc>, f64)>, u: &Unit| -> Vec<(DateTime<Utc>, f64)> {
        v.into_iter().map(|(t, x)| (t, x / u.0)).collect()
    };
    match chart {
        Chart::Size => {
            let raw: Vec<_> = h
                .backups
                .iter()
                .filter_map(|b| Some((b.at, b.size_bytes? as f64)))
                .collect();
            let u = bytes_unit(max(&raw, None));
            Plot {
                points: scaled(raw, &u),
                bad: vec![],
                joined: true,
                objective: None,
                y_desc: format!("size ({})", u.1),
                series: "stored size",
                empty: "no backups with a size in this period",
            }
        }
        Chart::Duration => {
            let raw: Vec<_> = h
                .backups
                .iter()
                .filter_map(|b| Some((b.at, b.duration_seconds?)))
                .collect();
            let u = time_unit(max(&raw, None));
            Plot {
                points: scaled(raw, &u),
                bad: vec![],
                joined: true,
                objective: None,
                y_desc: format!("duration ({})", u.1),
                series: "backup duration",
                empty: "no backups made by lifeboat in this period",
            }
        }
        Chart::Rpo => {
            let raw = h.rpo_series();
            let u = time_unit(max(&raw, h.rpo_objective_seconds));
            Plot {
                points: scaled(raw, &u),
                bad: vec![],
                joined: true,
                objective: h.rpo_objective_seconds.map(|o| o / u.0),
                y_desc: format!("RPO ({})", u.1),
                series: "age of the newest backup",
                empty: "no backups in this period",
            }
        }
        Chart::Rto => {
            let all: Vec<_> = h
                .drills
                .iter()
                .filter_map(|d| Some((d.at, d.rto_seconds?, d.ok)))
                .collect();
            let values: Vec<_> = all.iter().map(|(t, v, _)| (*t, *v)).collect();
            let u = time_unit(max(&values, h.rto_objective_seconds));
            let pick = |ok: bool| {
                all.iter()
                    .filter(|d| d.2 == ok)
                    .map(|(t, v, _)| (*t, v / u.0))
                    .collect()
            };
            Plot {
                points: pick(true),
                bad: pick(false),
                joined: false,
                objective: h.rto_objective_seconds.map(|o| o / u.0),
                y_desc: format!("RTO ({})", u.1),
                series: "drill passed",
                empty: "no drills in this period",
            }
        }
    }
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: Chart,
    h: &History,
) -> Result<(), String> {
    let fail = |e: plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>| {
        format!("drawing the {} chart: {e}", chart.id())
    };
    area.fill(&WHITE).map_err(fail)?;
    let p = plot(chart, h);
    let top = p
        .points
        .iter()
        .chain(&p.bad)
        .map(|x| x.1)
        .chain(p.objective)
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let span = (h.to - h.from).num_days();
    let mut c = ChartBuilder::on(area)
        .caption(chart.title(), (FAMILY, 16))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(h.from..h.to, 0f64..top)
        .map_err(fail)?;
    c.configure_mesh()
        .x_desc(X_DESC)
        .y_desc(p.y_desc.as_str())
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|t: &DateTime<Utc>| {
            if span > 400 {
                t.format("%b %Y").to_string()
            } else {
                t.format("%b %d").to_string()
            }
        })
        .y_label_formatter(&|v: &f64| format_value(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(fail)?;
    let blue = RGBColor(31, 119, 180);
    if p.joined && !p.points.is_empty() {
        // Dense series (an RPO sawtooth of hourly backups) read better thin.
        let width = if p.points.len() > 200 { 1 } else { 2 };
        c.draw_series(LineSeries::new(
            p.points.iter().copied(),
            blue.stroke_width(width),
        ))
        .map_err(fail)?
        .label(p.series)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], blue));
    } else if !p.points.is_empty() {
        c.draw_series(p.points.iter().map(|pt| Circle::new(*pt, 4, blue.filled())))
            .map_err(fail)?
            .label(p.series)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, blue.filled()));
    }
    if !p.bad.is_empty() {
        c.draw_series(
            p.bad
                .iter()
                .map(|pt| Circle::new(*pt, 5, RED.stroke_width(2))),
        )
        .map_err(fail)?
        .label("drill failed")
        .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.stroke_width(2)));
    }
    if let Some(o) = p.objective {
        let red = RGBColor(214, 39, 40);
        c.draw_series(DashedLineSeries::new(
            vec![(h.from, o), (h.to, o)],
            6,
            4,
            red.stroke_width(2),
        ))
        .map_err(fail)?
        .label("objective")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], red.stroke_width(2)));
    }
    if p.points.is_empty() && p.bad.is_empty() {
        let (w, hgt) = area.dim_in_pixel();
        area.draw(&Text::new(
            p.empty,
            (w as i32 / 2 - 110, hgt as i32 / 2),
            (FAMILY, 13).into_font().color(&RGBColor(120, 120, 120)),
        ))
        .map_err(fail)?;
    } else {
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font((FAMILY, 12))
            .draw()
            .map_err(fail)?;
    }
    Ok(())
}

/// Axis numbers without trailing noise: 12, 2.5, 0.25.
fn format_value(v: f64) -> String {
    if v >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::history::{BackupPoint, DrillPoint};

    fn history() -> History {
        let day = |d: i64| DateTime::from_timestamp(1_767_225_600 + d * 86_400, 0).unwrap();
        History {
            target: "app-db".into(),
            from: day(0),
            to: day(90),
            backups: (1..90)
                .map(|d| BackupPoint {
                    at: day(d),
                    size_bytes: Some(50 * 1024 * 1024 + d as u64 * 1024 * 1024),
                    duration_seconds: Some(30.0 + d as f64),
                })
                .collect(),
            drills: vec![
                DrillPoint {
                    at: day(30),
                    ok: true,
                    rto_seconds: Some(600.0),
                    rpo_seconds: Some(3600.0),
                },
                DrillPoint {
                    at: day(60),
                    ok: false,
                    rto_seconds: Some(2400.0),
                    rpo_seconds: Some(3600.0),
                },
            ],
            rpo_objective_seconds: Some(86_400.0 * 1.5),
            rto_objective_seconds: Some(1800.0),
        }
    }

    #[test]
    fn svg_charts_carry_their_axis_descriptions_and_objective() {
        let h = history();
        let size = svg(Chart::Size, &h).unwrap();
        assert!(size.starts_with("<svg"), "{}", &size[..80]);
        assert!(
            size.contains(X_DESC) && size.contains("size (MiB)"),
            "{size}"
        );
        let rto = svg(Chart::Rto, &h).unwrap();
        assert!(rto.contains("RTO (minutes)") && rto.contains("objective"));
        assert!(
            rto.contains("drill failed"),
            "the failed drill is told apart"
        );
        let rpo = svg(Chart::Rpo, &h).unwrap();
        assert!(rpo.contains("RPO (hours)") && rpo.contains("objective"));
    }

    #[test]
    fn an_empty_history_still_draws_axes_and_says_so() {
        let h = History {
            backups: vec![],
            drills: vec![],
            ..history()
        };
        let s = svg(Chart::Duration, &h).unwrap();
        assert!(s.contains(X_DESC) && s.contains("no backups made by lifeboat"));
    }

    #[test]
    fn the_chat_picture_is_a_png_with_text_drawn_in() {
        let h = history();
        let bytes = png(&h).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (SIZE.0 * 2, SIZE.1 * 2 + 40));
        // The title band holds drawn glyphs: dark pixels where text is, on white.
        let dark = buf[..(info.width * 40 * 3) as usize]
            .chunks(3)
            .filter(|p| p.iter().all(|c| *c < 100))
            .count();
        assert!(dark > 50, "no text drawn in the title ({dark} dark pixels)");
    }

    #[test]
    fn units_follow_the_largest_value() {
        assert_eq!(bytes_unit(3.0 * 1024.0 * 1024.0).1, "MiB");
        assert_eq!(bytes_unit(10.0).1, "bytes");
        assert_eq!(time_unit(90.0).1, "seconds");
        assert_eq!(time_unit(3.0 * 86_400.0).1, "hours");
        assert_eq!(time_unit(6.0 * 86_400.0).1, "days");
        assert_eq!(format_value(2.5), "2.5");
        assert_eq!(format_value(12.0), "12");
    }
}
