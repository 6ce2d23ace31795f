//! The files and the thread that syncs them.
//!
//! Files in `persistence_location`: the snapshot (`persistence_file`, default
//! `culex.db`) and its journal (`culex.db.journal`). The loop appends each iteration's
//! records to the journal itself (a `write` into the page cache: a process crash or
//! `kill -9` loses nothing acknowledged) and never waits for the disk: one writer thread
//! calls `fdatasync` within the sync window (for `persistence_sync ack`: as soon as a
//! batch is written, but at most once per [`ACK_SYNC_GAP`], with every batch that
//! arrived meanwhile in one sync: group commit), reports the last durable batch through
//! the loop's waker, and writes snapshots. The directory is locked (`lock.rs`): one
//! broker per directory.
//!
//! Compaction: the loop starts a new journal (`culex.db.journal.next`, generation N+1)
//! and goes on appending there, and hands the snapshot to the writer, which syncs the old
//! journal, writes the snapshot to a temporary file, syncs it, renames it over the old
//! one, syncs the directory, then syncs the new journal and renames it over the old
//! journal. Whatever a crash interrupts, start-up finds a consistent set: the old
//! snapshot and journal followed by the next journal, or the new snapshot followed by the
//! next journal. It needs the new snapshot's size free; a failed attempt removes its
//! temporary file.
//!
//! Degraded: a write or sync error (a full disk, a read-only file system, a failing
//! card), at start-up or later, is logged once and makes [`Store::healthy`] false. The
//! journal that failed is abandoned (after a failed `fsync` its pages may be gone: it is
//! never trusted again) and the broker serves from memory. The loop asks for a full
//! snapshot after [`RETRY_FIRST`], then at doubling intervals up to [`RETRY_MAX`]; that
//! snapshot is written under a generation above every file on disk, so the files it
//! replaces (journal, next journal, old snapshot) are removed only once it is durable.
//! Records appended while it is written wait in memory (at most
//! [`RECOVERY_BUFFER_MAX`]) and go to its new journal. [`Store::durable`] never counts a
//! batch that did not reach the disk: in `ack` mode the broker holds acknowledgements
//! while degraded ([`Store::degraded_since`] says since when).

use super::fsio::{self, with_suffix, TMP_SUFFIX};
use super::load::{self, Continue, Loaded, Paths};
use super::lock;
use super::record::{self, encode_header, FileKind};
use log::{debug, error, info, warn};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// What the store has done and can do, for `$SYS/broker/persistence/...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// False while nothing reaches the disk (`state`: "degraded"); the broker serves
    /// from memory and the store retries.
    pub healthy: bool,
    /// Records read at start-up (snapshot and journals).
    pub records_recovered: u64,
    /// Records that could not be read at start-up (at least this many).
    pub records_lost: u64,
    /// Bytes that held no readable record at start-up.
    pub damaged_bytes: u64,
    /// Files moved aside whole at start-up (empty, unknown version, unreadable).
    pub files_set_aside: u64,
    pub bytes_written: u64,
    /// `fsync`/`fdatasync` calls made.
    pub syncs: u64,
    /// The last batch on disk.
    pub durable: u64,
}

/// In `ack` mode, syncs are at least this far apart: under load every batch that arrives
/// meanwhile shares one sync (at most 100 per second, each adding at most this much to an
/// acknowledgement's wait). An SD card rewrites a whole page per sync.
pub const ACK_SYNC_GAP: Duration = Duration::from_millis(10);
/// The first retry after a write error; each failed retry doubles the wait.
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// Records appended while a recovery snapshot is written are kept in memory up to this;
/// beyond it they are dropped and another snapshot follows at once.
pub const RECOVERY_BUFFER_MAX: usize = 8 << 20;
/// A journal this large (or as large as the snapshot, if that is larger) is compacted.
const MIN_COMPACT_BYTES: u64 = 1 << 20;

const JOURNAL_SUFFIX: &str = ".journal";
const NEXT_SUFFIX: &str = ".next";

enum Command {
    /// The loop wrote batches up to `batch` into `file`.
    Written {
        batch: u64,
        file: Arc<File>,
    },
    /// A compaction: `old` was the journal until now, `new` is the next journal.
    Snapshot {
        generation: u64,
        batch: u64,
        bytes: Vec<u8>,
        old: Arc<File>,
        new: Arc<File>,
    },
    /// A full snapshot replacing whatever is on disk, after a write error.
    Recover {
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
    /// Failed attempts in a row, for the backoff.
    failures: AtomicU32,
    compacting: AtomicBool,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
    /// A recovery snapshot finished: its new journal, or `None` if it failed.
    recovered: Mutex<Option<Option<File>>>,
    waker: Mutex<Option<Arc<mio::Waker>>>,
}

impl Shared {
    fn wake(&self) {
        if let Ok(w) = self.waker.lock() {
            if let Some(w) = w.as_ref() {
                let _ = w.wake();
            }
        }
    }

    fn set_durable(&self, batch: u64) {
        self.durable.fetch_max(batch, Ordering::Release);
        self.wake();
    }

    /// A write failed: logged once per degraded period.
    fn degrade(&self, what: &str, path: &Path, e: &io::Error) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        if self.healthy.swap(false, Ordering::AcqRel) {
            error!(
                "Persistence degraded: cannot {what} {}: {e}. Serving from memory; what changes now is not on disk (in persistence_sync ack mode it is not acknowledged) until a snapshot succeeds, retried after {} s and then at doubling intervals up to {} s.",
                path.display(),
                RETRY_FIRST.as_secs(),
                RETRY_MAX.as_secs()
            );
        } else {
            debug!(
                "Persistence still degraded: cannot {what} {}: {e}.",
                path.display()
            );
        }
        self.wake();
    }
}

/// Where the loop's records go.
enum Journal {
    Open(Arc<File>),
    /// Dropped: the files are behind memory until a full snapshot replaces them.
    Behind,
    /// A full snapshot is being written; records wait here for its new journal.
    Recovering {
        buffer: Vec<u8>,
        last_batch: u64,
        overflow: bool,
    },
}

/// The loop's handle on the files.
pub struct Store {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    options: StoreOptions,
    snapshot_path: PathBuf,
    next_path: PathBuf,
    journal: Journal,
    /// Above every file on disk.
    generation: u64,
    journal_bytes: u64,
    snapshot_bytes: u64,
    last_snapshot: Instant,
    /// While behind: the failure or attempt the next retry's wait counts from.
    retry_from: Option<Instant>,
    /// While behind without an error (records dropped during a recovery): at once.
    retry_now: bool,
    degraded_since: Option<Instant>,
    /// Start-up found damage that a snapshot should replace.
    compact_soon: bool,
    status: Status,
    _lock: Option<File>,
}

