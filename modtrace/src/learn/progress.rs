//! What learning shows on stderr while it runs: a live bar on a terminal, a
//! line a minute in a journal or a log file, or nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::trace::event::Cause;

/// How learning shows progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Quiet,
    /// A line every minute (stderr is not a terminal: a journal, a log file).
    Plain,
    /// A live progress bar.
    Bar,
}

/// "request net-pf-5 by modtrace-guest", "udev", "explicit by modprobe".
pub fn short_cause(cause: &Cause) -> String {
    match cause {
        Cause::Request { alias, requester, module, needed_by, .. } => {
            let base = format!("request {alias} by {}", requester.comm);
            match (needed_by.is_empty(), module) {
                (false, Some(m)) => format!("for {m}, {base}"),
                _ => base,
            }
        }
        Cause::Explicit { loader, invoked_by, .. } => match invoked_by.as_ref().and_then(|p| p.comm.clone()) {
            Some(parent) => format!("explicit by {} from {parent}", loader.comm),
            None => format!("explicit by {}", loader.comm),
        },
        Cause::Udev { .. } => "udev".to_string(),
        Cause::Unknown { .. } => "cause unknown".to_string(),
    }
}

/// What the display says: the module count and the latest load.
pub struct Status {
    pub modules: usize,
    pub latest: Option<String>,
}

impl Status {
    fn describe(status: &Mutex<Status>) -> String {
        let (modules, latest) = match status.lock() {
            Ok(s) => (s.modules, s.latest.clone()),
            Err(_) => (0, None),
        };
        let mut text = format!("{modules} modules");
        if let Some(l) = latest {
            text.push_str(&format!(", latest: {l}"));
        }
        text
    }
}

/// The time left of a learning run of `duration`, if it has one.
#[derive(Clone, Copy)]
struct Clock {
    duration: Option<Duration>,
    started: Instant,
}

impl Clock {
    fn left(&self) -> Option<Duration> {
        self.duration.map(|d| d.saturating_sub(self.started.elapsed()))
    }
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Shows progress from its own thread, so the time left moves even when no
/// module loads.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Ticker {
    pub fn start(mode: Progress, duration: Option<Duration>, out: &Path, status: Arc<Mutex<Status>>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Clock { duration, started: Instant::now() };
        match mode {
            Progress::Quiet => Ticker { stop, handle: None, bar: None },
            Progress::Bar => {
                let bar = new_bar(duration);
                let handle = spawn_bar(bar.clone(), stop.clone(), clock, status);
                Ticker { stop, handle: Some(handle), bar: Some(bar) }
            }
            Progress::Plain => {
                let what = match duration {
                    Some(d) => format!("for {}", humantime::format_duration(d)),
                    None => "until SIGINT or SIGTERM".to_string(),
                };
                eprintln!("modtrace: learning {what} into {}", out.display());
                let handle = spawn_lines(stop.clone(), clock, status);
                Ticker { stop, handle: Some(handle), bar: None }
            }
        }
    }

    /// A message that must not be garbled by the progress bar.
    pub fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar of the time left, or a spinner when learning runs until a signal.
fn new_bar(duration: Option<Duration>) -> ProgressBar {
    match duration {
        Some(d) => {
            let bar = ProgressBar::new(d.as_secs().max(1));
            bar.set_style(
                ProgressStyle::with_template("{spinner} learning [{bar:24}] {prefix} left · {wide_msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} learning for {elapsed} (Ctrl-C ends it) · {wide_msg}")
                    .expect("a valid template"),
            );
            bar
        }
    }
}

fn spawn_bar(bar: ProgressBar, stop: Arc<AtomicBool>, clock: Clock, status: Arc<Mutex<Status>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(l) = clock.left() {
                bar.set_position(clock.duration.unwrap_or_default().as_secs().saturating_sub(l.as_secs()));
                bar.set_prefix(whole_seconds(l));
            }
            bar.set_message(Status::describe(&status));
            bar.tick();
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

fn spawn_lines(stop: Arc<AtomicBool>, clock: Clock, status: Arc<Mutex<Status>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            if last.elapsed() >= Duration::from_secs(60) {
                last = Instant::now();
                let left = clock.left().map(|l| format!("{} left, ", whole_seconds(l))).unwrap_or_default();
                eprintln!("modtrace: learning: {left}{}", Status::describe(&status));
            }
        }
    })
}
