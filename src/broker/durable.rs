//! `persistence_sync ack`: an acknowledgement that reports durable state leaves only once
//! that state is on disk, and is refused, never sent as a lie, when it cannot get there.
//!
//! Which acknowledgements wait, and for which batch of records:
//! - PUBACK and PUBREC of an inbound QoS 1/2 PUBLISH whose handling wrote records (the
//!   message queued for a persistent session or retained, the QoS 2 packet id awaiting
//!   PUBREL): the batch being built;
//! - every acknowledgement to a persistent session (PUBACK, PUBREC, PUBCOMP, SUBACK,
//!   UNSUBACK, and its CONNACK, the first one included): the latest batch with records,
//!   since what it reports may have been written by an earlier packet (the PUBREC of a
//!   QoS 2 PUBLISH sent again after a reconnection reports the packet id the first copy
//!   stored; the PUBCOMP of a repeated PUBREL, the release the first one wrote).
//!
//! A clean session's SUBACK, UNSUBACK, PUBCOMP and CONNACK report nothing on disk and go
//! out at once, as does everything in `periodic` mode.
//!
//! How: the acknowledgement is encoded into the outbox at once and a hold marks where it
//! starts. The loop sees only the outbox before a connection's first hold
//! ([`Broker::output`]), so nothing written to that client later (a delivery, PINGRESP,
//! another acknowledgement) overtakes it, and closing the connection drops what is held.
//! [`Broker::set_durable`] lifts the holds whose batch is on disk.
//!
//! Degraded (the store cannot write, [`Broker::set_persistence_status`]): a hold that has
//! waited [`REFUSE_AFTER`] since it was made or since the store degraded, whichever is
//! later, is refused. The reason codes are those the specification allows for each
//! packet:
//! - MQTT 5 PUBACK and PUBREC: 0x97 Quota exceeded (the packet id of a refused PUBREC is
//!   released: no PUBREL follows [MQTT-4.3.3]); SUBACK: 0x80 for each granted filter;
//!   UNSUBACK: 0x80 for each filter; CONNACK: 0x97, then the connection closes
//!   [MQTT-3.2.2-7]; PUBCOMP has no failure code: DISCONNECT 0x97 and close;
//! - MQTT 3.1.1 SUBACK: 0x80 (Failure) for each granted filter; CONNACK: 0x03 Server
//!   unavailable, then close; PUBACK, PUBREC, PUBCOMP and UNSUBACK have no failure code,
//!   and MQTT 3.1 none at all: the connection closes without the acknowledgement (the
//!   client resends when it reconnects).
//!
//! A refusal does not undo the change in memory (the message was routed, the subscription
//! is in the tree): it says the change is not known to be on disk. If the store recovers,
//! its recovery snapshot holds that state too.
//!
//! The store logs when it degrades and when it recovers; this module logs once per
//! degraded period when it starts refusing.

use super::lifecycle::CloseReason;
use super::state::{ConnId, ConnState};
use super::Broker;
use crate::persist::record::Record;
use crate::persist::store::RETRY_FIRST;
use crate::persist::Status;
use crate::protocol::{Ack, Connack, Packet, PacketId, ProtocolVersion, ReasonCode};
use log::warn;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long an acknowledgement may wait while the store is degraded before it is refused:
/// twice the store's first retry (5 s, `persist::store::RETRY_FIRST`), so a disk that
/// frees up within seconds (a log rotated, a file removed) costs no refusal, while a
/// publisher still learns within seconds that the broker cannot keep its messages.
pub const REFUSE_AFTER: Duration = RETRY_FIRST.saturating_mul(2);

/// The holds of every connection, and what the store last said.
#[derive(Default)]
pub(super) struct Holds {
    /// `persistence_sync ack`.
    pub(super) strict: bool,
    /// The last batch the store reported durable.
    durable: u64,
    /// Since when the store writes nothing (a full or read-only disk); `None` when healthy.
    degraded_since: Option<Instant>,
    /// In the order they were made; a connection without holds has no entry.
    by_conn: HashMap<ConnId, VecDeque<Hold>>,
    /// Whether this degraded period's first refusal was logged.
    refusing_logged: bool,
    /// Acknowledgements refused since start ($SYS).
    pub(super) refused: u64,
}

