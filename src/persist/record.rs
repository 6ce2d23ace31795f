//! The on-disk format: a file header and checksummed records, shared by snapshots and
//! journals. No I/O; decoding never panics and never trusts a length.
//!
//! ```text
//! header  "CULEXDB\0" | version u32 LE | kind u8 | 0 0 0 | generation u64 LE  (24 bytes)
//! record  body length (varint) | CRC-32 of the body (u32 LE) | body
//! body    type u8 | fields
//! ```
//!
//! Integers in records are LEB128 varints (a packet id or a small count is one byte:
//! the journal is written for every change, and an SD card pays for every byte).
//! Strings and byte strings are a varint length and the bytes; optional ones store
//! length + 1, with 0 for "absent". Times are milliseconds since the Unix epoch, 0 for
//! "none". A snapshot ends with an [`Record::End`]; a journal just stops.
//!
//! Sessions are named by a number (`sid`) that is unique among the live sessions of one
//! generation (the broker's session slot), so a record does not repeat the client id.
//! Messages are written once per generation and referred to by number wherever they are
//! retained, queued or in flight.

use crate::protocol::QoS;

pub const MAGIC: &[u8; 8] = b"CULEXDB\0";
/// The format this build writes and the only one it reads.
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 24;
/// Most bytes before a record's body: a 5-byte varint length and the CRC.
pub const FRAME_MAX: usize = 9;
/// Mosquitto's database magic (`mosquitto.db`), recognised to give a clear message.
pub const MOSQUITTO_MAGIC: &[u8; 15] = b"\x00\xB5\x00mosquitto db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Snapshot = 1,
    Journal = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: FileKind,
    /// Which snapshot a journal continues; a snapshot's own number.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    Mosquitto,
    NotCulex,
    Version(u32),
    Kind(u8),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::TooShort => f.write_str("the file is shorter than its header"),
            HeaderError::Mosquitto => f.write_str("it is a Mosquitto database, which culex does not read"),
            HeaderError::NotCulex => f.write_str("it is not a culex database (unknown magic bytes)"),
            HeaderError::Version(v) => write!(
                f,
                "it has format version {v}; this culex reads version {VERSION} only (a newer culex wrote it?)"
            ),
            HeaderError::Kind(k) => write!(f, "unknown file kind {k}"),
        }
    }
}

pub fn encode_header(kind: FileKind, generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12] = kind as u8;
    h[16..24].copy_from_slice(&generation.to_le_bytes());
    h
}

pub fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.starts_with(MOSQUITTO_MAGIC) {
        return Err(HeaderError::Mosquitto);
    }
    let Some(h) = bytes.get(..HEADER_LEN) else {
        return Err(if bytes.len() >= 8 && !bytes.starts_with(MAGIC) {
            HeaderError::NotCulex
        } else {
            HeaderError::TooShort
        });
    };
    if !h.starts_with(MAGIC) {
        return Err(HeaderError::NotCulex);
    }
    let fixed = |at: usize, n: usize| {
        h.get(at..at + n).map_or(0, |b| {
            b.iter().rev().fold(0u64, |v, x| v << 8 | u64::from(*x))
        })
    };
    let version = fixed(8, 4) as u32;
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let kind = match h.get(12) {
        Some(1) => FileKind::Snapshot,
        Some(2) => FileKind::Journal,
        other => return Err(HeaderError::Kind(other.copied().unwrap_or(0))),
    };
    let generation = fixed(16, 8);
    Ok(Header { kind, generation })
}

/// A message as stored: everything a subscriber is sent, with its expiry as a wall-clock
/// time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredMessage<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    /// Unix milliseconds; 0: never expires.
    pub expires_ms: u64,
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    pub correlation_data: Option<&'a [u8]>,
    pub user_properties: Vec<(&'a str, &'a str)>,
}

/// A delivery's parameters, as queued or in flight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    pub message: u64,
    pub qos: u8,
    pub retain: bool,
    pub sub_ids: Vec<u32>,
}

