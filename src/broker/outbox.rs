//! Output: packets encoded into per-connection outboxes (`send`; `write_publish` with the
//! mount point taken off and outbound topic aliases), the dirty list the loop drains,
//! the outbox limits, and the pool of outbox buffers.

use super::state::{Conn, ConnId, Timer};
use super::{Broker, MessageProps};
use crate::protocol::{
    encode_publish, encode_publish_v5, publish_len, publish_v5_len, Packet, PacketId, Properties,
    ProtocolVersion, QoS,
};
use std::time::Instant;

/// Outbox buffers kept for reuse, and the largest capacity worth keeping: an idle
/// connection owns no buffer, and the pool does not hoard a burst's memory.
const POOL_BUFFERS: usize = 16;

/// An outbox may hold this many times `outbox_limit` (reached only by what the limit does
/// not shed: retained bursts, QoS 1/2) before its client is disconnected.
pub(super) const OUTBOX_HARD_FACTOR: usize = 16;

const POOL_BUFFER_MAX: usize = 64 * 1024;

/// How long a written outbox buffer too large for the pool stays with its connection
/// while it is not used again.
const KEEP_BUFFER_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// What writing the whole of an outbox left.
pub(super) enum Emptied {
    /// Part of it is still to be written.
    No,
    /// Its buffer, for the pool or to free.
    Free(Vec<u8>),
    /// The connection keeps the empty buffer.
    Kept,
}

impl Emptied {
    /// The outbox of `conn` was written in full. A buffer larger than the pool takes, up
    /// to `outbox_limit`, stays with the connection for [`KEEP_BUFFER_FOR`]: a busy
    /// subscriber (fan-in) empties its outbox every turn, and giving the buffer up each
    /// time cost a growth by reallocation, and fresh pages, every turn (#20: 40
    /// instructions a message in fan-in). An idle connection still owns no buffer after
    /// that second, and a burst's buffer larger than the limit is freed at once.
    pub(super) fn of(conn: &mut Conn, outbox_limit: usize) -> Emptied {
        let capacity = conn.out.capacity();
        if capacity > POOL_BUFFER_MAX && capacity <= outbox_limit {
            conn.out.clear();
            if conn.keeps_buffer {
                return Emptied::No;
            }
            conn.keeps_buffer = true;
            return Emptied::Kept;
        }
        Emptied::Free(std::mem::take(&mut conn.out))
    }
}

/// One PUBLISH to write.
pub(super) struct Outgoing<'a> {
    pub(super) topic: &'a str,
    pub(super) payload: &'a [u8],
    pub(super) props: Option<&'a MessageProps>,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) dup: bool,
    pub(super) packet_id: Option<PacketId>,
    pub(super) sub_ids: &'a [u32],
}

/// The outbox of a connection, taking a pooled buffer if it has none.
pub(super) fn outbox<'a>(out: &'a mut Vec<u8>, pool: &mut Vec<Vec<u8>>) -> &'a mut Vec<u8> {
    if out.capacity() == 0 {
        if let Some(buf) = pool.pop() {
            *out = buf;
        }
    }
    out
}

impl Broker {
    fn hard_outbox_limit(&self) -> usize {
        self.settings
            .outbox_limit
            .saturating_mul(OUTBOX_HARD_FACTOR)
    }

    pub(super) fn send(&mut self, id: ConnId, packet: &Packet<'_>) {
        if log::log_enabled!(log::Level::Debug) {
            if let Some(client_id) = self.trace_id(id) {
                super::trace::sending(client_id, packet);
            }
        }
        let hard_limit = self.hard_outbox_limit();
        let pool = &mut self.pool;
        let Some(conn) = self.conns.get_mut(id.0) else {
            return;
        };
        let version = conn.version;
        conn.is_over_limit |= conn.out.len() > hard_limit;
        let out = outbox(&mut conn.out, pool);
        out.reserve(packet.encoded_len(version));
        let start = out.len();
        packet.encode(version, out);
        conn.out_packets += 1;
        self.stats.count_out(&out[start..]);
        self.mark_dirty(id);
    }

