//! Acknowledgements from the client: PUBACK and PUBCOMP free an inflight slot, PUBREC
//! moves a QoS 2 delivery on to PUBREL, PUBREL releases an inbound QoS 2 message.

use super::lifecycle::CloseReason;
use super::state::{ConnId, InflightState, SessionId};
use super::Broker;
use crate::persist::record::Record;
use crate::protocol::{Ack, Packet, PacketId};
use log::debug;
use std::time::Instant;

impl Broker {
    /// PUBACK or PUBCOMP: the message leaves the inflight window. An acknowledgement of
    /// the wrong kind for the message (PUBACK for QoS 2, PUBCOMP for QoS 1 or before
    /// PUBREC) breaks the flow of [MQTT-4.3.2]/[MQTT-4.3.3]: a Protocol Error, as
    /// Mosquitto answers it. One for an unknown packet id is ignored.
    pub(super) fn handle_ack(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        pid: PacketId,
        expected: InflightState,
        now: Instant,
    ) {
        let session = self.session_mut(sid);
        match session.inflight.iter().position(|i| i.packet_id == pid) {
            Some(pos) if session.inflight[pos].state == expected => {
                self.remove_inflight(sid, pos);
                self.drain_queue(sid, now);
            }
            Some(_) => {
                let why = match expected {
                    InflightState::Puback => "PUBACK for a QoS 2 message",
                    _ => "PUBCOMP for a message not waiting for it",
                };
                self.close(conn, CloseReason::UnexpectedPacket(why), now);
            }
            None => debug!(
                "Client {} acknowledged unknown packet id {}.",
                session.client_id,
                pid.get()
            ),
        }
    }

    pub(super) fn handle_pubrec(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        ack: &Ack<'_>,
        now: Instant,
    ) {
        let pid = ack.packet_id;
        let session = self.session_mut(sid);
        let found = session.inflight.iter().position(|i| i.packet_id == pid);
        if found.is_some_and(|pos| session.inflight[pos].state == InflightState::Puback) {
            // [MQTT-4.3.2]: a QoS 1 message is acknowledged by PUBACK only.
            let why = "PUBREC for a QoS 1 message";
            return self.close(conn, CloseReason::UnexpectedPacket(why), now);
        }
        if ack.reason.is_error() {
            // MQTT 5: the subscriber refused the message; the exchange ends here.
            if let Some(pos) = found {
                self.remove_inflight(sid, pos);
                self.drain_queue(sid, now);
            }
            return;
        }
        if let Some(pos) = found {
            session.inflight[pos].state = InflightState::Pubcomp;
            let packet_id = pid.get();
            self.journal_session(sid, |j, sid| j.record(Record::Pubrec { sid, packet_id }));
        }
        // [MQTT-4.3.3-1]: PUBREL answers PUBREC (again, if the PUBREC was repeated).
        self.send(conn, &Packet::Pubrel(Ack::new(pid)));
    }

    pub(super) fn handle_pubrel(&mut self, conn: ConnId, sid: SessionId, pid: PacketId) {
        let session = self.session_mut(sid);
        let was_known = session.awaiting_pubrel.contains(&pid);
        session.awaiting_pubrel.retain(|p| *p != pid);
        if was_known {
            let packet_id = pid.get();
            self.journal_session(sid, |j, sid| j.record(Record::Released { sid, packet_id }));
        }
        if let Some(c) = self.conn_mut(conn) {
            c.repeated_qos2.retain(|p| *p != pid);
        }
        // [MQTT-4.3.3-2]: PUBCOMP answers PUBREL, with Success even for an id no longer
        // known: MQTT 5 allows 0x92 there, Mosquitto always answers Success, and a
        // client that resends PUBREL after a reconnect expects nothing else.
        self.send_report(conn, &Packet::Pubcomp(Ack::new(pid)));
    }
}
