//! The files and the thread that syncs them.
//!
//! Files in `persistence_location`: the snapshot (`persistence_file`, default
//! `culex.db`) and its journal (`culex.db.journal`). The loop appends each iteration's
//! records to the journal itself (a `write` into the page cache: a process crash or
//! `kill -9` loses nothing acknowledged) and never waits for the disk: one writer thread
//! calls `fdatasync` within the sync window (or at once, for `persistence_sync ack`,
//! with every batch that arrived meanwhile in one sync: group commit), reports the last
//! durable batch through the loop's waker, and writes snapshots.
//!
//! Compaction: the loop starts a new journal (`culex.db.journal.next`, generation N+1)
//! and goes on appending there, and hands the snapshot to the writer, which syncs the old
//! journal, writes the snapshot to a temporary file, syncs it, renames it over the old
//! one, syncs the directory, then syncs the new journal and renames it over the old
//! journal. Whatever a crash interrupts, start-up finds a consistent set: the old
//! snapshot and journal followed by the next journal, or the new snapshot followed by the
//! next journal.
//!
//! A write error (a full disk, a failing card) is logged, makes [`Store::healthy`] false
//! and stops journal writes until a snapshot succeeds; the loop asks for one every few
//! seconds. The broker keeps serving meanwhile.

use super::record::{self, decode, decode_header, encode_header, FileKind, HeaderError, Record};
use super::replay::State;
use log::{error, info, warn};
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
    /// The loop wrote batches up to `batch` into `file` (`None`: it could not).
    Written {
        batch: u64,
        file: Option<Arc<File>>,
    },
    Snapshot {
        generation: u64,
        batch: u64,
        bytes: Vec<u8>,
        old: Option<Arc<File>>,
        new: Arc<File>,
    },
    Stop,
}

