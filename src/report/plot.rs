//! The tutorial's training plot: matplotlib's ggplot style, `plt.figure()` at its default
//! 6.4×4.8 in, saved here at 125 dpi (800×600 px) so the labels stay legible.
//!
//! The figure is laid out by hand in matplotlib's own units (points, axes fractions) rather
//! than with plotters' chart builder, whose label placement cannot be made to match.

use crate::fsutil::atomic_write_bytes;
use crate::train::history::History;
use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::path::Path;
use std::sync::OnceLock;

/// Output size in pixels.
const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;
/// Drawn at this multiple and averaged down, since plotters' lines are not antialiased.
const SUPERSAMPLE: u32 = 4;
/// Pixels per point on the supersampled canvas: 800 px over matplotlib's 6.4 in figure.
const PX_PER_PT: f64 = (WIDTH * SUPERSAMPLE) as f64 / 6.4 / 72.0;

/// matplotlib's subplot parameters (figure.subplot.left/right/bottom/top), as fractions.
const AXES_LEFT: f64 = 0.125;
const AXES_RIGHT: f64 = 0.9;
const AXES_BOTTOM: f64 = 0.11;
const AXES_TOP: f64 = 0.88;

const FONT_FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// DejaVu Sans (ascent - descent) / units-per-em: ab_glyph scales to that height, matplotlib
/// to the em, so a matplotlib size becomes an ab_glyph size by this factor.
const DEJAVU_HEIGHT_PER_EM: f64 = 2384.0 / 2048.0;
/// matplotlib's top/bottom text alignment uses the extent of "lp": the ascent of DejaVu Sans'
/// 'l' and the descent of its 'p', per em.
const ASCENT_PER_EM: f64 = 1556.0 / 2048.0;
const DESCENT_PER_EM: f64 = 426.0 / 2048.0;
/// Half the height of a digit, per em, for matplotlib's `center_baseline` tick labels.
const HALF_DIGIT_PER_EM: f64 = 0.3645;

/// ggplot style sizes in points (font.size 10, labels "large", title "x-large").
const TICK_FONT_PT: f64 = 10.0;
const LABEL_FONT_PT: f64 = 12.0;
const TITLE_FONT_PT: f64 = 14.4;
const LEGEND_FONT_PT: f64 = 10.0;
const LINE_WIDTH_PT: f64 = 1.5;
const GRID_WIDTH_PT: f64 = 0.8;
const TICK_WIDTH_PT: f64 = 0.8;
const TICK_LENGTH_PT: f64 = 3.5;
const TICK_PAD_PT: f64 = 3.5;
const LABEL_PAD_PT: f64 = 4.0;
const TITLE_PAD_PT: f64 = 6.0;
/// ggplot's patch.linewidth, which the legend frame uses.
const LEGEND_EDGE_WIDTH_PT: f64 = 0.5;
/// matplotlib's MaxNLocator("auto") gets 9 bins on both axes at this figure size.
const MAX_TICK_BINS: f64 = 9.0;

const PANEL: RGBColor = RGBColor(0xE5, 0xE5, 0xE5);
const TEXT_GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);
const LEGEND_EDGE: RGBColor = RGBColor(0xCC, 0xCC, 0xCC);
/// The ggplot colour cycle's first four, in the tutorial's plotting order.
const SERIES: [(&str, RGBColor); 4] = [
    ("train_loss", RGBColor(0xE2, 0x4A, 0x33)),
    ("val_loss", RGBColor(0x34, 0x8A, 0xBD)),
    ("train_acc", RGBColor(0x98, 0x8E, 0xD5)),
    ("val_acc", RGBColor(0x77, 0x77, 0x77)),
];

/// Renders the plot (see [`render_history_png`]) and writes it atomically to `path`.
pub fn plot_history(history: &History, path: &Path, title: &str) -> Result<()> {
    write_png(path, render_history_png(history, title), "training plot")
}

/// Renders runs side by side (see [`render_panels_png`]) and writes them atomically to `path`.
pub fn plot_comparison(panels: &[(&History, &str)], path: &Path) -> Result<()> {
    write_png(path, render_panels_png(panels), "comparison plot")
}

