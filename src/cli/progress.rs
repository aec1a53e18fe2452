//! Progress on the command line (`--progress auto|bar|json|none`): an
//! indicatif bar on a terminal, JSON status lines on stderr for programs
//! that drive snap, or nothing. The library reports counters
//! ([`snap::Progress`]); everything shown here is computed from them.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use snap::{Phase, Progress};

use super::output::{print_err, terminal_safe};

/// How progress is shown (`--progress`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    #[default]
    Auto,
    /// A bar on stderr, even when it is not a terminal.
    Bar,
    /// One JSON status line per second on stderr, and a last one at the end.
    Json,
    /// Nothing.
    None,
}

/// How many of the items last started the status shows.
const CURRENT_ITEMS: usize = 4;

/// Characters of the current item's name the bar shows (below the bar,
/// after the counts: an 80-column terminal has room for them).
const CURRENT_WIDTH: usize = 30;

/// The counters of one operation, as the library reported them.
struct Counters {
    scanning: AtomicBool,
    files_found: AtomicU64,
    bytes_found: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    /// The items last started, newest last.
    current: Mutex<VecDeque<String>>,
    started: Instant,
}

impl Counters {
    fn new() -> Self {
        Self {
            scanning: AtomicBool::new(true),
            files_found: AtomicU64::new(0),
            bytes_found: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            current: Mutex::new(VecDeque::new()),
            started: Instant::now(),
        }
    }

    /// Files to do: what was found, or what was done when more was done
    /// than found (a file that grew, an entry the scan missed), so a
    /// total never falls below its count.
    fn total_files(&self) -> u64 {
        let done = self.files_done.load(Ordering::Relaxed);
        self.files_found.load(Ordering::Relaxed).max(done)
    }

    fn total_bytes(&self) -> u64 {
        let done = self.bytes_done.load(Ordering::Relaxed);
        self.bytes_found.load(Ordering::Relaxed).max(done)
    }

    fn newest_current(&self) -> Option<String> {
        self.current
            .lock()
            .ok()
            .and_then(|items| items.back().cloned())
    }

    /// One JSON status line (docs/CLI.md, "Progress"). Until the totals
    /// are complete the percentage stays 0: a share of a growing total
    /// would only look done too early. The last line (`end`) of an
    /// operation that succeeded has percent 1.
    fn status_line(&self, end: Option<End>) -> String {
        let finished = end == Some(End::Done);
        let scanning = self.scanning.load(Ordering::Relaxed) && end.is_none();
        let files_done = self.files_done.load(Ordering::Relaxed);
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let (total_files, total_bytes) = (self.total_files(), self.total_bytes());
        let percent = if finished {
            1.0
        } else if scanning {
            0.0
        } else if total_bytes > 0 {
            bytes_done as f64 / total_bytes as f64
        } else if total_files > 0 {
            files_done as f64 / total_files as f64
        } else {
            0.0
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let remaining = if finished {
            Some(0)
        } else if scanning || percent <= 0.0 {
            None
        } else {
            Some((elapsed * (1.0 - percent) / percent).round() as u64)
        };
        let current: Vec<String> = if end.is_some() {
            Vec::new()
        } else {
            self.current
                .lock()
                .map(|items| items.iter().cloned().collect())
                .unwrap_or_default()
        };
        let line = Status {
            message_type: "status",
            phase: if let Some(end) = end {
                end.as_str()
            } else if scanning {
                "scanning"
            } else {
                "working"
            },
            percent,
            total_files,
            files_done,
            total_bytes,
            bytes_done,
            current_files: current,
            seconds_elapsed: elapsed.floor() as u64,
            seconds_remaining: remaining,
        };
        serde_json::to_string(&line).expect("a status serialises")
    }
}

/// How an operation ended, as its last status line says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// It did all its work.
    Done,
    /// It failed or was interrupted.
    Stopped,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Done => "done",
            End::Stopped => "stopped",
        }
    }
}