/// An acknowledgement in the outbox waiting for `batch`: `len` bytes from `start`.
#[derive(Debug, Clone, Copy)]
struct Hold {
    batch: u64,
    at: Instant,
    start: usize,
    len: usize,
}

/// What a refused acknowledgement becomes.
enum Refusal {
    /// These bytes instead; `then_close`: a refused CONNACK ends the connection.
    Replace { bytes: Vec<u8>, then_close: bool },
    /// No failure code exists for it: close without it.
    Close,
}

impl Holds {
    /// Where the loop's view of an outbox of `len` bytes ends.
    pub(super) fn visible(&self, conn: ConnId, len: usize) -> usize {
        if self.by_conn.is_empty() {
            return len;
        }
        self.by_conn
            .get(&conn)
            .and_then(|q| q.front())
            .map_or(len, |h| h.start.min(len))
    }

    /// The socket took `n` bytes from the front of the outbox (never past the first hold).
    pub(super) fn consumed(&mut self, conn: ConnId, n: usize) {
        if let Some(q) = self.by_conn.get_mut(&conn) {
            for h in q {
                h.start = h.start.saturating_sub(n);
            }
        }
    }

    /// When the oldest hold is refused; `None` unless degraded. Scans the connections
    /// with holds, which happens only while degraded.
    fn deadline(&self) -> Option<Instant> {
        let since = self.degraded_since?;
        self.by_conn
            .values()
            .filter_map(|q| q.front())
            .map(|h| h.at.max(since) + REFUSE_AFTER)
            .min()
    }
}

impl Broker {
    /// The store made every batch up to `batch` durable: held acknowledgements go out.
    pub fn set_durable(&mut self, batch: u64) {
        let holds = &mut self.holds;
        if batch <= holds.durable {
            return;
        }
        holds.durable = batch;
        let mut lifted = Vec::new();
        holds.by_conn.retain(|conn, q| {
            let before = q.len();
            while q.front().is_some_and(|h| h.batch <= batch) {
                q.pop_front();
            }
            if q.len() != before {
                lifted.push(*conn);
            }
            !q.is_empty()
        });
        for conn in lifted {
            self.mark_dirty(conn);
        }
    }

    /// For `$SYS/broker/persistence/...`, and `degraded_since`: since when the store has
    /// written nothing (`None` when healthy), from which held acknowledgements are refused
    /// after [`REFUSE_AFTER`].
    pub fn set_persistence_status(&mut self, status: Status, degraded_since: Option<Instant>) {
        self.persistence_status = Some(status);
        if degraded_since.is_none() {
            self.holds.refusing_logged = false;
        }
        self.holds.degraded_since = degraded_since;
    }

    /// Sends the acknowledgement of an inbound QoS 1/2 PUBLISH; in strict mode it waits
    /// for the records written since `mark` (see the module documentation).
    pub(super) fn send_publish_ack(
        &mut self,
        conn: ConnId,
        pubrec: bool,
        packet_id: PacketId,
        reason: ReasonCode,
        mark: Option<usize>,
    ) {
        let ack = Ack {
            packet_id,
            reason,
            properties: Default::default(),
        };
        let packet = if pubrec {
            Packet::Pubrec(ack)
        } else {
            Packet::Puback(ack)
        };
        self.send_held(conn, &packet, mark);
    }

    /// Sends an acknowledgement that reports the state of the connection's session
    /// (PUBCOMP, SUBACK, UNSUBACK, CONNACK); in strict mode a persistent session's waits
    /// until that state is durable.
    pub(super) fn send_report(&mut self, conn: ConnId, packet: &Packet<'_>) {
        self.send_held(conn, packet, None);
    }