/// Renders the heat map (see [`render_confusion_png`]) and writes it atomically to `path`.
pub fn plot_confusion(
    cm: &[Vec<u64>],
    class_names: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    write_png(
        path,
        render_confusion_png(cm, class_names, title),
        "confusion matrix",
    )
}

fn write_png(path: &Path, png: Result<Vec<u8>>, what: &str) -> Result<()> {
    atomic_write_bytes(path, &png?)
        .with_context(|| format!("cannot save the {what} to {}", path.display()))
}

/// The tutorial's figure as PNG bytes: loss and accuracy, training and validation, against the
/// epoch index 0..N-1 (the tutorial's `np.arange(0, N)`). Non-finite values (a diverged run)
/// leave gaps. Fails on an empty history, which has nothing to plot.
pub fn render_history_png(history: &History, title: &str) -> Result<Vec<u8>> {
    render_panels_png(&[(history, title)])
}

/// Several runs' figures in a row, each 800×600 with its own title, on the same x and y axes
/// so their curves compare at a glance (the tutorial's Figure 2).
pub fn render_panels_png(panels: &[(&History, &str)]) -> Result<Vec<u8>> {
    if panels.is_empty() || panels.iter().any(|(h, _)| h.epochs.is_empty()) {
        bail!("cannot plot the training history: it has no epochs");
    }
    let epochs = panels
        .iter()
        .map(|(h, _)| h.epochs.len())
        .max()
        .unwrap_or(1);
    let y_max = panels
        .iter()
        .flat_map(|(h, _)| &h.epochs)
        .flat_map(|e| [e.loss, e.val_loss, e.acc, e.val_acc])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    render_png(
        WIDTH * panels.len() as u32,
        HEIGHT,
        "training plot",
        |root| {
            for (area, (history, title)) in root.split_evenly((1, panels.len())).iter().zip(panels)
            {
                draw_figure(area, history, title, epochs, y_max)?;
            }
            Ok(())
        },
    )
}

