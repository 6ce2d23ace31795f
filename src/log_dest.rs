//! Mosquitto's logging: which lines are wanted (`log_type`), where they go (`log_dest`:
//! stdout, stderr, a file, syslog, `$SYS/broker/log/...` topics), and how they are stamped
//! (`log_timestamp`, `log_timestamp_format`). It is the process's `log` backend; the `log`
//! macros elsewhere in culex do not know it exists.
//!
//! The `log` crate's levels and targets map to Mosquitto's log types: `error!` is error,
//! `warn!` warning, `info!` notice (Mosquitto logs connects, disconnects and start-up as
//! notices), `info!(target: "subscribe" | "unsubscribe")` those types, `debug!` debug.
//! As in Mosquitto, one `log_type` set applies to every destination, except that debug
//! lines are never published on a topic (they would be about publishing them), and
//! syslog gets no time stamp of ours (the syslog daemon adds its own).
//!
//! Lines for `log_dest topic` cannot be published from here: the broker belongs to the
//! loop. They wait in a bounded queue that the loop empties into
//! [`crate::broker::Broker::publish_log`] once per iteration ([`publish_topic_lines`]);
//! lines logged while that runs are not queued again, so publishing a log line never
//! produces another.
//!
//! A file (`log_dest file`) is opened for appending and reopened by [`reopen`] (SIGHUP,
//! and SIGRTMIN as in Mosquitto 2.1), for logrotate's move-then-signal.
//!
//! Under systemd, standard output and error are usually the journal's stream socket,
//! whose device and inode systemd puts in `JOURNAL_STREAM` (systemd.exec(5)). Lines
//! written there start with their priority, `<3>` (error) to `<7>` (debug), as
//! sd-daemon(3) describes, so that `journalctl -p warning` shows warnings and errors
//! only. A stream that is not the one `JOURNAL_STREAM` names (a redirect by a wrapper,
//! a child that inherited the variable) gets plain lines.

use crate::config::{Config, LogDest, LogTypes};
use crate::localtime;
use jiff::{Timestamp, ZonedDateTime as Zoned};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Log lines waiting for the loop to publish them on `$SYS/broker/log/...`. More means
/// the loop is not running yet (start-up) or lines come faster than it publishes them:
/// the oldest are dropped.
const TOPIC_QUEUE_LIMIT: usize = 1_000;

/// The local syslog socket, as glibc's syslog(3) uses it.
const SYSLOG_SOCKET: &str = "/dev/log";

/// Syslog facilities (RFC 3164 section 4.1.1): daemon, and local0 for `log_facility 0`.
const FACILITY_DAEMON: u8 = 3;
const FACILITY_LOCAL0: u8 = 16;

/// Mosquitto's log types (`log_type`), one per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    Error,
    Warning,
    Notice,
    Information,
    Subscribe,
    Unsubscribe,
    Debug,
}

impl LogType {
    /// The type of a `log` record: its level, and its target for subscribe/unsubscribe.
    pub fn of(metadata: &Metadata<'_>) -> LogType {
        match metadata.level() {
            Level::Error => LogType::Error,
            Level::Warn => LogType::Warning,
            Level::Info => match metadata.target() {
                "subscribe" => LogType::Subscribe,
                "unsubscribe" => LogType::Unsubscribe,
                "information" => LogType::Information,
                _ => LogType::Notice,
            },
            Level::Debug | Level::Trace => LogType::Debug,
        }
    }

    /// Whether `log_type` asks for this type. `log_type information` also shows notices,
    /// as culex logged before it told them apart (both are `info!`).
    pub fn is_wanted(self, types: &LogTypes) -> bool {
        match self {
            LogType::Error => types.error,
            LogType::Warning => types.warning,
            LogType::Notice | LogType::Information => types.notice || types.information,
            LogType::Subscribe => types.subscribe,
            LogType::Unsubscribe => types.unsubscribe,
            LogType::Debug => types.debug,
        }
    }

