//! Records applied in order to a model of the durable state: what a snapshot and its
//! journal add up to. Records that refer to something unknown (a session that ended, a
//! message never written) are counted and skipped, never trusted.

use super::record::{self, Delivery, Record, StoredMessage};
use crate::message::{Message, MessageProps, MessageSource};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Durable state as loaded at start-up.
#[derive(Default)]
pub struct State {
    /// By topic.
    pub retained: BTreeMap<Box<str>, Rc<Message>>,
    /// By the `sid` of the generation they were read from.
    pub sessions: BTreeMap<u32, SessionState>,
    /// Records that referred to something unknown.
    pub inconsistencies: u64,
    messages: HashMap<u64, Rc<Message>>,
    /// The publisher a `Source` record gave the next `Message` record.
    source: Option<Rc<MessageSource>>,
    /// Wall clock and monotonic clock read together at load, to turn stored times back
    /// into `Instant`s.
    clock: Option<(SystemTime, Instant)>,
}

pub struct SessionState {
    pub client_id: Box<str>,
    pub expiry: u32,
    pub username: Option<Box<str>>,
    pub listener: u16,
    /// When a session that was offline at the time expires; `None` if it was connected
    /// (its expiry counts from start-up) or never expires.
    pub offline_expires: Option<Option<Instant>>,
    pub subscriptions: Vec<Subscription>,
    pub inflight: VecDeque<InflightState>,
    pub queue: VecDeque<QueuedState>,
    pub awaiting_release: Vec<u16>,
    pub will: Option<(Rc<Message>, Instant)>,
    /// The last packet identifier it used (0: none recorded).
    pub last_packet_id: u16,
}

pub struct Subscription {
    pub filter: Box<str>,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub id: u32,
}

pub struct QueuedState {
    pub message: Rc<Message>,
    pub qos: u8,
    pub retain: bool,
    pub sub_ids: Box<[u32]>,
    /// When it was queued, if the record said (a bridge's outbox).
    pub queued_at: Option<Instant>,
}

pub struct InflightState {
    pub packet_id: u16,
    pub queued: QueuedState,
    /// QoS 2: PUBREC received and PUBREL sent.
    pub released: bool,
}

impl State {
    pub fn new(now_wall: SystemTime, now: Instant) -> State {
        State {
            clock: Some((now_wall, now)),
            ..State::default()
        }
    }

    /// The highest message number seen, so new ones do not collide.
    pub fn max_message_id(&self) -> u64 {
        self.messages.keys().copied().max().unwrap_or(0)
    }

    /// Drops what only replay needed.
    pub fn finish(&mut self) {
        self.messages = HashMap::new();
    }