/// Draws on a supersampled canvas of `width`×`height` output pixels and encodes the result
/// as PNG; `what` names the figure in errors.
fn render_png(
    width: u32,
    height: u32,
    what: &str,
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<Vec<u8>> {
    register_font()?;
    let (w, h) = (width * SUPERSAMPLE, height * SUPERSAMPLE);
    let mut canvas = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut canvas, (w, h)).into_drawing_area();
        draw(&root).map_err(|e| anyhow!("cannot draw the {what}: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("cannot draw the {what}: {e}"))?;
    }
    let small = downsample(&canvas, w as usize, h as usize, SUPERSAMPLE as usize);
    let image = image::RgbImage::from_raw(width, height, small)
        .context("plot buffer has the wrong size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageOutputFormat::Png)
        .with_context(|| format!("cannot encode the {what} as PNG"))?;
    Ok(png.into_inner())
}

/// Output size of the confusion-matrix heat map; twice that for more than
/// [`CONFUSION_CLASSES_AT_SIZE`] classes (CIFAR-100), whose cells would be too small.
const CONFUSION_SIZE: u32 = 800;
const CONFUSION_CLASSES_AT_SIZE: usize = 50;
/// matplotlib's "Blues" colour map, at nine evenly spaced stops.
const BLUES: [RGBColor; 9] = [
    RGBColor(0xF7, 0xFB, 0xFF),
    RGBColor(0xDE, 0xEB, 0xF7),
    RGBColor(0xC6, 0xDB, 0xEF),
    RGBColor(0x9E, 0xCA, 0xE1),
    RGBColor(0x6B, 0xAE, 0xD6),
    RGBColor(0x42, 0x92, 0xC6),
    RGBColor(0x21, 0x71, 0xB5),
    RGBColor(0x08, 0x51, 0x9C),
    RGBColor(0x08, 0x30, 0x6B),
];

fn blues(t: f64) -> RGBColor {
    let x = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Where the confusion matrix lies in its picture, in fractions of its side: left and top
/// edges, and the width ten classes fill (more share it). The colour bar is right of it.
const MATRIX_LEFT: f64 = 0.2;
const MATRIX_TOP: f64 = 0.08;
const MATRIX_SPAN: f64 = 0.66;

/// scikit-learn's `ConfusionMatrixDisplay` as PNG bytes (800×800, or 1600×1600 for many
/// classes) under `title`: one cell per (true, predicted) pair shaded by its count on the
/// "Blues" map, the count written in it (white on dark cells) where it fits, class names
/// along both axes, and the colour bar of counts at the right. The title's type shrinks
/// where it would not fit the picture.
pub fn render_confusion_png(
    cm: &[Vec<u64>],
    class_names: &[String],
    title: &str,
) -> Result<Vec<u8>> {
    let n = class_names.len();
    if n == 0 || cm.len() != n || cm.iter().any(|row| row.len() != n) {
        bail!("cannot plot a confusion matrix that is not square over the class names");
    }
    let most = cm.iter().flatten().copied().max().unwrap_or(0).max(1);
    let size = CONFUSION_SIZE * if n > CONFUSION_CLASSES_AT_SIZE { 2 } else { 1 };
    render_png(size, size, "confusion matrix", |root| {
        let side = (size * SUPERSAMPLE) as f64;
        let cell = MATRIX_SPAN * side / n.max(10) as f64;
        let (left, top) = (MATRIX_LEFT * side, MATRIX_TOP * side);
        let (right, bottom) = (left + cell * n as f64, top + cell * n as f64);
        root.fill(&WHITE)?;
        // The type shrinks with the cells: an em at most 45 % of a cell.
        let tick_pt = TICK_FONT_PT.min(0.45 * cell / PX_PER_PT);
        let tick_em = pt(tick_pt);
        let counts_fit = text_width(root, &most.to_string(), tick_pt) <= 0.9 * cell;
        for (t, row) in cm.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                let (x0, y0) = (left + cell * p as f64, top + cell * t as f64);
                let shade = count as f64 / most as f64;
                root.draw(&Rectangle::new(
                    [
                        (x0.round() as i32, y0.round() as i32),
                        ((x0 + cell).round() as i32, (y0 + cell).round() as i32),
                    ],
                    blues(shade).filled(),
                ))?;
                if !counts_fit {
                    continue;
                }
                let ink = if shade > 0.5 { WHITE } else { BLACK };
                let baseline = y0 + cell / 2.0 + HALF_DIGIT_PER_EM * tick_em;
                let text = count.to_string();
                text_at(
                    root,
                    &text,
                    tick_pt,
                    &ink,
                    HPos::Center,
                    x0 + cell / 2.0,
                    baseline,
                )?;
            }
        }
        let gap = pt(TICK_LENGTH_PT + TICK_PAD_PT);
        let mut widest: f64 = 0.0;
        for (i, name) in class_names.iter().enumerate() {
            let centre = top + cell * (i as f64 + 0.5);
            widest = widest.max(text_width(root, name, tick_pt));
            let baseline = centre + HALF_DIGIT_PER_EM * tick_em;
            text_at(
                root,
                name,
                tick_pt,
                &BLACK,
                HPos::Right,
                left - gap,
                baseline,
            )?;
            // Column labels read upwards, as scikit-learn's xticks_rotation="vertical".
            let vertical = font(tick_pt).transform(FontTransform::Rotate270);
            let x = left + cell * (i as f64 + 0.5) - vertical.get_size() / 2.0;
            root.draw_text(
                name,
                &vertical.color(&BLACK).pos(Pos::new(HPos::Right, VPos::Top)),
                (x.round() as i32, (bottom + gap).round() as i32),
            )?;
        }
        let label_em = pt(LABEL_FONT_PT);
        let centre_x = (left + right) / 2.0;
        let below = bottom + gap + widest + pt(LABEL_PAD_PT) + ASCENT_PER_EM * label_em;
        text_at(
            root,
            "Predicted label",
            LABEL_FONT_PT,
            &BLACK,
            HPos::Center,
            centre_x,
            below,
        )?;
        let baseline = left - gap - widest - pt(LABEL_PAD_PT) - DESCENT_PER_EM * label_em;
        let centre_y = (top + bottom) / 2.0;
        vertical_text_at(
            root,
            "True label",
            LABEL_FONT_PT,
            &BLACK,
            baseline,
            centre_y,
        )?;
        draw_colour_bar(root, (right, top, bottom), most, side)?;
        // Centred over the matrix where it fits there, else over the picture, its type
        // shrunk until it fits that.
        let room = 0.96 * side;
        let width = text_width(root, title, TITLE_FONT_PT);
        let title_pt = TITLE_FONT_PT * (room / width).min(1.0);
        let over_matrix = width / 2.0 <= centre_x.min(side - centre_x) - 0.02 * side;
        text_at(
            root,
            title,
            title_pt,
            &BLACK,
            HPos::Center,
            if over_matrix { centre_x } else { side / 2.0 },
            top - pt(TITLE_PAD_PT),
        )
    })
}

/// scikit-learn's colour bar beside a confusion matrix whose right edge, top and bottom are
/// `matrix` (pixels of a picture `side` wide): the "Blues" map from 0 at the bottom to `most`
/// at the top, with whole-count ticks.
fn draw_colour_bar(root: &Area, matrix: (f64, f64, f64), most: u64, side: f64) -> DrawResult {
    let (right, top, bottom) = matrix;
    let (x0, x1) = (right + 0.03 * side, right + 0.06 * side);
    let rows = (bottom - top).round() as i32;
    for row in 0..rows {
        let y = top + row as f64;
        let shade = 1.0 - row as f64 / (rows - 1).max(1) as f64;
        root.draw(&Rectangle::new(
            [
                (x0.round() as i32, y as i32),
                (x1.round() as i32, y as i32 + 1),
            ],
            blues(shade).filled(),
        ))?;
    }
    let (ticks, _) = nice_ticks((0.0, most as f64), 1.0);
    let tick = pt(TICK_LENGTH_PT);
    let em = pt(TICK_FONT_PT);
    for value in ticks {
        let y = bottom - (bottom - top) * value / most as f64;
        root.draw(&PathElement::new(
            [
                (x1.round() as i32, y.round() as i32),
                ((x1 + tick).round() as i32, y.round() as i32),
            ],
            BLACK.stroke_width(pt_i(TICK_WIDTH_PT).max(1) as u32),
        ))?;
        let label = format!("{}", value.round() as u64);
        let baseline = y + HALF_DIGIT_PER_EM * em;
        text_at(
            root,
            &label,
            TICK_FONT_PT,
            &BLACK,
            HPos::Left,
            x1 + tick + pt(TICK_PAD_PT),
            baseline,
        )?;
    }
    Ok(())
}

/// Registers the bundled font once per process: plotters' ab_glyph backend has no system fonts.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the bundled DejaVuSans.ttf is not a valid font")
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<
    (),
    DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>,
>;

fn pt(points: f64) -> f64 {
    points * PX_PER_PT
}

fn pt_i(points: f64) -> i32 {
    pt(points).round() as i32
}

/// A font whose em is `size_pt` points, as matplotlib sizes fonts.
fn font(size_pt: f64) -> FontDesc<'static> {
    (FONT_FAMILY, pt(size_pt) * DEJAVU_HEIGHT_PER_EM).into_font()
}

