//! Run-folder outputs of `tdquant calibrate`: the loss curve (CSV and a PNG
//! line plot drawn here with the `image` crate and a built-in 3×5 pixel
//! font: total loss, output term and an exponential moving average of the
//! total, log10 y axis), and the Markdown / JSON report.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use image::{Rgb, RgbImage};
use serde::Serialize;

use super::dqc::LossRecord;
use crate::eval::EvalReport;
use crate::output::write_atomic;

/// Wall time of one stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageTime {
    /// Stage name.
    pub stage: String,
    /// Seconds.
    pub seconds: f64,
}

impl StageTime {
    /// Stage `name` started at `t0`, ending now.
    pub fn new(name: &str, t0: Instant) -> Self {
        Self {
            stage: name.into(),
            seconds: t0.elapsed().as_secs_f64(),
        }
    }
}

/// One evaluated configuration (a row of the table).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalRow {
    /// Row label (`FP32`, `DOBI W4A4`, `2DQuant W4A4`).
    pub label: String,
    /// Per set: `(name, PSNR-Y, SSIM-Y)`.
    pub sets: Vec<(String, f64, f64)>,
    /// Seconds of the evaluation.
    pub seconds: f64,
}

impl EvalRow {
    /// Row from an evaluation report.
    pub fn new(label: &str, r: &EvalReport) -> Self {
        Self {
            label: label.into(),
            sets: r
                .sets
                .iter()
                .map(|s| (s.name.clone(), s.mean_psnr_y, s.mean_ssim_y))
                .collect(),
            seconds: r.seconds,
        }
    }
}

/// The calibration report (`report.json` / `report.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibReport {
    /// Method.
    pub method: String,
    /// Bits (W = A).
    pub bits: u8,
    /// Scale.
    pub scale: usize,
    /// Preset.
    pub preset: String,
    /// Whether this invocation resumed a stopped run (stage times then cover
    /// only this invocation).
    pub resumed: bool,
    /// SHA-256 of the FP weights.
    pub weights_sha256: String,
    /// The resolved configuration.
    pub config: serde_json::Value,
    /// Wall time per stage.
    pub stages: Vec<StageTime>,
    /// Total wall time.
    pub total_seconds: f64,
    /// Evaluation table.
    pub eval: Vec<EvalRow>,
    /// Last DQC loss record.
    pub final_loss: Option<LossRecord>,
    /// DQC iterations logged.
    pub iterations: usize,
}

impl CalibReport {
    /// The evaluation table as Markdown.
    pub fn eval_table(&self) -> String {
        let Some(first) = self.eval.first() else {
            return "(no evaluation)\n".into();
        };
        let mut s = String::from("| Model |");
        for (name, _, _) in &first.sets {
            s += &format!(" {name} x{} PSNR-Y / SSIM-Y |", self.scale);
        }
        s += "\n|---|";
        for _ in &first.sets {
            s += "---:|";
        }
        s += "\n";
        for r in &self.eval {
            s += &format!("| {} |", r.label);
            for (_, p, q) in &r.sets {
                s += &format!(" {p:.4} / {q:.4} |");
            }
            s += "\n";
        }
        s
    }

    /// The whole report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# tdquant calibration: {} W{b}A{b} x{}\n\n- preset: {}\n- weights sha256: `{}`\n- total wall time: {:.1} s{}\n",
            self.method,
            self.scale,
            self.preset,
            self.weights_sha256,
            self.total_seconds,
            if self.resumed { " (this invocation resumed a stopped run)" } else { "" },
            b = self.bits,
        );
        if let Some(l) = &self.final_loss {
            s += &format!(
                "- DQC: {} iterations, final loss {:.5e} (output {:.5e}, feature {:.5e})\n",
                self.iterations, l.loss, l.output, l.feature
            );
        }
        s += "\n## Evaluation (BasicSR PSNR-Y / SSIM-Y, crop = scale)\n\n";
        s += &self.eval_table();
        s += "\n## Stages\n\n| Stage | Seconds |\n|---|---:|\n";
        for st in &self.stages {
            s += &format!("| {} | {:.1} |\n", st.stage, st.seconds);
        }
        s += "\n## Configuration\n\n```json\n";
        s += &serde_json::to_string_pretty(&self.config).unwrap_or_default();
        s += "\n```\n";
        s
    }
}

/// `loss.csv`: `iter,lr,loss,output,feature` (full f64 precision).
pub fn write_loss_csv(path: &Path, log: &[LossRecord]) -> Result<()> {
    let mut s = String::from("iter,lr,loss,output,feature\n");
    for r in log {
        s += &format!(
            "{},{:e},{:e},{:e},{:e}\n",
            r.iter, r.lr, r.loss, r.output, r.feature
        );
    }
    write_atomic(path, s.as_bytes())
}

/// 3×5 glyphs (rows top to bottom, 3 bits each, MSB = left).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        'i' => [2, 0, 2, 2, 2],
        't' => [2, 7, 2, 2, 3],
        'r' => [0, 6, 5, 4, 4],
        'l' => [6, 2, 2, 2, 7],
        'o' => [0, 7, 5, 5, 7],
        's' => [0, 7, 6, 3, 7],
        'u' => [0, 5, 5, 5, 7],
        'p' => [0, 7, 5, 7, 4],
        'f' => [3, 4, 6, 4, 4],
        'a' => [0, 6, 3, 5, 7],
        'g' => [0, 7, 5, 3, 6],
        'n' => [0, 6, 5, 5, 5],
        'c' => [0, 7, 4, 4, 7],
        'w' => [0, 5, 5, 7, 7],
        'm' => [0, 7, 7, 5, 5],
        ' ' => [0, 0, 0, 0, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        _ => return None,
    })
}

