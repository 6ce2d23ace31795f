//! Start-up: the snapshot, its journal and an interrupted compaction's next journal read
//! back into a [`State`]. Start-up always comes up: what cannot be read is moved or
//! copied aside (one copy per damaged file, named with the time, at most
//! [`MAX_DAMAGED_COPIES`] kept per file), every record that can be read is recovered,
//! and the log says what was lost and why.
//!
//! - A file that is empty, of another format version, of the wrong kind or unreadable is
//!   moved aside whole (a rename: no space needed) and start-up goes on without it.
//! - A file whose header is damaged is scanned for records from its first byte.
//! - After a damaged record, reading resynchronises ([`record::resync`]): past the record
//!   by its length when only its checksum fails, else at the next offset where two
//!   records in a row decode.
//! - A damaged tail with nothing readable after it is a write cut short: the journal is
//!   cut back to its last good record in place (no space needed) and appended to.
//! - Damage anywhere else (a failing card, another program) asks the store for a
//!   snapshot at once, so the next start-up finds clean files and says nothing.
//!
//! Files are only ever replaced by a durable copy: the next journal of an interrupted
//! compaction is removed only once the merged journal is on disk. When that cannot be
//! written (a full or read-only file system), the files stay as they are, the state is
//! served from memory and the store retries (`store.rs`).

use super::fsio::{self, with_suffix};
use super::record::{self, decode, decode_header, resync, Damage, FileKind, HeaderError, Record};
use super::replay::State;
use log::{error, info, warn};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// Copies of damaged files kept per file; older ones are removed.
pub const MAX_DAMAGED_COPIES: usize = 5;
/// Damaged bytes copied aside per file, at most: a zeroed page is 4 KiB; a card that
/// returns garbage for a whole file does not get to fill the rest of it.
pub const MAX_ASIDE_BYTES: usize = 1 << 20;

/// What start-up found on disk.
#[derive(Default)]
pub struct Loaded {
    pub state: State,
    pub snapshot_records: u64,
    pub journal_records: u64,
    /// Bytes that held no readable record (copied or moved aside).
    pub damaged_bytes: u64,
    /// Records that could not be read: at least this many (a damaged length hides how
    /// many records a stretch held; it is counted as one).
    pub records_lost: u64,
    /// Files moved aside whole (empty, unknown version, unreadable).
    pub files_set_aside: u64,
}

pub(super) struct Paths {
    pub snapshot: PathBuf,
    pub journal: PathBuf,
    pub next: PathBuf,
}

/// How the store goes on after loading.
pub(super) enum Continue {
    /// Append to this journal, now this long.
    Append(File),
    /// The files could not be made ready to append (the error, and what was tried): the
    /// state is served from memory until a full snapshot succeeds. The files on disk are
    /// untouched and still load to what was loaded now.
    Behind(String),
}

pub(super) struct Found {
    pub loaded: Loaded,
    /// The highest generation of any file found: a new snapshot's must be above it.
    pub generation: u64,
    pub snapshot_len: u64,
    pub journal_len: u64,
    pub next: Continue,
    /// Damage was found that a snapshot should replace at once.
    pub compact: bool,
}

/// A damaged stretch of a file's records.
struct Gap {
    at: usize,
    len: usize,
    damage: Damage,
    /// Skipped by the damaged record's own length: exactly one record lost.
    by_length: bool,
}

/// Records read from a file's body.
#[derive(Default)]
struct Replayed {
    records: u64,
    gaps: Vec<Gap>,
    /// A snapshot's `End` was read.
    ended: bool,
    /// The bytes of the good records, in order (for a merged journal).
    good: Vec<u8>,
}

impl Replayed {
    /// Damage only at the end, nothing readable after it: a write cut short.
    fn is_torn_tail(&self, body_len: usize) -> bool {
        matches!(&self.gaps[..], [g] if g.at + g.len == body_len)
    }

    fn damaged_bytes(&self) -> usize {
        self.gaps.iter().map(|g| g.len).sum()
    }

    fn lost(&self, header_damaged: bool) -> u64 {
        self.gaps
            .iter()
            .filter(|g| !(header_damaged && g.at == 0 && g.len <= record::HEADER_LEN))
            .count() as u64
    }
}

