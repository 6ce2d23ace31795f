//! Plaintext bytes into whole MQTT packets for the broker, whatever the transport (TCP,
//! TLS, WebSocket): only an incomplete packet's bytes are kept, and a packet larger than
//! the broker accepts is refused before it is buffered. Sockets are not touched here.
//!
//! Backpressure (broker/pressure.rs): once the broker holds the connection, no more of
//! its packets are handed over; the rest of the read is kept with the incomplete packet
//! (at most one read, since a held connection is not read again) and handed over first
//! when it is released ([`deframe`] with no new data).

use crate::broker::{Broker, ConnId};
use crate::protocol::{frame, DecodeError};
use std::time::Instant;

/// Hands every whole packet in `partial` + `data` to the broker, until it holds the
/// connection, and keeps the rest in `partial`. Returns false if the stream cannot
/// continue (a framing error).
pub(super) fn deframe(
    broker: &mut Broker,
    id: ConnId,
    partial: &mut Vec<u8>,
    mut data: &[u8],
    max_packet_size: usize,
    now: Instant,
) -> bool {
    // A read nearly always ends inside a packet. The pending packet is completed with
    // just the bytes it lacks, and the rest of the read is decoded where it lies: copying
    // every read behind the pending bytes into a fresh buffer cost a quarter of the
    // broker's time in the fan-through profile (the copy, and page faults on the buffer).
    while !partial.is_empty() {
        if broker.is_held(id) {
            partial.extend_from_slice(data);
            return true;
        }
        let (want, is_whole_known) = match frame::len(partial, max_packet_size) {
            Ok(Some(len)) => (len, true),
            // The fixed header is incomplete: one byte more, then look again.
            Ok(None) => (partial.len() + 1, false),
            Err(e) => {
                broker.handle_framing_error(id, e, now);
                return false;
            }
        };
        if is_whole_known && partial.len() > want {
            // Packets kept back by a hold: hand them over from the front.
            let Some(n) = deframe_slice(broker, id, partial, max_packet_size, now) else {
                return false;
            };
            partial.drain(..n);
            if partial.is_empty() {
                *partial = Vec::new();
            }
            continue;
        }
        if is_whole_known
            && partial.len() + data.len() < want
            && !may_keep(broker, id, partial, now)
        {
            return false;
        }
        // `take` <= data.len(), so the split cannot fail.
        let take = want.saturating_sub(partial.len()).min(data.len());
        let (head, rest) = data.split_at(take);
        partial.extend_from_slice(head);
        data = rest;
        if !is_whole_known || partial.len() < want {
            if data.is_empty() {
                return true;
            }
            continue;
        }
        if deframe_slice(broker, id, partial, max_packet_size, now).is_none() {
            return false;
        }
        // Give the memory back: an idle connection owns no buffer.
        *partial = Vec::new();
    }
    if broker.is_held(id) {
        partial.extend_from_slice(data);
        return true;
    }
    let consumed = match deframe_slice(broker, id, data, max_packet_size, now) {
        Some(n) => n,
        None => return false,
    };
    // `consumed` <= data.len(): deframe_slice counts bytes it took from `data`.
    partial.extend_from_slice(data.get(consumed..).unwrap_or_default());
    true
}

/// Returns how many bytes of whole packets were handed over (stopping once the broker
/// holds the connection), or None on a framing error.
///
/// `frame::check` promises a length of at least 2 that the buffer holds (fuzzed by
/// `protocol::fuzz`); should it ever break that promise, this connection gets a framing
/// error, and the loop neither panics on a slice nor spins on an empty frame.
fn deframe_slice(
    broker: &mut Broker,
    id: ConnId,
    data: &[u8],
    max_packet_size: usize,
    now: Instant,
) -> Option<usize> {
    let mut rest = data;
    while !rest.is_empty() {
        match frame::check(rest, max_packet_size) {
            Ok(Some(len)) => {
                let Some((frame, tail)) = rest.split_at_checked(len).filter(|_| len > 0) else {
                    broker.handle_framing_error(id, DecodeError::UnexpectedEnd, now);
                    return None;
                };
                broker.handle_frame(id, frame, now);
                rest = tail;
                if broker.is_held(id) {
                    break;
                }
            }
            Ok(None) if may_keep(broker, id, rest, now) => break,
            Ok(None) => return None,
            Err(e) => {
                broker.handle_framing_error(id, e, now);
                return None;
            }
        }
    }
    Some(data.len() - rest.len())
}

/// Asks the broker before the bytes of an incomplete packet whose fixed header is here
/// are kept (see `Broker::check_header`): a first packet that is not CONNECT is refused
/// at its header, not after megabytes of its body.
fn may_keep(broker: &mut Broker, id: ConnId, pending: &[u8], now: Instant) -> bool {
    match frame::parse_header(pending) {
        Ok(Some(header)) => broker.check_header(id, header.first_byte, header.remaining, now),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Settings;
    use crate::protocol::Props;
    use std::net::SocketAddr;

    /// Packets split at every possible place across reads are all handled, once each:
    /// a PUBLISH to the client's own subscription comes back to it.
    #[test]
    fn packets_split_across_reads_are_reassembled() {
        use crate::protocol::{Connect, Packet, PacketId, ProtocolVersion, QoS};
        use crate::protocol::{Subscribe, SubscriptionOptions};
        let v = ProtocolVersion::V311;
        let mut stream = Vec::new();
        Packet::Connect(Box::new(Connect::minimal(v, "split"))).encode(v, &mut stream);
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).expect("1 is not 0"),
            filters: vec![("t/#", SubscriptionOptions::new(QoS::AtMostOnce))],
            properties: Props::default(),
        })
        .encode(v, &mut stream);
        const MESSAGES: usize = 40;
        for i in 0..MESSAGES {
            // Payloads of 0 to 390 bytes: Remaining Lengths of one and two bytes.
            let payload = vec![i as u8; i * 10];
            crate::protocol::encode_publish(
                &mut stream,
                "t/x",
                &payload,
                QoS::AtMostOnce,
                false,
                false,
                None,
            );
        }
        for chunk in [1, 2, 3, 5, 7, 64, 127, 1000, stream.len()] {
            let now = Instant::now();
            let mut broker = Broker::new(Settings::default(), now);
            let id = ConnId(1);
            broker.handle_open(id, SocketAddr::from(([127, 0, 0, 1], 40_000)), 0, now);
            let mut partial = Vec::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                assert!(deframe(&mut broker, id, &mut partial, piece, 1 << 20, now));
                out.extend_from_slice(broker.output(id));
                let n = broker.output(id).len();
                broker.consume_output(id, n);
            }
            assert!(
                partial.is_empty(),
                "chunk {chunk}: {} bytes left",
                partial.len()
            );
            let mut publishes = Vec::new();
            let mut pos = 0;
            while let Ok(Some(len)) = frame::check(&out[pos..], usize::MAX) {
                if let Ok(Packet::Publish(p)) = Packet::decode(&out[pos..pos + len], v) {
                    publishes.push(p.payload.to_vec());
                }
                pos += len;
            }
            assert_eq!(pos, out.len(), "chunk {chunk}");
            assert_eq!(
                publishes.len(),
                MESSAGES,
                "chunk {chunk}: PUBLISHes delivered"
            );
            for (i, payload) in publishes.iter().enumerate() {
                assert!(
                    *payload == vec![i as u8; i * 10],
                    "chunk {chunk}: message {i}"
                );
            }
        }
    }
}