    /// Mosquitto's topic for lines of this type (`logging.c`); none for debug.
    pub fn topic(self) -> Option<&'static str> {
        match self {
            LogType::Error => Some("$SYS/broker/log/E"),
            LogType::Warning => Some("$SYS/broker/log/W"),
            LogType::Notice => Some("$SYS/broker/log/N"),
            LogType::Information => Some("$SYS/broker/log/I"),
            LogType::Subscribe => Some("$SYS/broker/log/M/subscribe"),
            LogType::Unsubscribe => Some("$SYS/broker/log/M/unsubscribe"),
            LogType::Debug => None,
        }
    }

    /// RFC 3164 severity, as Mosquitto maps its types (subscribe lines are notices).
    pub fn syslog_severity(self) -> u8 {
        match self {
            LogType::Error => 3,
            LogType::Warning => 4,
            LogType::Notice | LogType::Subscribe | LogType::Unsubscribe => 5,
            LogType::Information => 6,
            LogType::Debug => 7,
        }
    }
}

/// The logging part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    pub dest: LogDest,
    pub types: LogTypes,
    /// `log_timestamp`.
    pub timestamp: bool,
    /// `log_timestamp_format`; `None` is Mosquitto's default, Unix time in seconds.
    pub timestamp_format: Option<String>,
    /// `log_facility` (local0..local7); `None` is daemon.
    pub facility: Option<u8>,
}

impl LogOptions {
    pub fn from_config(config: &Config) -> LogOptions {
        LogOptions {
            dest: config.log_dest.clone(),
            types: config.log_type,
            timestamp: config.log_timestamp,
            timestamp_format: config.log_timestamp_format.clone(),
            facility: config.log_facility,
        }
    }

    /// `-q` (Mosquitto 2.1): no logging at all.
    pub fn quiet() -> LogOptions {
        LogOptions {
            dest: LogDest::none(),
            types: LogTypes::none(),
            timestamp: false,
            timestamp_format: None,
            facility: None,
        }
    }

    /// The most verbose level any wanted type needs.
    fn max_level(&self) -> LevelFilter {
        let t = &self.types;
        if t.debug {
            LevelFilter::Debug
        } else if t.notice || t.information || t.subscribe || t.unsubscribe {
            LevelFilter::Info
        } else if t.warning {
            LevelFilter::Warn
        } else if t.error {
            LevelFilter::Error
        } else {
            LevelFilter::Off
        }
    }
}

/// The time stamp in front of a line: `format` as strftime(3) would write it in local
/// time, or Unix time in seconds without one. A format jiff cannot write gives
/// "Time error", as Mosquitto prints when strftime fails.
pub fn format_timestamp(format: Option<&str>, now: &Zoned) -> String {
    match format {
        None => now.timestamp().as_second().to_string(),
        Some(f) => jiff::fmt::strtime::format(f, now).unwrap_or_else(|_| "Time error".into()),
    }
}

/// One syslog datagram as glibc's syslog(3) sends it to the local socket: RFC 3164's
/// `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` without the HOSTNAME field (the local daemon
/// knows it, and journald would read a host name as the tag).
pub fn syslog_frame(facility: Option<u8>, severity: u8, now: &Zoned, message: &str) -> String {
    let facility = facility.map_or(FACILITY_DAEMON, |n| FACILITY_LOCAL0 + n.min(7));
    let stamp = jiff::fmt::strtime::format("%b %e %H:%M:%S", now).unwrap_or_default();
    format!(
        "<{}>{stamp} culex[{}]: {message}",
        u16::from(facility) * 8 + u16::from(severity),
        std::process::id()
    )
}

/// The open destinations of one configuration.
struct Outputs {
    options: LogOptions,
    /// Whether standard output / error is the journal (see the module docs).
    is_stdout_journal: bool,
    is_stderr_journal: bool,
    file: Option<File>,
    syslog: Option<UnixDatagram>,
    topic_lines: VecDeque<(&'static str, String)>,
}

impl Outputs {
    fn open(options: LogOptions) -> io::Result<Outputs> {
        let file = match &options.dest.file {
            Some(path) => Some(open_log_file(path)?),
            None => None,
        };
        let syslog = if options.dest.syslog {
            connect_syslog(Path::new(SYSLOG_SOCKET)).ok()
        } else {
            None
        };
        let journal = journal_stream();
        Ok(Outputs {
            options,
            is_stdout_journal: journal.is_some_and(|j| is_stream(&io::stdout(), j)),
            is_stderr_journal: journal.is_some_and(|j| is_stream(&io::stderr(), j)),
            file,
            syslog,
            topic_lines: VecDeque::new(),
        })
    }

