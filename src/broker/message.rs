//! A stored application message: one allocation for topic and payload, shared by `Rc`
//! between the retained tree and every queue that holds it ([MQTT-4.3] delivery states
//! keep a reference, never a copy).

use crate::protocol::QoS;
use std::rc::Rc;

#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// Topic bytes followed by payload bytes.
    bytes: Box<[u8]>,
    topic_len: u16,
    /// The QoS it was published with.
    pub qos: QoS,
    /// Whether the publisher set RETAIN.
    pub retain: bool,
}

impl Message {
    /// `topic` is a valid topic name, so at most 65,535 bytes [MQTT-1.5.3].
    pub fn new(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Rc<Message> {
        let topic_len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
        let topic = &topic.as_bytes()[..usize::from(topic_len)];
        let mut bytes = Vec::with_capacity(topic.len() + payload.len());
        bytes.extend_from_slice(topic);
        bytes.extend_from_slice(payload);
        Rc::new(Message {
            bytes: bytes.into_boxed_slice(),
            topic_len,
            qos,
            retain,
        })
    }

    pub fn topic(&self) -> &str {
        // The first topic_len bytes were copied from a &str, at a char boundary: the codec
        // only produces topics of at most 65,535 bytes, so no truncation happened.
        std::str::from_utf8(&self.bytes[..usize::from(self.topic_len)]).unwrap_or("")
    }

    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.topic_len)..]
    }

    /// Bytes this message accounts for in `max_queued_bytes` (the payload, as Mosquitto).
    pub fn queued_size(&self) -> usize {
        self.payload().len()
    }
}
