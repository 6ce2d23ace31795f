//! The per-packet trace Mosquitto writes at debug level (`log_type all`, or `-v`):
//! `Received PUBLISH from ID (d0, q1, r0, m1, 'topic', ... (N bytes))`,
//! `Sending PUBACK to ID (m1, rc0)` and the rest, in Mosquitto 2.0's words, so a log
//! reader written for Mosquitto's trace reads culex's. Callers check
//! `log::log_enabled!(Level::Debug)` first: with debug off (the default) a packet costs
//! one comparison here.

use crate::protocol::{Packet, Publish};
use log::debug;

fn mid(id: Option<crate::protocol::PacketId>) -> u16 {
    id.map_or(0, |p| p.get())
}

fn publish_line(verb: &str, dir: &str, id: &str, p: &Publish<'_>) -> String {
    publish_fields(
        verb,
        dir,
        id,
        p.dup,
        p.qos as u8,
        p.retain,
        mid(p.packet_id),
        p.topic,
        p.payload.len(),
    )
}

#[allow(clippy::too_many_arguments)] // The fields of Mosquitto's line.
fn publish_fields(
    verb: &str,
    dir: &str,
    id: &str,
    dup: bool,
    qos: u8,
    retain: bool,
    mid: u16,
    topic: &str,
    len: usize,
) -> String {
    format!(
        "{verb} PUBLISH {dir} {id} (d{}, q{qos}, r{}, m{mid}, '{topic}', ... ({len} bytes))",
        u8::from(dup),
        u8::from(retain),
    )
}

/// A packet received from client `id` (CONNECT is logged by the connection lines).
pub(super) fn received(id: &str, packet: &Packet<'_>) {
    match packet {
        Packet::Publish(p) => debug!("{}", publish_line("Received", "from", id, p)),
        Packet::Puback(a) => debug!(
            "Received PUBACK from {id} (Mid: {}, RC:{})",
            a.packet_id.get(),
            a.reason.0
        ),
        Packet::Pubcomp(a) => debug!(
            "Received PUBCOMP from {id} (Mid: {}, RC:{})",
            a.packet_id.get(),
            a.reason.0
        ),
        Packet::Pubrec(a) => debug!("Received PUBREC from {id} (Mid: {})", a.packet_id.get()),
        Packet::Pubrel(a) => debug!("Received PUBREL from {id} (Mid: {})", a.packet_id.get()),
        Packet::Subscribe(s) => {
            debug!("Received SUBSCRIBE from {id}");
            for (filter, options) in &s.filters {
                debug!("\t{filter} (QoS {})", options.qos as u8);
            }
        }
        Packet::Unsubscribe(u) => {
            debug!("Received UNSUBSCRIBE from {id}");
            for filter in &u.filters {
                debug!("\t{filter}");
            }
        }
        Packet::Pingreq => debug!("Received PINGREQ from {id}"),
        Packet::Disconnect(_) => debug!("Received DISCONNECT from {id}"),
        Packet::Auth(a) => debug!("Received AUTH from {id} (rc{})", a.reason.0),
        _ => {}
    }
}

/// A packet written to client `id`.
pub(super) fn sending(id: &str, packet: &Packet<'_>) {
    match packet {
        Packet::Publish(p) => debug!("{}", publish_line("Sending", "to", id, p)),
        Packet::Connack(c) => debug!(
            "Sending CONNACK to {id} ({}, {})",
            u8::from(c.session_present),
            c.reason.0
        ),
        Packet::Puback(a) => debug!(
            "Sending PUBACK to {id} (m{}, rc{})",
            a.packet_id.get(),
            a.reason.0
        ),
        Packet::Pubrec(a) => debug!(
            "Sending PUBREC to {id} (m{}, rc{})",
            a.packet_id.get(),
            a.reason.0
        ),
        Packet::Pubrel(a) => debug!("Sending PUBREL to {id} (m{})", a.packet_id.get()),
        Packet::Pubcomp(a) => debug!("Sending PUBCOMP to {id} (m{})", a.packet_id.get()),
        Packet::Suback(_) => debug!("Sending SUBACK to {id}"),
        Packet::Unsuback(_) => debug!("Sending UNSUBACK to {id}"),
        Packet::Pingresp => debug!("Sending PINGRESP to {id}"),
        Packet::Disconnect(d) => debug!("Sending DISCONNECT to {id} (rc{})", d.reason.0),
        Packet::Auth(a) => debug!("Sending AUTH to {id} (rc{})", a.reason.0),
        _ => {}
    }
}

/// A PUBLISH written to client `id` by the delivery path (which encodes it directly).
pub(super) fn sending_publish(id: &str, m: &super::outbox::Outgoing<'_>) {
    let line = publish_fields(
        "Sending",
        "to",
        id,
        m.dup,
        m.qos as u8,
        m.retain,
        mid(m.packet_id),
        m.topic,
        m.payload.len(),
    );
    debug!("{line}");
}