    fn write(&mut self, kind: LogType, message: &str) {
        let message = clipped(message, MAX_LINE);
        let LogDest {
            stdout,
            stderr,
            syslog,
            topic,
            ..
        } = self.options.dest;
        let wants_stamp = stdout || stderr || self.file.is_some() || syslog;
        let now = wants_stamp.then(Timestamp::now);
        if stdout || stderr || self.file.is_some() {
            let mut line = match (now, self.options.timestamp) {
                // Unix seconds, the default, need no time zone: the zone is read only
                // when a format or syslog asks for local time.
                (Some(now), true) => match self.options.timestamp_format.as_deref() {
                    None => format!("{}: {message}", now.as_second()),
                    format => format!(
                        "{}: {message}",
                        format_timestamp(format, &localtime::at(now))
                    ),
                },
                _ => message.to_string(),
            };
            clip(&mut line, MAX_LINE);
            line.push('\n');
            // A destination that cannot be written loses the line, as in Mosquitto;
            // there is nowhere to report it.
            let prefixed = (self.is_stdout_journal || self.is_stderr_journal)
                .then(|| format!("<{}>{line}", kind.syslog_severity()));
            let for_journal = |is_journal: bool| match (&prefixed, is_journal) {
                (Some(p), true) => p.as_bytes(),
                _ => line.as_bytes(),
            };
            if stdout {
                let _ = io::stdout()
                    .lock()
                    .write_all(for_journal(self.is_stdout_journal));
            }
            if stderr {
                let _ = io::stderr()
                    .lock()
                    .write_all(for_journal(self.is_stderr_journal));
            }
            if let Some(file) = &mut self.file {
                let _ = file.write_all(line.as_bytes());
            }
        }
        if let (true, Some(now)) = (syslog, now) {
            let now = localtime::at(now);
            let frame = syslog_frame(self.options.facility, kind.syslog_severity(), &now, message);
            self.send_syslog(frame.as_bytes());
        }
        if let (true, Some(topic)) = (topic, kind.topic()) {
            if PUBLISHING.with(Cell::get) {
                return;
            }
            // Mosquitto stamps topic lines with Unix time whatever the format.
            let line = if self.options.timestamp {
                format!("{}: {message}", unix_seconds())
            } else {
                message.to_string()
            };
            if self.topic_lines.len() == TOPIC_QUEUE_LIMIT {
                self.topic_lines.pop_front();
            }
            self.topic_lines.push_back((topic, line));
            TOPIC_LINES_WAITING.store(true, Ordering::Release);
        }
    }

    /// Sends without blocking the loop: a full socket loses the line. A syslog daemon
    /// that restarted is reconnected once.
    fn send_syslog(&mut self, frame: &[u8]) {
        if let Some(socket) = &self.syslog {
            match socket.send(frame) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {}
            }
        }
        self.syslog = connect_syslog(Path::new(SYSLOG_SOCKET)).ok();
        if let Some(socket) = &self.syslog {
            let _ = socket.send(frame);
        }
    }
}

/// The longest line written, in bytes, time stamp included: Mosquitto's 1,000-byte
/// buffer less its NUL. A client id or topic of 65,535 bytes makes a line of that size
/// otherwise, and a reader that leaves a pipe full (Mosquitto's own test harness reads
/// the broker's stderr only after it stops) would block the loop on the write.
const MAX_LINE: usize = 999;

/// `s` cut to at most `max` bytes, at a character boundary.
fn clipped(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn clip(s: &mut String, max: usize) {
    let len = clipped(s, max).len();
    s.truncate(len);
}

fn open_log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "Unable to open log file {} for writing: {e}.",
                    path.display()
                ),
            )
        })
}

