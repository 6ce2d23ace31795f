//! Owned MQTT 5 properties: what a client keeps between packets (its CONNECT, Will and
//! PUBLISH properties, a received message's properties), where the codec's
//! [`Properties`] borrows from a frame that is gone once the packet is handled.

use crate::protocol::Properties;

/// The properties a client sends or keeps, owned. Server-only properties of CONNACK
/// (Maximum QoS, Retain Available, ...) are read from the borrowed [`Properties`] when
/// the CONNACK is handled and not kept here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedProperties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Vec<u8>>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub user_properties: Vec<(String, String)>,
    pub maximum_packet_size: Option<u32>,
}

impl OwnedProperties {
    /// A borrowed view for the encoder.
    pub fn as_properties(&self) -> Properties<'_> {
        Properties {
            payload_format_indicator: self.payload_format_indicator,
            message_expiry_interval: self.message_expiry_interval,
            content_type: self.content_type.as_deref(),
            response_topic: self.response_topic.as_deref(),
            correlation_data: self.correlation_data.as_deref(),
            subscription_identifiers: self.subscription_identifiers.clone(),
            session_expiry_interval: self.session_expiry_interval,
            authentication_method: self.authentication_method.as_deref(),
            authentication_data: self.authentication_data.as_deref(),
            request_problem_information: self.request_problem_information,
            will_delay_interval: self.will_delay_interval,
            request_response_information: self.request_response_information,
            reason_string: self.reason_string.as_deref(),
            receive_maximum: self.receive_maximum,
            topic_alias_maximum: self.topic_alias_maximum,
            topic_alias: self.topic_alias,
            user_properties: self
                .user_properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            maximum_packet_size: self.maximum_packet_size,
            ..Properties::default()
        }
    }

    /// Copies the properties a client keeps out of a decoded block.
    pub fn from_properties(p: &Properties<'_>) -> OwnedProperties {
        OwnedProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.map(str::to_owned),
            response_topic: p.response_topic.map(str::to_owned),
            correlation_data: p.correlation_data.map(<[u8]>::to_vec),
            subscription_identifiers: p.subscription_identifiers.clone(),
            session_expiry_interval: p.session_expiry_interval,
            authentication_method: p.authentication_method.map(str::to_owned),
            authentication_data: p.authentication_data.map(<[u8]>::to_vec),
            request_problem_information: p.request_problem_information,
            will_delay_interval: p.will_delay_interval,
            request_response_information: p.request_response_information,
            reason_string: p.reason_string.map(str::to_owned),
            receive_maximum: p.receive_maximum,
            topic_alias_maximum: p.topic_alias_maximum,
            topic_alias: p.topic_alias,
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            maximum_packet_size: p.maximum_packet_size,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == OwnedProperties::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_properties_round_trip_through_the_borrowed_view() {
        let owned = OwnedProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(30),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(vec![0, 1, 0xff]),
            user_properties: vec![("a".into(), "b".into()), ("a".into(), "c".into())],
            ..OwnedProperties::default()
        };
        assert_eq!(
            OwnedProperties::from_properties(&owned.as_properties()),
            owned
        );
        assert!(OwnedProperties::default().is_empty());
        assert!(!owned.is_empty());
    }
}