/// Draws `text` with its baseline at `baseline_y`; plotters' ab_glyph backend puts the
/// baseline half a font size below a top-anchored position.
fn text_at(
    area: &Area,
    text: &str,
    size_pt: f64,
    color: &RGBColor,
    h: HPos,
    x: f64,
    baseline_y: f64,
) -> DrawResult {
    let f = font(size_pt);
    let top = baseline_y - f.get_size() / 2.0;
    let style = f.color(color).pos(Pos::new(h, VPos::Top));
    area.draw_text(text, &style, (x.round() as i32, top.round() as i32))
}

/// Draws `text` turned a quarter to read upwards, centred on `centre_y`, with its baseline at
/// `baseline_x`: rotated, the glyphs' "down" is +x, so the baseline lies half a size right of
/// the anchor.
fn vertical_text_at(
    area: &Area,
    text: &str,
    size_pt: f64,
    color: &RGBColor,
    baseline_x: f64,
    centre_y: f64,
) -> DrawResult {
    let f = font(size_pt).transform(FontTransform::Rotate270);
    let x = baseline_x - f.get_size() / 2.0;
    let style = f.color(color).pos(Pos::new(HPos::Center, VPos::Top));
    area.draw_text(text, &style, (x.round() as i32, centre_y.round() as i32))
}