/// The device and inode systemd gives in `JOURNAL_STREAM` ("DEV:INO", decimal).
fn journal_stream() -> Option<(u64, u64)> {
    parse_journal_stream(std::env::var_os("JOURNAL_STREAM")?.to_str()?)
}

fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Whether `stream`'s file descriptor is the file or socket with this device and inode.
fn is_stream(stream: &impl std::os::fd::AsFd, (dev, ino): (u64, u64)) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
        return false;
    };
    File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Whether `log_dest file PATH` could be opened for appending, as start-up opens it, for
/// `culex -t`. A file that does not exist yet is not created (a check run as root must
/// not leave a root-owned log file behind): its directory must exist.
pub fn check_log_file(path: &Path) -> io::Result<()> {
    if path.exists() {
        return OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "Unable to open log file {} for writing: {e}.",
                        path.display()
                    ),
                )
            });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "Unable to open log file {} for writing: the directory {} does not exist.",
                path.display(),
                dir.display()
            ),
        ))
    }
}

fn connect_syslog(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct State {
    outputs: Outputs,
    /// `RUST_LOG`, when set, chooses the lines instead of `log_type`.
    filter: Option<env_filter::Filter>,
}

/// The process's logger, installed by [`init`].
struct Logger {
    state: Mutex<Option<State>>,
}

static LOGGER: Logger = Logger {
    state: Mutex::new(None),
};

/// Whether the topic queue may hold lines: the loop looks at this every iteration
/// without taking the lock.
static TOPIC_LINES_WAITING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while the loop publishes log lines: what is logged meanwhile is not queued.
    static PUBLISHING: Cell<bool> = const { Cell::new(false) };
}

impl Logger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        // A panic while holding the lock cannot leave the outputs half-changed in a way
        // that matters to the next line; keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match &*self.lock() {
            Some(State {
                filter: Some(filter),
                ..
            }) => filter.enabled(metadata),
            Some(state) => {
                metadata.level() <= Level::Debug
                    && LogType::of(metadata).is_wanted(&state.outputs.options.types)
            }
            None => false,
        }
    }

    fn log(&self, record: &Record<'_>) {
        let mut guard = self.lock();
        let Some(state) = guard.as_mut() else {
            return;
        };
        let wanted = match &state.filter {
            Some(filter) => filter.matches(record),
            None => {
                record.level() <= Level::Debug
                    && LogType::of(record.metadata()).is_wanted(&state.outputs.options.types)
            }
        };
        if wanted {
            let message = record.args().to_string();
            state
                .outputs
                .write(LogType::of(record.metadata()), &message);
        }
    }

    fn flush(&self) {}
}

/// Installs the logger with `options`; `filter` (from `RUST_LOG`) overrides `log_type`.
/// Fails if the log file cannot be opened, or if a logger is already installed.
pub fn init(options: LogOptions, filter: Option<env_filter::Filter>) -> io::Result<()> {
    let max_level = match &filter {
        Some(f) => f.filter(),
        None => options.max_level(),
    };
    let outputs = Outputs::open(options)?;
    *LOGGER.lock() = Some(State { outputs, filter });
    log::set_logger(&LOGGER).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(max_level);
    Ok(())
}

/// Switches to new options (a reloaded configuration). If the new log file cannot be
/// opened, the running options stay and the error is returned.
pub fn reconfigure(options: LogOptions) -> io::Result<()> {
    let mut guard = LOGGER.lock();
    let Some(state) = guard.as_mut() else {
        return Ok(());
    };
    if state.outputs.options == options {
        drop(guard);
        return reopen();
    }
    let mut outputs = Outputs::open(options)?;
    outputs.topic_lines = std::mem::take(&mut state.outputs.topic_lines);
    if state.filter.is_none() {
        log::set_max_level(outputs.options.max_level());
    }
    state.outputs = outputs;
    Ok(())
}