/// Applies every readable record of `body` to `state`, resynchronising after damage. A
/// snapshot stops at its `End`.
fn replay(state: &mut State, body: &[u8]) -> Replayed {
    let mut out = Replayed::default();
    let mut at = 0;
    while let Some(rest) = body.get(at..) {
        match decode(rest) {
            Ok(None) => break,
            Ok(Some((r, n))) => {
                state.apply(&r);
                out.records += 1;
                out.good
                    .extend_from_slice(rest.get(..n).unwrap_or_default());
                at += n;
                if r == Record::End {
                    out.ended = true;
                    break;
                }
            }
            Err(damage) => {
                let next = resync(body, at);
                let (end, by_length) = next.unwrap_or((body.len(), false));
                out.gaps.push(Gap {
                    at,
                    len: end - at,
                    damage,
                    by_length,
                });
                match next {
                    Some((n, _)) => at = n,
                    None => break,
                }
            }
        }
    }
    out
}

/// A file as read at start-up.
enum Read {
    Missing,
    /// Moved aside whole; the reason was logged.
    SetAside,
    /// Its records start at `body_at`; `generation` is `None` when the header is damaged.
    Records {
        bytes: Vec<u8>,
        body_at: usize,
        generation: Option<u64>,
    },
}

fn read(path: &Path, kind: FileKind, scan_damaged_header: bool, loaded: &mut Loaded) -> Read {
    let what = match kind {
        FileKind::Snapshot => "snapshot",
        FileKind::Journal => "journal",
    };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => {
            move_aside(path, &format!("cannot read the {what}: {e}"), loaded);
            return Read::SetAside;
        }
    };
    match decode_header(&bytes) {
        Ok(h) if h.kind == kind => Read::Records {
            bytes,
            body_at: record::HEADER_LEN,
            generation: Some(h.generation),
        },
        Ok(_) => {
            move_aside(
                path,
                &format!("it is not a {what} (wrong file kind)"),
                loaded,
            );
            Read::SetAside
        }
        // A journal is created with its header in one write and renamed into place; a
        // next journal cut inside its header was being created and holds nothing.
        Err(HeaderError::TooShort)
            if kind == FileKind::Journal
                && record::MAGIC.starts_with(&bytes[..bytes.len().min(8)]) =>
        {
            Read::Missing
        }
        Err(HeaderError::TooShort) => {
            let why = if bytes.is_empty() {
                format!("the {what} is empty")
            } else {
                format!(
                    "the {what} is {} bytes, shorter than its header",
                    bytes.len()
                )
            };
            move_aside(path, &why, loaded);
            Read::SetAside
        }
        Err(HeaderError::NotCulex) if scan_damaged_header => Read::Records {
            bytes,
            body_at: 0,
            generation: None,
        },
        Err(e) => {
            move_aside(path, &e.to_string(), loaded);
            Read::SetAside
        }
    }
}

/// Logs the damage `r` found in `path` and copies the damaged bytes aside.
fn report(
    path: &Path,
    what: &str,
    body: &[u8],
    r: &Replayed,
    header_damaged: bool,
    loaded: &mut Loaded,
) {
    let damaged = r.damaged_bytes();
    let lost = r.lost(header_damaged);
    loaded.damaged_bytes += damaged as u64;
    loaded.records_lost += lost;
    let aside = copy_aside(path, body, &r.gaps);
    let places: Vec<String> = r
        .gaps
        .iter()
        .take(5)
        .map(|g| {
            let how = if g.by_length {
                "skipped by its length"
            } else {
                "its length is damaged too: found the next record by scanning"
            };
            format!("{} at byte {}, {} bytes, {how}", g.damage, g.at, g.len)
        })
        .collect();
    if header_damaged {
        error!(
            "The header of the {what} {} is damaged (it does not start with culex's magic bytes); {} records after it were recovered, at least {lost} lost ({}); the damaged bytes are in {aside}.",
            path.display(),
            r.records,
            places.join(", ")
        );
    } else if r.is_torn_tail(body.len()) {
        warn!(
            "The {what} {} ends with {damaged} damaged bytes after {} good records ({}: a write cut short by a crash or a power cut); they were set aside in {aside}.",
            path.display(),
            r.records,
            r.gaps[0].damage
        );
    } else if r.gaps.is_empty() {
        error!(
            "The {what} {} ends after {} records, before its end mark (the file system lost its tail); kept what was there.",
            path.display(),
            r.records
        );
    } else {
        error!(
            "The {what} {} is damaged in the middle: {damaged} bytes in {} place(s) ({}). Records after the damage were readable, so this is not a write cut short by a crash: the card may be failing, or another program changed the file. {} records were recovered, at least {lost} lost; the damaged bytes are in {aside}.",
            path.display(),
            r.gaps.len(),
            places.join(", "),
            r.records
        );
    }
}