fn text_width(area: &Area, text: &str, size_pt: f64) -> f64 {
    area.estimate_text_size(text, &TextStyle::from(font(size_pt)))
        .map(|(w, _)| w as f64)
        .unwrap_or(0.0)
}

/// The data-to-pixel mapping of the axes.
struct Axes {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64, y: f64) -> (i32, i32) {
        let fx = (x - self.x_range.0) / (self.x_range.1 - self.x_range.0);
        let fy = (y - self.y_range.0) / (self.y_range.1 - self.y_range.0);
        (
            (self.left + fx * (self.right - self.left)).round() as i32,
            (self.bottom - fy * (self.bottom - self.top)).round() as i32,
        )
    }
}

/// One figure on `root`; x spans `epochs` epochs and y reaches past `y_max`, so figures drawn
/// side by side share their axes.
fn draw_figure(
    root: &Area,
    history: &History,
    title: &str,
    epochs: usize,
    y_max: f64,
) -> DrawResult {
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as f64, h as f64);
    let n = epochs;
    let series: Vec<Vec<f64>> = vec![
        history.epochs.iter().map(|e| e.loss).collect(),
        history.epochs.iter().map(|e| e.val_loss).collect(),
        history.epochs.iter().map(|e| e.acc).collect(),
        history.epochs.iter().map(|e| e.val_acc).collect(),
    ];
    // matplotlib's 5% x margins; a single epoch gets a unit-wide range centred on it.
    let last = (n - 1) as f64;
    let x_range = if n == 1 {
        (-0.5, 0.5)
    } else {
        (-0.05 * last, 1.05 * last)
    };
    let axes = Axes {
        left: AXES_LEFT * w,
        right: AXES_RIGHT * w,
        top: (1.0 - AXES_TOP) * h,
        bottom: (1.0 - AXES_BOTTOM) * h,
        x_range,
        y_range: (0.0, (y_max * 1.05).max(1.0)),
    };

    root.fill(&WHITE)?;
    root.draw(&Rectangle::new(
        [
            (axes.left.round() as i32, axes.top.round() as i32),
            (axes.right.round() as i32, axes.bottom.round() as i32),
        ],
        PANEL.filled(),
    ))?;

    // Grid lines, tick marks and tick labels; ggplot draws the grid beneath the data.
    let grid = WHITE.stroke_width(pt_i(GRID_WIDTH_PT).max(1) as u32);
    let tick = TEXT_GREY.stroke_width(pt_i(TICK_WIDTH_PT).max(1) as u32);
    let tick_len = pt_i(TICK_LENGTH_PT);
    let label_gap = pt(TICK_LENGTH_PT + TICK_PAD_PT);
    let (x_ticks, x_decimals) = nice_ticks(axes.x_range, 1.0);
    let tick_em = pt(TICK_FONT_PT);
    let x_label_baseline = axes.bottom + label_gap + ASCENT_PER_EM * tick_em;
    for &x in &x_ticks {
        let (px, _) = axes.px(x, 0.0);
        let (top, bottom) = (axes.top.round() as i32, axes.bottom.round() as i32);
        root.draw(&PathElement::new(vec![(px, top), (px, bottom)], grid))?;
        root.draw(&PathElement::new(
            vec![(px, bottom), (px, bottom + tick_len)],
            tick,
        ))?;
        let label = format!("{x:.x_decimals$}");
        text_at(
            root,
            &label,
            TICK_FONT_PT,
            &TEXT_GREY,
            HPos::Center,
            px as f64,
            x_label_baseline,
        )?;
    }
    let (y_ticks, y_decimals) = nice_ticks(axes.y_range, 0.0);
    let mut widest_y_label: f64 = 0.0;
    for &y in &y_ticks {
        let (_, py) = axes.px(0.0, y);
        let (left, right) = (axes.left.round() as i32, axes.right.round() as i32);
        root.draw(&PathElement::new(vec![(left, py), (right, py)], grid))?;
        root.draw(&PathElement::new(
            vec![(left - tick_len, py), (left, py)],
            tick,
        ))?;
        let label = format!("{y:.y_decimals$}");
        widest_y_label = widest_y_label.max(text_width(root, &label, TICK_FONT_PT));
        let baseline = py as f64 + HALF_DIGIT_PER_EM * tick_em;
        text_at(
            root,
            &label,
            TICK_FONT_PT,
            &TEXT_GREY,
            HPos::Right,
            axes.left - label_gap,
            baseline,
        )?;
    }

    // Axis labels sit a label pad beyond the tick labels, the title a pad above the axes.
    let label_em = pt(LABEL_FONT_PT);
    let x_desc_baseline =
        x_label_baseline + DESCENT_PER_EM * tick_em + pt(LABEL_PAD_PT) + ASCENT_PER_EM * label_em;
    let centre_x = (axes.left + axes.right) / 2.0;
    text_at(
        root,
        "Epoch #",
        LABEL_FONT_PT,
        &TEXT_GREY,
        HPos::Center,
        centre_x,
        x_desc_baseline,
    )?;
    let y_desc_baseline =
        axes.left - label_gap - widest_y_label - pt(LABEL_PAD_PT) - DESCENT_PER_EM * label_em;
    let centre_y = (axes.top + axes.bottom) / 2.0;
    vertical_text_at(
        root,
        "Loss/Accuracy",
        LABEL_FONT_PT,
        &TEXT_GREY,
        y_desc_baseline,
        centre_y,
    )?;
    text_at(
        root,
        title,
        TITLE_FONT_PT,
        &BLACK,
        HPos::Center,
        centre_x,
        axes.top - pt(TITLE_PAD_PT),
    )?;

    let line_width = pt_i(LINE_WIDTH_PT) as u32;
    for (values, (_, color)) in series.iter().zip(SERIES) {
        draw_series(root, &axes, values, color.stroke_width(line_width))?;
    }
    draw_legend(root, &axes)
}

