//! The broker's side of persistence: every change of durable state becomes a record in
//! an in-memory batch (`Journal`), which the loop hands to the store after each
//! iteration; a snapshot is the same records for the whole state; start-up restores the
//! state the store loaded.
//!
//! What is durable: retained messages (not `$SYS`, which is regenerated), and sessions
//! that outlive their connection (Session Expiry Interval > 0, or 3.1.1 clean session 0)
//! with their subscriptions, queued and in-flight messages, QoS 2 packet ids awaiting
//! PUBREL, and delayed wills. A clean session is never written.
//!
//! In strict mode (`persistence_sync ack`) acknowledgements wait until the records they
//! report are on disk (`durable.rs`); [`Journal::reported_batch`] says which batch that is.

use super::state::{Inflight, InflightState, Queued, Session, SessionId, Sub, Timer};
use super::{Broker, Message};
use crate::persist::record::{encode, Delivery, Record, StoredMessage};
use crate::persist::replay::State;
use crate::protocol::PacketId;
use crate::protocol::QoS;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Records not yet handed to the store.
pub struct Journal {
    buf: Vec<u8>,
    /// The number of the batch being built; batches are numbered from 1.
    batch: u64,
    next_message: u64,
    /// Messages written in this batch, by address, kept alive so an address cannot be
    /// reused for another message before the batch is taken.
    written: HashMap<usize, (u64, Rc<Message>)>,
    /// Monotonic and wall clock read together, to store times as Unix milliseconds.
    clock: (Instant, SystemTime),
    strict: bool,
    /// Records since the last snapshot.
    pub(super) records: u64,
}

impl Journal {
    /// In strict mode, the batch an acknowledgement sent now reports: the one being built
    /// if handling its packet wrote records since `mark`; otherwise, for a persistent
    /// session, the latest batch with records (what it reports may have been written by
    /// an earlier packet); otherwise none.
    pub(super) fn reported_batch(&self, mark: Option<usize>, persisted: bool) -> Option<u64> {
        if !self.strict {
            return None;
        }
        if mark.is_some_and(|m| m != self.buf.len()) {
            return Some(self.batch);
        }
        if !persisted {
            return None;
        }
        Some(if self.buf.is_empty() {
            self.batch - 1
        } else {
            self.batch
        })
    }

    fn push(&mut self, record: &Record<'_>) {
        encode(record, &mut self.buf);
        self.records += 1;
    }

    fn ms(&self, at: Instant) -> u64 {
        let (mono, wall) = self.clock;
        let wall_at = match at.checked_duration_since(mono) {
            Some(ahead) => wall + ahead,
            None => wall - mono.duration_since(at),
        };
        wall_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64)
    }

    /// The number of `message` in this generation, writing it first if this batch has
    /// not.
    fn message_id(&mut self, message: &Rc<Message>) -> u64 {
        self.write_message(message, false).0
    }

    /// Writes `message` unless this batch has; `retained` marks it as the retained
    /// message of its topic when it is written now. Returns its number and whether it
    /// was written now.
    fn write_message(&mut self, message: &Rc<Message>, retained: bool) -> (u64, bool) {
        let key = Rc::as_ptr(message) as usize;
        if let Some((id, _)) = self.written.get(&key) {
            return (*id, false);
        }
        self.next_message += 1;
        let id = self.next_message;
        if let Some(source) = &message.source {
            self.push(&Record::Source {
                client_id: &source.client_id,
                username: source.username.as_deref(),
                listener: u16::try_from(source.listener).unwrap_or(u16::MAX),
            });
        }
        let record = Record::Message {
            id,
            message: stored(message, self),
            retained,
        };
        self.push(&record);
        self.written.insert(key, (id, message.clone()));
        (id, true)
    }

    /// `message` is the retained message of its topic: one record if it is new here.
    fn retain(&mut self, message: &Rc<Message>) {
        let (id, written) = self.write_message(message, true);
        if !written {
            self.push(&Record::Retain { id });
        }
    }

    fn delivery(&mut self, message: &Rc<Message>, qos: QoS, retain: bool, ids: &[u32]) -> Delivery {
        Delivery {
            message: self.message_id(message),
            qos: qos as u8,
            retain,
            sub_ids: ids.to_vec(),
        }
    }
}

fn stored<'a>(m: &'a Message, j: &Journal) -> StoredMessage<'a> {
    let props = m.props.as_deref();
    StoredMessage {
        topic: m.topic(),
        payload: m.payload(),
        qos: m.qos as u8,
        retain: m.retain,
        expires_ms: props.and_then(|p| p.expires_at).map_or(0, |at| j.ms(at)),
        payload_format_indicator: props.and_then(|p| p.payload_format_indicator),
        content_type: props.and_then(|p| p.content_type.as_deref()),
        response_topic: props.and_then(|p| p.response_topic.as_deref()),
        correlation_data: props.and_then(|p| p.correlation_data.as_deref()),
        user_properties: props.map_or_else(Vec::new, |p| {
            p.user_properties
                .iter()
                .map(|(k, v)| (&**k, &**v))
                .collect()
        }),
    }
}