/// One change of durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A message, numbered for the records that refer to it; `retained`: it is also the
    /// retained message of its topic (saves a `Retain` record).
    Message {
        id: u64,
        message: StoredMessage<'a>,
        retained: bool,
    },
    /// The publisher of the next `Message` record (`check_retain_source`): written
    /// before it, so the message is made whole when it is read.
    Source {
        client_id: &'a str,
        username: Option<&'a str>,
        listener: u16,
    },
    /// Message `id` is the retained message of its topic.
    Retain {
        id: u64,
    },
    /// The retained message of `topic` is cleared.
    Unretain {
        topic: &'a str,
    },
    /// A persistent session is created or its parameters change.
    Session {
        sid: u32,
        client_id: &'a str,
        expiry: u32,
        username: Option<&'a str>,
        listener: u16,
    },
    /// The session's connection ended; it expires at this Unix time in ms (0: never).
    Offline {
        sid: u32,
        expires_ms: u64,
    },
    /// The session ended (expired, cleaned, or no longer persistent).
    SessionEnd {
        sid: u32,
    },
    Subscribe {
        sid: u32,
        filter: &'a str,
        qos: u8,
        no_local: bool,
        retain_as_published: bool,
        id: u32,
    },
    Unsubscribe {
        sid: u32,
        filter: &'a str,
    },
    /// Appended to the session's queue.
    Enqueue {
        sid: u32,
        delivery: Delivery,
    },
    /// The head of the queue is dropped (expired or undeliverable).
    Dequeue {
        sid: u32,
    },
    /// The head of the queue is sent with this packet id.
    Send {
        sid: u32,
        packet_id: u16,
    },
    /// A delivery sent at once, without queueing.
    Inflight {
        sid: u32,
        packet_id: u16,
        delivery: Delivery,
    },
    /// QoS 2 outbound: PUBREC received, PUBREL sent.
    Pubrec {
        sid: u32,
        packet_id: u16,
    },
    /// The outbound exchange of this packet id is complete.
    Acked {
        sid: u32,
        packet_id: u16,
    },
    /// QoS 2 inbound: delivered, waiting for PUBREL.
    AwaitRelease {
        sid: u32,
        packet_id: u16,
    },
    Released {
        sid: u32,
        packet_id: u16,
    },
    /// A delayed will, due at this Unix time in ms.
    Will {
        sid: u32,
        message: u64,
        due_ms: u64,
    },
    /// The delayed will was published or cancelled.
    WillDone {
        sid: u32,
    },
    /// The last packet identifier the session used, so that after a restart it goes on
    /// from there as Mosquitto's does (written with a snapshot, when the session goes
    /// offline and at a clean stop, not for every message).
    PacketId {
        sid: u32,
        last: u16,
    },
    /// Appended to the session's queue at this Unix time in ms (a bridge's outbox,
    /// whose `bridge_outbox_max_age` counts from it).
    EnqueueAt {
        sid: u32,
        delivery: Delivery,
        at_ms: u64,
    },
    /// The queued message at `index` (0: the head) leaves the queue: sent with
    /// `packet_id`, or dropped if it is 0 (a bridge's outbox sends live messages before
    /// its backlog and keeps the newest message per `bridge_latest_only` topic).
    Take {
        sid: u32,
        index: u32,
        packet_id: u16,
    },
    /// The last record of a complete snapshot.
    End,
}

mod tag {
    pub const MESSAGE: u8 = 1;
    pub const RETAIN: u8 = 2;
    pub const UNRETAIN: u8 = 3;
    pub const SESSION: u8 = 4;
    pub const OFFLINE: u8 = 5;
    pub const SESSION_END: u8 = 6;
    pub const SUBSCRIBE: u8 = 7;
    pub const UNSUBSCRIBE: u8 = 8;
    pub const ENQUEUE: u8 = 9;
    pub const DEQUEUE: u8 = 10;
    pub const SEND: u8 = 11;
    pub const INFLIGHT: u8 = 12;
    pub const PUBREC: u8 = 13;
    pub const ACKED: u8 = 14;
    pub const AWAIT_RELEASE: u8 = 15;
    pub const RELEASED: u8 = 16;
    pub const WILL: u8 = 17;
    pub const WILL_DONE: u8 = 18;
    pub const SOURCE: u8 = 19;
    pub const PACKET_ID: u8 = 20;
    pub const ENQUEUE_AT: u8 = 21;
    pub const TAKE: u8 = 22;
    /// The highest tag in use.
    pub const LAST: u8 = TAKE;
    pub const END: u8 = 0xFF;
}