/// Draws the finite runs of `values` as polylines; a run of one point becomes a dot so a
/// one-epoch history still shows something.
fn draw_series(root: &Area, axes: &Axes, values: &[f64], style: ShapeStyle) -> DrawResult {
    let points: Vec<Option<(i32, i32)>> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| v.is_finite().then(|| axes.px(i as f64, v)))
        .collect();
    for run in points.split(|p| p.is_none()).filter(|r| !r.is_empty()) {
        let run: Vec<(i32, i32)> = run.iter().flatten().copied().collect();
        if let [only] = run[..] {
            root.draw(&Circle::new(
                only,
                pt_i(LINE_WIDTH_PT * 2.0),
                style.color.filled(),
            ))?;
        } else {
            root.draw(&PathElement::new(run, style))?;
        }
    }
    Ok(())
}

/// matplotlib's legend in the upper right: 0.5 em from the axes corner, 0.4 em padding,
/// 2 em line handles, 0.8 em between handle and text, translucent axes-colour frame.
fn draw_legend(root: &Area, axes: &Axes) -> DrawResult {
    let em = pt(LEGEND_FONT_PT);
    // matplotlib's legend rows come out one em tall.
    let row_height = em;
    let row_step = row_height + 0.5 * em;
    let text_w = SERIES
        .iter()
        .map(|(name, _)| text_width(root, name, LEGEND_FONT_PT))
        .fold(0.0, f64::max);
    let box_w = 0.4 * em + 2.0 * em + 0.8 * em + text_w + 0.4 * em;
    let box_h =
        0.4 * em * 2.0 + row_height * SERIES.len() as f64 + 0.5 * em * (SERIES.len() - 1) as f64;
    let right = axes.right - 0.5 * em;
    let top = axes.top + 0.5 * em;
    let left = right - box_w;
    let corner = |x: f64, y: f64| (x.round() as i32, y.round() as i32);
    // matplotlib's fancybox: corners rounded by 0.2 em, face and 0.5 pt edge at alpha 0.8.
    let frame = rounded_rect(left, top, right, top + box_h, 0.2 * em);
    root.draw(&Polygon::new(frame.clone(), PANEL.mix(0.8).filled()))?;
    let mut outline = frame;
    outline.push(outline[0]);
    let edge_width = pt_i(LEGEND_EDGE_WIDTH_PT).max(1) as u32;
    root.draw(&PathElement::new(
        outline,
        LEGEND_EDGE.mix(0.8).stroke_width(edge_width),
    ))?;
    let line_width = pt_i(LINE_WIDTH_PT) as u32;
    for (i, (name, color)) in SERIES.iter().enumerate() {
        let row_top = top + 0.4 * em + row_step * i as f64;
        // Handle and text are both centred on the row.
        let handle_y = row_top + row_height / 2.0;
        let baseline = handle_y + HALF_DIGIT_PER_EM * em;
        let handle_left = left + 0.4 * em;
        root.draw(&PathElement::new(
            vec![
                corner(handle_left, handle_y),
                corner(handle_left + 2.0 * em, handle_y),
            ],
            color.stroke_width(line_width),
        ))?;
        text_at(
            root,
            name,
            LEGEND_FONT_PT,
            &BLACK,
            HPos::Left,
            handle_left + 2.8 * em,
            baseline,
        )?;
    }
    Ok(())
}