/// The aside name of `path`: `<name>.damaged-<UTC time>`, unique.
fn aside_path(path: &Path) -> PathBuf {
    let stamp = jiff::fmt::strtime::format("%Y%m%dT%H%M%SZ", jiff::Timestamp::now())
        .unwrap_or_else(|_| "time".into());
    let base = with_suffix(path, &format!(".damaged-{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = with_suffix(&base, &format!("-{n}"));
    }
    candidate
}

/// Removes the oldest aside copies of `path` beyond [`MAX_DAMAGED_COPIES`] (names sort
/// by time).
fn clean_old_copies(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.damaged-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    let mut copies: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(MAX_DAMAGED_COPIES);
    for old in copies.into_iter().take(excess) {
        if fsio::remove(&old).is_ok() {
            info!("Removed an old copy of damaged data, {}.", old.display());
        }
    }
}

/// Moves a file that cannot be used aside whole.
fn move_aside(path: &Path, why: &str, loaded: &mut Loaded) {
    let aside = aside_path(path);
    loaded.files_set_aside += 1;
    loaded.damaged_bytes += fs::metadata(path).map_or(0, |m| m.len());
    match fsio::rename(path, &aside) {
        Ok(()) => {
            error!(
                "Cannot use {}: {why}. Moved it to {} and started without it.",
                path.display(),
                aside.display()
            );
            clean_old_copies(path);
        }
        Err(e) => error!(
            "Cannot use {}: {why}. Started without it; it could not be moved aside ({e}) and will be replaced by the next snapshot.",
            path.display()
        ),
    }
}

/// Copies the damaged stretches of `body` (at most [`MAX_ASIDE_BYTES`]) aside; returns
/// where, for the log.
fn copy_aside(path: &Path, body: &[u8], gaps: &[Gap]) -> String {
    if gaps.is_empty() {
        return "(nothing)".into();
    }
    let aside = aside_path(path);
    let mut bytes = Vec::new();
    for g in gaps {
        let room = MAX_ASIDE_BYTES - bytes.len();
        bytes.extend_from_slice(body.get(g.at..g.at + g.len.min(room)).unwrap_or_default());
    }
    let result = fsio::create(&aside).and_then(|f| fsio::write_all(&f, &aside, &bytes));
    match result {
        Ok(()) => {
            clean_old_copies(path);
            aside.display().to_string()
        }
        Err(e) => {
            let _ = fs::remove_file(&aside);
            format!("no file (they could not be copied: {e})")
        }
    }
}

/// What start-up has gathered so far, file by file: [`load`] reads the snapshot, then its
/// journal, then an interrupted compaction's next journal, then makes the journal ready
/// to append.
struct Loader<'p> {
    paths: &'p Paths,
    loaded: Loaded,
    state: State,
    /// Damage was found that a snapshot should replace at once.
    compact: bool,
    /// The highest generation of any file found.
    generation: u64,
    has_snapshot: bool,
    snap_gen: Option<u64>,
    snapshot_len: u64,
    /// The records to keep in order, if the journal must be rewritten: this snapshot's
    /// journal, then a next journal (a compaction a crash interrupted, before or after
    /// the snapshot's rename).
    kept: Vec<u8>,
    /// The journal is rewritten from `kept` (merged, stale or missing).
    rewrite: bool,
    /// Where a torn tail cuts the journal back.
    cut_at: Option<u64>,
    journal_len: u64,
    journal_gen: Option<u64>,
    /// The journal on disk continues the snapshot (it is neither stale nor missing).
    journal_current: bool,
    next_applied: bool,
    /// No snapshot file at all (not one set aside as damaged).
    snapshot_missing: bool,
    /// The journal continued a snapshot that is gone; it was set aside.
    orphaned: bool,
}