impl Store {
    /// Locks the directory, loads the snapshot and replays its journal (recovering what
    /// can be read of damaged files), then starts the writer thread. Fails only when
    /// another broker holds the directory or the thread cannot start: a full or
    /// read-only file system, or damaged files, start degraded or recovered. The broker
    /// must restore sessions under the numbers the records gave them
    /// (`Broker::restore` does).
    pub fn open(options: StoreOptions, now: Instant) -> Result<(Store, Loaded), String> {
        if let Err(e) = fs::create_dir_all(&options.dir) {
            error!(
                "Cannot create persistence_location {}: {e}.",
                options.dir.display()
            );
        }
        let lock = lock::lock_dir(&options.dir)?;
        let mut snapshot_path = options.dir.join(&options.file);
        if fs::read(&snapshot_path).is_ok_and(|b| b.starts_with(record::MOSQUITTO_MAGIC)) {
            let culex = with_suffix(&snapshot_path, ".culex");
            warn!(
                "{} is a Mosquitto database, which culex does not read; leaving it untouched and keeping culex's state in {}.",
                snapshot_path.display(),
                culex.display()
            );
            snapshot_path = culex;
        }
        let journal_path = with_suffix(&snapshot_path, JOURNAL_SUFFIX);
        let next_path = with_suffix(&journal_path, NEXT_SUFFIX);
        for stale in [
            with_suffix(&snapshot_path, TMP_SUFFIX),
            with_suffix(&journal_path, TMP_SUFFIX),
        ] {
            let _ = fsio::remove(&stale);
        }
        let paths = Paths {
            snapshot: snapshot_path.clone(),
            journal: journal_path.clone(),
            next: next_path.clone(),
        };
        let found = load::load(&paths, now);
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            ..Shared::default()
        });
        let loaded = &found.loaded;
        let status = Status {
            healthy: true,
            records_recovered: loaded.snapshot_records + loaded.journal_records,
            records_lost: loaded.records_lost,
            damaged_bytes: loaded.damaged_bytes,
            files_set_aside: loaded.files_set_aside,
            ..Status::default()
        };
        let (journal, degraded_since) = match found.next {
            Continue::Append(f) => (Journal::Open(Arc::new(f)), None),
            Continue::Behind(what) => {
                shared.degrade(
                    "prepare the journal next to",
                    &snapshot_path,
                    &io::Error::other(what),
                );
                (Journal::Behind, Some(now))
            }
        };
        if found.compact {
            info!("Writing a new snapshot now, so that the next start finds clean files.");
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            rx,
            shared: shared.clone(),
            snapshot_path: snapshot_path.clone(),
            journal_path,
            next_path: next_path.clone(),
            sync: options.sync,
            sync_interval: options.sync_interval,
            pending: None,
            dirty: None,
            dirty_since: None,
            written_batch: 0,
            last_sync: None,
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
                next_path,
                journal,
                generation: found.generation,
                journal_bytes: found.journal_len,
                snapshot_bytes: found.snapshot_len,
                last_snapshot: now,
                retry_from: degraded_since,
                retry_now: false,
                degraded_since,
                compact_soon: found.compact,
                status,
                _lock: lock,
            },
            found.loaded,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.snapshot_path
    }

    /// Wakes the loop when a batch becomes durable or the store's state changes.
    pub fn set_waker(&self, waker: Arc<mio::Waker>) {
        if let Ok(mut w) = self.shared.waker.lock() {
            *w = Some(waker);
        }
    }

    /// Appends a batch of records to the journal (into the page cache; the writer thread
    /// syncs it). Batch numbers increase.
    pub fn append(&mut self, batch: u64, bytes: Vec<u8>) {
        self.poll();
        match &mut self.journal {
            Journal::Open(f) => match fsio::write_all(f, &self.snapshot_path, &bytes) {
                Ok(()) => {
                    self.journal_bytes += bytes.len() as u64;
                    self.shared
                        .bytes_written
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    let file = f.clone();
                    let _ = self.tx.send(Command::Written { batch, file });
                }
                Err(e) => {
                    self.shared
                        .degrade("write to the journal next to", &self.snapshot_path, &e);
                    self.poll();
                }
            },
            // The next full snapshot holds what these records say.
            Journal::Behind => {}
            Journal::Recovering {
                buffer,
                last_batch,
                overflow,
            } => {
                if buffer.len() + bytes.len() > RECOVERY_BUFFER_MAX {
                    *overflow = true;
                    *buffer = Vec::new();
                } else if !*overflow {
                    buffer.extend_from_slice(&bytes);
                    *last_batch = batch;
                }
            }
        }
    }

    /// Starts a new generation with a snapshot's records (from `Broker::write_snapshot`)
    /// covering batches up to `batch`: later batches go to a new journal.
    pub fn snapshot(&mut self, batch: u64, bytes: Vec<u8>, now: Instant) {
        self.poll();
        self.compact_soon = false;
        self.last_snapshot = now;
        self.retry_from = Some(now);
        self.retry_now = false;
        self.snapshot_bytes = bytes.len() as u64;
        let generation = self.generation + 1;
        match &self.journal {
            Journal::Open(old) => {
                let header = encode_header(FileKind::Journal, generation);
                let new = fsio::create(&self.next_path)
                    .and_then(|f| fsio::write_all(&f, &self.next_path, &header).map(|()| f));
                let new = match new {
                    Ok(f) => Arc::new(f),
                    Err(e) => {
                        self.shared.degrade("create", &self.next_path, &e);
                        self.poll();
                        return;
                    }
                };
                self.generation = generation;
                self.journal_bytes = header.len() as u64;
                self.shared.compacting.store(true, Ordering::Release);
                let old = old.clone();
                self.journal = Journal::Open(new.clone());
                let _ = self.tx.send(Command::Snapshot {
                    generation,
                    batch,
                    bytes,
                    old,
                    new,
                });
            }
            Journal::Behind => {
                self.generation = generation;
                self.shared.compacting.store(true, Ordering::Release);
                self.journal = Journal::Recovering {
                    buffer: Vec::new(),
                    last_batch: batch,
                    overflow: false,
                };
                let _ = self.tx.send(Command::Recover {
                    generation,
                    batch,
                    bytes,
                });
            }
            Journal::Recovering { .. } => {}
        }
    }

    /// Asks for a snapshot at the next [`Store::wants_snapshot`] (SIGUSR1): at once when
    /// no compaction is running, else right after it; while the store is behind, a retry
    /// now instead of after its backoff.
    pub fn snapshot_soon(&mut self) {
        self.compact_soon = true;
        if matches!(self.journal, Journal::Behind) {
            self.retry_now = true;
        }
    }

    /// Whether it is time for a snapshot: start-up found damage, the journal is as large
    /// as the snapshot (at least 1 MiB), `autosave_interval` passed (seconds, or records
    /// with `autosave_on_changes`) and something changed, or the store is behind memory
    /// and its retry is due. Never while a snapshot is being written.
    pub fn wants_snapshot(&mut self, records: u64, now: Instant) -> bool {
        self.poll();
        if self.shared.compacting.load(Ordering::Acquire) {
            return false;
        }
        match self.journal {
            Journal::Recovering { .. } => return false,
            Journal::Behind => {
                let failures = self.shared.failures.load(Ordering::Acquire);
                let from = *self.retry_from.get_or_insert(now);
                return self.retry_now || now >= from + backoff(failures);
            }
            // Healthy, no compaction running: nothing to retry.
            Journal::Open(_) => self.retry_from = None,
        }
        if self.compact_soon || self.journal_bytes >= MIN_COMPACT_BYTES.max(self.snapshot_bytes) {
            return true;
        }
        let interval = u64::from(self.options.autosave_interval);
        // Nothing changed since the last snapshot: nothing to rewrite.
        let changed = records > 0 && self.journal_bytes > record::HEADER_LEN as u64;
        if interval == 0 || !changed {
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

    /// The last batch on disk: every batch up to it is durable. A batch that a write
    /// error kept off the disk is counted only once a snapshot holding it is durable.
    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// False from a write error until a snapshot succeeds.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Since when nothing new reaches the disk (after a write error); `None` when
    /// healthy. In `ack` mode the broker holds acknowledgements meanwhile and refuses
    /// them after a bounded wait.
    pub fn degraded_since(&self) -> Option<Instant> {
        if self.healthy() {
            None
        } else {
            self.degraded_since
        }
    }

    /// Bytes written to the files so far.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// Counters and state for `$SYS`.
    pub fn status(&self) -> Status {
        Status {
            healthy: self.healthy(),
            bytes_written: self.bytes_written(),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            durable: self.durable(),
            ..self.status.clone()
        }
    }

    /// A clean stop, as Mosquitto's (which writes its database at shutdown): everything
    /// appended is synced, then `state` (the broker's whole state, from
    /// `Broker::write_snapshot`) is written as a new generation's snapshot at
    /// `persistence_file` and the journal it replaces is removed, so the next start reads
    /// one file and `persistence_file` alone holds the state (a user or script that
    /// removes it starts afresh, as with Mosquitto). Durable at every step: the snapshot
    /// is renamed into place synced, and a journal that outlives it (a crash before its
    /// removal) is older and ignored. When the files are degraded, or the snapshot
    /// cannot be written, the synced journal stays and holds the state.
    pub fn stop_with_snapshot(mut self, state: Vec<u8>) {
        self.stop_thread();
        if !self.healthy() || !matches!(self.journal, Journal::Open(_)) {
            return;
        }
        let journal_path = with_suffix(&self.snapshot_path, JOURNAL_SUFFIX);
        let unchanged = self.journal_bytes <= record::HEADER_LEN as u64
            && fs::metadata(&self.snapshot_path).is_ok();
        if !unchanged {
            info!(
                "Saving in-memory database to {}.",
                self.snapshot_path.display()
            );
            let header = encode_header(FileKind::Snapshot, self.generation + 1);
            if let Err(e) = fsio::replace(&self.snapshot_path, &[&header, &state]) {
                warn!(
                    "Error saving in-memory database to {}: {e}. The journal {} holds the state.",
                    self.snapshot_path.display(),
                    journal_path.display()
                );
                return;
            }
        }
        // The journal's records are all in the snapshot now.
        self.journal = Journal::Behind;
        if let Err(e) = fsio::remove(&journal_path).and_then(|()| fsio::sync_dir(&journal_path)) {
            debug!(
                "Cannot remove {} ({e}); the next start ignores it, the snapshot being newer.",
                journal_path.display()
            );
        }
    }

    /// Syncs everything appended and waits for a snapshot in progress, then stops the
    /// thread.
    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !self.healthy() {
            warn!(
                "Stopping with persistence degraded: the changes since the write error are not in {}.",
                self.snapshot_path.display()
            );
        }
        // A recovery that finished meanwhile: its waiting records, synced here.
        if matches!(self.journal, Journal::Recovering { .. }) {
            self.poll();
            if let Journal::Open(f) = &self.journal {
                if let Err(e) = fsio::sync_data(f, &self.snapshot_path) {
                    warn!(
                        "Cannot sync the journal next to {}: {e}",
                        self.snapshot_path.display()
                    );
                }
            }
        }
    }

    /// Takes in what the writer reported: a recovery's result, a write error.
    fn poll(&mut self) {
        if let Journal::Recovering { .. } = self.journal {
            let result = self.shared.recovered.lock().ok().and_then(|mut r| r.take());
            if let Some(result) = result {
                let Journal::Recovering {
                    buffer,
                    last_batch,
                    overflow,
                } = std::mem::replace(&mut self.journal, Journal::Behind)
                else {
                    return;
                };
                match result {
                    Some(file) if !overflow => {
                        let file = Arc::new(file);
                        self.journal_bytes = record::HEADER_LEN as u64;
                        self.degraded_since = None;
                        self.retry_from = None;
                        self.journal = Journal::Open(file.clone());
                        if !buffer.is_empty() {
                            match fsio::write_all(&file, &self.snapshot_path, &buffer) {
                                Ok(()) => {
                                    self.journal_bytes += buffer.len() as u64;
                                    self.shared
                                        .bytes_written
                                        .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                                    let _ = self.tx.send(Command::Written {
                                        batch: last_batch,
                                        file,
                                    });
                                }
                                Err(e) => self.shared.degrade(
                                    "write to the journal next to",
                                    &self.snapshot_path,
                                    &e,
                                ),
                            }
                        }
                    }
                    // Records were dropped meanwhile: another snapshot at once.
                    Some(_) => self.retry_now = true,
                    None => {}
                }
            }
        }
        if matches!(self.journal, Journal::Open(_)) && !self.healthy() {
            self.journal = Journal::Behind;
            let now = Instant::now();
            self.retry_from.get_or_insert(now);
            self.degraded_since.get_or_insert(now);
        }
    }
}