/// One JSON status line, fields in restic's order (docs/CLI.md, "Progress").
#[derive(serde::Serialize)]
struct Status {
    message_type: &'static str,
    phase: &'static str,
    percent: f64,
    total_files: u64,
    files_done: u64,
    total_bytes: u64,
    bytes_done: u64,
    current_files: Vec<String>,
    seconds_elapsed: u64,
    seconds_remaining: Option<u64>,
}

/// The thread writing a JSON status line every second.
struct JsonLines {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl JsonLines {
    fn start(counters: Arc<Counters>) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::spawn(move || {
            let (stopped, wake) = &*signal;
            let Ok(mut stopped) = stopped.lock() else {
                return;
            };
            loop {
                let waited = wake.wait_timeout(stopped, Duration::from_secs(1));
                let Ok((guard, _)) = waited else {
                    return;
                };
                stopped = guard;
                if *stopped {
                    return;
                }
                print_err(&counters.status_line(None));
            }
        });
        Self { stop, thread }
    }

    /// Stops the ticks and writes the last line.
    fn finish(self, counters: &Counters, succeeded: bool) {
        if let Ok(mut stopped) = self.stop.0.lock() {
            *stopped = true;
        }
        self.stop.1.notify_all();
        let _ = self.thread.join();
        let end = if succeeded { End::Done } else { End::Stopped };
        print_err(&counters.status_line(Some(end)));
    }
}

/// Progress for the command line: a bar or JSON status lines while an
/// operation runs ([`CliProgress::start`] .. [`CliProgress::finish`]),
/// messages and warnings on stderr always.
pub struct CliProgress {
    mode: ProgressMode,
    quiet: bool,
    counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    json: Mutex<Option<JsonLines>>,
    /// Serialises changes of the bar's length, so that it only grows.
    length: Mutex<()>,
}

