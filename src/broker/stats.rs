//! The counters behind `$SYS` (`sys.rs` publishes them): traffic, clients, packets in
//! outboxes, and the messages held for delivery, updated where they change.

use super::state::Session;
use super::Message;

#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    pub(super) messages_received: u64,
    pub(super) messages_sent: u64,
    pub(super) publish_received: u64,
    pub(super) publish_sent: u64,
    pub(super) publish_dropped: u64,
    /// Times a publisher was held, and a subscriber found stalled (pressure.rs).
    pub(super) holds: u64,
    pub(super) stalls: u64,
    /// Retained messages kept out by `max_retained_messages` / `max_retained_bytes`.
    pub(super) retained_refused: u64,
    pub(super) bytes_received: u64,
    pub(super) bytes_sent: u64,
    pub(super) clients_connected: usize,
    pub(super) clients_maximum: usize,
    pub(super) clients_expired: u64,
    /// PUBLISH payload bytes received and sent.
    pub(super) publish_bytes_received: u64,
    pub(super) publish_bytes_sent: u64,
    /// Control packets received and sent, by packet type (the first byte's high nibble).
    pub(super) packets_received: [u64; 16],
    pub(super) packets_sent: [u64; 16],
    /// Sockets accepted.
    pub(super) sockets: u64,
    /// Packets and bytes in outboxes, not yet taken by the sockets.
    pub(super) out_packets: u64,
    pub(super) out_bytes: u64,
    /// Messages held in session queues, inflight windows and the retained store (each
    /// entry once), and their payload bytes. See `sys.rs`.
    pub(super) stored_messages: u64,
    pub(super) stored_bytes: u64,
}

impl Stats {
    /// A packet was written into an outbox.
    pub(super) fn count_out(&mut self, packet: &[u8]) {
        self.messages_sent += 1;
        if let Some(first) = packet.first() {
            self.packets_sent[usize::from(first >> 4)] += 1;
        }
        self.out_packets += 1;
        self.out_bytes += packet.len() as u64;
    }

    /// Bytes (and the packets they completed) left an outbox: written, or discarded with
    /// their connection.
    pub(super) fn discard_output(&mut self, bytes: usize, packets: u64) {
        self.out_bytes = self.out_bytes.saturating_sub(bytes as u64);
        self.out_packets = self.out_packets.saturating_sub(packets);
    }

    /// A queue, an inflight window or the retained store took a message.
    pub(super) fn hold(&mut self, message: &Message) {
        self.stored_messages += 1;
        self.stored_bytes += message.queued_size() as u64;
    }

    /// A queue, an inflight window or the retained store let a message go.
    pub(super) fn release(&mut self, message: &Message) {
        self.stored_messages = self.stored_messages.saturating_sub(1);
        self.stored_bytes = self
            .stored_bytes
            .saturating_sub(message.queued_size() as u64);
    }

    /// A session ended with what its queue and inflight window held.
    pub(super) fn release_session(&mut self, session: &Session) {
        let queued = session.queue.iter().map(|q| &q.message);
        for message in queued.chain(session.inflight.iter().map(|i| &i.message)) {
            self.release(message);
        }
    }
}