    fn send_held(&mut self, conn: ConnId, packet: &Packet<'_>, mark: Option<usize>) {
        let batch = self.reported_batch(conn, mark);
        let Some(start) = self.conns.get(conn.0).map(|c| c.out.len()) else {
            return;
        };
        self.send(conn, packet);
        let Some(batch) = batch.filter(|b| *b > self.holds.durable) else {
            return;
        };
        let len = self
            .conns
            .get(conn.0)
            .map_or(0, |c| c.out.len().saturating_sub(start));
        if len > 0 {
            let at = self.last_event;
            let hold = Hold {
                batch,
                at,
                start,
                len,
            };
            self.holds.by_conn.entry(conn).or_default().push_back(hold);
        }
    }

    /// The batch an acknowledgement sent now to `conn` reports, in strict mode.
    fn reported_batch(&self, conn: ConnId, mark: Option<usize>) -> Option<u64> {
        let journal = self.journal.as_ref().filter(|_| self.holds.strict)?;
        let persisted = match self.conns.get(conn.0).map(|c| c.state()) {
            Some(ConnState::Active(sid)) => self.sessions.get(sid.0).is_some_and(|s| s.persisted),
            _ => false,
        };
        journal.reported_batch(mark, persisted)
    }

    /// A connection is gone: its held acknowledgements with it (the client resends).
    pub(super) fn forget_held_acks(&mut self, conn: ConnId) {
        self.holds.by_conn.remove(&conn);
    }

    /// The connection is closing: what waits behind its first hold is dropped, so that
    /// what the close still writes (MQTT 5's DISCONNECT) is not stuck behind it.
    pub(super) fn drop_held_output(&mut self, conn: ConnId) {
        if let Some(start) = self
            .holds
            .by_conn
            .get(&conn)
            .and_then(|q| q.front())
            .map(|h| h.start)
        {
            self.truncate_output(conn, start);
        }
    }

    /// When [`Broker::refuse_overdue_acks`] has work (only while degraded).
    pub(super) fn refusal_deadline(&self) -> Option<Instant> {
        if self.holds.by_conn.is_empty() {
            return None;
        }
        self.holds.deadline()
    }

    /// Refuses the held acknowledgements that have waited [`REFUSE_AFTER`] while the store
    /// was degraded.
    pub(super) fn refuse_overdue_acks(&mut self, now: Instant) {
        if self.refusal_deadline().is_none_or(|at| at > now) {
            return;
        }
        let Some(since) = self.holds.degraded_since else {
            return;
        };
        let overdue = |h: &Hold| h.at.max(since) + REFUSE_AFTER <= now;
        let mut conns: Vec<ConnId> = self
            .holds
            .by_conn
            .iter()
            .filter(|(_, q)| q.front().is_some_and(overdue))
            .map(|(c, _)| *c)
            .collect();
        conns.sort_unstable();
        if !conns.is_empty() && !self.holds.refusing_logged {
            self.holds.refusing_logged = true;
            warn!(
                "Persistence degraded for {} s: refusing the acknowledgements of what cannot be made durable (MQTT 5: reason code 0x97 or 0x80; MQTT 3.1.1: the connection is closed).",
                now.saturating_duration_since(since).as_secs()
            );
        }
        for conn in conns {
            while let Some(hold) = self
                .holds
                .by_conn
                .get_mut(&conn)
                .and_then(|q| q.front().copied().filter(overdue))
            {
                if !self.refuse(conn, hold, now) {
                    break;
                }
            }
        }
    }

