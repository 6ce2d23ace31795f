//! What a fixed header alone decides, before the body is read: the checks Mosquitto's
//! `packet__read` (lib/packet_mosq.c) makes once it has the first byte and the Remaining
//! Length. A client announcing a packet it may not send is closed at its header, so
//! nothing a client that has not connected sends makes the loop buffer more than one
//! CONNECT's worth of bytes.

use super::lifecycle::CloseReason;
use super::state::{ConnId, ConnState};
use super::Broker;
use crate::protocol::{self, DecodeError, ProtocolVersion};
use std::time::Instant;

/// The largest Remaining Length of a CONNECT: Mosquitto's limit ("arbitrary", in
/// `packet__read`), and so what a client that has not connected can make the loop
/// buffer. The largest CONNECT the specification allows is about 5 x 64 KiB of strings.
pub(super) const MAX_CONNECT_REMAINING: usize = 100_000;

impl Broker {
    /// The fixed header of the next packet from `id` has arrived; its body may not have.
    /// The loop calls this before it keeps the bytes of an incomplete packet
    /// ([`Broker::handle_frame`] makes the same checks on whole packets). Returns false
    /// when the connection is closed or closing: its bytes are not to be kept.
    pub fn check_header(
        &mut self,
        id: ConnId,
        first_byte: u8,
        remaining: usize,
        now: Instant,
    ) -> bool {
        let Some(conn) = self.conns.get(id.0) else {
            return false;
        };
        match header_verdict(conn.state(), conn.version, first_byte, remaining) {
            Ok(()) => true,
            Err(reason) => {
                self.last_event = now;
                self.close(id, reason, now);
                false
            }
        }
    }
}

/// Whether a packet of this fixed header may be read at all, and if not, how the
/// connection ends.
pub(super) fn header_verdict(
    state: ConnState,
    version: ProtocolVersion,
    first_byte: u8,
    remaining: usize,
) -> Result<(), CloseReason> {
    let kind = first_byte >> 4;
    let is_v5 = version == ProtocolVersion::V5;
    let bad = |e| Err(CloseReason::BadHeader(e));
    match state {
        // [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else is closed at
        // its first byte (Mosquitto: before it reads the Remaining Length).
        ConnState::Connecting if kind != protocol::CONNECT => {
            Err(CloseReason::UnexpectedPacket("a packet before CONNECT"))
        }
        ConnState::Connecting if remaining > MAX_CONNECT_REMAINING => {
            bad(DecodeError::PacketTooLarge)
        }
        ConnState::Connecting => Ok(()),
        ConnState::Closing => Err(CloseReason::SocketLost),
        ConnState::Active(_) => match kind {
            // [MQTT-3.12.1] [MQTT-3.13.1]: no variable header, no payload.
            protocol::PINGREQ | protocol::PINGRESP if remaining != 0 => {
                bad(DecodeError::TrailingBytes)
            }
            // 3.1.1 acknowledgements are exactly a packet identifier. [MQTT-3.4.1]
            protocol::PUBACK
            | protocol::PUBREC
            | protocol::PUBREL
            | protocol::PUBCOMP
            | protocol::UNSUBACK
                if !is_v5 && remaining != 2 =>
            {
                bad(if remaining < 2 {
                    DecodeError::UnexpectedEnd
                } else {
                    DecodeError::TrailingBytes
                })
            }
            // [MQTT-3.14.1] (3.1.1): DISCONNECT has no variable header.
            protocol::DISCONNECT if !is_v5 && remaining != 0 => bad(DecodeError::TrailingBytes),
            // culex offers no enhanced authentication: a CONNECT with an Authentication
            // Method was refused (0x8C), so any AUTH now is a Protocol Error, whatever
            // its flags or body (as Mosquitto answers). [MQTT-4.12.0-1]
            protocol::AUTH if is_v5 => Err(CloseReason::UnexpectedPacket(
                "AUTH without an authentication method",
            )),
            _ => Ok(()),
        },
    }
}