/// The wait before the next attempt after `failures` failed ones in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// The writer thread: syncs and snapshots.
struct Writer {
    rx: Receiver<Command>,
    shared: Arc<Shared>,
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    next_path: PathBuf,
    sync: SyncMode,
    sync_interval: Duration,
    /// A command received while batching a group commit, not yet handled.
    pending: Option<Command>,
    /// The journal with unsynced writes.
    dirty: Option<Arc<File>>,
    dirty_since: Option<Instant>,
    /// The last batch written to `dirty` (or before it).
    written_batch: u64,
    last_sync: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let command = match self.pending.take() {
                Some(c) => Ok(c),
                None => match self.sync_due() {
                    Some(at) => self
                        .rx
                        .recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                },
            };
            match command {
                Ok(Command::Written { batch, file }) => {
                    self.written_batch = batch;
                    self.dirty = Some(file);
                    self.dirty_since.get_or_insert_with(Instant::now);
                }
                Ok(Command::Snapshot {
                    generation,
                    batch,
                    bytes,
                    old,
                    new,
                }) => self.snapshot(generation, batch, &bytes, &old, new),
                Ok(Command::Recover {
                    generation,
                    batch,
                    bytes,
                }) => self.recover(generation, batch, &bytes),
                Err(RecvTimeoutError::Timeout) => self.sync(),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            }
        }
    }

    /// When the unsynced writes are due: within the sync interval, or in `ack` mode at
    /// once but not sooner than [`ACK_SYNC_GAP`] after the last sync (what arrives
    /// meanwhile shares it).
    fn sync_due(&self) -> Option<Instant> {
        let since = self.dirty_since?;
        Some(match self.sync {
            SyncMode::Periodic => since + self.sync_interval,
            SyncMode::Ack => self
                .last_sync
                .map_or(since, |at| (at + ACK_SYNC_GAP).max(since)),
        })
    }

    fn sync(&mut self) {
        self.dirty_since = None;
        let Some(f) = self.dirty.take() else {
            return;
        };
        // A journal that failed once is never trusted again: a snapshot replaces it.
        if !self.shared.healthy.load(Ordering::Acquire) {
            return;
        }
        self.last_sync = Some(Instant::now());
        match fsio::sync_data(&f, &self.journal_path) {
            Ok(()) => {
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                self.shared.set_durable(self.written_batch);
            }
            Err(e) => self.shared.degrade("sync", &self.journal_path, &e),
        }
    }

    fn snapshot(&mut self, generation: u64, batch: u64, bytes: &[u8], old: &File, new: Arc<File>) {
        // The old journal first: until the snapshot's rename, it (with the next journal)
        // is the state. Every batch up to `batch` is in it.
        self.dirty = Some(new.clone());
        self.dirty_since = None;
        if self.shared.healthy.load(Ordering::Acquire) {
            match fsio::sync_data(old, &self.journal_path) {
                Ok(()) => {
                    self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                    self.shared.set_durable(self.written_batch);
                }
                Err(e) => self.shared.degrade("sync", &self.journal_path, &e),
            }
        }
        let header = encode_header(FileKind::Snapshot, generation);
        let result = fsio::replace(&self.snapshot_path, &[&header, bytes]).and_then(|()| {
            self.shared.syncs.fetch_add(2, Ordering::Relaxed);
            self.shared.set_durable(batch);
            fsio::sync_all(&new, &self.next_path)?;
            fsio::rename(&self.next_path, &self.journal_path)?;
            fsio::sync_dir(&self.journal_path)
        });
        match result {
            Ok(()) => {
                self.shared.syncs.fetch_add(2, Ordering::Relaxed);
                self.shared
                    .bytes_written
                    .fetch_add((bytes.len() + record::HEADER_LEN) as u64, Ordering::Relaxed);
            }
            Err(e) => self
                .shared
                .degrade("write the snapshot", &self.snapshot_path, &e),
        }
        // After the degradation (if any): the loop must see it before it may compact.
        self.shared.compacting.store(false, Ordering::Release);
        self.written_batch = self.written_batch.max(batch);
        self.dirty_since = Some(Instant::now());
        self.sync();
    }

    /// A full snapshot of generation `generation` (above every file on disk), then a new
    /// empty journal for it; only then are the older files obsolete and removed.
    fn recover(&mut self, generation: u64, batch: u64, bytes: &[u8]) {
        // The journal that failed is abandoned.
        self.dirty = None;
        self.dirty_since = None;
        // A directory that could not be created at start-up (a read-only parent).
        if let Some(dir) = self.snapshot_path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let header = encode_header(FileKind::Snapshot, generation);
        let result = fsio::replace(&self.snapshot_path, &[&header, bytes]).and_then(|()| {
            self.shared.set_durable(batch);
            let header = encode_header(FileKind::Journal, generation);
            fsio::replace(&self.journal_path, &[&header])?;
            fsio::remove(&self.next_path)?;
            fsio::open_append(&self.journal_path)
        });
        let file = match result {
            Ok(f) => {
                self.shared.syncs.fetch_add(4, Ordering::Relaxed);
                self.shared.bytes_written.fetch_add(
                    (bytes.len() + 2 * record::HEADER_LEN) as u64,
                    Ordering::Relaxed,
                );
                self.shared.failures.store(0, Ordering::Release);
                self.written_batch = self.written_batch.max(batch);
                if !self.shared.healthy.swap(true, Ordering::AcqRel) {
                    info!(
                        "Persistence recovered: wrote {}; changes reach the disk again.",
                        self.snapshot_path.display()
                    );
                }
                Some(f)
            }
            Err(e) => {
                self.shared
                    .degrade("write the snapshot", &self.snapshot_path, &e);
                None
            }
        };
        if let Ok(mut r) = self.shared.recovered.lock() {
            *r = Some(file);
        }
        self.shared.compacting.store(false, Ordering::Release);
        self.shared.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::fsio::faults::{self, Fault};
    use crate::persist::load::MAX_DAMAGED_COPIES;
    use crate::persist::record::{encode, Delivery, Record, StoredMessage};
    use crate::persist::State;
    use std::sync::atomic::AtomicUsize;

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "culex-store-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        /// Names of the files in the directory that contain `part`.
        fn files_with(&self, part: &str) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(part))
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            faults::clear(&self.0);
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn options(dir: &Path) -> StoreOptions {
        StoreOptions {
            dir: dir.to_path_buf(),
            file: "culex.db".into(),
            sync: SyncMode::Periodic,
            sync_interval: Duration::from_millis(50),
            autosave_interval: 0,
            autosave_on_changes: false,
        }
    }

    fn open(dir: &TempDir) -> (Store, Loaded) {
        Store::open(options(&dir.0), Instant::now()).expect("the store opens")
    }

    /// A session with a subscription and `n` queued messages, one record each.
    fn records(n: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut one = |r: Record<'_>| {
            let mut b = Vec::new();
            encode(&r, &mut b);
            out.push(b);
        };
        one(Record::Session {
            sid: 0,
            client_id: "gw",
            expiry: u32::MAX,
            username: None,
            listener: 0,
        });
        one(Record::Subscribe {
            sid: 0,
            filter: "s/#",
            qos: 1,
            no_local: false,
            retain_as_published: false,
            id: 0,
        });
        for i in 1..=u64::from(n) {
            let payload = i.to_be_bytes();
            one(Record::Message {
                id: i,
                retained: false,
                message: StoredMessage {
                    topic: "s/t",
                    payload: &payload,
                    qos: 1,
                    ..StoredMessage::default()
                },
            });
            one(Record::Enqueue {
                sid: 0,
                delivery: Delivery {
                    message: i,
                    qos: 1,
                    retain: false,
                    sub_ids: vec![],
                },
            });
        }
        out
    }

    fn queued(state: &State) -> usize {
        state.sessions.values().map(|s| s.queue.len()).sum()
    }

    fn journal_file(generation: u64, records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = encode_header(FileKind::Journal, generation).to_vec();
        for r in records {
            bytes.extend_from_slice(r);
        }
        bytes
    }

    /// A snapshot's records (without header): `records` and the end mark.
    fn snapshot_body(records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = records.concat();
        encode(&Record::End, &mut bytes);
        bytes
    }

    fn snapshot_file(generation: u64, records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = encode_header(FileKind::Snapshot, generation).to_vec();
        bytes.extend_from_slice(&snapshot_body(records));
        bytes
    }

    /// Where each record of a journal file ends.
    fn record_ends(records: &[Vec<u8>]) -> Vec<usize> {
        let mut ends = vec![record::HEADER_LEN];
        for r in records {
            ends.push(ends.last().unwrap() + r.len());
        }
        ends
    }

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A clean stop saves the whole state at `persistence_file` and removes the journal
    /// (Mosquitto writes its database at shutdown; 04-retain-check-source-persist-diff-port
    /// checks the file is there): the next start reads the snapshot alone, and removing
    /// `persistence_file` starts afresh (06-bridge-b2br-late-connection-retain). With
    /// nothing changed since the last snapshot nothing is rewritten; a full disk keeps
    /// the synced journal, which still loads.
    #[test]
    fn a_clean_stop_saves_the_state_in_persistence_file_alone() {
        let records = records(3);
        let dir = TempDir::new();
        let (mut store, _) = open(&dir);
        store.append(1, records.concat());
        store.stop_with_snapshot(snapshot_body(&records));
        assert_eq!(dir.files_with("culex.db"), ["culex.db"]);
        let (store, loaded) = open(&dir);
        assert_eq!(loaded.snapshot_records as usize, records.len() + 1);
        assert_eq!(loaded.journal_records, 0);
        assert_eq!(queued(&loaded.state), 3);
        // Unchanged: the snapshot is not rewritten (its bytes here would be lost if it were).
        let before = fs::read(dir.file("culex.db")).unwrap();
        store.stop_with_snapshot(Vec::new());
        assert_eq!(fs::read(dir.file("culex.db")).unwrap(), before);
        assert_eq!(dir.files_with("culex.db"), ["culex.db"]);
        // The user removes the database: nothing is left to load.
        fs::remove_file(dir.file("culex.db")).unwrap();
        let (mut store, loaded) = open(&dir);
        assert_eq!(queued(&loaded.state), 0);
        assert_eq!(loaded.state.sessions.len(), 0);
        // A snapshot that cannot be written leaves the journal, synced, holding it all.
        store.append(1, records.concat());
        faults::set(&dir.0, Fault::Space(0));
        store.stop_with_snapshot(snapshot_body(&records));
        faults::clear(&dir.0);
        assert!(dir.files_with(".tmp").is_empty());
        let (_, loaded) = open(&dir);
        assert_eq!(loaded.journal_records as usize, records.len());
        assert_eq!(queued(&loaded.state), 3);
    }

    /// A journal cut anywhere in its last records (a torn write) keeps every record
    /// before the cut, is cut back in place, and appends follow its last good record.
    #[test]
    fn journals_cut_anywhere_in_the_last_records_keep_the_rest() {
        let records = records(4);
        let whole = journal_file(0, &records);
        let ends = record_ends(&records);
        for cut in ends[ends.len() - 4]..whole.len() {
            let dir = TempDir::new();
            fs::write(dir.file("culex.db.journal"), &whole[..cut]).unwrap();
            let (mut store, loaded) = open(&dir);
            let intact = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(loaded.journal_records as usize, intact, "cut {cut}");
            assert_eq!(
                queued(&loaded.state),
                intact.saturating_sub(2) / 2,
                "cut {cut}"
            );
            let torn = ends[intact] != cut;
            assert_eq!(!dir.files_with(".damaged-").is_empty(), torn, "cut {cut}");
            assert_eq!(loaded.records_lost, u64::from(torn), "cut {cut}");
            assert!(store.healthy());
            assert!(
                !store.wants_snapshot(0, Instant::now()),
                "a torn tail needs no snapshot"
            );
            store.append(1, records[records.len() - 1].clone());
            store.stop();
            let (_, again) = open(&dir);
            assert_eq!(again.journal_records as usize, intact + 1, "cut {cut}");
            assert_eq!(again.records_lost, 0, "cut {cut}: clean after the cut");
        }
    }

    /// [issue #25, case 6] One flipped byte in any record of a journal loses that record
    /// only: reading resynchronises after it (by the record's length when only its
    /// checksum fails, by scanning when the length itself is hit), the records after it
    /// are recovered, and a snapshot is asked for at once. Before: every record after
    /// the damage was set aside.
    #[test]
    fn a_flipped_byte_anywhere_in_a_journal_loses_one_record() {
        let records = records(4);
        let whole = journal_file(0, &records);
        let ends = record_ends(&records);
        for at in record::HEADER_LEN..whole.len() {
            let dir = TempDir::new();
            let mut bytes = whole.clone();
            bytes[at] ^= 0x5A;
            fs::write(dir.file("culex.db.journal"), &bytes).unwrap();
            let (mut store, loaded) = open(&dir);
            assert_eq!(
                loaded.journal_records as usize,
                records.len() - 1,
                "byte {at}"
            );
            assert_eq!(loaded.records_lost, 1, "byte {at}");
            let hit = ends.iter().filter(|&&e| e <= at).count() - 1;
            // Losing a Message record leaves its Enqueue pointing at nothing.
            let expected_queue = match hit {
                0 => 0,
                1 => 4,
                _ => 3,
            };
            assert_eq!(queued(&loaded.state), expected_queue, "byte {at}");
            assert_eq!(dir.files_with(".damaged-").len(), 1, "byte {at}");
            let last = ends.len() - 2;
            assert_eq!(
                store.wants_snapshot(0, Instant::now()),
                hit != last,
                "byte {at}: mid-file damage is compacted at once"
            );
            store.stop();
        }
    }

    /// [issue #25, case 6] A flip in the middle of a large journal and of a large
    /// snapshot: everything but the hit record is recovered (3,000 and 4,000 messages).
    #[test]
    fn a_flip_mid_journal_or_mid_snapshot_recovers_everything_else() {
        let dir = TempDir::new();
        let mut bytes = journal_file(0, &records(3_000));
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        fs::write(dir.file("culex.db.journal"), &bytes).unwrap();
        let (store, loaded) = open(&dir);
        store.stop();
        assert_eq!(loaded.records_lost, 1);
        assert!(queued(&loaded.state) >= 2_999, "{}", queued(&loaded.state));

        let dir = TempDir::new();
        let mut bytes = snapshot_file(1, &records(4_000));
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        fs::write(dir.file("culex.db"), &bytes).unwrap();
        let (mut store, loaded) = open(&dir);
        assert_eq!(loaded.records_lost, 1);
        assert!(queued(&loaded.state) >= 3_999, "{}", queued(&loaded.state));
        assert!(store.wants_snapshot(0, Instant::now()));
        store.stop();
    }

    /// [issue #25, case 1] Empty, short, zeroed-magic and unknown-version snapshots and
    /// a journal whose first 4 KiB are zeroed: start-up comes up every time, moves or
    /// copies the damage aside, and recovers every readable record. Before: "Move it away
    /// to start with an empty state" and exit 1.
    #[test]
    fn damaged_or_unknown_files_never_stop_start_up() {
        let good = journal_file(1, &records(3));
        let mut newer = snapshot_file(1, &records(3));
        newer[8] = 99;
        let mut zeroed_magic = snapshot_file(1, &records(3));
        zeroed_magic[..8].fill(0);
        // (snapshot, queued messages expected, moved aside whole)
        let cases: [(&[u8], usize, bool); 5] = [
            (b"", 3, true),
            (&b"CULEXDB\0\x01\0\0\0\x01"[..], 3, true),
            (&newer, 3, true),
            (&zeroed_magic, 6, false),
            (&b"garbage, not a database at all"[..], 3, true),
        ];
        for (i, (snapshot, expected, moved)) in cases.into_iter().enumerate() {
            let dir = TempDir::new();
            fs::write(dir.file("culex.db"), snapshot).unwrap();
            fs::write(dir.file("culex.db.journal"), &good).unwrap();
            let (mut store, loaded) = open(&dir);
            assert_eq!(queued(&loaded.state), expected, "case {i}");
            assert_eq!(loaded.files_set_aside, u64::from(moved), "case {i}");
            let aside = dir.files_with("culex.db.damaged-");
            assert_eq!(aside.len(), 1, "case {i}: {aside:?}");
            if moved {
                assert_eq!(fs::read(dir.file(&aside[0])).unwrap(), snapshot, "case {i}");
            }
            assert!(store.healthy(), "case {i}");
            assert!(store.wants_snapshot(0, Instant::now()), "case {i}");
            store.stop();
        }

        // The first 4 KiB of a journal zeroed (header and the first records).
        let records = records(300);
        let mut journal = journal_file(0, &records);
        journal[..4096].fill(0);
        let dir = TempDir::new();
        fs::write(dir.file("culex.db.journal"), &journal).unwrap();
        let (store, loaded) = open(&dir);
        store.stop();
        let after = record_ends(&records).iter().filter(|&&e| e > 4096).count() - 1;
        assert_eq!(loaded.journal_records as usize, after);
        assert!(loaded.records_lost >= 1);
        assert_eq!(dir.files_with("journal.damaged-").len(), 1);
    }

    /// [issue #25, case 7] A damaged snapshot is rewritten after recovery, so the next
    /// start-up finds clean files and writes no second copy; copies of damaged files
    /// never pile up beyond MAX_DAMAGED_COPIES. Before: logged and copied on every start.
    #[test]
    fn a_damaged_snapshot_is_rewritten_once_and_copies_are_bounded() {
        let dir = TempDir::new();
        for i in 0..MAX_DAMAGED_COPIES + 3 {
            fs::write(
                dir.file(&format!("culex.db.damaged-2020010{i}T000000Z")),
                b"x",
            )
            .unwrap();
        }
        let records = records(10);
        let mut bytes = snapshot_file(1, &records);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(dir.file("culex.db"), &bytes).unwrap();
        let (mut store, loaded) = open(&dir);
        assert_eq!(loaded.records_lost, 1);
        let aside = dir.files_with("culex.db.damaged-");
        assert_eq!(aside.len(), MAX_DAMAGED_COPIES, "{aside:?}");
        assert!(aside.last().unwrap().starts_with("culex.db.damaged-20"));
        assert!(!aside.contains(&"culex.db.damaged-20200100T000000Z".to_string()));
        assert!(store.wants_snapshot(0, Instant::now()));
        // What the broker would write: the state as loaded.
        store.snapshot(1, snapshot_body(&records), Instant::now());
        store.stop();
        let (store, again) = open(&dir);
        store.stop();
        assert_eq!(again.records_lost, 0);
        assert_eq!(again.damaged_bytes, 0);
        assert_eq!(dir.files_with("culex.db.damaged-"), aside, "no new copy");
    }

    /// A compaction interrupted before the snapshot's rename (old snapshot, old journal,
    /// next journal) and after it (new snapshot, stale journal, next journal) both load
    /// everything; the next journal is merged, then removed.
    #[test]
    fn interrupted_compactions_load_every_record() {
        let records = records(3);
        let (before, after) = records.split_at(4);
        let dir = TempDir::new();
        fs::write(dir.file("culex.db.journal"), journal_file(0, before)).unwrap();
        fs::write(dir.file("culex.db.journal.next"), journal_file(1, after)).unwrap();
        let (store, loaded) = open(&dir);
        store.stop();
        assert_eq!(queued(&loaded.state), 3);
        assert!(!dir.file("culex.db.journal.next").exists());
        let (_, again) = open(&dir);
        assert_eq!(queued(&again.state), 3, "the merged journal is durable");

        let dir = TempDir::new();
        fs::write(dir.file("culex.db"), snapshot_file(1, before)).unwrap();
        fs::write(dir.file("culex.db.journal"), journal_file(0, &records)).unwrap();
        fs::write(dir.file("culex.db.journal.next"), journal_file(1, after)).unwrap();
        let (store, loaded) = open(&dir);
        store.stop();
        assert_eq!(queued(&loaded.state), 3, "stale journal ignored");
        let (_, again) = open(&dir);
        assert_eq!(queued(&again.state), 3);
    }

    /// [issue #25, cases 2 and 3] An interrupted compaction found on a full disk: the
    /// store comes up from memory, degraded, and leaves every file as it was (the next
    /// journal is not deleted before a replacement is durable); recovery attempts that
    /// fail for lack of space leave no temporary file; once space returns a snapshot
    /// replaces them all. Before: `.next` deleted, exit 1, half the messages gone.
    #[test]
    fn an_interrupted_compaction_on_a_full_disk_loses_nothing() {
        let records = records(6);
        let (before, after) = records.split_at(8);
        let dir = TempDir::new();
        let journal = journal_file(0, before);
        let next = journal_file(1, after);
        fs::write(dir.file("culex.db.journal"), &journal).unwrap();
        fs::write(dir.file("culex.db.journal.next"), &next).unwrap();
        faults::set(&dir.0, Fault::Space(0));
        let t0 = Instant::now();
        let (mut store, loaded) = Store::open(options(&dir.0), t0).unwrap();
        assert_eq!(queued(&loaded.state), 6);
        assert!(!store.healthy());
        assert!(store.degraded_since().is_some());
        assert_eq!(fs::read(dir.file("culex.db.journal")).unwrap(), journal);
        assert_eq!(fs::read(dir.file("culex.db.journal.next")).unwrap(), next);
        // Not at once; the first retry after RETRY_FIRST, and it fails part-way.
        assert!(!store.wants_snapshot(0, t0));
        let t1 = t0 + RETRY_FIRST;
        assert!(store.wants_snapshot(0, t1));
        faults::set(&dir.0, Fault::Space(40));
        store.snapshot(1, snapshot_body(&records), t1);
        wait_for("the attempt ends", || {
            store.wants_snapshot(0, t1 + RETRY_MAX) || store.healthy()
        });
        assert!(!store.healthy());
        assert!(
            dir.files_with(".tmp").is_empty(),
            "{:?}",
            dir.files_with("")
        );
        assert_eq!(fs::read(dir.file("culex.db.journal.next")).unwrap(), next);
        // Backoff: the second retry waits twice as long.
        let t2 = t1 + 2 * RETRY_FIRST;
        assert!(!store.wants_snapshot(0, t2 - Duration::from_millis(1)));
        assert!(store.wants_snapshot(0, t2));
        // A kill now: the files still load to everything.
        drop(store);
        faults::clear(&dir.0);
        let (mut store, again) = open(&dir);
        assert_eq!(queued(&again.state), 6);
        assert!(store.healthy());
        store.append(2, records[2].clone());
        store.stop();
        assert!(!dir.file("culex.db.journal.next").exists());
    }

    /// [issue #25, case 2] A read-only file system at start with clean files: the state
    /// loads, the store is degraded (nothing durable), and it resumes by itself once the
    /// file system is writable. Before: "cannot write ...journal", exit 1.
    #[test]
    fn a_read_only_file_system_starts_degraded_and_resumes() {
        let dir = TempDir::new();
        let records = records(2);
        fs::write(dir.file("culex.db"), snapshot_file(1, &records)).unwrap();
        fs::write(dir.file("culex.db.journal"), journal_file(1, &[])).unwrap();
        faults::set(&dir.0, Fault::ReadOnly);
        let t0 = Instant::now();
        let (mut store, loaded) = Store::open(options(&dir.0), t0).unwrap();
        assert_eq!(queued(&loaded.state), 2);
        assert!(!store.healthy());
        store.append(1, records[2].clone());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(store.durable(), 0, "nothing reached the disk");
        faults::clear(&dir.0);
        assert!(store.wants_snapshot(0, t0 + RETRY_FIRST));
        let mut state = records.clone();
        state.push(records[2].clone());
        store.snapshot(2, snapshot_body(&records), t0 + RETRY_FIRST);
        store.append(3, records[3].clone());
        wait_for("recovered", || {
            store.wants_snapshot(0, t0 + RETRY_FIRST);
            store.healthy() && matches!(store.journal, Journal::Open(_))
        });
        assert!(store.degraded_since().is_none());
        wait_for("durable", || store.durable() >= 3);
        store.stop();
        let (_, again) = open(&dir);
        assert_eq!(again.snapshot_records as usize, records.len() + 1);
        assert_eq!(again.journal_records, 1, "appended during the recovery");
    }

    /// [issue #25, case 4] `ack` mode on a disk that fills at run time: the batch whose
    /// write failed, and every later one, is never reported durable while degraded, so
    /// the broker holds their acknowledgements; a recovery snapshot makes them durable.
    /// Before: `durable()` advanced past failed writes ("acknowledgements must not wait
    /// forever") and 20,000 PUBACKs were sent for messages a kill -9 lost.
    #[test]
    fn a_full_disk_in_ack_mode_reports_nothing_durable_until_recovered() {
        let dir = TempDir::new();
        let mut opts = options(&dir.0);
        opts.sync = SyncMode::Ack;
        let t0 = Instant::now();
        let (mut store, _) = Store::open(opts, t0).unwrap();
        let records = records(3);
        store.append(1, records[0].clone());
        wait_for("batch 1 durable", || store.durable() >= 1);
        faults::set(&dir.0, Fault::Space(5));
        store.append(2, records[1].clone());
        store.append(3, records[2].clone());
        assert!(!store.healthy());
        assert!(store.degraded_since().is_some());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(store.durable(), 1);
        assert!(!store.status().healthy);
        // Still full at the first retry: nothing changes.
        let t1 = Instant::now() + RETRY_FIRST;
        assert!(store.wants_snapshot(0, t1));
        store.snapshot(4, snapshot_body(&records[..3]), t1);
        wait_for("the attempt ends", || {
            !store.shared.compacting.load(Ordering::Acquire)
        });
        assert_eq!(store.durable(), 1);
        faults::clear(&dir.0);
        let t2 = t1 + RETRY_FIRST * 2;
        assert!(store.wants_snapshot(0, t2));
        store.snapshot(5, snapshot_body(&records[..3]), t2);
        wait_for("recovered", || store.durable() >= 5 && store.healthy());
        assert!(store.healthy());
        store.stop();
    }

    /// [issue #25, case 5] The autosave timer never rewrites an unchanged state: no
    /// record since the last snapshot, no snapshot, however long. Before: a journal of
    /// just its header counted as "as large as an eighth of the snapshot".
    #[test]
    fn the_autosave_timer_never_rewrites_unchanged_state() {
        let dir = TempDir::new();
        fs::write(dir.file("culex.db"), snapshot_file(1, &records(1))).unwrap();
        let mut opts = options(&dir.0);
        opts.autosave_interval = 1;
        let t0 = Instant::now();
        let (mut store, _) = Store::open(opts, t0).unwrap();
        let later = t0 + Duration::from_secs(3600);
        assert!(!store.wants_snapshot(0, later));
        assert!(
            !store.wants_snapshot(3, later),
            "records counted but none reached the journal"
        );
        store.append(1, records(1)[2].clone());
        assert!(store.wants_snapshot(1, later), "a change is saved on time");
        store.stop();
    }

    /// [issue #25, case 5] A compaction that runs out of space removes its temporary
    /// file, keeps the journal and snapshot it was replacing, and backs off
    /// exponentially. Before: the partial `culex.db.tmp` stayed and was rewritten every
    /// 5 s.
    #[test]
    fn a_failed_compaction_cleans_up_and_backs_off() {
        let dir = TempDir::new();
        let records = records(20);
        let t0 = Instant::now();
        let (mut store, _) = open(&dir);
        for (i, r) in records.iter().enumerate() {
            store.append(i as u64 + 1, r.clone());
        }
        let journal_before = fs::read(dir.file("culex.db.journal")).unwrap();
        // The empty snapshot a fresh start writes.
        let snapshot_before = fs::read(dir.file("culex.db")).unwrap();
        // Room for the next journal's header, not for the snapshot.
        faults::set(&dir.0, Fault::Space(100));
        let n = records.len() as u64;
        store.snapshot(n, snapshot_body(&records), t0);
        wait_for("the compaction ends", || {
            !store.shared.compacting.load(Ordering::Acquire)
        });
        assert!(!store.healthy());
        assert!(
            dir.files_with(".tmp").is_empty(),
            "{:?}",
            dir.files_with("")
        );
        assert_eq!(
            fs::read(dir.file("culex.db")).unwrap(),
            snapshot_before,
            "no partial snapshot"
        );
        assert_eq!(
            fs::read(dir.file("culex.db.journal")).unwrap(),
            journal_before
        );
        let mut at = t0;
        for attempt in 1..=8u32 {
            let wait = backoff(attempt);
            assert!(!store.wants_snapshot(0, at + wait - Duration::from_millis(1)));
            assert!(store.wants_snapshot(0, at + wait), "attempt {attempt}");
            at += wait;
            store.snapshot(n + u64::from(attempt), snapshot_body(&records), at);
            wait_for("the attempt ends", || {
                !store.shared.compacting.load(Ordering::Acquire)
            });
            assert!(dir.files_with(".tmp").is_empty());
        }
        assert_eq!(backoff(8), RETRY_MAX);
        drop(store);
        faults::clear(&dir.0);
        let (_, loaded) = open(&dir);
        assert_eq!(queued(&loaded.state), 20, "nothing lost on disk");
    }

    /// A compaction through the store: the snapshot replaces the journal's content.
    #[test]
    fn a_snapshot_starts_a_new_generation() {
        let dir = TempDir::new();
        let (mut store, _) = open(&dir);
        let records = records(2);
        for (i, r) in records.iter().enumerate() {
            store.append(i as u64 + 1, r.clone());
        }
        store.snapshot(10, snapshot_body(&records), Instant::now());
        store.append(11, records[records.len() - 1].clone());
        store.stop();
        assert!(!dir.file("culex.db.journal.next").exists());
        let (_, loaded) = open(&dir);
        assert_eq!(loaded.snapshot_records as usize, records.len() + 1);
        assert_eq!(loaded.journal_records, 1);
        assert_eq!(queued(&loaded.state), 3);
    }

    /// Removing the database (`persistence_file`), as Mosquitto users do to start
    /// afresh, starts afresh: a fresh start writes an empty snapshot beside the journal,
    /// so a journal found without its snapshot is known to continue a removed one and is
    /// set aside rather than replayed (suite 11-persistent-subscription saw a persistent
    /// session come back from the journal alone: Session Present 1 where Mosquitto says
    /// 0).
    #[test]
    fn removing_the_database_starts_afresh() {
        let dir = TempDir::new();
        let (mut store, _) = open(&dir);
        assert!(
            dir.file("culex.db").exists(),
            "a fresh start writes a snapshot"
        );
        for (i, r) in records(2).iter().enumerate() {
            store.append(i as u64 + 1, r.clone());
        }
        store.stop();
        let (store, loaded) = open(&dir);
        assert_eq!(queued(&loaded.state), 2, "both files: everything is back");
        store.stop();
        fs::remove_file(dir.file("culex.db")).unwrap();
        let (store, loaded) = open(&dir);
        assert_eq!(loaded.state.sessions.len(), 0, "the database was removed");
        assert_eq!(
            dir.files_with("journal").len(),
            2,
            "the journal is set aside, kept"
        );
        store.stop();
        let (_, loaded) = open(&dir);
        assert_eq!(loaded.state.sessions.len(), 0);
        assert_eq!(loaded.files_set_aside, 0, "the fresh files are consistent");
    }

    /// A journal of generation 0 without a snapshot was written by a culex from before
    /// fresh starts wrote one: it is the whole state and is loaded.
    #[test]
    fn a_generation_0_journal_without_snapshot_is_loaded() {
        let dir = TempDir::new();
        fs::write(dir.file("culex.db.journal"), journal_file(0, &records(3))).unwrap();
        let (_, loaded) = open(&dir);
        assert_eq!(queued(&loaded.state), 3);
        assert_eq!(loaded.files_set_aside, 0);
    }

    /// [issue #25, case 9] A second store on a directory in use is refused with the
    /// directory's name.
    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = TempDir::new();
        let (store, _) = open(&dir);
        let err = Store::open(options(&dir.0), Instant::now())
            .err()
            .expect("refused");
        assert!(err.contains(&dir.0.display().to_string()), "{err}");
        store.stop();
        let (store, _) = open(&dir);
        store.stop();
    }

    /// `ack` mode group commit: batches appended as fast as the loop can are synced
    /// together, at most one sync per ACK_SYNC_GAP, and all become durable. Before: one
    /// fdatasync per batch (about 870 per second with 8 publishers on an SD card).
    #[test]
    fn ack_mode_syncs_are_grouped_and_rate_bounded() {
        let dir = TempDir::new();
        let mut opts = options(&dir.0);
        opts.sync = SyncMode::Ack;
        let (mut store, _) = Store::open(opts, Instant::now()).unwrap();
        let record = records(1)[2].clone();
        let started = Instant::now();
        let mut batch = 0;
        while started.elapsed() < Duration::from_millis(300) {
            batch += 1;
            store.append(batch, record.clone());
            std::thread::sleep(Duration::from_micros(100));
        }
        wait_for("the last batch durable", || store.durable() == batch);
        let elapsed = started.elapsed();
        let syncs = store.status().syncs;
        let bound = (elapsed.as_millis() / ACK_SYNC_GAP.as_millis()) as u64 + 2;
        assert!(
            syncs <= bound,
            "{syncs} syncs for {batch} batches in {elapsed:?} (at most {bound})"
        );
        assert!(batch > syncs * 2, "{batch} batches, {syncs} syncs");
        store.stop();
    }
}