/// The outline of a rectangle with quarter-circle corners of radius `r`, clockwise on screen.
fn rounded_rect(left: f64, top: f64, right: f64, bottom: f64, r: f64) -> Vec<(i32, i32)> {
    const STEPS: usize = 6;
    let centres = [
        (right - r, top + r),
        (right - r, bottom - r),
        (left + r, bottom - r),
        (left + r, top + r),
    ];
    let mut points = Vec::with_capacity(4 * (STEPS + 1));
    for (quarter, (cx, cy)) in centres.into_iter().enumerate() {
        for step in 0..=STEPS {
            // Angles run from straight up (-90°) through right, down and left.
            let angle =
                (quarter as f64 - 1.0 + step as f64 / STEPS as f64) * std::f64::consts::FRAC_PI_2;
            points.push((
                (cx + r * angle.cos()).round() as i32,
                (cy + r * angle.sin()).round() as i32,
            ));
        }
    }
    points
}

/// matplotlib's MaxNLocator with steps 1, 2, 2.5, 5, 10: the smallest such step giving at most
/// 9 bins, no finer than `min_step` (epochs are whole), and the ticks inside `range`. Also
/// returns the decimals that print every tick exactly, as matplotlib's ScalarFormatter does.
fn nice_ticks(range: (f64, f64), min_step: f64) -> (Vec<f64>, usize) {
    let (lo, hi) = range;
    let raw = (hi - lo) / MAX_TICK_BINS;
    let scale = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|s| s * scale)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * scale)
        .max(min_step);
    let eps = 1e-9;
    let first = (lo / step - eps).ceil() as i64;
    let last = (hi / step + eps).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    let decimals = (0..10).find(|&d| {
        let scaled = step * 10f64.powi(d as i32);
        (scaled - scaled.round()).abs() < 1e-6
    });
    (ticks, decimals.unwrap_or(10))
}