/// Appends `record`, framed, to `out`. A table: one arm per record kind, its fields in
/// the order `decode` reads them.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_MAX]);
    let mut w = Writer(out);
    match record {
        Record::Message {
            id,
            message: m,
            retained,
        } => {
            w.u8(tag::MESSAGE);
            w.u64(*id);
            w.u8(m.qos | (u8::from(m.retain) << 2) | (u8::from(*retained) << 3));
            w.u64(m.expires_ms);
            w.str(m.topic);
            w.bytes(m.payload);
            w.u8(m.payload_format_indicator.map_or(0xFF, |p| p));
            w.opt_bytes(m.content_type.map(str::as_bytes));
            w.opt_bytes(m.response_topic.map(str::as_bytes));
            w.opt_bytes(m.correlation_data);
            w.u32(m.user_properties.len() as u32);
            for (k, v) in &m.user_properties {
                w.str(k);
                w.str(v);
            }
        }
        Record::Source {
            client_id,
            username,
            listener,
        } => {
            w.u8(tag::SOURCE);
            w.str(client_id);
            w.opt_bytes(username.map(str::as_bytes));
            w.u16(*listener);
        }
        Record::Retain { id } => {
            w.u8(tag::RETAIN);
            w.u64(*id);
        }
        Record::Unretain { topic } => {
            w.u8(tag::UNRETAIN);
            w.str(topic);
        }
        Record::Session {
            sid,
            client_id,
            expiry,
            username,
            listener,
        } => {
            w.u8(tag::SESSION);
            w.u32(*sid);
            w.str(client_id);
            w.u32(*expiry);
            w.opt_bytes(username.map(str::as_bytes));
            w.u16(*listener);
        }
        Record::Offline { sid, expires_ms } => {
            w.u8(tag::OFFLINE);
            w.u32(*sid);
            w.u64(*expires_ms);
        }
        Record::SessionEnd { sid } => {
            w.u8(tag::SESSION_END);
            w.u32(*sid);
        }
        Record::Subscribe {
            sid,
            filter,
            qos,
            no_local,
            retain_as_published,
            id,
        } => {
            w.u8(tag::SUBSCRIBE);
            w.u32(*sid);
            w.str(filter);
            w.u8(qos | u8::from(*no_local) << 2 | u8::from(*retain_as_published) << 3);
            w.u32(*id);
        }
        Record::Unsubscribe { sid, filter } => {
            w.u8(tag::UNSUBSCRIBE);
            w.u32(*sid);
            w.str(filter);
        }
        Record::Enqueue { sid, delivery } => {
            w.u8(tag::ENQUEUE);
            w.u32(*sid);
            w.delivery(delivery);
        }
        Record::Dequeue { sid } => {
            w.u8(tag::DEQUEUE);
            w.u32(*sid);
        }
        Record::Send { sid, packet_id } => w.sid_pid(tag::SEND, *sid, *packet_id),
        Record::Inflight {
            sid,
            packet_id,
            delivery,
        } => {
            w.sid_pid(tag::INFLIGHT, *sid, *packet_id);
            w.delivery(delivery);
        }
        Record::Pubrec { sid, packet_id } => w.sid_pid(tag::PUBREC, *sid, *packet_id),
        Record::Acked { sid, packet_id } => w.sid_pid(tag::ACKED, *sid, *packet_id),
        Record::AwaitRelease { sid, packet_id } => w.sid_pid(tag::AWAIT_RELEASE, *sid, *packet_id),
        Record::Released { sid, packet_id } => w.sid_pid(tag::RELEASED, *sid, *packet_id),
        Record::Will {
            sid,
            message,
            due_ms,
        } => {
            w.u8(tag::WILL);
            w.u32(*sid);
            w.u64(*message);
            w.u64(*due_ms);
        }
        Record::WillDone { sid } => {
            w.u8(tag::WILL_DONE);
            w.u32(*sid);
        }
        Record::PacketId { sid, last } => {
            w.u8(tag::PACKET_ID);
            w.u32(*sid);
            w.u16(*last);
        }
        Record::EnqueueAt {
            sid,
            delivery,
            at_ms,
        } => {
            w.u8(tag::ENQUEUE_AT);
            w.u32(*sid);
            w.delivery(delivery);
            w.u64(*at_ms);
        }
        Record::Take {
            sid,
            index,
            packet_id,
        } => {
            w.u8(tag::TAKE);
            w.u32(*sid);
            w.u32(*index);
            w.u16(*packet_id);
        }
        Record::End => w.u8(tag::END),
    }
    // The frame is written in front of the body, which moves left over the space the
    // length did not need: no allocation per record.
    let body_start = start + FRAME_MAX;
    let body_len = out.len() - body_start;
    let crc = crc32fast::hash(&out[body_start..]).to_le_bytes();
    let mut frame = [0u8; FRAME_MAX];
    let mut n = 0;
    let mut len = body_len as u64;
    loop {
        let byte = (len & 0x7F) as u8;
        len >>= 7;
        frame[n] = byte | if len != 0 { 0x80 } else { 0 };
        n += 1;
        if len == 0 {
            break;
        }
    }
    frame[n..n + 4].copy_from_slice(&crc);
    n += 4;
    out.copy_within(body_start.., start + n);
    out[start..start + n].copy_from_slice(&frame[..n]);
    out.truncate(start + n + body_len);
}