    /// A canonical text of the state (sorted, times relative to the load clock), to
    /// compare two states in tests and to inspect one.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let base = self.clock.map_or_else(Instant::now, |c| c.1);
        let rel = |at: Option<Instant>| {
            at.map_or("never".to_string(), |at| {
                let ms = at.saturating_duration_since(base).as_millis();
                format!("+{ms}ms")
            })
        };
        let msg = |m: &Message| {
            format!(
                "{:?} {:?} q{} r{} {:?}",
                m.topic(),
                String::from_utf8_lossy(m.payload()),
                m.qos as u8,
                u8::from(m.retain),
                m.props.as_ref().map(|p| (
                    p.payload_format_indicator,
                    rel(p.expires_at),
                    &p.content_type,
                    &p.response_topic,
                    &p.correlation_data,
                    &p.user_properties
                ))
            )
        };
        let mut out = String::new();
        for (topic, m) in &self.retained {
            let _ = writeln!(out, "retained {topic}: {}", msg(m));
        }
        let mut sessions: Vec<&SessionState> = self.sessions.values().collect();
        sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        for s in sessions {
            let _ = writeln!(
                out,
                "session {} expiry {} user {:?} listener {} offline {:?}",
                s.client_id,
                s.expiry,
                s.username,
                s.listener,
                s.offline_expires.map(rel)
            );
            for sub in &s.subscriptions {
                let _ = writeln!(
                    out,
                    "  sub {} q{} nl{} rap{} id{}",
                    sub.filter,
                    sub.qos,
                    u8::from(sub.no_local),
                    u8::from(sub.retain_as_published),
                    sub.id
                );
            }
            for i in &s.inflight {
                let q = &i.queued;
                let _ = writeln!(
                    out,
                    "  inflight {} released {} q{} r{} ids {:?}: {}",
                    i.packet_id,
                    i.released,
                    q.qos,
                    u8::from(q.retain),
                    q.sub_ids,
                    msg(&q.message)
                );
            }
            for q in &s.queue {
                let _ = writeln!(
                    out,
                    "  queued q{} r{} ids {:?}: {}",
                    q.qos,
                    u8::from(q.retain),
                    q.sub_ids,
                    msg(&q.message)
                );
            }
            let _ = writeln!(out, "  awaiting release {:?}", s.awaiting_release);
            if let Some((m, due)) = &s.will {
                let _ = writeln!(out, "  will {} at {}", msg(m), rel(Some(*due)));
            }
        }
        out
    }

    fn instant(&self, ms: u64) -> Option<Instant> {
        if ms == 0 {
            return None;
        }
        let (wall, now) = self.clock.unwrap_or((SystemTime::now(), Instant::now()));
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        Some(match at.duration_since(wall) {
            Ok(ahead) => now + ahead,
            // In the past: as far back as the monotonic clock goes, at worst "now".
            Err(e) => now.checked_sub(e.duration()).unwrap_or(now),
        })
    }

    fn message(&self, id: u64) -> Option<Rc<Message>> {
        self.messages.get(&id).cloned()
    }

    fn queued(&self, d: &Delivery) -> Option<QueuedState> {
        Some(QueuedState {
            message: self.message(d.message)?,
            qos: d.qos,
            retain: d.retain,
            sub_ids: d.sub_ids.clone().into_boxed_slice(),
            queued_at: None,
        })
    }

    /// Applies one record.
    pub fn apply(&mut self, r: &Record<'_>) {
        if self.apply_known(r).is_none() {
            self.inconsistencies += 1;
        }
    }

    /// A table: one short arm per record kind, `None` when the record refers to
    /// something unknown.
    fn apply_known(&mut self, r: &Record<'_>) -> Option<()> {
        match r {
            Record::Source {
                client_id,
                username,
                listener,
            } => {
                self.source = Some(Rc::new(MessageSource {
                    client_id: (*client_id).into(),
                    username: username.map(Box::from),
                    listener: usize::from(*listener),
                }));
            }
            Record::Message {
                id,
                message,
                retained,
            } => {
                let m = self.take_message(message);
                if *retained {
                    self.retained.insert(m.topic().into(), m.clone());
                }
                self.messages.insert(*id, m);
            }
            Record::Retain { id } => {
                let m = self.message(*id)?;
                self.retained.insert(m.topic().into(), m);
            }
            Record::Unretain { topic } => {
                self.retained.remove(*topic);
            }
            Record::Session {
                sid,
                client_id,
                expiry,
                username,
                listener,
            } => {
                // The same number with another client id: the old session ended.
                if self
                    .sessions
                    .get(sid)
                    .is_some_and(|s| *s.client_id != **client_id)
                {
                    self.sessions.remove(sid);
                }
                let s = self.sessions.entry(*sid).or_insert_with(|| SessionState {
                    client_id: Box::from(*client_id),
                    expiry: 0,
                    username: None,
                    listener: 0,
                    offline_expires: None,
                    subscriptions: Vec::new(),
                    inflight: VecDeque::new(),
                    queue: VecDeque::new(),
                    awaiting_release: Vec::new(),
                    will: None,
                    last_packet_id: 0,
                });
                s.expiry = *expiry;
                s.username = username.map(Box::from);
                s.listener = *listener;
                // A Session record is written when the client connects.
                s.offline_expires = None;
            }
            Record::Offline { sid, expires_ms } => {
                let at = self.instant(*expires_ms);
                self.sessions.get_mut(sid)?.offline_expires = Some(at);
            }
            Record::SessionEnd { sid } => {
                // Also written before a session's whole state, when nothing may be known.
                self.sessions.remove(sid);
            }
            Record::Subscribe {
                sid,
                filter,
                qos,
                no_local,
                retain_as_published,
                id,
            } => {
                let s = self.sessions.get_mut(sid)?;
                let sub = Subscription {
                    filter: Box::from(*filter),
                    qos: *qos,
                    no_local: *no_local,
                    retain_as_published: *retain_as_published,
                    id: *id,
                };
                match s.subscriptions.iter_mut().find(|x| *x.filter == **filter) {
                    Some(existing) => *existing = sub,
                    None => s.subscriptions.push(sub),
                }
            }
            Record::Unsubscribe { sid, filter } => {
                let s = self.sessions.get_mut(sid)?;
                s.subscriptions.retain(|x| *x.filter != **filter);
            }
            Record::Enqueue { sid, delivery } => {
                let q = self.queued(delivery)?;
                self.sessions.get_mut(sid)?.queue.push_back(q);
            }
            Record::Dequeue { sid } => {
                self.sessions.get_mut(sid)?.queue.pop_front()?;
            }
            Record::EnqueueAt {
                sid,
                delivery,
                at_ms,
            } => {
                let mut q = self.queued(delivery)?;
                q.queued_at = self.instant(*at_ms);
                self.sessions.get_mut(sid)?.queue.push_back(q);
            }
            Record::Take {
                sid,
                index,
                packet_id,
            } => {
                let s = self.sessions.get_mut(sid)?;
                let queued = s.queue.remove(usize::try_from(*index).ok()?)?;
                if *packet_id != 0 {
                    s.inflight.push_back(InflightState {
                        packet_id: *packet_id,
                        queued,
                        released: false,
                    });
                }
            }
            Record::Send { sid, packet_id } => {
                let s = self.sessions.get_mut(sid)?;
                let queued = s.queue.pop_front()?;
                s.inflight.push_back(InflightState {
                    packet_id: *packet_id,
                    queued,
                    released: false,
                });
            }
            Record::Inflight {
                sid,
                packet_id,
                delivery,
            } => {
                let queued = self.queued(delivery)?;
                self.sessions
                    .get_mut(sid)?
                    .inflight
                    .push_back(InflightState {
                        packet_id: *packet_id,
                        queued,
                        released: false,
                    });
            }
            Record::Pubrec { sid, packet_id } => {
                let s = self.sessions.get_mut(sid)?;
                let i = s.inflight.iter_mut().find(|i| i.packet_id == *packet_id)?;
                i.released = true;
            }
            Record::Acked { sid, packet_id } => {
                let s = self.sessions.get_mut(sid)?;
                let pos = s.inflight.iter().position(|i| i.packet_id == *packet_id)?;
                s.inflight.remove(pos);
            }
            Record::AwaitRelease { sid, packet_id } => {
                let s = self.sessions.get_mut(sid)?;
                if !s.awaiting_release.contains(packet_id) {
                    s.awaiting_release.push(*packet_id);
                }
            }
            Record::Released { sid, packet_id } => {
                let s = self.sessions.get_mut(sid)?;
                s.awaiting_release.retain(|p| p != packet_id);
            }
            Record::Will {
                sid,
                message,
                due_ms,
            } => {
                let m = self.message(*message)?;
                let due = self.instant(*due_ms).unwrap_or_else(Instant::now);
                self.sessions.get_mut(sid)?.will = Some((m, due));
            }
            Record::WillDone { sid } => {
                self.sessions.get_mut(sid)?.will = None;
            }
            Record::PacketId { sid, last } => {
                self.sessions.get_mut(sid)?.last_packet_id = *last;
            }
            Record::End => {}
        }
        Some(())
    }

    /// The message a record stores, with the publisher a `Source` record before it gave.
    fn take_message(&mut self, m: &StoredMessage<'_>) -> Rc<Message> {
        let expires_at = self.instant(m.expires_ms);
        let has_props = expires_at.is_some()
            || m.payload_format_indicator.is_some()
            || m.content_type.is_some()
            || m.response_topic.is_some()
            || m.correlation_data.is_some()
            || !m.user_properties.is_empty();
        let props = has_props.then(|| {
            Box::new(MessageProps {
                payload_format_indicator: m.payload_format_indicator,
                expires_at,
                content_type: m.content_type.map(Box::from),
                response_topic: m.response_topic.map(Box::from),
                correlation_data: m.correlation_data.map(Box::from),
                user_properties: m
                    .user_properties
                    .iter()
                    .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                    .collect(),
                // Not in the record format: a restart forgets a non-identifier order.
                order: None,
            })
        });
        let source = self.source.take();
        Message::with_source(
            m.topic,
            m.payload,
            record::qos(m.qos),
            m.retain,
            props,
            source,
        )
    }
}