    /// Refuses the connection's first hold, `hold`; returns false if the connection was
    /// closed.
    fn refuse(&mut self, conn: ConnId, hold: Hold, now: Instant) -> bool {
        self.holds.refused += 1;
        let Some(c) = self.conns.get(conn.0) else {
            self.forget_held_acks(conn);
            return false;
        };
        let (version, state) = (c.version, c.state());
        let end = hold.start + hold.len;
        let frame = c.out.get(hold.start..end).unwrap_or_default().to_vec();
        let decoded = Packet::decode(&frame, version).ok();
        if let (Some(Packet::Pubrec(ack)), ConnState::Active(sid)) = (&decoded, state) {
            if version == ProtocolVersion::V5 {
                // An error PUBREC ends the exchange: the client may reuse the id.
                let pid = ack.packet_id;
                self.session_mut(sid).awaiting_pubrel.retain(|p| *p != pid);
                let packet_id = pid.get();
                self.journal_session(sid, |j, sid| j.record(Record::Released { sid, packet_id }));
            }
        }
        match decoded
            .as_ref()
            .map_or(Refusal::Close, |p| refusal(p, version))
        {
            Refusal::Replace { bytes, then_close } => {
                if let Some(q) = self.holds.by_conn.get_mut(&conn) {
                    q.pop_front();
                    for h in q.iter_mut() {
                        h.start = (h.start + bytes.len()).saturating_sub(hold.len);
                    }
                    if q.is_empty() {
                        self.holds.by_conn.remove(&conn);
                    }
                }
                let new_len = bytes.len();
                if let Some(c) = self.conns.get_mut(conn.0) {
                    c.out.splice(hold.start..end, bytes);
                }
                self.stats.out_bytes =
                    (self.stats.out_bytes + new_len as u64).saturating_sub(hold.len as u64);
                if then_close {
                    self.truncate_output(conn, hold.start + new_len);
                    self.close(conn, CloseReason::Refused, now);
                    return false;
                }
                self.mark_dirty(conn);
                true
            }
            Refusal::Close => {
                self.close(conn, CloseReason::NotDurable, now);
                false
            }
        }
    }

    /// Drops the outbox of `conn` from byte `at` on, with its holds.
    fn truncate_output(&mut self, conn: ConnId, at: usize) {
        self.forget_held_acks(conn);
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        let Some(tail) = c.out.get(at..) else {
            return;
        };
        let packets = super::sys::packets_written(tail, tail.len(), &mut 0);
        let bytes = tail.len();
        c.out.truncate(at);
        c.out_packets = c.out_packets.saturating_sub(packets);
        self.stats.discard_output(bytes, packets);
    }
}

/// The refusal of a held acknowledgement, in the codes `version` has for it.
fn refusal(packet: &Packet<'_>, version: ProtocolVersion) -> Refusal {
    let v5 = version == ProtocolVersion::V5;
    let failed = |codes: &[ReasonCode], failure: ReasonCode| -> Vec<ReasonCode> {
        codes
            .iter()
            .map(|c| if c.is_error() { *c } else { failure })
            .collect()
    };
    let refused = match packet {
        Packet::Puback(ack) | Packet::Pubrec(ack) if v5 => {
            let mut ack = ack.clone();
            if !ack.reason.is_error() {
                ack.reason = ReasonCode::QUOTA_EXCEEDED;
            }
            match packet {
                Packet::Pubrec(_) => Packet::Pubrec(ack),
                _ => Packet::Puback(ack),
            }
        }
        Packet::Suback(suback) if version != ProtocolVersion::V31 => {
            let mut suback = suback.clone();
            suback.codes = failed(&suback.codes, ReasonCode::UNSPECIFIED_ERROR);
            Packet::Suback(suback)
        }
        Packet::Unsuback(unsuback) if v5 => {
            let mut unsuback = unsuback.clone();
            unsuback.codes = failed(&unsuback.codes, ReasonCode::UNSPECIFIED_ERROR);
            Packet::Unsuback(unsuback)
        }
        Packet::Connack(_) => {
            // [MQTT-3.2.2-6]: Session Present 0 with an error.
            let code = if v5 {
                ReasonCode::QUOTA_EXCEEDED
            } else {
                ReasonCode::SERVER_UNAVAILABLE
            };
            let mut bytes = Vec::new();
            Packet::Connack(Connack::new(false, code)).encode(version, &mut bytes);
            return Refusal::Replace {
                bytes,
                then_close: true,
            };
        }
        _ => return Refusal::Close,
    };
    let mut bytes = Vec::new();
    refused.encode(version, &mut bytes);
    Refusal::Replace {
        bytes,
        then_close: false,
    }
}

#[cfg(test)]
impl Broker {
    /// Where the holds of `conn` are in its outbox: (start, length).
    pub(super) fn held_regions(&self, conn: ConnId) -> Vec<(usize, usize)> {
        self.holds
            .by_conn
            .get(&conn)
            .map_or_else(Vec::new, |q| q.iter().map(|h| (h.start, h.len)).collect())
    }
}