    /// Writes a PUBLISH in the connection's protocol version. Returns false if it was not
    /// written: expired [MQTT-3.3.2-5], or larger than the client's Maximum Packet Size
    /// (discarded as if sent [MQTT-3.1.2-25]).
    pub(super) fn write_publish(&mut self, id: ConnId, m: &Outgoing<'_>, now: Instant) -> bool {
        let hard_limit = self.hard_outbox_limit();
        let pool = &mut self.pool;
        let Some(conn) = self.conns.get_mut(id.0) else {
            return false;
        };
        let start = conn.out.len();
        conn.is_over_limit |= start > hard_limit;
        // The client sees its topics without its mount point; it only subscribed to
        // topics under it.
        let m = &Outgoing {
            topic: match &conn.limits.mount_point {
                Some(mount_point) => m.topic.strip_prefix(&**mount_point).unwrap_or(m.topic),
                None => m.topic,
            },
            ..*m
        };
        if conn.version == ProtocolVersion::V5 {
            let mut properties = match m.props.map(|p| p.to_properties(now)) {
                Some(Some(p)) => p,
                Some(None) => return false,
                None => Properties::default(),
            };
            properties.subscription_identifiers = m.sub_ids.to_vec();
            // Outbound topic aliases [MQTT-3.3.2-8]: the first message on a topic sets
            // one, later ones send an empty topic name with it. No eviction: once the
            // client's maximum is used, other topics go out in full.
            let mut topic = m.topic;
            if conn.out_alias_maximum != 0 {
                match conn.out_aliases.iter().position(|t| **t == *m.topic) {
                    Some(i) => {
                        properties.topic_alias = Some(i as u16 + 1);
                        topic = "";
                    }
                    None if conn.out_aliases.len() < usize::from(conn.out_alias_maximum) => {
                        conn.out_aliases.push(m.topic.into());
                        properties.topic_alias = Some(conn.out_aliases.len() as u16);
                    }
                    None => {}
                }
            }
            let len = publish_v5_len(topic.len(), m.payload.len(), m.qos, &properties);
            if conn.max_packet_size != 0 && len > conn.max_packet_size as usize {
                self.stats.publish_dropped += 1;
                return false;
            }
            let out = outbox(&mut conn.out, pool);
            out.reserve(len);
            encode_publish_v5(
                out,
                topic,
                m.payload,
                m.qos,
                m.retain,
                m.dup,
                m.packet_id,
                &properties,
            );
        } else {
            let out = outbox(&mut conn.out, pool);
            out.reserve(publish_len(m.topic.len(), m.payload.len(), m.qos));
            encode_publish(out, m.topic, m.payload, m.qos, m.retain, m.dup, m.packet_id);
        }
        conn.out_packets += 1;
        self.stats.count_out(&conn.out[start..]);
        self.stats.publish_sent += 1;
        self.stats.publish_bytes_sent += m.payload.len() as u64;
        if log::log_enabled!(log::Level::Debug) {
            if let Some(client_id) = self.trace_id(id) {
                super::trace::sending_publish(client_id, m);
            }
        }
        self.mark_dirty(id);
        true
    }

    pub(super) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.0) {
            if !conn.is_dirty {
                conn.is_dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// `id` kept its written outbox buffer ([`Emptied::of`]): it is looked at again
    /// within [`KEEP_BUFFER_FOR`].
    pub(super) fn note_kept_buffer(&mut self, id: ConnId) {
        if self.kept_buffers.is_empty() {
            let at = self.last_event + KEEP_BUFFER_FOR;
            self.timers.schedule(at, Timer::KeptBuffers);
        }
        self.kept_buffers.push(id);
    }

    /// `Timer::KeptBuffers`: each kept buffer still empty is given up; those in use
    /// again are looked at once more later.
    pub(super) fn release_kept_buffers(&mut self, now: Instant) {
        let mut kept = std::mem::take(&mut self.kept_buffers);
        kept.retain(|id| {
            let Some(conn) = self.conns.get_mut(id.0).filter(|c| c.keeps_buffer) else {
                return false;
            };
            if !conn.out.is_empty() {
                return true;
            }
            conn.keeps_buffer = false;
            let buf = std::mem::take(&mut conn.out);
            self.recycle(buf);
            false
        });
        if !kept.is_empty() {
            self.timers
                .schedule(now + KEEP_BUFFER_FOR, Timer::KeptBuffers);
        }
        self.kept_buffers = kept;
    }

    pub(super) fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= POOL_BUFFER_MAX && self.pool.len() < POOL_BUFFERS
        {
            buf.clear();
            self.pool.push(buf);
        } else if buf.capacity() > POOL_BUFFER_MAX {
            self.dropped_output = self.dropped_output.max(buf.capacity());
        }
    }
}