impl CliProgress {
    /// Progress shown as `mode` asks; `quiet` (`-q`) shows no bar, but
    /// JSON lines that were asked for by name are still written.
    pub fn new(quiet: bool, mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::None,
            ProgressMode::Bar if quiet => ProgressMode::None,
            other => other,
        };
        Self {
            mode,
            quiet,
            counters: Arc::new(Counters::new()),
            bar: None,
            json: Mutex::new(None),
            length: Mutex::new(()),
        }
    }

    /// Starts showing the progress of the operation `what` (counting from
    /// zero: what was reported before is not part of it).
    pub fn start(&mut self, what: &str) {
        self.finish(true);
        self.counters = Arc::new(Counters::new());
        match self.mode {
            ProgressMode::Bar => self.bar = Some(self.new_bar(what)),
            ProgressMode::Json => {
                *self.json.lock().expect("progress lock") =
                    Some(JsonLines::start(self.counters.clone()));
            }
            ProgressMode::Auto | ProgressMode::None => {}
        }
    }

    fn new_bar(&self, what: &str) -> ProgressBar {
        // A terminal of our own rather than indicatif's stderr target: that
        // one hides itself when stderr is not a terminal, and `--progress
        // bar` asks for a bar anyway.
        let term = console::Term::stderr();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term), 5);
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(self.style(Phase::Scanning));
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// The bar's look in `phase`. Bytes, rate and ETA are indicatif's own
    /// keys (its position is the bytes done, its length the bytes to do);
    /// the file counts and what was found come from the counters.
    fn style(&self, phase: Phase) -> ProgressStyle {
        let template = match phase {
            Phase::Scanning => {
                "{prefix} [{elapsed_precise}] scanning: {found} found\n  {done} done  {current}"
            }
            Phase::Working => {
                "{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta}\n  {bytes}/{total_bytes}, {files}, {binary_bytes_per_sec}  {current}"
            }
        };
        let files = self.counters.clone();
        let current = self.counters.clone();
        ProgressStyle::with_template(template)
            .expect("valid template")
            .with_key(
                "found",
                self.counts_key(|c| (&c.files_found, &c.bytes_found)),
            )
            .with_key("done", self.counts_key(|c| (&c.files_done, &c.bytes_done)))
            .with_key(
                "files",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let done = files.files_done.load(Ordering::Relaxed);
                    let _ = write!(w, "{done}/{} files", files.total_files());
                },
            )
            .with_key(
                "current",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    if let Some(name) = current.newest_current() {
                        let _ = write!(w, "{}", terminal_safe(&tail(&name, CURRENT_WIDTH)));
                    }
                },
            )
    }

    /// A template key writing `N files, SIZE` from the pair of counters
    /// `pick` chooses.
    fn counts_key(
        &self,
        pick: fn(&Counters) -> (&AtomicU64, &AtomicU64),
    ) -> impl Fn(&ProgressState, &mut dyn std::fmt::Write) + Clone + Send + Sync + 'static {
        let counters = self.counters.clone();
        move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let (files, bytes) = pick(&counters);
            let files = files.load(Ordering::Relaxed);
            let bytes = bytes.load(Ordering::Relaxed);
            let _ = write!(w, "{files} files, {}", HumanBytes(bytes));
        }
    }

    /// Grows the bar's length to the bytes to do, never shrinking it.
    fn grow_length(&self) {
        if let Some(bar) = &self.bar {
            let _guard = self.length.lock();
            let total = self.counters.total_bytes();
            if bar.length().is_none_or(|length| total > length) {
                bar.set_length(total);
            }
        }
    }

    /// Ends the operation's progress: removes the bar, or writes the last
    /// JSON line (phase `done` and percent 1 when it `succeeded`, else
    /// phase `stopped` with the counts where they were).
    pub fn finish(&self, succeeded: bool) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let json = self.json.lock().ok().and_then(|mut json| json.take());
        if let Some(json) = json {
            json.finish(&self.counters, succeeded);
        }
    }

    /// Writes a line to stderr above the bar (made terminal-safe).
    pub fn print(&self, line: &str) {
        let line = terminal_safe(line);
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.suspend(|| print_err(&line)),
            _ => print_err(&line),
        }
    }
}

/// The last `width` characters of `name`, an ellipsis first when cut: the
/// end of a path says most about it.
fn tail(name: &str, width: usize) -> String {
    let count = name.chars().count();
    if count <= width {
        return name.to_string();
    }
    let kept: String = name.chars().skip(count - width + 1).collect();
    format!("…{kept}")
}

impl Progress for CliProgress {
    fn shows_totals(&self) -> bool {
        self.mode != ProgressMode::None
    }

    fn message(&self, text: &str) {
        if !self.quiet {
            self.print(&format!("snap: {text}"));
        }
    }

    fn warn(&self, text: &str) {
        self.print(&format!("warning: {text}"));
    }

    fn phase(&self, phase: Phase) {
        self.counters
            .scanning
            .store(phase == Phase::Scanning, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            if phase == Phase::Working {
                self.grow_length();
            }
            bar.set_style(self.style(phase));
        }
    }

    fn found(&self, files: u64, bytes: u64) {
        self.counters
            .files_found
            .fetch_add(files, Ordering::Relaxed);
        self.counters
            .bytes_found
            .fetch_add(bytes, Ordering::Relaxed);
        if !self.counters.scanning.load(Ordering::Relaxed) {
            self.grow_length();
        }
    }

    fn add_bytes(&self, bytes: u64) {
        self.counters.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            if bar.length().is_some_and(|length| bar.position() > length) {
                self.grow_length();
            }
        }
    }

    fn add_files(&self, files: u64) {
        self.counters.files_done.fetch_add(files, Ordering::Relaxed);
    }

    fn current(&self, name: &str) {
        if let Ok(mut items) = self.counters.current.lock() {
            if items.len() == CURRENT_ITEMS {
                items.pop_front();
            }
            items.push_back(name.to_string());
        }
    }
}