/// Whether a stored message can stand for `new` on disk: same bytes, QoS, flags and
/// properties, and no expiry (whose deadline would differ).
fn same_content(old: &Message, new: &Message) -> bool {
    old.payload() == new.payload()
        && old.qos == new.qos
        && old.retain == new.retain
        && old.props == new.props
        && new.props.as_ref().is_none_or(|p| p.expires_at.is_none())
}

/// `$SYS` is regenerated at start; writing it every `sys_interval` would wear the disk.
fn is_durable_topic(topic: &str) -> bool {
    !topic.starts_with("$SYS")
}

impl Broker {
    /// Starts journaling (after [`Broker::restore`]). `strict`: hold acknowledgements until
    /// what they report is durable (`durable.rs`). `next_message`: above every message number of the loaded generation.
    /// `wall` is the wall-clock time at `now`: times are stored as Unix milliseconds.
    pub fn enable_journal(
        &mut self,
        strict: bool,
        next_message: u64,
        now: Instant,
        wall: SystemTime,
    ) {
        self.journal = Some(Journal {
            buf: Vec::new(),
            batch: 1,
            next_message,
            written: HashMap::new(),
            clock: (now, wall),
            strict,
            records: 0,
        });
        self.holds.strict = strict;
    }

    /// The records of this iteration and their batch number, to append to the journal
    /// file; `None` if there are none.
    pub fn take_journal(&mut self) -> Option<(u64, Vec<u8>)> {
        let j = self.journal.as_mut()?;
        if j.buf.is_empty() {
            return None;
        }
        j.written.clear();
        let batch = j.batch;
        j.batch += 1;
        Some((batch, std::mem::take(&mut j.buf)))
    }

