//! The files and the thread that writes them.
//!
//! Two files in `persistence_location`: the snapshot (`persistence_file`, default
//! `culex.db`) and its journal (`culex.db.journal`). The loop never touches them: it
//! sends batches of records and snapshots over a channel to one writer thread, which
//! appends, calls `fdatasync` within the sync window (or at once, for `persistence_sync
//! ack`, batching every record that arrived meanwhile into one sync: group commit), and
//! reports the last durable batch back through the loop's waker.
//!
//! A snapshot is written to a temporary file, synced, renamed over the old one, and the
//! directory synced; then a new journal (its header names the snapshot's generation)
//! replaces the old one the same way. A crash between the two leaves the new snapshot and
//! the old journal, whose older generation tells start-up to ignore it.
//!
//! A write error (a full disk, a failing card) is logged, raises [`Store::healthy`] to
//! false, and stops journal writes until a snapshot succeeds; the loop asks for one every
//! few seconds. The broker keeps serving meanwhile.

use super::record::{self, decode, decode_header, encode_header, FileKind, HeaderError, Record};
use super::replay::State;
use log::{error, info, warn};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Sync within the sync interval; acknowledge at once.
    Periodic,
    /// Acknowledge QoS 1/2 only once the message is durable.
    Ack,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub dir: PathBuf,
    pub file: String,
    pub sync: SyncMode,
    pub sync_interval: Duration,
    /// Mosquitto's `autosave_interval`: seconds (or, with `autosave_on_changes`, records)
    /// between snapshots at most; 0: by journal size only.
    pub autosave_interval: u32,
    pub autosave_on_changes: bool,
}

enum Command {
    Append {
        batch: u64,
        bytes: Vec<u8>,
    },
    Snapshot {
        generation: u64,
        batch: u64,
        bytes: Vec<u8>,
    },
    Stop,
}

#[derive(Default)]
struct Shared {
    durable: AtomicU64,
    healthy: AtomicBool,
    bytes_written: AtomicU64,
    waker: Mutex<Option<Arc<mio::Waker>>>,
}

impl Shared {
    fn set_durable(&self, batch: u64) {
        self.durable.fetch_max(batch, Ordering::Release);
        if let Ok(w) = self.waker.lock() {
            if let Some(w) = w.as_ref() {
                let _ = w.wake();
            }
        }
    }
}

/// The loop's handle on the files.
pub struct Store {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    options: StoreOptions,
    snapshot_path: PathBuf,
    generation: u64,
    journal_bytes: u64,
    snapshot_bytes: u64,
    last_snapshot: Instant,
    /// Set after a write error until a snapshot has been sent.
    resync_after: Option<Instant>,
}

/// What start-up found on disk.
pub struct Loaded {
    pub state: State,
    pub snapshot_records: u64,
    pub journal_records: u64,
    /// Bytes set aside because they were damaged.
    pub damaged_bytes: u64,
}

const JOURNAL_SUFFIX: &str = ".journal";
const TMP_SUFFIX: &str = ".tmp";
/// A journal this large (or as large as the snapshot, if that is larger) is compacted.
const MIN_COMPACT_BYTES: u64 = 1 << 20;
const RESYNC_DELAY: Duration = Duration::from_secs(5);