/// Why the records stop before the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The last record is cut short (a torn write).
    Truncated,
    /// A record's checksum does not match its bytes.
    Checksum,
    /// The checksum matches but the body makes no sense (a bug or a newer writer).
    Malformed,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::Truncated => "a record is cut short",
            Damage::Checksum => "a record's checksum does not match",
            Damage::Malformed => "a record cannot be read",
        })
    }
}

/// The record at the start of `bytes` and the bytes it spans; `Ok(None)` at the end.
pub fn decode(bytes: &[u8]) -> Result<Option<(Record<'_>, usize)>, Damage> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut frame = Reader(bytes);
    let len = match frame.varint() {
        Ok(len) => len,
        Err(VarintError::Short) => return Err(Damage::Truncated),
        Err(VarintError::Overlong) => return Err(Damage::Malformed),
    };
    let Some(crc) = frame.take(4) else {
        return Err(Damage::Truncated);
    };
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let Some(body) = usize::try_from(len).ok().and_then(|len| frame.0.get(..len)) else {
        return Err(Damage::Truncated);
    };
    if crc32fast::hash(body) != crc {
        return Err(Damage::Checksum);
    }
    let record = decode_body(body).ok_or(Damage::Malformed)?;
    Ok(Some((record, bytes.len() - frame.0.len() + body.len())))
}

/// The bytes a frame spans (length, checksum and body) when its length reads and its body
/// is all there, whether or not the body is intact: where the next record starts after
/// one whose checksum fails.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    let mut frame = Reader(bytes);
    let len = usize::try_from(frame.varint().ok()?).ok()?;
    frame.take(4)?;
    (frame.0.len() >= len).then(|| bytes.len() - frame.0.len() + len)
}

/// Whether a record that the bytes after it confirm starts at `at`: it decodes, and what
/// follows is the end, another record, or a record cut short. One frame alone could be
/// bytes inside a damaged record's payload that happen to pass a CRC-32; two in a row
/// hardly.
fn is_confirmed_record(bytes: &[u8], at: usize) -> bool {
    let Some(rest) = bytes.get(at..) else {
        return false;
    };
    // A cheap test before the checksum: a body starts with a known record type.
    let Some(body_at) = frame_len(rest).and_then(|n| {
        let mut frame = Reader(rest);
        let len = usize::try_from(frame.varint().ok()?).ok()?;
        Some(n - len)
    }) else {
        return false;
    };
    if !rest
        .get(body_at)
        .is_some_and(|&t| (tag::MESSAGE..=tag::LAST).contains(&t) || t == tag::END)
    {
        return false;
    }
    match decode(rest) {
        Ok(Some((_, n))) => matches!(
            decode(rest.get(n..).unwrap_or_default()),
            Ok(_) | Err(Damage::Truncated)
        ),
        _ => false,
    }
}