    /// Records since the last snapshot.
    pub fn journal_records(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.records)
    }

    /// The journal's length, to tell whether handling a packet wrote records.
    /// Strict mode (`persistence_sync ack`): acknowledgements wait for their records.
    pub(super) fn is_journal_strict(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.strict)
    }

    pub(super) fn journal_mark(&self) -> Option<usize> {
        self.journal.as_ref().map(|j| j.buf.len())
    }

    /// Writes a record for `sid` if it is a persisted session.
    pub(super) fn journal_session(&mut self, sid: SessionId, f: impl FnOnce(&mut Journal, u32)) {
        let persisted = self.sessions.get(sid.0).is_some_and(|s| s.persisted);
        if let (true, Some(j)) = (persisted, self.journal.as_mut()) {
            f(j, sid.0);
        }
    }

    pub(super) fn journal_retained(&mut self, topic: &str, message: Option<&Rc<Message>>) {
        let Some(j) = self.journal.as_mut().filter(|_| is_durable_topic(topic)) else {
            return;
        };
        match message {
            // A value republished unchanged (and without expiry) changes nothing on disk:
            // sensors often repeat themselves.
            Some(m)
                if self
                    .retained
                    .get(topic)
                    .is_some_and(|old| same_content(old, m)) => {}
            Some(m) => j.retain(m),
            None => j.push(&Record::Unretain { topic }),
        }
    }

    /// The session's parameters changed (MQTT 5 DISCONNECT's Session Expiry Interval).
    pub(super) fn journal_session_params(&mut self, sid: SessionId) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        if let Some(s) = self.sessions.get(sid.0) {
            if s.persisted {
                j.push(&session_record(sid.0, s));
            }
        }
    }

    /// A client connected to `sid`: a session that now outlives its connection is written
    /// whole the first time, then as parameter updates.
    pub(super) fn journal_connected(&mut self, sid: SessionId, had_pending_will: bool) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return;
        };
        if s.persisted {
            j.push(&session_record(sid.0, s));
            if had_pending_will {
                j.push(&Record::WillDone { sid: sid.0 });
            }
        } else if s.expiry_interval != 0 {
            s.persisted = true;
            let timed = self
                .outboxes
                .get(&s.client_id)
                .is_some_and(|o| o.limits.is_some())
                .then_some(self.started);
            write_session(j, sid, s, timed);
        }
    }

    /// Durable sessions and retained messages as a snapshot's records, ending with
    /// `End`, appended to `out`; returns the batch number the snapshot covers (records
    /// not yet taken are dropped: the snapshot holds their effect). The message numbers
    /// continue the journal's.
    pub fn write_snapshot(&mut self, out: &mut Vec<u8>) -> u64 {
        let Some(mut j) = self.journal.take() else {
            return 0;
        };
        // Records not yet taken are part of the state the snapshot captures.
        j.buf.clear();
        j.written.clear();
        let mut retained = Vec::new();
        self.retained.retain(|topic, m| {
            if is_durable_topic(topic) {
                retained.push(m.clone());
            }
            true
        });
        for m in &retained {
            j.retain(m);
        }
        for (slot, s) in self.sessions.iter().filter(|(_, s)| s.persisted) {
            let timed = self
                .outboxes
                .get(&s.client_id)
                .is_some_and(|o| o.limits.is_some())
                .then_some(self.started);
            write_session(&mut j, SessionId(slot), s, timed);
            if s.conn.is_none() {
                let expires_ms = s.expires_at.map_or(0, |at| j.ms(at));
                j.push(&Record::Offline {
                    sid: slot,
                    expires_ms,
                });
            }
        }
        j.push(&Record::End);
        out.append(&mut j.buf);
        j.written.clear();
        j.records = 0;
        let batch = j.batch;
        j.batch += 1;
        self.journal = Some(j);
        batch
    }

    /// Rebuilds sessions and retained messages from what the store loaded. Call before
    /// [`Broker::enable_journal`] and before any connection.
    pub fn restore(&mut self, state: State, now: Instant) {
        let since = self.secs(now);
        for (topic, m) in state.retained {
            if !m.is_expired(now) {
                self.stats.hold(&m);
                if !topic.starts_with("$SYS") {
                    self.retained_count += 1;
                    self.retained_bytes += m.payload().len();
                }
                self.retained.insert(&topic, m);
            }
        }
        // Each session keeps the number its records use, so the journal continues.
        for (slot, s) in state.sessions {
            if s.expiry == 0
                || self.by_client_id.contains_key(&s.client_id)
                || self.sessions.contains(slot)
            {
                continue;
            }
            let sid = SessionId(slot);
            self.sessions
                .insert_at(slot, Session::new(s.client_id.clone()));
            self.by_client_id.insert(s.client_id, sid);
            for sub in &s.subscriptions {
                let sub_opts = Sub {
                    qos: crate::persist::record::qos(sub.qos),
                    no_local: sub.no_local,
                    retain_as_published: sub.retain_as_published,
                    id: sub.id,
                };
                self.add_subscription(sid, &sub.filter, sub_opts);
            }
            let listeners = self.settings.listeners.len().max(1);
            let started = self.started;
            let persistent_client_expiration = self.settings.persistent_client_expiration;
            let mut holds = Vec::new();
            let session = self.session_mut(sid);
            session.persisted = true;
            session.expiry_interval = s.expiry;
            session.username = s.username;
            session.listener = usize::from(s.listener).min(listeners - 1);
            session.last_packet_id = s.last_packet_id;
            for i in s.inflight {
                let Some(packet_id) = PacketId::new(i.packet_id) else {
                    continue;
                };
                session.last_packet_id = session.last_packet_id.max(i.packet_id);
                let qos = crate::persist::record::qos(i.queued.qos);
                holds.push(i.queued.message.clone());
                session.inflight.push_back(Inflight {
                    packet_id,
                    message: i.queued.message,
                    qos,
                    retain: i.queued.retain,
                    sub_ids: i.queued.sub_ids,
                    state: match (qos, i.released) {
                        (QoS::ExactlyOnce, true) => InflightState::Pubcomp,
                        (QoS::ExactlyOnce, false) => InflightState::Pubrec,
                        _ => InflightState::Puback,
                    },
                    // A bridge outbox's journaled time; otherwise the journal keeps no
                    // arrival time: it waits from the restart on.
                    since: i
                        .queued
                        .queued_at
                        .map_or(since, |at| super::backlog::secs_between(started, at)),
                });
            }
            for q in s.queue {
                session.queued_bytes += q.message.queued_size();
                holds.push(q.message.clone());
                session.queue.push_back(Queued {
                    message: q.message,
                    qos: crate::persist::record::qos(q.qos),
                    retain: q.retain,
                    sub_ids: q.sub_ids,
                    since: q
                        .queued_at
                        .map_or(since, |at| super::backlog::secs_between(started, at)),
                });
            }
            session.awaiting_pubrel = s
                .awaiting_release
                .iter()
                .filter_map(|p| PacketId::new(*p))
                .collect();
            // A session that was connected when the broker stopped is disconnected now.
            let expires_at = match s.offline_expires {
                Some(at) => at,
                None => match s.expiry {
                    u32::MAX => persistent_client_expiration.map(|d| now + d),
                    secs => Some(now + Duration::from_secs(u64::from(secs))),
                },
            };
            session.expires_at = expires_at;
            if let Some((will, due)) = s.will {
                session.pending_will = Some((will, due));
                self.timers.schedule(due, Timer::WillDelay(sid));
            }
            if let Some(at) = expires_at {
                self.timers.schedule(at, Timer::SessionExpiry(sid));
            }
            for m in holds {
                self.stats.hold(&m);
            }
            // A bridge's outbox (its limits are set before the restore): its aged
            // messages go on leaving while it is offline.
            self.schedule_outbox(sid, now);
        }
    }
}

