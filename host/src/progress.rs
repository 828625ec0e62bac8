//! Progress of long stages, visible wherever the output goes: a bar on a
//! terminal, and plain lines on stderr otherwise (CI logs, `nohup`,
//! redirected runs), at most one every [`LINE_EVERY`], plus the first and the
//! last step.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Least time between two progress lines when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

/// How progress is shown.
enum Display {
    Bar(indicatif::ProgressBar),
    Lines { last: Option<Instant> },
    Hidden,
}

/// One long stage of `total` steps.
pub struct Progress {
    label: String,
    total: u64,
    pos: u64,
    /// Position when the clock started (a resumed stage starts part-way).
    start_pos: u64,
    start: Instant,
    display: Display,
}

impl Progress {
    /// A stage called `label` of `total` steps; `enabled = false` shows nothing.
    pub fn new(label: &str, total: u64, enabled: bool) -> Self {
        let display = if !enabled {
            Display::Hidden
        } else if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{label} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}"
                ))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Display::Bar(bar)
        } else {
            Display::Lines { last: None }
        };
        Self {
            label: label.to_string(),
            total,
            pos: 0,
            start_pos: 0,
            start: Instant::now(),
            display,
        }
    }

    /// Starts at `pos` (a resumed stage); rates count from here.
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
        self.start_pos = pos;
        self.start = Instant::now();
        if let Display::Bar(b) = &self.display {
            b.set_position(pos);
            b.reset_eta();
        }
    }

    /// One step done; `msg` (e.g. the loss) is only built when shown.
    pub fn inc(&mut self, msg: impl FnOnce() -> String) {
        self.pos += 1;
        match &mut self.display {
            Display::Hidden => {}
            Display::Bar(b) => {
                b.set_message(msg());
                b.inc(1);
                if self.pos >= self.total {
                    b.finish_and_clear();
                }
            }
            Display::Lines { last } => {
                let now = Instant::now();
                let due = last.is_none_or(|t| now - t >= LINE_EVERY) || self.pos >= self.total;
                if due {
                    *last = Some(now);
                    let done = (self.pos - self.start_pos) as f64;
                    let secs = (now - self.start).as_secs_f64();
                    let per = secs / done.max(1.0);
                    let left = self.total.saturating_sub(self.pos) as f64 * per;
                    eprintln!(
                        "{} {}/{} ({:.0} %) {} | {:.2} s/step, {} elapsed, ETA {}",
                        self.label,
                        self.pos,
                        self.total,
                        100.0 * self.pos as f64 / self.total.max(1) as f64,
                        msg(),
                        per,
                        clock(secs),
                        clock(left)
                    );
                }
            }
        }
    }

    /// Ends the stage early or on time (clears the bar; the last step also does).
    pub fn finish(self) {
        if let Display::Bar(b) = self.display {
            b.finish_and_clear();
        }
    }
}

/// `1h02m03s` / `2m03s` / `3s`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_formats_hours_minutes_seconds() {
        assert_eq!(clock(3.4), "3s");
        assert_eq!(clock(123.0), "2m03s");
        assert_eq!(clock(3723.0), "1h02m03s");
    }
}