/// Where reading goes on after damage at `at` (where [`decode`] failed): the first later
/// offset where a confirmed record starts. When the damaged frame's length still reads
/// and a confirmed record (or the end) follows it, that is where the search ends (one
/// record lost; `true`); a confirmed record before it means the length itself was hit,
/// so it could point past good records (`false`). `None`: no record follows the damage.
pub fn resync(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    let by_length = bytes
        .get(at..)
        .and_then(frame_len)
        .map(|n| at + n)
        .filter(|&next| next == bytes.len() || is_confirmed_record(bytes, next));
    (at + 1..by_length.unwrap_or(bytes.len()))
        .find(|&i| is_confirmed_record(bytes, i))
        .map(|i| (i, false))
        .or(by_length.map(|next| (next, true)))
        .filter(|&(next, _)| next < bytes.len())
}

fn decode_body(body: &[u8]) -> Option<Record<'_>> {
    let mut r = Reader(body);
    let record = match r.u8()? {
        tag::MESSAGE => {
            let id = r.u64()?;
            let flags = r.u8()?;
            let expires_ms = r.u64()?;
            let topic = r.str()?;
            let payload = r.bytes()?;
            let payload_format_indicator = Some(r.u8()?).filter(|p| *p != 0xFF);
            let content_type = r.opt_str()?;
            let response_topic = r.opt_str()?;
            let correlation_data = r.opt_bytes()?;
            let n = r.u32()?;
            // Each pair takes at least 2 bytes: a count larger than that is a lie.
            if usize::try_from(n).ok()? > r.0.len() / 2 {
                return None;
            }
            let mut user_properties = Vec::with_capacity(n as usize);
            for _ in 0..n {
                user_properties.push((r.str()?, r.str()?));
            }
            if flags & 3 > 2 || flags > 15 {
                return None;
            }
            Record::Message {
                id,
                retained: flags & 8 != 0,
                message: StoredMessage {
                    topic,
                    payload,
                    qos: flags & 3,
                    retain: flags & 4 != 0,
                    expires_ms,
                    payload_format_indicator,
                    content_type,
                    response_topic,
                    correlation_data,
                    user_properties,
                },
            }
        }
        tag::RETAIN => Record::Retain { id: r.u64()? },
        tag::UNRETAIN => Record::Unretain { topic: r.str()? },
        tag::SOURCE => Record::Source {
            client_id: r.str()?,
            username: r.opt_str()?,
            listener: r.u16()?,
        },
        tag::SESSION => Record::Session {
            sid: r.u32()?,
            client_id: r.str()?,
            expiry: r.u32()?,
            username: r.opt_str()?,
            listener: r.u16()?,
        },
        tag::OFFLINE => Record::Offline {
            sid: r.u32()?,
            expires_ms: r.u64()?,
        },
        tag::SESSION_END => Record::SessionEnd { sid: r.u32()? },
        tag::SUBSCRIBE => {
            let sid = r.u32()?;
            let filter = r.str()?;
            let flags = r.u8()?;
            if flags & 3 > 2 || flags > 15 {
                return None;
            }
            Record::Subscribe {
                sid,
                filter,
                qos: flags & 3,
                no_local: flags & 4 != 0,
                retain_as_published: flags & 8 != 0,
                id: r.u32()?,
            }
        }
        tag::UNSUBSCRIBE => Record::Unsubscribe {
            sid: r.u32()?,
            filter: r.str()?,
        },
        tag::ENQUEUE => Record::Enqueue {
            sid: r.u32()?,
            delivery: r.delivery()?,
        },
        tag::DEQUEUE => Record::Dequeue { sid: r.u32()? },
        tag::SEND => Record::Send {
            sid: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::INFLIGHT => Record::Inflight {
            sid: r.u32()?,
            packet_id: r.u16()?,
            delivery: r.delivery()?,
        },
        tag::PUBREC => Record::Pubrec {
            sid: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::ACKED => Record::Acked {
            sid: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::AWAIT_RELEASE => Record::AwaitRelease {
            sid: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::RELEASED => Record::Released {
            sid: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::WILL => Record::Will {
            sid: r.u32()?,
            message: r.u64()?,
            due_ms: r.u64()?,
        },
        tag::WILL_DONE => Record::WillDone { sid: r.u32()? },
        tag::PACKET_ID => Record::PacketId {
            sid: r.u32()?,
            last: r.u16()?,
        },
        tag::ENQUEUE_AT => Record::EnqueueAt {
            sid: r.u32()?,
            delivery: r.delivery()?,
            at_ms: r.u64()?,
        },
        tag::TAKE => Record::Take {
            sid: r.u32()?,
            index: r.u32()?,
            packet_id: r.u16()?,
        },
        tag::END => Record::End,
        _ => return None,
    };
    // Trailing bytes mean a different layout than the one we read.
    r.0.is_empty().then_some(record)
}

/// The QoS of a stored byte (checked on decode to be 0..=2).
pub fn qos(byte: u8) -> QoS {
    QoS::from_u8(byte).unwrap_or(QoS::AtMostOnce)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.u64(v.into());
    }
    fn u32(&mut self, v: u32) {
        self.u64(v.into());
    }
    /// LEB128.
    fn u64(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// Length + 1, or 0 for absent.
    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            Some(v) => {
                self.u64(v.len() as u64 + 1);
                self.0.extend_from_slice(v);
            }
            None => self.u64(0),
        }
    }
    fn sid_pid(&mut self, tag: u8, sid: u32, packet_id: u16) {
        self.u8(tag);
        self.u32(sid);
        self.u16(packet_id);
    }
    fn delivery(&mut self, d: &Delivery) {
        self.u64(d.message);
        self.u8(d.qos | (u8::from(d.retain) << 2));
        self.u32(d.sub_ids.len() as u32);
        for id in &d.sub_ids {
            self.u32(*id);
        }
    }
}

enum VarintError {
    /// The bytes end inside it.
    Short,
    /// More than 64 bits.
    Overlong,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    /// LEB128, at most 10 bytes for a u64, in its shortest form only (what the writer
    /// makes): a last byte of 0 after others would give a second encoding of the same
    /// number, which only damage can produce.
    fn varint(&mut self) -> Result<u64, VarintError> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = self.u8().ok_or(VarintError::Short)?;
            let bits = u64::from(byte & 0x7F);
            if (i == 9 && bits > 1) || (i > 0 && byte == 0) {
                return Err(VarintError::Overlong);
            }
            v |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(VarintError::Overlong)
    }
    fn u16(&mut self) -> Option<u16> {
        self.u64()?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.u64()?.try_into().ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.varint().ok()
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u64()?;
        self.take(usize::try_from(n).ok()?)
    }
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    /// `Some(None)` for an absent value; `None` for bad bytes.
    fn opt_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u64()? {
            0 => Some(None),
            n => Some(Some(self.take(usize::try_from(n - 1).ok()?)?)),
        }
    }
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.opt_bytes()? {
            Some(b) => Some(Some(std::str::from_utf8(b).ok()?)),
            None => Some(None),
        }
    }
    fn delivery(&mut self) -> Option<Delivery> {
        let message = self.u64()?;
        let flags = self.u8()?;
        if flags & 3 > 2 || flags > 7 {
            return None;
        }
        let n = usize::try_from(self.u32()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let mut sub_ids = Vec::with_capacity(n);
        for _ in 0..n {
            sub_ids.push(self.u32()?);
        }
        Some(Delivery {
            message,
            qos: flags & 3,
            retain: flags & 4 != 0,
            sub_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<Record<'static>> {
        let delivery = Delivery {
            message: 7,
            qos: 2,
            retain: true,
            sub_ids: vec![1, 268_435_455],
        };
        vec![
            Record::Message {
                id: 7,
                retained: true,
                message: StoredMessage {
                    topic: "sensors/t",
                    payload: b"21.5",
                    qos: 1,
                    retain: true,
                    expires_ms: 1_800_000_000_000,
                    payload_format_indicator: Some(1),
                    content_type: Some("text/plain"),
                    response_topic: Some("r"),
                    correlation_data: Some(b"\x00\x01"),
                    user_properties: vec![("k", "v"), ("k", "")],
                },
            },
            Record::Message {
                id: u64::MAX,
                retained: false,
                message: StoredMessage {
                    topic: "",
                    payload: b"",
                    ..StoredMessage::default()
                },
            },
            Record::Retain { id: 7 },
            Record::Source {
                client_id: "sensor-1",
                username: Some("u"),
                listener: 1,
            },
            Record::Source {
                client_id: "",
                username: None,
                listener: 0,
            },
            Record::PacketId {
                sid: 3,
                last: 65535,
            },
            Record::Unretain { topic: "a/b" },
            Record::Session {
                sid: 3,
                client_id: "gw-1",
                expiry: u32::MAX,
                username: Some("u"),
                listener: 2,
            },
            Record::Session {
                sid: 0,
                client_id: "",
                expiry: 60,
                username: None,
                listener: 0,
            },
            Record::Offline {
                sid: 3,
                expires_ms: 0,
            },
            Record::SessionEnd { sid: 3 },
            Record::Subscribe {
                sid: 3,
                filter: "$share/g/a/#",
                qos: 2,
                no_local: true,
                retain_as_published: true,
                id: 9,
            },
            Record::Unsubscribe {
                sid: 3,
                filter: "a",
            },
            Record::Enqueue {
                sid: 3,
                delivery: delivery.clone(),
            },
            Record::Dequeue { sid: 3 },
            Record::Send {
                sid: 3,
                packet_id: 65_535,
            },
            Record::Inflight {
                sid: 3,
                packet_id: 1,
                delivery: delivery.clone(),
            },
            Record::EnqueueAt {
                sid: 3,
                delivery,
                at_ms: 1_764_000_000_123,
            },
            Record::Take {
                sid: 3,
                index: 70_000,
                packet_id: 0,
            },
            Record::Take {
                sid: 3,
                index: 1,
                packet_id: 9,
            },
            Record::Pubrec {
                sid: 3,
                packet_id: 2,
            },
            Record::Acked {
                sid: 3,
                packet_id: 2,
            },
            Record::AwaitRelease {
                sid: 3,
                packet_id: 4,
            },
            Record::Released {
                sid: 3,
                packet_id: 4,
            },
            Record::Will {
                sid: 3,
                message: 7,
                due_ms: 5,
            },
            Record::WillDone { sid: 3 },
            Record::End,
        ]
    }

    #[test]
    fn every_record_round_trips() {
        let mut bytes = Vec::new();
        let records = samples();
        for r in &records {
            encode(r, &mut bytes);
        }
        let mut rest = &bytes[..];
        let mut decoded = Vec::new();
        while let Some((r, n)) = decode(rest).expect("intact records") {
            decoded.push(r);
            rest = &rest[n..];
        }
        assert_eq!(decoded, records);
    }

    #[test]
    fn a_cut_record_is_truncated_and_a_flipped_bit_fails_its_checksum() {
        let mut bytes = Vec::new();
        encode(&Record::Unretain { topic: "a/b" }, &mut bytes);
        for cut in 1..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut]),
                Err(Damage::Truncated),
                "cut at {cut}"
            );
        }
        // A small record: a 1-byte length and the CRC before its body.
        for i in 5..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert_eq!(decode(&b), Err(Damage::Checksum), "flip at {i}");
        }
    }

    /// A number has one encoding. The fuzzer found a frame whose length was written
    /// `0x81 0x00` (1, with a needless second byte) and whose checksum matched: it
    /// decoded, and encoded back to other bytes. Such a frame is damage, not a record.
    /// The sample records one after another, and where each starts.
    fn stream() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for r in samples() {
            starts.push(bytes.len());
            encode(&r, &mut bytes);
        }
        (bytes, starts)
    }

    /// [issue #25, case 6] A record whose body is damaged is skipped by its length: the
    /// next record is where reading goes on, one record lost.
    #[test]
    fn resync_skips_a_record_with_a_bad_checksum_by_its_length() {
        let (bytes, starts) = stream();
        for k in 0..starts.len() - 1 {
            let mut b = bytes.clone();
            let last = starts[k + 1] - 1;
            b[last] ^= 0x01;
            assert_eq!(decode(&b[starts[k]..]), Err(Damage::Checksum), "record {k}");
            assert_eq!(
                resync(&b, starts[k]),
                Some((starts[k + 1], true)),
                "record {k}"
            );
        }
    }

    /// [issue #25, case 6] A damaged length points anywhere: reading goes on at the next
    /// offset where two records in a row decode, which is the next record, also when
    /// the damaged length happens to land on a later record.
    #[test]
    fn resync_scans_past_a_damaged_length() {
        let (bytes, starts) = stream();
        for k in 0..starts.len() - 1 {
            for value in [0x00, 0x01, 0x7F, 0xFF] {
                let mut b = bytes.clone();
                if b[starts[k]] == value {
                    continue;
                }
                b[starts[k]] = value;
                if decode(&b[starts[k]..]).is_ok() {
                    continue;
                }
                let (next, _) = resync(&b, starts[k]).expect("a record follows");
                assert_eq!(next, starts[k + 1], "record {k}, length byte {value:#x}");
            }
        }
    }

    /// A torn tail and bytes with no record in them give nothing to go on with.
    #[test]
    fn resync_finds_nothing_after_a_torn_tail_or_in_garbage() {
        let (bytes, starts) = stream();
        let last = *starts.last().unwrap();
        let torn = &bytes[..bytes.len() - 2];
        assert_eq!(resync(torn, last), None);
        assert_eq!(resync(&[0u8; 4096], 0), None);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        assert_eq!(resync(&noise, 0), None);
    }

    #[test]
    fn a_varint_longer_than_needed_is_malformed() {
        let body = [tag::END];
        let crc = crc32fast::hash(&body).to_le_bytes();
        let mut frame = vec![0x81, 0x00];
        frame.extend_from_slice(&crc);
        frame.extend_from_slice(&body);
        assert_eq!(decode(&frame), Err(Damage::Malformed));
        // The same record with its length in one byte decodes.
        frame.remove(1);
        frame[0] = 0x01;
        assert!(matches!(decode(&frame), Ok(Some((Record::End, 6)))));
        // Inside a body too: the sid 0 written as 0x80 0x00.
        let body = [tag::WILL_DONE, 0x80, 0x00];
        let mut frame = vec![body.len() as u8];
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        assert_eq!(decode(&frame), Err(Damage::Malformed));
    }

    #[test]
    fn headers_are_checked() {
        let h = encode_header(FileKind::Journal, 42);
        assert_eq!(
            decode_header(&h),
            Ok(Header {
                kind: FileKind::Journal,
                generation: 42
            })
        );
        let mut v2 = h;
        v2[8] = 2;
        assert_eq!(decode_header(&v2), Err(HeaderError::Version(2)));
        assert_eq!(decode_header(&h[..10]), Err(HeaderError::TooShort));
        assert_eq!(
            decode_header(b"\x00\xB5\x00mosquitto db\x00\x00\x00\x06rest"),
            Err(HeaderError::Mosquitto)
        );
        assert_eq!(
            decode_header(b"[general]\nhello world, not a db"),
            Err(HeaderError::NotCulex)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::protocol::testing::Rng(0x5eed);
        let mut valid = Vec::new();
        for r in samples() {
            encode(&r, &mut valid);
        }
        for _ in 0..20_000 {
            let mut b = valid.clone();
            for _ in 0..(rng.below(8) + 1) {
                let i = rng.below(b.len());
                b[i] = rng.below(256) as u8;
            }
            let cut = rng.below(b.len() + 1);
            let mut rest = &b[..cut];
            while let Ok(Some((_, n))) = decode(rest) {
                rest = &rest[n..];
            }
        }
    }
}