const SCALE: u32 = 2;

fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, color: Rgb<u8>) {
    let mut cx = x;
    for ch in text.chars() {
        if let Some(g) = glyph(ch) {
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for dy in 0..SCALE as i64 {
                            for dx in 0..SCALE as i64 {
                                put(
                                    img,
                                    cx + col * SCALE as i64 + dx,
                                    y + row as i64 * SCALE as i64 + dy,
                                    color,
                                );
                            }
                        }
                    }
                }
            }
        }
        cx += 4 * SCALE as i64;
    }
}

fn text_width(text: &str) -> i64 {
    text.chars().count() as i64 * 4 * SCALE as i64
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as i64).max(1);
    for k in 0..=n {
        let t = k as f64 / n as f64;
        put(
            img,
            (x0 + (x1 - x0) * t).round() as i64,
            (y0 + (y1 - y0) * t).round() as i64,
            c,
        );
    }
}

/// A named, coloured polyline `(x, y)`.
type Series<'a> = (&'a str, Rgb<u8>, Vec<(f64, f64)>);

/// Render the loss curves (total and output term; log10 y axis) as an RGB
/// image.
pub fn plot_loss(log: &[LossRecord]) -> RgbImage {
    let (w, h) = (800u32, 480u32);
    let (l, r, t, b) = (90f64, 20f64, 30f64, 50f64);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let black = Rgb([0, 0, 0]);
    let grey = Rgb([220, 220, 220]);
    let blue = Rgb([31, 119, 180]);
    let orange = Rgb([255, 127, 14]);
    let pw = w as f64 - l - r;
    let ph = h as f64 - t - b;
    let green = Rgb([44, 160, 44]);
    // Exponential moving average of the total loss (α = 0.1, bias-corrected).
    let mut ema = Vec::with_capacity(log.len());
    let (mut m, mut wsum) = (0f64, 0f64);
    for x in log {
        m = 0.9 * m + 0.1 * x.loss;
        wsum = 0.9 * wsum + 0.1;
        ema.push((x.iter as f64, m / wsum));
    }
    let series: [Series; 3] = [
        (
            "loss",
            blue,
            log.iter().map(|x| (x.iter as f64, x.loss)).collect(),
        ),
        (
            "output",
            orange,
            log.iter().map(|x| (x.iter as f64, x.output)).collect(),
        ),
        ("loss ema", green, ema),
    ];
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(f64::log10)
        .collect();
    let (mut y0, mut y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !y0.is_finite() {
        (y0, y1) = (-1.0, 0.0);
    }
    if y1 - y0 < 1e-3 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let (y0, y1) = (y0.floor().min(y0 - 0.05 * (y1 - y0)), y1 + 0.05 * (y1 - y0));
    let x1 = log.last().map_or(1.0, |x| x.iter as f64).max(1.0);
    let px = |x: f64| l + (x / x1) * pw;
    let py = |v: f64| t + (1.0 - (v.log10() - y0) / (y1 - y0)) * ph;
    // y grid at decades and their 2x/5x
    let mut dec = y0.floor() as i32;
    while f64::from(dec) <= y1 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(dec);
            let lv = v.log10();
            if lv >= y0 && lv <= y1 {
                let yy = py(v);
                line(&mut img, (l, yy), (l + pw, yy), grey);
                let label = format!("{v:.0e}");
                draw_text(
                    &mut img,
                    (l - 8.0) as i64 - text_width(&label),
                    yy as i64 - 5,
                    &label,
                    black,
                );
            }
        }
        dec += 1;
    }
    // x ticks
    let step = nice_step(x1 / 8.0);
    let mut xt = 0.0;
    while xt <= x1 + 1e-9 {
        let xx = px(xt);
        line(&mut img, (xx, t + ph), (xx, t + ph + 5.0), black);
        let label = format!("{}", xt as u64);
        draw_text(
            &mut img,
            xx as i64 - text_width(&label) / 2,
            (t + ph + 10.0) as i64,
            &label,
            black,
        );
        xt += step;
    }
    // axes
    line(&mut img, (l, t), (l, t + ph), black);
    line(&mut img, (l, t + ph), (l + pw, t + ph), black);
    let xl = "iteration";
    draw_text(
        &mut img,
        (l + pw / 2.0) as i64 - text_width(xl) / 2,
        h as i64 - 18,
        xl,
        black,
    );
    // series
    for (_, c, pts) in &series {
        let mut prev: Option<(f64, f64)> = None;
        for &(x, v) in pts {
            if !(v.is_finite() && v > 0.0) {
                prev = None;
                continue;
            }
            let p = (px(x), py(v));
            if let Some(q) = prev {
                line(&mut img, q, p, *c);
            } else {
                put(&mut img, p.0 as i64, p.1 as i64, *c);
            }
            prev = Some(p);
        }
    }
    // legend
    let mut lx = l + 10.0;
    for (name, c, _) in &series {
        for dy in -1..=1 {
            line(
                &mut img,
                (lx, 14.0 + f64::from(dy)),
                (lx + 20.0, 14.0 + f64::from(dy)),
                *c,
            );
        }
        draw_text(&mut img, lx as i64 + 26, 9, name, black);
        lx += 26.0 + text_width(name) as f64 + 30.0;
    }
    draw_text(
        &mut img,
        (l + pw) as i64 - text_width("log scale"),
        9,
        "log scale",
        black,
    );
    img
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// `loss.png` (written atomically).
pub fn write_loss_png(path: &Path, log: &[LossRecord]) -> Result<()> {
    let img = plot_loss(log);
    crate::image_io::save_png_atomic(path, &img)?;
    Ok(())
}