impl Store {
    /// Loads the snapshot and replays its journal, then starts the writer thread. The
    /// first thing to send is a snapshot ([`Store::snapshot`]) of the restored state.
    pub fn open(options: StoreOptions, now: Instant) -> Result<(Store, Loaded), String> {
        fs::create_dir_all(&options.dir).map_err(|e| {
            format!(
                "cannot create persistence_location {}: {e}",
                options.dir.display()
            )
        })?;
        let mut snapshot_path = options.dir.join(&options.file);
        if fs::read(&snapshot_path).is_ok_and(|b| b.starts_with(record::MOSQUITTO_MAGIC)) {
            let culex = PathBuf::from(format!("{}.culex", snapshot_path.display()));
            warn!(
                "{} is a Mosquitto database, which culex does not read; leaving it untouched and keeping culex's state in {}.",
                snapshot_path.display(),
                culex.display()
            );
            snapshot_path = culex;
        }
        let journal_path = with_suffix(&snapshot_path, JOURNAL_SUFFIX);
        for stale in [
            with_suffix(&snapshot_path, TMP_SUFFIX),
            with_suffix(&journal_path, TMP_SUFFIX),
        ] {
            let _ = fs::remove_file(stale);
        }
        let loaded = load(&snapshot_path, &journal_path, now)?;
        let (state, generation, snapshot_bytes, mut loaded) = loaded;
        loaded.state = state;
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            ..Shared::default()
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            rx,
            shared: shared.clone(),
            snapshot_path: snapshot_path.clone(),
            journal_path,
            journal: None,
            sync: options.sync,
            sync_interval: options.sync_interval,
            pending: VecDeque::new(),
            dirty_since: None,
            written_batch: 0,
            failed: false,
        };
        let thread = std::thread::Builder::new()
            .name("culex-persist".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the persistence thread: {e}"))?;
        Ok((
            Store {
                tx,
                thread: Some(thread),
                shared,
                options,
                snapshot_path,
                generation,
                journal_bytes: 0,
                snapshot_bytes,
                last_snapshot: now,
                resync_after: None,
            },
            loaded,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.snapshot_path
    }

    /// Wakes the loop when a batch becomes durable (strict mode) .
    pub fn set_waker(&self, waker: Arc<mio::Waker>) {
        if let Ok(mut w) = self.shared.waker.lock() {
            *w = Some(waker);
        }
    }

    pub fn append(&mut self, batch: u64, bytes: Vec<u8>) {
        self.journal_bytes += bytes.len() as u64;
        let _ = self.tx.send(Command::Append { batch, bytes });
    }

    /// A snapshot's records (from `Broker::write_snapshot`) covering batches up to
    /// `batch`; it starts a new generation.
    pub fn snapshot(&mut self, batch: u64, bytes: Vec<u8>, now: Instant) {
        self.generation += 1;
        self.snapshot_bytes = bytes.len() as u64;
        self.journal_bytes = 0;
        self.last_snapshot = now;
        self.resync_after = None;
        let _ = self.tx.send(Command::Snapshot {
            generation: self.generation,
            batch,
            bytes,
        });
    }

    /// Whether it is time to compact: the journal is as large as the snapshot (at least
    /// 1 MiB), `autosave_interval` passed (seconds, or records with
    /// `autosave_on_changes`), or a write failed and a snapshot should resync the files.
    pub fn wants_snapshot(&mut self, records: u64, now: Instant) -> bool {
        if !self.healthy() {
            let at = *self.resync_after.get_or_insert(now + RESYNC_DELAY);
            return now >= at;
        }
        if self.journal_bytes >= MIN_COMPACT_BYTES.max(self.snapshot_bytes) {
            return true;
        }
        let interval = u64::from(self.options.autosave_interval);
        if interval == 0 || records == 0 {
            return false;
        }
        if self.options.autosave_on_changes {
            records >= interval
        } else {
            // A snapshot costs its whole size: not for a journal much smaller than it.
            now.duration_since(self.last_snapshot) >= Duration::from_secs(interval)
                && self.journal_bytes >= self.snapshot_bytes / 8
        }
    }

    /// The last batch on disk.
    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// False after a write error, until a snapshot succeeds.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Bytes written to the files so far.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// Writes and syncs everything sent, then stops the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Moves the damaged tail of a file aside for inspection.
fn set_aside(path: &Path, tail: &[u8]) -> PathBuf {
    let aside = with_suffix(path, &format!(".damaged-{}", unix_now()));
    if let Err(e) = fs::write(&aside, tail) {
        warn!(
            "Could not keep the damaged bytes in {}: {e}",
            aside.display()
        );
    }
    aside
}

fn header_error(path: &Path, e: HeaderError) -> String {
    format!(
        "cannot read {}: {e}. Move it away to start with an empty state.",
        path.display()
    )
}

/// Replays records into `state`; returns how many were read and where they stop.
fn replay(state: &mut State, bytes: &[u8]) -> (u64, usize, Option<record::Damage>, bool) {
    let (mut count, mut at, mut ended) = (0, 0, false);
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        match decode(rest) {
            Ok(None) => return (count, at, None, ended),
            Ok(Some((r, n))) => {
                ended = r == Record::End;
                state.apply(&r);
                count += 1;
                at += n;
            }
            Err(damage) => return (count, at, Some(damage), ended),
        }
    }
}

type LoadResult = (State, u64, u64, Loaded);

fn load(snapshot_path: &Path, journal_path: &Path, now: Instant) -> Result<LoadResult, String> {
    let mut state = State::new(SystemTime::now(), now);
    let mut loaded = Loaded {
        state: State::default(),
        snapshot_records: 0,
        journal_records: 0,
        damaged_bytes: 0,
    };
    let mut generation = 0;
    let mut snapshot_bytes = 0;
    match fs::read(snapshot_path) {
        Ok(bytes) => {
            let header = decode_header(&bytes).map_err(|e| header_error(snapshot_path, e))?;
            if header.kind != FileKind::Snapshot {
                return Err(format!(
                    "{} is a journal, not a snapshot",
                    snapshot_path.display()
                ));
            }
            generation = header.generation;
            snapshot_bytes = bytes.len() as u64;
            let body = bytes.get(record::HEADER_LEN..).unwrap_or_default();
            let (count, at, damage, ended) = replay(&mut state, body);
            loaded.snapshot_records = count;
            if damage.is_some() || !ended {
                let tail = body.get(at..).unwrap_or_default();
                loaded.damaged_bytes += tail.len() as u64;
                let aside = set_aside(snapshot_path, tail);
                error!(
                    "The snapshot {} is damaged after {count} records ({}); kept what came before, the rest is in {}.",
                    snapshot_path.display(),
                    damage.map_or("it ends early".to_string(), |d| d.to_string()),
                    aside.display()
                );
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", snapshot_path.display())),
    }
    match fs::read(journal_path) {
        Ok(bytes) => {
            let header = decode_header(&bytes);
            match header {
                // A journal cut inside its header was being created: nothing in it.
                Err(HeaderError::TooShort) => {}
                Err(e) => return Err(header_error(journal_path, e)),
                Ok(h) if h.kind != FileKind::Journal => {
                    return Err(format!("{} is not a journal", journal_path.display()))
                }
                // Its records are in the snapshot (a crash during compaction).
                Ok(h) if h.generation < generation => {
                    info!(
                        "Ignoring {}: the snapshot is newer.",
                        journal_path.display()
                    )
                }
                Ok(_) => {
                    let body = bytes.get(record::HEADER_LEN..).unwrap_or_default();
                    let (count, at, damage, _) = replay(&mut state, body);
                    loaded.journal_records = count;
                    if let Some(damage) = damage {
                        let tail = body.get(at..).unwrap_or_default();
                        loaded.damaged_bytes += tail.len() as u64;
                        let aside = set_aside(journal_path, tail);
                        warn!(
                            "The journal {} ends with {} damaged bytes after {count} good records ({damage}; a write cut short by a crash?); they were set aside in {}.",
                            journal_path.display(),
                            tail.len(),
                            aside.display()
                        );
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", journal_path.display())),
    }
    if state.inconsistencies > 0 {
        warn!(
            "{} records referred to state that was not there; they were skipped.",
            state.inconsistencies
        );
    }
    Ok((state, generation, snapshot_bytes, loaded))
}

/// The writer thread.
struct Writer {
    rx: Receiver<Command>,
    shared: Arc<Shared>,
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    journal: Option<File>,
    sync: SyncMode,
    sync_interval: Duration,
    /// Commands received while batching a group commit, not yet handled.
    pending: VecDeque<Command>,
    /// When the first unsynced write happened.
    dirty_since: Option<Instant>,
    written_batch: u64,
    /// A write failed: journal writes stop until a snapshot succeeds.
    failed: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let command = match self.pending.pop_front() {
                Some(c) => Ok(c),
                None => match self.dirty_since {
                    Some(since) => {
                        let left =
                            (since + self.sync_interval).saturating_duration_since(Instant::now());
                        self.rx.recv_timeout(left)
                    }
                    None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                },
            };
            match command {
                Ok(Command::Append { batch, bytes }) => {
                    self.append(batch, &bytes);
                    if self.sync == SyncMode::Ack {
                        // Group commit: everything that arrived meanwhile shares the sync.
                        while let Ok(c) = self.rx.try_recv() {
                            match c {
                                Command::Append { batch, bytes } => self.append(batch, &bytes),
                                other => {
                                    self.pending.push_back(other);
                                    break;
                                }
                            }
                        }
                        self.sync();
                    }
                }
                Ok(Command::Snapshot {
                    generation,
                    batch,
                    bytes,
                }) => self.snapshot(generation, batch, &bytes),
                Err(RecvTimeoutError::Timeout) => self.sync(),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            }
        }
    }

    fn append(&mut self, batch: u64, bytes: &[u8]) {
        self.written_batch = batch;
        if self.failed {
            return;
        }
        let result = match self.journal.as_mut() {
            Some(f) => f.write_all(bytes),
            None => Err(io::Error::other("no journal file is open")),
        };
        match result {
            Ok(()) => {
                self.shared
                    .bytes_written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                self.dirty_since.get_or_insert_with(Instant::now);
            }
            Err(e) => self.fail("write to", &self.journal_path.clone(), e),
        }
    }

    fn sync(&mut self) {
        if self.dirty_since.take().is_some() && !self.failed {
            if let Some(f) = self.journal.as_ref() {
                if let Err(e) = f.sync_data() {
                    self.fail("sync", &self.journal_path.clone(), e);
                }
            }
        }
        // After a failure the batches are lost to disk, but acknowledgements must not
        // wait forever: the broker keeps serving, degraded (and says so).
        self.shared.set_durable(self.written_batch);
    }

    fn fail(&mut self, what: &str, path: &Path, e: io::Error) {
        error!(
            "Persistence degraded: cannot {what} {}: {e}. Changes are kept in memory only until a snapshot succeeds (retried every {} s).",
            path.display(),
            RESYNC_DELAY.as_secs()
        );
        self.failed = true;
        self.journal = None;
        self.shared.healthy.store(false, Ordering::Release);
    }

    fn snapshot(&mut self, generation: u64, batch: u64, bytes: &[u8]) {
        // What the old journal has unsynced is in the snapshot.
        self.dirty_since = None;
        match self.write_snapshot(generation, bytes) {
            Ok(journal) => {
                self.shared.bytes_written.fetch_add(
                    (bytes.len() + 2 * record::HEADER_LEN) as u64,
                    Ordering::Relaxed,
                );
                self.journal = Some(journal);
                if self.failed {
                    info!(
                        "Persistence recovered: wrote {}.",
                        self.snapshot_path.display()
                    );
                }
                self.failed = false;
                self.shared.healthy.store(true, Ordering::Release);
            }
            Err(e) => self.fail("write the snapshot", &self.snapshot_path.clone(), e),
        }
        self.written_batch = self.written_batch.max(batch);
        self.shared.set_durable(self.written_batch);
    }

    fn write_snapshot(&self, generation: u64, bytes: &[u8]) -> io::Result<File> {
        let dir = self.snapshot_path.parent().unwrap_or(Path::new("."));
        let tmp = with_suffix(&self.snapshot_path, TMP_SUFFIX);
        let mut f = File::create(&tmp)?;
        f.write_all(&encode_header(FileKind::Snapshot, generation))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.snapshot_path)?;
        sync_dir(dir)?;
        let tmp = with_suffix(&self.journal_path, TMP_SUFFIX);
        let mut f = File::create(&tmp)?;
        f.write_all(&encode_header(FileKind::Journal, generation))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.journal_path)?;
        sync_dir(dir)?;
        OpenOptions::new().append(true).open(&self.journal_path)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