pub(super) fn load(paths: &Paths, now: Instant) -> Found {
    let mut l = Loader {
        paths,
        loaded: Loaded::default(),
        state: State::new(SystemTime::now(), now),
        compact: false,
        generation: 0,
        has_snapshot: false,
        snap_gen: None,
        snapshot_len: 0,
        kept: Vec::new(),
        rewrite: false,
        cut_at: None,
        journal_len: 0,
        journal_gen: None,
        journal_current: false,
        next_applied: false,
        snapshot_missing: false,
        orphaned: false,
    };
    l.snapshot();
    l.journal();
    l.next_journal();
    if l.state.inconsistencies > 0 {
        warn!(
            "{} records referred to state that was not there; they were skipped.",
            l.state.inconsistencies
        );
    }
    let next = l.continue_journal();
    l.loaded.state = l.state;
    Found {
        loaded: l.loaded,
        generation: l.generation,
        snapshot_len: l.snapshot_len,
        journal_len: l.journal_len,
        next,
        compact: l.compact,
    }
}

impl Loader<'_> {
    fn snapshot(&mut self) {
        let path = &self.paths.snapshot;
        match read(path, FileKind::Snapshot, true, &mut self.loaded) {
            Read::Missing => self.snapshot_missing = true,
            Read::SetAside => self.compact = true,
            Read::Records {
                bytes,
                body_at,
                generation: g,
            } => {
                let body = bytes.get(body_at..).unwrap_or_default();
                let r = replay(&mut self.state, body);
                self.loaded.snapshot_records = r.records;
                if r.records == 0 && g.is_none() {
                    move_aside(
                        path,
                        "it is not a culex database (unknown magic bytes, no readable records)",
                        &mut self.loaded,
                    );
                    self.compact = true;
                } else {
                    if !r.gaps.is_empty() || !r.ended || g.is_none() {
                        report(path, "snapshot", body, &r, g.is_none(), &mut self.loaded);
                        self.compact = true;
                    }
                    self.has_snapshot = true;
                    self.snap_gen = g;
                    self.snapshot_len = bytes.len() as u64;
                    self.generation = self.generation.max(g.unwrap_or(0));
                }
            }
        }
    }

    fn journal(&mut self) {
        let path = &self.paths.journal;
        let Read::Records {
            bytes,
            body_at,
            generation: g,
        } = read(path, FileKind::Journal, true, &mut self.loaded)
        else {
            self.journal_current = false;
            self.rewrite = true;
            return;
        };
        // Since generation 1 every journal starts beside a snapshot (an empty one at
        // first), which is only ever replaced by a rename: a journal of generation 1 or
        // later without any snapshot continues one that was removed, as a user removes
        // Mosquitto's persistence_file to start afresh. Its records alone are not the
        // state (the snapshot's are missing), so it is set aside, not replayed.
        if self.snapshot_missing && g.is_some_and(|g| g >= 1) {
            move_aside(
                path,
                &format!(
                    "it continues {}, which is missing (removed to start afresh?)",
                    self.paths.snapshot.display()
                ),
                &mut self.loaded,
            );
            self.orphaned = true;
            self.journal_current = false;
            self.rewrite = true;
            return;
        }
        self.generation = self.generation.max(g.unwrap_or(0));
        // A journal older than the snapshot is in it already (the compaction that wrote
        // the snapshot stopped before renaming its next journal into place).
        let stale = matches!((g, self.snap_gen), (Some(g), Some(s)) if self.has_snapshot && g < s);
        self.journal_current = !stale;
        if stale {
            info!("Ignoring {}: the snapshot is newer.", path.display());
            self.rewrite = true;
            return;
        }
        self.journal_gen = g;
        let body = bytes.get(body_at..).unwrap_or_default();
        let r = replay(&mut self.state, body);
        if g.is_none() && r.records == 0 {
            move_aside(
                path,
                "it is not a culex journal (unknown magic bytes, no readable records)",
                &mut self.loaded,
            );
            self.journal_current = false;
            self.journal_gen = None;
            self.rewrite = true;
            return;
        }
        self.loaded.journal_records += r.records;
        if !r.gaps.is_empty() || g.is_none() {
            report(path, "journal", body, &r, g.is_none(), &mut self.loaded);
        }
        if g.is_some() && r.is_torn_tail(body.len()) {
            self.cut_at = Some((body_at + r.gaps[0].at) as u64);
        } else if !r.gaps.is_empty() || g.is_none() {
            self.compact = true;
        }
        self.journal_len = (body_at + body.len()) as u64;
        self.kept = r.good;
    }

    /// The generation the journal continues.
    fn base(&self) -> Option<u64> {
        if self.journal_current {
            self.journal_gen.or(self.snap_gen)
        } else {
            self.snap_gen
        }
    }

    fn next_journal(&mut self) {
        let path = &self.paths.next;
        if self.orphaned && path.exists() {
            move_aside(
                path,
                "the journal it continues was set aside with it",
                &mut self.loaded,
            );
            return;
        }
        let base = self.base();
        let Read::Records {
            bytes,
            body_at,
            generation: Some(g),
        } = read(path, FileKind::Journal, false, &mut self.loaded)
        else {
            return;
        };
        // Before the snapshot's rename it continues the journal (generation + 1); after
        // it, the new snapshot (same generation). A later generation than that can only
        // follow lost files: its records are still the best there is.
        let after_rename = !self.journal_current && self.has_snapshot && self.snap_gen == Some(g);
        if !(after_rename || base.is_none_or(|b| g > b)) {
            // Its records are in the snapshot or journal already.
            move_aside(
                path,
                &format!("it is older (generation {g}) than the files it would continue"),
                &mut self.loaded,
            );
            return;
        }
        if base.is_some_and(|b| g > b + 1) {
            warn!(
                "{} continues generation {}, but generation {} was found: some records in between are missing.",
                path.display(),
                g - 1,
                base.unwrap_or(0)
            );
        }
        info!(
            "Continuing an interrupted compaction with {}.",
            path.display()
        );
        self.generation = self.generation.max(g);
        let body = bytes.get(body_at..).unwrap_or_default();
        let r = replay(&mut self.state, body);
        self.loaded.journal_records += r.records;
        if !r.gaps.is_empty() {
            report(path, "journal", body, &r, false, &mut self.loaded);
            self.compact |= !r.is_torn_tail(body.len());
        }
        if !self.journal_current {
            self.kept.clear();
        }
        self.kept.extend_from_slice(&r.good);
        self.next_applied = true;
        self.rewrite = true;
    }

    /// Makes the journal ready to append: rewritten from the kept records, or cut back
    /// past a torn tail, or opened as it is.
    fn continue_journal(&mut self) -> Continue {
        let paths = self.paths;
        if self.rewrite && self.snapshot_missing && self.base().is_none() && !self.next_applied {
            // A fresh start: an empty snapshot first (generation 1), so that the journal
            // is never found without the file it continues unless that was removed.
            self.generation = self.generation.max(1);
            let mut snapshot = record::encode_header(FileKind::Snapshot, self.generation).to_vec();
            record::encode(&Record::End, &mut snapshot);
            if let Err(e) = fsio::replace(&paths.snapshot, &[&snapshot]) {
                return Continue::Behind(format!("write {}: {e}", paths.snapshot.display()));
            }
            self.snap_gen = Some(self.generation);
            self.has_snapshot = true;
            self.snapshot_len = snapshot.len() as u64;
        }
        if self.rewrite {
            // A merged journal (or a new one) for the state: the generation it continues.
            let g = if self.next_applied && !self.journal_current {
                self.snap_gen.unwrap_or(self.generation)
            } else {
                self.base().unwrap_or(self.generation)
            };
            let header = record::encode_header(FileKind::Journal, g);
            return match fsio::replace(&paths.journal, &[&header, &self.kept]) {
                // Only now is the next journal's content durable elsewhere.
                Ok(()) => {
                    match fsio::remove(&paths.next).and_then(|()| fsio::open_append(&paths.journal))
                    {
                        Ok(f) => {
                            self.journal_len = (header.len() + self.kept.len()) as u64;
                            Continue::Append(f)
                        }
                        Err(e) => {
                            Continue::Behind(format!("open {}: {e}", paths.journal.display()))
                        }
                    }
                }
                Err(e) => Continue::Behind(format!("write {}: {e}", paths.journal.display())),
            };
        }
        let opened = fsio::open_append(&paths.journal).and_then(|f| {
            if let Some(at) = self.cut_at {
                fsio::set_len(&f, &paths.journal, at)?;
                fsio::sync_all(&f, &paths.journal)?;
                self.journal_len = at;
            }
            Ok(f)
        });
        match opened {
            Ok(f) => Continue::Append(f),
            Err(e) => Continue::Behind(format!("write {}: {e}", paths.journal.display())),
        }
    }
}