/// Reopens the log file (after logrotate moved it), reconnects to syslog and reads the
/// time zone again. If the file cannot be opened, lines go to the other destinations
/// until the next reopen.
pub fn reopen() -> io::Result<()> {
    localtime::refresh();
    let mut guard = LOGGER.lock();
    let Some(state) = guard.as_mut() else {
        return Ok(());
    };
    let outputs = &mut state.outputs;
    if outputs.options.dest.syslog {
        outputs.syslog = connect_syslog(Path::new(SYSLOG_SOCKET)).ok();
    }
    let Some(path) = outputs.options.dest.file.clone() else {
        return Ok(());
    };
    outputs.file = None;
    outputs.file = Some(open_log_file(&path)?);
    Ok(())
}

/// The log file in use, if any.
pub fn log_file() -> Option<PathBuf> {
    LOGGER
        .lock()
        .as_ref()
        .and_then(|s| s.outputs.options.dest.file.clone())
}

/// Hands every queued `log_dest topic` line to `publish(topic, line)`. Called by the loop
/// once per iteration; cheap when nothing is queued. Lines logged by `publish` itself
/// are not queued.
pub fn publish_topic_lines(mut publish: impl FnMut(&str, &str)) {
    if !TOPIC_LINES_WAITING.swap(false, Ordering::Acquire) {
        return;
    }
    let lines = match LOGGER.lock().as_mut() {
        Some(state) => std::mem::take(&mut state.outputs.topic_lines),
        None => return,
    };
    PUBLISHING.with(|p| p.set(true));
    for (topic, line) in &lines {
        publish(topic, line);
    }
    PUBLISHING.with(|p| p.set(false));
}