/// Averages `factor`×`factor` blocks of an RGB buffer: the antialiasing plotters lacks.
fn downsample(rgb: &[u8], w: usize, h: usize, factor: usize) -> Vec<u8> {
    let (ow, oh) = (w / factor, h / factor);
    let area = (factor * factor) as u32;
    let mut out = Vec::with_capacity(ow * oh * 3);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..factor {
                    let row = (oy * factor + dy) * w;
                    for dx in 0..factor {
                        sum += u32::from(rgb[(row + ox * factor + dx) * 3 + c]);
                    }
                }
                out.push(((sum + area / 2) / area) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CIFAR-100's 100 classes fit a picture twice as large, every cell inside it; counts that
    /// do not fit their cells are left out rather than overlapping.
    #[test]
    fn a_confusion_matrix_of_100_classes_fits_its_picture() {
        let names: Vec<String> = (0..100).map(|i| format!("class_{i}")).collect();
        let cm: Vec<Vec<u64>> = (0..100)
            .map(|t| (0..100).map(|p| if t == p { 100 } else { 1 }).collect())
            .collect();
        let png = render_confusion_png(&cm, &names, "100 classes").unwrap();
        let picture = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (1600, 1600));
        // The diagonal's last cell is dark blue (full count) near its corner, away from its
        // count, inside the picture.
        let cell = MATRIX_SPAN * 1600.0 / 100.0;
        let corner = (
            MATRIX_LEFT * 1600.0 + 99.15 * cell,
            MATRIX_TOP * 1600.0 + 99.15 * cell,
        );
        let ink = picture.get_pixel(corner.0 as u32, corner.1 as u32);
        assert_eq!(ink.0, [0x08, 0x30, 0x6B]);
    }

    /// A title wider than the picture is set smaller, so no glyph touches its edges; the
    /// colour bar runs from the darkest blue (the largest count) down to near white (none).
    #[test]
    fn a_confusion_matrix_fits_a_long_title_and_has_a_colour_bar() {
        let names: Vec<String> = ["cat", "dog", "horse"].map(String::from).to_vec();
        let cm = vec![vec![30, 2, 0], vec![5, 20, 1], vec![0, 0, 12]];
        let title = "Confusion matrix on the /home/reader/datasets/animals-from-the-pyimagesearch-bundle test set";
        let png = render_confusion_png(&cm, &names, title).unwrap();
        let picture = image::load_from_memory(&png).unwrap().to_rgb8();
        let top = (MATRIX_TOP * 800.0) as u32;
        for y in 0..top {
            for x in [0, 1, 2, 797, 798, 799] {
                assert_eq!(picture.get_pixel(x, y).0, [255; 3], "ink at ({x}, {y})");
            }
        }
        // Some of the title is drawn.
        let inked = (0..top).any(|y| (0..800).any(|x| picture.get_pixel(x, y).0[0] < 128));
        assert!(inked, "no title");
        let right = (MATRIX_LEFT + MATRIX_SPAN * 3.0 / 10.0) * 800.0;
        let bar_x = (right + 0.045 * 800.0) as u32;
        let bottom = (MATRIX_TOP + MATRIX_SPAN * 3.0 / 10.0) * 800.0;
        let dark = picture.get_pixel(bar_x, top + 1).0;
        assert!(dark[0] < 0x10 && dark[2] < 0x78, "{dark:?}");
        let light = picture.get_pixel(bar_x, bottom as u32 - 2).0;
        assert!(light.iter().all(|&c| c >= 0xF0), "{light:?}");
    }

    /// Expected ticks are matplotlib's `MaxNLocator(nbins=9, steps=[1, 2, 2.5, 5, 10])`.
    #[test]
    fn ticks_match_matplotlib() {
        // (axis range, minimum step, ticks, decimals)
        type Case = ((f64, f64), f64, Vec<f64>, usize);
        let cases: [Case; 5] = [
            (
                (0.0, 1.68),
                0.0,
                vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6],
                1,
            ),
            (
                (0.0, 1.89),
                0.0,
                vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75],
                2,
            ),
            (
                (-1.95, 40.95),
                1.0,
                vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0],
                0,
            ),
            (
                (-4.95, 103.95),
                1.0,
                vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0],
                0,
            ),
            ((0.0, 2.6), 0.0, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5], 1),
        ];
        for (range, min_step, expected, decimals) in cases {
            let (ticks, d) = nice_ticks(range, min_step);
            assert_eq!(ticks.len(), expected.len(), "{range:?}: {ticks:?}");
            for (t, e) in ticks.iter().zip(&expected) {
                assert!((t - e).abs() < 1e-9, "{range:?}: {ticks:?}");
            }
            assert_eq!(d, decimals, "{range:?}");
        }
        // Epochs are whole: a one-epoch range gets the single tick 0, not fractions.
        assert_eq!(nice_ticks((-0.5, 0.5), 1.0), (vec![0.0], 0));
    }

    #[test]
    fn downsample_averages_blocks() {
        // A 2x2 image of one white and three black pixels becomes one pixel of a quarter white.
        let rgb = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(downsample(&rgb, 2, 2, 2), vec![64, 64, 64]);
    }
}