#[derive(Default)]
struct Shared {
    durable: AtomicU64,
    healthy: AtomicBool,
    compacting: AtomicBool,
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
    next_path: PathBuf,
    /// The journal the loop appends to; `None` after a write error.
    journal: Option<Arc<File>>,
    generation: u64,
    journal_bytes: u64,
    snapshot_bytes: u64,
    last_snapshot: Instant,
    /// When to try a snapshot after a write error.
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
const NEXT_SUFFIX: &str = ".next";
const TMP_SUFFIX: &str = ".tmp";
/// A journal this large (or as large as the snapshot, if that is larger) is compacted.
const MIN_COMPACT_BYTES: u64 = 1 << 20;
const RESYNC_DELAY: Duration = Duration::from_secs(5);

impl Store {
    /// Loads the snapshot and replays its journal (cut after its last good record), then
    /// starts the writer thread; records are appended to that journal. The broker must
    /// restore sessions under the numbers the records gave them (`Broker::restore` does).
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
        let next_path = with_suffix(&journal_path, NEXT_SUFFIX);
        for stale in [
            with_suffix(&snapshot_path, TMP_SUFFIX),
            with_suffix(&journal_path, TMP_SUFFIX),
        ] {
            let _ = fs::remove_file(stale);
        }
        let found = load(&snapshot_path, &journal_path, &next_path, now)?;
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
            next_path: next_path.clone(),
            sync: options.sync,
            sync_interval: options.sync_interval,
            pending: None,
            dirty: None,
            dirty_since: None,
            written_batch: 0,
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
                journal: Some(Arc::new(found.journal)),
                generation: found.generation,
                journal_bytes: found.journal_len,
                snapshot_bytes: found.snapshot_len,
                last_snapshot: now,
                resync_after: None,
            },
            found.loaded,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.snapshot_path
    }

    /// Wakes the loop when a batch becomes durable.
    pub fn set_waker(&self, waker: Arc<mio::Waker>) {
        if let Ok(mut w) = self.shared.waker.lock() {
            *w = Some(waker);
        }
    }

    /// Appends a batch of records to the journal (into the page cache; the writer thread
    /// syncs it).
    pub fn append(&mut self, batch: u64, bytes: Vec<u8>) {
        if let Some(f) = self.journal.as_ref() {
            match (&**f).write_all(&bytes) {
                Ok(()) => {
                    self.journal_bytes += bytes.len() as u64;
                    self.shared
                        .bytes_written
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    degrade(
                        &self.shared,
                        "write to the journal next to",
                        &self.snapshot_path,
                        &e,
                    );
                    self.journal = None;
                }
            }
        }
        let file = self.journal.clone();
        let _ = self.tx.send(Command::Written { batch, file });
    }

    /// Starts a new generation with a snapshot's records (from `Broker::write_snapshot`)
    /// covering batches up to `batch`: later batches go to a new journal.
    pub fn snapshot(&mut self, batch: u64, bytes: Vec<u8>, now: Instant) {
        let generation = self.generation + 1;
        let new = match File::create(&self.next_path).and_then(|mut f| {
            f.write_all(&encode_header(FileKind::Journal, generation))?;
            Ok(f)
        }) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                degrade(&self.shared, "create", &self.next_path, &e);
                self.journal = None;
                self.resync_after = Some(now + RESYNC_DELAY);
                return;
            }
        };
        self.generation = generation;
        self.snapshot_bytes = bytes.len() as u64;
        self.journal_bytes = record::HEADER_LEN as u64;
        self.last_snapshot = now;
        self.resync_after = None;
        self.shared.compacting.store(true, Ordering::Release);
        let old = self.journal.replace(new.clone());
        let _ = self.tx.send(Command::Snapshot {
            generation,
            batch,
            bytes,
            old,
            new,
        });
    }

    /// Whether it is time to compact: the journal is as large as the snapshot (at least
    /// 1 MiB), `autosave_interval` passed (seconds, or records with
    /// `autosave_on_changes`), or a write failed and a snapshot should resync the files.
    /// Never while a snapshot is being written.
    pub fn wants_snapshot(&mut self, records: u64, now: Instant) -> bool {
        if self.shared.compacting.load(Ordering::Acquire) {
            return false;
        }
        if !self.healthy() || self.journal.is_none() {
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

    /// Syncs everything appended and waits for a snapshot in progress, then stops the
    /// thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn degrade(shared: &Shared, what: &str, path: &Path, e: &io::Error) {
    if shared.healthy.swap(false, Ordering::AcqRel) {
        error!(
            "Persistence degraded: cannot {what} {}: {e}. Changes are kept in memory only until a snapshot succeeds (retried every {} s).",
            path.display(),
            RESYNC_DELAY.as_secs()
        );
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

/// State, generation, snapshot size, what was loaded, and the journal to append to.
/// What `load` found, and the journal to continue.
struct Found {
    loaded: Loaded,
    generation: u64,
    snapshot_len: u64,
    journal: File,
    journal_len: u64,
}

/// A journal file's records after its header, if it belongs to this load.
fn read_journal(path: &Path) -> Result<Option<(u64, Vec<u8>)>, String> {
    match fs::read(path) {
        Ok(bytes) => match decode_header(&bytes) {
            // Cut inside its header: it was being created, nothing is in it.
            Err(HeaderError::TooShort) => Ok(None),
            Err(e) => Err(header_error(path, e)),
            Ok(h) if h.kind != FileKind::Journal => {
                Err(format!("{} is not a journal", path.display()))
            }
            Ok(h) => Ok(Some((
                h.generation,
                bytes.get(record::HEADER_LEN..).unwrap_or_default().to_vec(),
            ))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replays a journal's records; returns the good ones' bytes, setting aside the rest.
fn replay_journal(state: &mut State, path: &Path, body: &[u8], loaded: &mut Loaded) -> Vec<u8> {
    let (count, at, damage, _) = replay(state, body);
    loaded.journal_records += count;
    if let Some(damage) = damage {
        let tail = body.get(at..).unwrap_or_default();
        loaded.damaged_bytes += tail.len() as u64;
        let aside = set_aside(path, tail);
        warn!(
            "The journal {} ends with {} damaged bytes after {count} good records ({damage}; a write cut short by a crash?); they were set aside in {}.",
            path.display(),
            tail.len(),
            aside.display()
        );
    }
    body.get(..at).unwrap_or_default().to_vec()
}

fn load(
    snapshot_path: &Path,
    journal_path: &Path,
    next_path: &Path,
    now: Instant,
) -> Result<Found, String> {
    let mut state = State::new(SystemTime::now(), now);
    let mut loaded = Loaded {
        state: State::default(),
        snapshot_records: 0,
        journal_records: 0,
        damaged_bytes: 0,
    };
    let mut generation = 0;
    let mut snapshot_len = 0;
    let mut has_snapshot = false;
    match fs::read(snapshot_path) {
        Ok(bytes) => {
            let header = decode_header(&bytes).map_err(|e| header_error(snapshot_path, e))?;
            if header.kind != FileKind::Snapshot {
                return Err(format!(
                    "{} is a journal, not a snapshot",
                    snapshot_path.display()
                ));
            }
            has_snapshot = true;
            generation = header.generation;
            snapshot_len = bytes.len() as u64;
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
    // The records to keep, in order: the journal of this snapshot, then a next journal
    // (a compaction that a crash interrupted, before or after the snapshot's rename).
    let mut kept = Vec::new();
    let mut rewrite = false;
    let mut journal_current = false;
    if let Some((g, body)) = read_journal(journal_path)? {
        if g >= generation || !has_snapshot {
            generation = g;
            let good = replay_journal(&mut state, journal_path, &body, &mut loaded);
            rewrite |= good.len() != body.len();
            kept = good;
            journal_current = true;
        } else {
            info!(
                "Ignoring {}: the snapshot is newer.",
                journal_path.display()
            );
            rewrite = true;
        }
    } else {
        rewrite = true;
    }
    if let Some((g, body)) = read_journal(next_path)? {
        let after_rename = g == generation && !journal_current;
        let before_rename = g == generation + 1 && journal_current;
        if after_rename || before_rename {
            info!(
                "Continuing an interrupted compaction with {}.",
                next_path.display()
            );
            let good = replay_journal(&mut state, next_path, &body, &mut loaded);
            kept.extend_from_slice(&good);
            rewrite = true;
        }
    }
    let _ = fs::remove_file(next_path);
    if state.inconsistencies > 0 {
        warn!(
            "{} records referred to state that was not there; they were skipped.",
            state.inconsistencies
        );
    }
    // Continue the journal after its last good record.
    let cannot = |e: io::Error| format!("cannot write {}: {e}", journal_path.display());
    let journal = if rewrite {
        new_journal(journal_path, generation, &kept).map_err(cannot)?
    } else {
        OpenOptions::new()
            .append(true)
            .open(journal_path)
            .map_err(cannot)?
    };
    loaded.state = state;
    Ok(Found {
        loaded,
        generation,
        snapshot_len,
        journal,
        journal_len: (record::HEADER_LEN + kept.len()) as u64,
    })
}

/// A journal of `generation` holding `records`, made durable (temporary file, sync,
/// rename, directory sync) and opened for appending.
fn new_journal(path: &Path, generation: u64, records: &[u8]) -> io::Result<File> {
    let tmp = with_suffix(path, TMP_SUFFIX);
    let mut f = File::create(&tmp)?;
    f.write_all(&encode_header(FileKind::Journal, generation))?;
    f.write_all(records)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(path)?;
    OpenOptions::new().append(true).open(path)
}

/// Syncs the directory holding `path`, so a rename in it is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
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
    written_batch: u64,
}

impl Writer {
    fn run(mut self) {
        loop {
            let command = match self.pending.take() {
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
                Ok(Command::Written { batch, file }) => {
                    self.written(batch, file);
                    if self.sync == SyncMode::Ack {
                        // Group commit: what arrived meanwhile shares the sync.
                        while let Ok(c) = self.rx.try_recv() {
                            match c {
                                Command::Written { batch, file } => self.written(batch, file),
                                other => {
                                    self.pending = Some(other);
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
                    old,
                    new,
                }) => self.snapshot(generation, batch, &bytes, old, new),
                Err(RecvTimeoutError::Timeout) => self.sync(),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            }
        }
    }

    fn written(&mut self, batch: u64, file: Option<Arc<File>>) {
        self.written_batch = batch;
        if let Some(f) = file {
            self.dirty = Some(f);
            self.dirty_since.get_or_insert_with(Instant::now);
        } else {
            // Nothing will be synced (degraded); acknowledgements must not wait forever.
            self.shared.set_durable(batch);
        }
    }

    fn sync(&mut self) {
        self.dirty_since = None;
        if let Some(f) = self.dirty.take() {
            if let Err(e) = f.sync_data() {
                degrade(&self.shared, "sync", &self.journal_path, &e);
            }
        }
        // After a failure the batches are not on disk, but acknowledgements must not wait
        // forever: the broker keeps serving, degraded (and says so in $SYS and the log).
        self.shared.set_durable(self.written_batch);
    }

    fn snapshot(
        &mut self,
        generation: u64,
        batch: u64,
        bytes: &[u8],
        old: Option<Arc<File>>,
        new: Arc<File>,
    ) {
        // The old journal first: until the rename, it and the next journal are the state.
        if let Some(old) = old {
            if let Err(e) = old.sync_data() {
                degrade(&self.shared, "sync", &self.journal_path, &e);
            }
        }
        self.dirty = Some(new.clone());
        match self.write_snapshot(generation, bytes, &new) {
            Ok(()) => {
                self.shared
                    .bytes_written
                    .fetch_add((bytes.len() + record::HEADER_LEN) as u64, Ordering::Relaxed);
                if !self.shared.healthy.swap(true, Ordering::AcqRel) {
                    info!(
                        "Persistence recovered: wrote {}.",
                        self.snapshot_path.display()
                    );
                }
            }
            Err(e) => degrade(&self.shared, "write the snapshot", &self.snapshot_path, &e),
        }
        self.shared.compacting.store(false, Ordering::Release);
        self.written_batch = self.written_batch.max(batch);
        self.sync();
    }

    fn write_snapshot(&self, generation: u64, bytes: &[u8], new: &File) -> io::Result<()> {
        let tmp = with_suffix(&self.snapshot_path, TMP_SUFFIX);
        let mut f = File::create(&tmp)?;
        f.write_all(&encode_header(FileKind::Snapshot, generation))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.snapshot_path)?;
        sync_dir(&self.snapshot_path)?;
        new.sync_all()?;
        fs::rename(&self.next_path, &self.journal_path)?;
        sync_dir(&self.journal_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::{encode, Delivery, StoredMessage};
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
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
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

    /// [issue: torn-write test] A journal cut or corrupted at every offset of its last
    /// records still starts, keeps every record before the damage, sets the rest aside,
    /// and appends after the last good record.
    #[test]
    fn journals_cut_or_corrupted_anywhere_in_the_last_records_recover_the_rest() {
        let records = records(4);
        let whole = journal_file(0, &records);
        // Where each record ends, from the header on.
        let mut ends = vec![record::HEADER_LEN];
        for r in &records {
            ends.push(ends.last().unwrap() + r.len());
        }
        let last_three_start = ends[ends.len() - 4];
        for cut in last_three_start..whole.len() {
            for corrupt in [false, true] {
                let dir = TempDir::new();
                let mut bytes = whole[..cut].to_vec();
                if corrupt {
                    // Damage inside the record that starts at or before `cut`, keep length.
                    bytes = whole.clone();
                    bytes[cut] ^= 0x5A;
                }
                fs::write(dir.0.join("culex.db.journal"), &bytes).unwrap();
                let (store, loaded) = Store::open(options(&dir.0), Instant::now())
                    .unwrap_or_else(|e| panic!("cut {cut} corrupt {corrupt}: {e}"));
                // Records wholly before the damaged byte survive.
                let intact = ends.iter().filter(|&&e| e <= cut).count() - 1;
                let whole_records = intact;
                assert_eq!(
                    loaded.journal_records as usize, whole_records,
                    "cut {cut} corrupt {corrupt}"
                );
                let expected_queue = whole_records.saturating_sub(2) / 2;
                assert_eq!(queued(&loaded.state), expected_queue, "cut {cut}");
                let damaged = ends[intact] != bytes.len();
                let aside = fs::read_dir(&dir.0)
                    .unwrap()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
                assert_eq!(aside, damaged, "cut {cut} corrupt {corrupt}");
                // The journal now ends at the last good record, and appends follow it.
                let mut store = store;
                let extra = &records[records.len() - 1];
                store.append(1, extra.clone());
                store.stop();
                let (_, again) = Store::open(options(&dir.0), Instant::now()).unwrap();
                assert_eq!(
                    again.journal_records as usize,
                    whole_records + 1,
                    "cut {cut} corrupt {corrupt}: appended after the good records"
                );
            }
        }
    }

    /// A compaction interrupted before the snapshot's rename (old snapshot, old journal,
    /// next journal) and after it (new snapshot, stale journal, next journal) both load
    /// everything; a compaction that completed leaves no next journal.
    #[test]
    fn interrupted_compactions_load_every_record() {
        let records = records(3);
        let (before, after) = records.split_at(4);
        let mut snapshot = encode_header(FileKind::Snapshot, 1).to_vec();
        for r in before {
            snapshot.extend_from_slice(r);
        }
        let mut end = Vec::new();
        encode(&Record::End, &mut end);
        snapshot.extend_from_slice(&end);

        // Before the rename: no snapshot yet (generation 0), journal 0 has `before`,
        // next (generation 1) has `after`.
        let dir = TempDir::new();
        fs::write(dir.0.join("culex.db.journal"), journal_file(0, before)).unwrap();
        fs::write(dir.0.join("culex.db.journal.next"), journal_file(1, after)).unwrap();
        let (store, loaded) = Store::open(options(&dir.0), Instant::now()).unwrap();
        store.stop();
        assert_eq!(queued(&loaded.state), 3);
        assert!(!dir.0.join("culex.db.journal.next").exists());
        let (_, again) = Store::open(options(&dir.0), Instant::now()).unwrap();
        assert_eq!(queued(&again.state), 3, "the merged journal is durable");

        // After the rename: snapshot 1 has `before`, the journal is stale (0), next (1).
        let dir = TempDir::new();
        fs::write(dir.0.join("culex.db"), &snapshot).unwrap();
        fs::write(dir.0.join("culex.db.journal"), journal_file(0, &records)).unwrap();
        fs::write(dir.0.join("culex.db.journal.next"), journal_file(1, after)).unwrap();
        let (store, loaded) = Store::open(options(&dir.0), Instant::now()).unwrap();
        store.stop();
        assert_eq!(
            queued(&loaded.state),
            3,
            "stale journal ignored, next replayed"
        );
        let (_, again) = Store::open(options(&dir.0), Instant::now()).unwrap();
        assert_eq!(queued(&again.state), 3);
    }

    /// A compaction through the store: the snapshot replaces the journal's content.
    #[test]
    fn a_snapshot_starts_a_new_generation() {
        let dir = TempDir::new();
        let (mut store, _) = Store::open(options(&dir.0), Instant::now()).unwrap();
        let records = records(2);
        for (i, r) in records.iter().enumerate() {
            store.append(i as u64 + 1, r.clone());
        }
        let mut snapshot = records.concat();
        encode(&Record::End, &mut snapshot);
        store.snapshot(10, snapshot, Instant::now());
        store.append(11, records[records.len() - 1].clone());
        store.stop();
        assert!(!dir.0.join("culex.db.journal.next").exists());
        let (_, loaded) = Store::open(options(&dir.0), Instant::now()).unwrap();
        assert_eq!(loaded.snapshot_records as usize, records.len() + 1);
        assert_eq!(loaded.journal_records, 1);
        assert_eq!(queued(&loaded.state), 3);
    }

    /// A write error (here /dev/full: ENOSPC) degrades persistence without stopping
    /// anything; acknowledgements are not held forever; a snapshot recovers.
    #[test]
    fn a_full_disk_degrades_and_a_snapshot_recovers() {
        let dir = TempDir::new();
        let mut opts = options(&dir.0);
        opts.sync = SyncMode::Ack;
        let (mut store, _) = Store::open(opts, Instant::now()).unwrap();
        let full = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux");
        store.journal = Some(Arc::new(full));
        store.append(1, records(1)[0].clone());
        assert!(!store.healthy());
        let now = Instant::now();
        assert!(!store.wants_snapshot(0, now), "not at once");
        assert!(store.wants_snapshot(0, now + RESYNC_DELAY));
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.durable() < 1 {
            assert!(Instant::now() < deadline, "acknowledgements are released");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut snapshot = Vec::new();
        encode(&Record::End, &mut snapshot);
        store.snapshot(2, snapshot, now);
        while !store.healthy() || store.durable() < 2 {
            assert!(Instant::now() < deadline, "the snapshot recovers");
            std::thread::sleep(Duration::from_millis(5));
        }
        store.append(3, records(1)[0].clone());
        store.stop();
        let (_, loaded) = Store::open(options(&dir.0), Instant::now()).unwrap();
        assert_eq!(
            loaded.journal_records, 1,
            "writing resumed in the new journal"
        );
    }
}