/// Whether [`publish_topic_lines`] has lines to publish (the loop should not sleep).
pub fn has_topic_lines() -> bool {
    TOPIC_LINES_WAITING.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    /// 2024-07-14 17:31:05 UTC, a Sunday.
    fn utc() -> Zoned {
        jiff::Timestamp::from_second(1_720_978_265)
            .unwrap()
            .to_zoned_datetime(TimeZone::UTC)
    }

    fn in_zone(offset_hours: i8) -> Zoned {
        jiff::Timestamp::from_second(1_720_978_265)
            .unwrap()
            .to_zoned_datetime(TimeZone::fixed(jiff::tz::offset(offset_hours)))
    }

    #[test]
    fn default_timestamp_is_unix_seconds() {
        assert_eq!(format_timestamp(None, &utc()), "1720978265");
        assert_eq!(format_timestamp(None, &in_zone(2)), "1720978265");
    }

    #[test]
    fn timestamp_format_takes_strftime_specifiers() {
        let cases = [
            ("%Y-%m-%dT%H:%M:%S", "2024-07-14T17:31:05"),
            ("%F %T", "2024-07-14 17:31:05"),
            ("%s", "1720978265"),
            ("%b %e %a", "Jul 14 Sun"),
            ("%d/%m/%y %R", "14/07/24 17:31"),
            ("%j %%", "196 %"),
            ("%z", "+0000"),
        ];
        for (format, expected) in cases {
            assert_eq!(format_timestamp(Some(format), &utc()), expected, "{format}");
        }
    }

    #[test]
    fn timestamp_is_local_time_of_the_zone() {
        assert_eq!(
            format_timestamp(Some("%H:%M %z"), &in_zone(2)),
            "19:31 +0200"
        );
        assert_eq!(
            format_timestamp(Some("%F %T%:z"), &in_zone(-5)),
            "2024-07-14 12:31:05-05:00"
        );
    }

    #[test]
    fn space_padded_day_is_padded() {
        let early = jiff::Timestamp::from_second(1_720_000_000)
            .unwrap()
            .to_zoned_datetime(TimeZone::UTC); // 2024-07-03
        assert_eq!(format_timestamp(Some("%b %e"), &early), "Jul  3");
    }

    #[test]
    fn unknown_specifier_is_time_error_as_in_mosquitto() {
        assert_eq!(format_timestamp(Some("%Ez"), &utc()), "Time error");
    }

    #[test]
    fn long_lines_are_clipped_as_mosquitto_clips_them_at_a_char_boundary() {
        assert_eq!(clipped("short", MAX_LINE), "short");
        let id = "a".repeat(65_000);
        assert_eq!(clipped(&id, MAX_LINE).len(), 999);
        // 'é' is two bytes: a cut inside it moves back to its start.
        let text = format!("{}é", "a".repeat(998));
        assert_eq!(clipped(&text, MAX_LINE), "a".repeat(998));
        let mut line = format!("1796295174: Client {id} closed its connection.");
        clip(&mut line, MAX_LINE);
        assert_eq!(line.len(), 999);
    }

    #[test]
    fn syslog_frame_is_rfc3164_without_host() {
        let pid = std::process::id();
        // daemon (3) * 8 + notice (5)
        assert_eq!(
            syslog_frame(None, 5, &utc(), "New client connected."),
            format!("<29>Jul 14 17:31:05 culex[{pid}]: New client connected.")
        );
        // local0 (16) * 8 + error (3); local7 (23) * 8 + debug (7)
        assert!(syslog_frame(Some(0), 3, &utc(), "x").starts_with("<131>Jul 14 "));
        assert!(syslog_frame(Some(7), 7, &utc(), "x").starts_with("<191>Jul 14 "));
        let early = jiff::Timestamp::from_second(1_720_000_000)
            .unwrap()
            .to_zoned_datetime(TimeZone::UTC);
        assert!(syslog_frame(None, 6, &early, "x").starts_with("<30>Jul  3 09:46:40 culex["));
    }

    #[test]
    fn syslog_frames_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("culex-syslog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let daemon = UnixDatagram::bind(&path).unwrap();
        let socket = connect_syslog(&path).unwrap();
        let frame = syslog_frame(Some(2), 4, &utc(), "Client x disconnected.");
        socket.send(frame.as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], frame.as_bytes());
        assert!(frame.starts_with("<148>"), "{frame}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn journal_stream_is_dev_colon_ino() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn a_stream_is_recognised_by_device_and_inode() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("culex-journal-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        assert!(is_stream(&file, (meta.dev(), meta.ino())));
        assert!(!is_stream(&file, (meta.dev(), meta.ino() + 1)));
        let _ = std::fs::remove_file(&path);
    }

    /// sd-daemon(3)'s levels, as `journalctl -p` filters them.
    #[test]
    fn journal_priorities_are_sd_daemon_levels() {
        assert_eq!(LogType::Error.syslog_severity(), 3);
        assert_eq!(LogType::Warning.syslog_severity(), 4);
        assert_eq!(LogType::Notice.syslog_severity(), 5);
        assert_eq!(LogType::Information.syslog_severity(), 6);
        assert_eq!(LogType::Debug.syslog_severity(), 7);
    }

    #[test]
    fn log_types_map_from_levels_and_targets() {
        let meta = |level, target| Metadata::builder().level(level).target(target).build();
        assert_eq!(LogType::of(&meta(Level::Error, "culex")), LogType::Error);
        assert_eq!(LogType::of(&meta(Level::Warn, "culex")), LogType::Warning);
        assert_eq!(
            LogType::of(&meta(Level::Info, "culex::broker")),
            LogType::Notice
        );
        assert_eq!(
            LogType::of(&meta(Level::Info, "subscribe")),
            LogType::Subscribe
        );
        assert_eq!(
            LogType::of(&meta(Level::Info, "unsubscribe")),
            LogType::Unsubscribe
        );
        assert_eq!(LogType::of(&meta(Level::Debug, "culex")), LogType::Debug);
        assert_eq!(LogType::Notice.topic(), Some("$SYS/broker/log/N"));
        assert_eq!(
            LogType::Subscribe.topic(),
            Some("$SYS/broker/log/M/subscribe")
        );
        assert_eq!(LogType::Debug.topic(), None);
    }

    #[test]
    fn log_type_sets_choose_types() {
        let mut types = LogTypes::none();
        assert!(!LogType::Error.is_wanted(&types));
        types.subscribe = true;
        assert!(LogType::Subscribe.is_wanted(&types));
        assert!(!LogType::Unsubscribe.is_wanted(&types));
        assert!(!LogType::Notice.is_wanted(&types));
        let defaults = LogTypes::default();
        assert!(LogType::Notice.is_wanted(&defaults));
        assert!(!LogType::Debug.is_wanted(&defaults));
        assert_eq!(LogOptions::quiet().max_level(), LevelFilter::Off);
    }
}