/// A session's parameters.
fn session_record(sid: u32, s: &Session) -> Record<'_> {
    Record::Session {
        sid,
        client_id: &s.client_id,
        expiry: s.expiry_interval,
        username: s.username.as_deref(),
        listener: s.listener as u16,
    }
}

pub(super) fn subscribe_record(sid: u32, filter: &str, sub: Sub) -> Record<'_> {
    Record::Subscribe {
        sid,
        filter,
        qos: sub.qos as u8,
        no_local: sub.no_local,
        retain_as_published: sub.retain_as_published,
        id: sub.id,
    }
}

/// A session's whole state as records. It starts with an end: whatever the replay knew
/// under this number before (a session restart did not restore) is gone.
/// `timed`: the broker's start, for a bridge outbox whose queue keeps its times.
fn write_session(j: &mut Journal, sid: SessionId, s: &Session, timed: Option<Instant>) {
    let sid = sid.0;
    j.push(&Record::SessionEnd { sid });
    j.push(&session_record(sid, s));
    if s.last_packet_id != 0 {
        j.push(&Record::PacketId {
            sid,
            last: s.last_packet_id,
        });
    }
    for (filter, sub) in &s.subscriptions {
        j.push(&subscribe_record(sid, filter, *sub));
    }
    for i in &s.inflight {
        let delivery = j.delivery(&i.message, i.qos, i.retain, &i.sub_ids);
        let packet_id = i.packet_id.get();
        j.push(&Record::Inflight {
            sid,
            packet_id,
            delivery,
        });
        if i.state == InflightState::Pubcomp {
            j.push(&Record::Pubrec { sid, packet_id });
        }
    }
    for q in &s.queue {
        j.enqueue(
            sid,
            &q.message,
            q.qos,
            q.retain,
            &q.sub_ids,
            timed.map(|base| (base, q.since)),
        );
    }
    for p in &s.awaiting_pubrel {
        j.push(&Record::AwaitRelease {
            sid,
            packet_id: p.get(),
        });
    }
    if let Some((will, due)) = &s.pending_will {
        let message = j.message_id(will);
        let due_ms = j.ms(*due);
        j.push(&Record::Will {
            sid,
            message,
            due_ms,
        });
    }
}

/// Record helpers for the hooks in the other modules of `broker`.
impl Journal {
    /// `at`: for a bridge's outbox, when it was queued (the broker's start and
    /// `Queued::since`), kept for `bridge_outbox_max_age` across a restart.
    pub(super) fn enqueue(
        &mut self,
        sid: u32,
        m: &Rc<Message>,
        qos: QoS,
        retain: bool,
        ids: &[u32],
        at: Option<(Instant, i32)>,
    ) {
        let delivery = self.delivery(m, qos, retain, ids);
        match at {
            Some((base, secs)) => {
                let at_ms = self.ms_plus(base, secs);
                self.push(&Record::EnqueueAt {
                    sid,
                    delivery,
                    at_ms,
                })
            }
            None => self.push(&Record::Enqueue { sid, delivery }),
        }
    }

    /// Unix milliseconds of `base` plus `secs` seconds (which may be negative).
    fn ms_plus(&self, base: Instant, secs: i32) -> u64 {
        let ms = self.ms(base) as i64 + i64::from(secs) * 1000;
        u64::try_from(ms).unwrap_or(0).max(1)
    }

    pub(super) fn inflight(
        &mut self,
        sid: u32,
        packet_id: PacketId,
        m: &Rc<Message>,
        qos: QoS,
        retain: bool,
        ids: &[u32],
    ) {
        let delivery = self.delivery(m, qos, retain, ids);
        self.push(&Record::Inflight {
            sid,
            packet_id: packet_id.get(),
            delivery,
        });
    }

    pub(super) fn will(&mut self, sid: u32, will: &Rc<Message>, due: Instant) {
        let message = self.message_id(will);
        let due_ms = self.ms(due);
        self.push(&Record::Will {
            sid,
            message,
            due_ms,
        });
    }

    pub(super) fn offline(&mut self, sid: u32, expires_at: Option<Instant>, last_packet_id: u16) {
        let expires_ms = expires_at.map_or(0, |at| self.ms(at));
        self.push(&Record::Offline { sid, expires_ms });
        if last_packet_id != 0 {
            self.push(&Record::PacketId {
                sid,
                last: last_packet_id,
            });
        }
    }

    pub(super) fn record(&mut self, record: Record<'_>) {
        self.push(&record);
    }
}
