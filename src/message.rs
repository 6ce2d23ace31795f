//! A stored application message: one allocation for topic and payload, shared by `Rc`
//! between the retained tree and every queue that holds it ([MQTT-4.3] delivery states
//! keep a reference, never a copy).
//!
//! It sits below both `broker` (which routes and queues it) and `persist` (which writes
//! it and reads it back), so neither imports the other for it; `broker` re-exports it.

use crate::protocol::{Properties, QoS};
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// Topic bytes followed by payload bytes.
    bytes: Box<[u8]>,
    topic_len: u16,
    /// The QoS it was published with.
    pub qos: QoS,
    /// Whether the publisher set RETAIN.
    pub retain: bool,
    /// MQTT 5 properties passed on to subscribers; `None` for most messages (all of
    /// MQTT 3.1.1), so they cost one pointer.
    pub props: Option<Box<MessageProps>>,
    /// Who published it, kept for retained messages while `check_retain_source` is on;
    /// `None` otherwise. Shared by the messages of one publisher (one pointer each).
    pub source: Option<Rc<MessageSource>>,
}

/// The publisher of a retained message: with `check_retain_source`, the message is
/// served to a new subscriber only while this client may still publish to its topic
/// (Mosquitto's fix of CVE-2018-12546).
#[derive(Debug, PartialEq, Eq)]
pub struct MessageSource {
    pub client_id: Box<str>,
    pub username: Option<Box<str>>,
    /// The listener it connected on (whose ACL applies with per_listener_settings).
    pub listener: usize,
}

/// The properties of a PUBLISH (or will) that travel with the message to its
/// subscribers [MQTT-3.3.2-4] [MQTT-3.3.2-17] [MQTT-3.3.2-20], owned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MessageProps {
    pub payload_format_indicator: Option<u8>,
    /// When the message expires, from its Message Expiry Interval and arrival time.
    pub expires_at: Option<Instant>,
    pub content_type: Option<Box<str>>,
    pub response_topic: Option<Box<str>>,
    pub correlation_data: Option<Box<[u8]>>,
    pub user_properties: Vec<(Box<str>, Box<str>)>,
    /// The publisher's order of these properties when it was not identifier order
    /// ([`Properties::message_order`]), so subscribers get them in it; `None` otherwise.
    pub order: Option<Box<[u8]>>,
}

impl MessageProps {
    /// The properties of `p` worth keeping, or `None` if there are none.
    pub fn from_properties(p: &Properties<'_>, now: Instant) -> Option<Box<MessageProps>> {
        let has_any = p.payload_format_indicator.is_some()
            || p.message_expiry_interval.is_some()
            || p.content_type.is_some()
            || p.response_topic.is_some()
            || p.correlation_data.is_some()
            || !p.user_properties.is_empty();
        has_any.then(|| {
            Box::new(MessageProps {
                payload_format_indicator: p.payload_format_indicator,
                expires_at: p
                    .message_expiry_interval
                    .map(|s| now + Duration::from_secs(u64::from(s))),
                content_type: p.content_type.map(Box::from),
                response_topic: p.response_topic.map(Box::from),
                correlation_data: p.correlation_data.map(Box::from),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                    .collect(),
                order: p.message_order.as_deref().map(Box::from),
            })
        })
    }

    /// The properties for a PUBLISH sent at `now`: the expiry interval is what is left of
    /// it [MQTT-3.3.2-6]. `None` if the message has expired.
    pub fn to_properties(&self, now: Instant) -> Option<Properties<'_>> {
        let mut p = Properties {
            payload_format_indicator: self.payload_format_indicator,
            content_type: self.content_type.as_deref(),
            response_topic: self.response_topic.as_deref(),
            correlation_data: self.correlation_data.as_deref(),
            user_properties: self
                .user_properties
                .iter()
                .map(|(k, v)| (&**k, &**v))
                .collect(),
            message_order: self.order.as_deref().map(Cow::Borrowed),
            ..Properties::default()
        };
        if let Some(at) = self.expires_at {
            let left = at.checked_duration_since(now)?;
            if left.is_zero() {
                return None;
            }
            // Round up: a message with 0.4 s left still has "1 second" to live.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            p.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        }
        Some(p)
    }
}

impl Message {
    /// `topic` is a valid topic name, so at most 65,535 bytes [MQTT-1.5.3].
    pub fn new(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Rc<Message> {
        Message::with_props(topic, payload, qos, retain, None)
    }

    pub fn with_props(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: Option<Box<MessageProps>>,
    ) -> Rc<Message> {
        Message::with_source(topic, payload, qos, retain, props, None)
    }

    pub fn with_source(
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: Option<Box<MessageProps>>,
        source: Option<Rc<MessageSource>>,
    ) -> Rc<Message> {
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
            props,
            source,
        })
    }

    /// Has its Message Expiry Interval passed? [MQTT-3.3.2-5]
    pub fn is_expired(&self, now: Instant) -> bool {
        self.props
            .as_ref()
            .and_then(|p| p.expires_at)
            .is_some_and(|at| at <= now)
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

/// The retained tree keeps a message that has no longer name below it without a label of
/// its own: it reads the last level from the message's topic.
impl crate::topic::Named for Rc<Message> {
    fn name(&self) -> &str {
        self.topic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn left_at(left: Duration) -> Option<u32> {
        let now = Instant::now();
        let props = MessageProps {
            payload_format_indicator: None,
            expires_at: Some(now + left),
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
            order: None,
        };
        props.to_properties(now)?.message_expiry_interval
    }

    /// [MQTT-3.3.2-6] The interval sent on is what is left of it, rounded up to whole
    /// seconds.
    #[test]
    fn expiry_left_rounds_up() {
        assert_eq!(left_at(Duration::from_millis(400)), Some(1));
        assert_eq!(left_at(Duration::from_millis(1)), Some(1));
        assert_eq!(left_at(Duration::from_millis(3_599_500)), Some(3600));
        assert_eq!(left_at(Duration::from_secs(3600)), Some(3600));
    }
}
