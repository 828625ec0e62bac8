//! Evaluation results: per image, per set, and their JSON / Markdown / text
//! renderings.
//!
//! JSON cannot hold infinities: a PSNR of `inf` (SR output identical to the
//! GT) is written as the string `"inf"` (and NaN as `"nan"`); every finite
//! value is a JSON number with full f64 precision (`serde_json` prints the
//! shortest round-tripping form).

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

/// Serialises an f64, writing non-finite values as the strings `"inf"`,
/// `"-inf"`, `"nan"`.
pub fn serialize_metric<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_str(nonfinite_str(*v))
    }
}

fn nonfinite_str(v: f64) -> &'static str {
    if v.is_nan() {
        "nan"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

fn metric_value(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(nonfinite_str(v))
    }
}

/// The scores of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageScore {
    /// Image name (HR file stem).
    pub name: String,
    /// PSNR on Y, dB (`inf` when identical).
    #[serde(serialize_with = "serialize_metric")]
    pub psnr_y: f64,
    /// SSIM on Y.
    #[serde(serialize_with = "serialize_metric")]
    pub ssim_y: f64,
    /// LR height.
    pub lr_h: usize,
    /// LR width.
    pub lr_w: usize,
    /// Seconds spent in the super-resolver for this image.
    pub sr_seconds: f64,
}

/// The scores of one benchmark set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetReport {
    /// Set name.
    pub name: String,
    /// Per-image scores, sorted by name.
    pub images: Vec<ImageScore>,
    /// Mean PSNR-Y: sum in image order from 0, divided by the count
    /// (BasicSR's `metric_results[m] += …; /= idx + 1`). `inf` if any image
    /// is `inf`.
    #[serde(serialize_with = "serialize_metric")]
    pub mean_psnr_y: f64,
    /// Mean SSIM-Y, likewise.
    #[serde(serialize_with = "serialize_metric")]
    pub mean_ssim_y: f64,
    /// Number of images.
    pub count: usize,
    /// Wall-clock seconds for the whole set (loading, SR, metrics).
    pub seconds: f64,
    /// True when the LR images were generated with the bicubic downscaler.
    pub generated_lr: bool,
}

impl SetReport {
    /// Builds a set report from its images, computing the means.
    pub fn from_images(
        name: &str,
        images: Vec<ImageScore>,
        seconds: f64,
        generated_lr: bool,
    ) -> Self {
        let count = images.len();
        let mean = |f: &dyn Fn(&ImageScore) -> f64| {
            let mut s = 0.0;
            for im in &images {
                s += f(im);
            }
            s / count as f64
        };
        let mean_psnr_y = mean(&|i| i.psnr_y);
        let mean_ssim_y = mean(&|i| i.ssim_y);
        Self {
            name: name.to_string(),
            images,
            mean_psnr_y,
            mean_ssim_y,
            count,
            seconds,
            generated_lr,
        }
    }
}

/// The result of an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Upscaling factor.
    pub scale: usize,
    /// Pixels cropped per side before scoring (= scale).
    pub crop_border: usize,
    /// One line describing the protocol.
    pub protocol: String,
    /// Per-set results, in the order requested.
    pub sets: Vec<SetReport>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

/// The protocol line stored in reports.
pub const PROTOCOL: &str = "BasicSR: u8 output (clamp, x255 f32, round half even), crop=scale, \
                            Y (float32) PSNR float64 10*log10(255^2/mse), SSIM 11x11 sigma 1.5 valid";

impl EvalReport {
    /// The report as pretty JSON, shaped like `golden/x4_local_metrics.json`:
    /// `{"scale", "crop_border", "protocol", "seconds", "sets": {<set>:
    /// {"images": {<name>: {"psnr_y", "ssim_y", "lr_h", "lr_w",
    /// "sr_seconds"}}, "mean_psnr_y", "mean_ssim_y", "count", "seconds",
    /// "generated_lr"}}}` (object keys sorted). Infinite PSNR is `"inf"`.
    pub fn to_json(&self) -> String {
        let mut sets = Map::new();
        for s in &self.sets {
            let mut images = Map::new();
            for i in &s.images {
                images.insert(
                    i.name.clone(),
                    json!({
                        "psnr_y": metric_value(i.psnr_y),
                        "ssim_y": metric_value(i.ssim_y),
                        "lr_h": i.lr_h,
                        "lr_w": i.lr_w,
                        "sr_seconds": i.sr_seconds,
                    }),
                );
            }
            sets.insert(
                s.name.clone(),
                json!({
                    "images": images,
                    "mean_psnr_y": metric_value(s.mean_psnr_y),
                    "mean_ssim_y": metric_value(s.mean_ssim_y),
                    "count": s.count,
                    "seconds": s.seconds,
                    "generated_lr": s.generated_lr,
                }),
            );
        }
        let v = json!({
            "scale": self.scale,
            "crop_border": self.crop_border,
            "protocol": self.protocol,
            "seconds": self.seconds,
            "sets": sets,
        });
        serde_json::to_string_pretty(&v).expect("JSON of plain values")
    }

    /// A Markdown summary table (one row per set) followed by one per-image
    /// table per set.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "| Set (x{}) | Images | PSNR-Y (dB) | SSIM-Y | Seconds |\n|---|---:|---:|---:|---:|\n",
            self.scale
        );
        for set in &self.sets {
            s += &format!(
                "| {}{} | {} | {} | {} | {:.2} |\n",
                set.name,
                if set.generated_lr {
                    " (LR generated)"
                } else {
                    ""
                },
                set.count,
                fmt_psnr(set.mean_psnr_y),
                fmt_ssim(set.mean_ssim_y),
                set.seconds
            );
        }
        for set in &self.sets {
            s += &format!(
                "\n### {} x{}\n\n| Image | LR size | PSNR-Y (dB) | SSIM-Y | SR seconds |\n|---|---|---:|---:|---:|\n",
                set.name, self.scale
            );
            for i in &set.images {
                s += &format!(
                    "| {} | {}x{} | {} | {} | {:.3} |\n",
                    i.name,
                    i.lr_w,
                    i.lr_h,
                    fmt_psnr(i.psnr_y),
                    fmt_ssim(i.ssim_y),
                    i.sr_seconds
                );
            }
        }
        s
    }

    /// Prints the summary table ([`fmt::Display`]) to stdout.
    pub fn print_table(&self) {
        print!("{self}");
    }
}

fn fmt_psnr(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        nonfinite_str(v).to_string()
    }
}

fn fmt_ssim(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        nonfinite_str(v).to_string()
    }
}

impl fmt::Display for EvalReport {
    /// A fixed-width summary table, one row per set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>6} {:>12} {:>8} {:>9}",
            format!("Set (x{})", self.scale),
            "Images",
            "PSNR-Y (dB)",
            "SSIM-Y",
            "Seconds"
        )?;
        writeln!(f, "{}", "-".repeat(51))?;
        for s in &self.sets {
            writeln!(
                f,
                "{:<12} {:>6} {:>12} {:>8} {:>9.2}{}",
                s.name,
                s.count,
                fmt_psnr(s.mean_psnr_y),
                fmt_ssim(s.mean_ssim_y),
                s.seconds,
                if s.generated_lr {
                    "  (LR generated)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(f, "total {:.2} s", self.seconds)
    }
}
