//! MQTT 5 Reason Codes [MQTT-2.4], declared once in [`reason_codes!`] with their value,
//! spec text and the packets that may carry them (Table 2-6), like quinn-proto's
//! `errors!` in `transport_error.rs`. The CONNACK return codes of 3.1/3.1.1 map to and
//! from these ([`ReasonCode::from_v3_connack`], [`ReasonCode::to_v3_connack`]), and
//! [`DecodeError`] maps to the code a receiver answers with, in one `From` impl.

use std::fmt;

use super::{DecodeError, PacketType, QoS};

/// A one-byte MQTT 5 Reason Code. Values below 0x80 report success, 0x80 and above a
/// failure [MQTT-2.4]. Any byte can be held; [`ReasonCode::is_valid_for`] says whether a
/// packet type may carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReasonCode(pub u8);

/// Bit sets of packet types, for the table below.
const CONNACK: u16 = 1 << 2;
const PUBACK: u16 = 1 << 4;
const PUBREC: u16 = 1 << 5;
const PUBREL: u16 = 1 << 6;
const PUBCOMP: u16 = 1 << 7;
const SUBACK: u16 = 1 << 9;
const UNSUBACK: u16 = 1 << 11;
const DISCONNECT: u16 = 1 << 14;
const AUTH: u16 = 1 << 15;

macro_rules! reason_codes {
    {$($name:ident($value:literal, $text:literal) in $($packet:ident)|+;)*} => {
        impl ReasonCode {
            $(
                #[doc = $text]
                pub const $name: ReasonCode = ReasonCode($value);
            )*

            /// The spec's name for the code ("Unspecified error"), or `None` for a value
            /// Table 2-6 does not define.
            fn text(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }

            /// The packet types that may carry the code, a bit per packet type.
            fn packets(self) -> u16 {
                match self.0 {
                    $($value => $($packet)|+,)*
                    _ => 0,
                }
            }
        }

        #[cfg(test)]
        pub(crate) const ALL: &[ReasonCode] = &[$(ReasonCode::$name),*];
    };
}

reason_codes! {
    SUCCESS(0x00, "Success") in CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK | DISCONNECT | AUTH;
    GRANTED_QOS_1(0x01, "Granted QoS 1") in SUBACK;
    GRANTED_QOS_2(0x02, "Granted QoS 2") in SUBACK;
    DISCONNECT_WITH_WILL_MESSAGE(0x04, "Disconnect with Will Message") in DISCONNECT;
    NO_MATCHING_SUBSCRIBERS(0x10, "No matching subscribers") in PUBACK | PUBREC;
    NO_SUBSCRIPTION_EXISTED(0x11, "No subscription existed") in UNSUBACK;
    CONTINUE_AUTHENTICATION(0x18, "Continue authentication") in AUTH;
    RE_AUTHENTICATE(0x19, "Re-authenticate") in AUTH;
    UNSPECIFIED_ERROR(0x80, "Unspecified error") in CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT;
    MALFORMED_PACKET(0x81, "Malformed Packet") in CONNACK | DISCONNECT;
    PROTOCOL_ERROR(0x82, "Protocol Error") in CONNACK | DISCONNECT;
    IMPLEMENTATION_SPECIFIC_ERROR(0x83, "Implementation specific error") in CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT;
    UNSUPPORTED_PROTOCOL_VERSION(0x84, "Unsupported Protocol Version") in CONNACK;
    CLIENT_IDENTIFIER_NOT_VALID(0x85, "Client Identifier not valid") in CONNACK;
    BAD_USER_NAME_OR_PASSWORD(0x86, "Bad User Name or Password") in CONNACK;
    NOT_AUTHORIZED(0x87, "Not authorized") in CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT;
    SERVER_UNAVAILABLE(0x88, "Server unavailable") in CONNACK;
    SERVER_BUSY(0x89, "Server busy") in CONNACK | DISCONNECT;
    BANNED(0x8a, "Banned") in CONNACK;
    SERVER_SHUTTING_DOWN(0x8b, "Server shutting down") in DISCONNECT;
    BAD_AUTHENTICATION_METHOD(0x8c, "Bad authentication method") in CONNACK | DISCONNECT;
    KEEP_ALIVE_TIMEOUT(0x8d, "Keep Alive timeout") in DISCONNECT;
    SESSION_TAKEN_OVER(0x8e, "Session taken over") in DISCONNECT;
    TOPIC_FILTER_INVALID(0x8f, "Topic Filter invalid") in SUBACK | UNSUBACK | DISCONNECT;
    TOPIC_NAME_INVALID(0x90, "Topic Name invalid") in CONNACK | PUBACK | PUBREC | DISCONNECT;
    PACKET_IDENTIFIER_IN_USE(0x91, "Packet Identifier in use") in PUBACK | PUBREC | SUBACK | UNSUBACK;
    PACKET_IDENTIFIER_NOT_FOUND(0x92, "Packet Identifier not found") in PUBREL | PUBCOMP;
    RECEIVE_MAXIMUM_EXCEEDED(0x93, "Receive Maximum exceeded") in DISCONNECT;
    TOPIC_ALIAS_INVALID(0x94, "Topic Alias invalid") in DISCONNECT;
    PACKET_TOO_LARGE(0x95, "Packet too large") in CONNACK | DISCONNECT;
    MESSAGE_RATE_TOO_HIGH(0x96, "Message rate too high") in DISCONNECT;
    QUOTA_EXCEEDED(0x97, "Quota exceeded") in CONNACK | PUBACK | PUBREC | SUBACK | DISCONNECT;
    ADMINISTRATIVE_ACTION(0x98, "Administrative action") in DISCONNECT;
    PAYLOAD_FORMAT_INVALID(0x99, "Payload format invalid") in CONNACK | PUBACK | PUBREC | DISCONNECT;
    RETAIN_NOT_SUPPORTED(0x9a, "Retain not supported") in CONNACK | DISCONNECT;
    QOS_NOT_SUPPORTED(0x9b, "QoS not supported") in CONNACK | DISCONNECT;
    USE_ANOTHER_SERVER(0x9c, "Use another server") in CONNACK | DISCONNECT;
    SERVER_MOVED(0x9d, "Server moved") in CONNACK | DISCONNECT;
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED(0x9e, "Shared Subscriptions not supported") in SUBACK | DISCONNECT;
    CONNECTION_RATE_EXCEEDED(0x9f, "Connection rate exceeded") in CONNACK | DISCONNECT;
    MAXIMUM_CONNECT_TIME(0xa0, "Maximum connect time") in DISCONNECT;
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED(0xa1, "Subscription Identifiers not supported") in SUBACK | DISCONNECT;
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED(0xa2, "Wildcard Subscriptions not supported") in SUBACK | DISCONNECT;
}

impl ReasonCode {
    /// 0x00 in DISCONNECT. [MQTT-3.14.2.1]
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::SUCCESS;
    /// 0x00 in SUBACK. [MQTT-3.9.3]
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::SUCCESS;

    /// The spec's name ("Not authorized"); "Unknown reason code" for an undefined value.
    pub fn name(self) -> &'static str {
        self.text().unwrap_or("Unknown reason code")
    }

    /// 0x80 and above. [MQTT-2.4]
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// May a packet of type `packet` carry this code? Table 2-6 and the lists of
    /// [MQTT-3.2.2.2], [MQTT-3.4.2.1] to [MQTT-3.7.2.1], [MQTT-3.9.3], [MQTT-3.11.3],
    /// [MQTT-3.14.2.1] and [MQTT-3.15.2.1].
    pub fn is_valid_for(self, packet: PacketType) -> bool {
        self.packets() & (1 << packet as u8) != 0
    }

    /// The SUBACK code granting `qos`: 0x00, 0x01 or 0x02.
    pub fn granted(qos: QoS) -> ReasonCode {
        ReasonCode(qos as u8)
    }

    /// A 3.1/3.1.1 CONNACK return code [MQTT-3.2.2.3] as the MQTT 5 code it became;
    /// `None` for the reserved values 6 to 255.
    pub fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => return None,
        })
    }

    /// The 3.1/3.1.1 CONNACK return code closest to this one: the six that exist map
    /// back exactly; an authentication or ban failure is "not authorized" (5), any other
    /// error "server unavailable" (3), and a success code "accepted" (0).
    pub fn to_v3_connack(self) -> u8 {
        match self {
            ReasonCode::SUCCESS => 0,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
            ReasonCode::SERVER_UNAVAILABLE => 3,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
            ReasonCode::NOT_AUTHORIZED
            | ReasonCode::BANNED
            | ReasonCode::BAD_AUTHENTICATION_METHOD => 5,
            code if code.is_error() => 3,
            _ => 0,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.0)
    }
}

/// The code a receiver sends (in CONNACK or DISCONNECT) for a packet it could not decode:
/// Malformed Packet unless the spec calls the failure a Protocol Error. [MQTT-4.13]
impl From<DecodeError> for ReasonCode {
    fn from(e: DecodeError) -> ReasonCode {
        match e {
            DecodeError::PacketTooLarge => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            // Topic Alias 0 [MQTT-3.3.2-8]: the reason code made for bad aliases.
            DecodeError::PropertyValue(0x23) => ReasonCode::TOPIC_ALIAS_INVALID,
            // Packet type 0 (section 2.1.2: "Forbidden"), or AUTH before MQTT 5: the
            // specification does not call either malformed; Mosquitto answers 0x82
            // (src/read_handle.c's default case), and so does culex.
            DecodeError::InvalidPacketType(_)
            | DecodeError::DuplicateProperty(_)
            | DecodeError::PropertyValue(_)
            | DecodeError::InvalidReasonCode(_)
            | DecodeError::ProtocolError(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::UnexpectedEnd
            | DecodeError::TrailingBytes
            | DecodeError::MalformedRemainingLength
            | DecodeError::ReservedFlags(_)
            | DecodeError::InvalidQos
            | DecodeError::PacketIdZero
            | DecodeError::InvalidUtf8
            | DecodeError::InvalidTopicName
            | DecodeError::InvalidTopicFilter
            | DecodeError::EmptySubscribe
            | DecodeError::EmptyUnsubscribe
            | DecodeError::SubscriptionOptions
            | DecodeError::InvalidProtocolName
            | DecodeError::ConnectReservedFlag
            | DecodeError::WillFlags
            | DecodeError::PasswordWithoutUsername
            | DecodeError::InvalidConnack
            | DecodeError::InvalidSubackCode
            | DecodeError::MalformedVarInt
            | DecodeError::InvalidProperty(_) => ReasonCode::MALFORMED_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 2-6 declares each value once; names come from it.
    #[test]
    fn codes_are_unique_and_named() {
        for (i, code) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|c| c != code), "{code}");
            assert_ne!(code.name(), "Unknown reason code");
        }
        assert_eq!(ALL.len(), 43);
        assert_eq!(
            ReasonCode::QUOTA_EXCEEDED.to_string(),
            "Quota exceeded (0x97)"
        );
        assert_eq!(ReasonCode(0x03).name(), "Unknown reason code");
        assert_eq!(ReasonCode::NORMAL_DISCONNECTION, ReasonCode(0x00));
        assert_eq!(ReasonCode::GRANTED_QOS_0, ReasonCode(0x00));
    }

    /// [MQTT-2.4]: 0x80 and above report failure.
    #[test]
    fn error_codes_are_0x80_and_above() {
        for code in ALL {
            assert_eq!(code.is_error(), code.0 >= 0x80, "{code}");
        }
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.is_error());
        assert!(ReasonCode::UNSPECIFIED_ERROR.is_error());
    }

    /// The per-packet lists of MQTT 5.0: CONNACK 3.2.2.2, PUBACK 3.4.2.1, PUBREC
    /// 3.5.2.1, PUBREL 3.6.2.1, PUBCOMP 3.7.2.1, SUBACK 3.9.3, UNSUBACK 3.11.3,
    /// DISCONNECT 3.14.2.1, AUTH 3.15.2.1.
    #[test]
    fn codes_valid_per_packet_match_the_packet_sections() {
        let lists: [(PacketType, &[u8]); 9] = [
            (
                PacketType::Connack,
                &[
                    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c,
                    0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f,
                ],
            ),
            (
                PacketType::Puback,
                &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            ),
            (
                PacketType::Pubrec,
                &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            ),
            (PacketType::Pubrel, &[0x00, 0x92]),
            (PacketType::Pubcomp, &[0x00, 0x92]),
            (
                PacketType::Suback,
                &[
                    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2,
                ],
            ),
            (
                PacketType::Unsuback,
                &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
            ),
            (
                PacketType::Disconnect,
                &[
                    // 0x8c: Table 2-6 lists Bad authentication method for DISCONNECT
                    // (after re-authentication), section 3.14.2.1's list omits it; the
                    // table wins, so a receiver accepts it.
                    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
                    0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e,
                    0x9f, 0xa0, 0xa1, 0xa2,
                ],
            ),
            (PacketType::Auth, &[0x00, 0x18, 0x19]),
        ];
        for (packet, valid) in lists {
            for value in 0..=255u8 {
                assert_eq!(
                    ReasonCode(value).is_valid_for(packet),
                    valid.contains(&value),
                    "0x{value:02x} in {packet:?}"
                );
            }
        }
        // Packets without a reason code take none.
        for packet in [
            PacketType::Connect,
            PacketType::Publish,
            PacketType::Pingreq,
        ] {
            assert!(ALL.iter().all(|code| !code.is_valid_for(packet)));
        }
    }

    /// MQTT 5.0 Table 3.1.1's return codes and their MQTT 5 successors.
    #[test]
    fn v3_connack_codes_map_both_ways() {
        let pairs = [
            (0, ReasonCode::SUCCESS),
            (1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
            (2, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
            (3, ReasonCode::SERVER_UNAVAILABLE),
            (4, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            (5, ReasonCode::NOT_AUTHORIZED),
        ];
        for (v3, v5) in pairs {
            assert_eq!(ReasonCode::from_v3_connack(v3), Some(v5));
            assert_eq!(v5.to_v3_connack(), v3);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        // The closest 3.1.1 code for the rest.
        for code in [
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            ReasonCode::BANNED,
            ReasonCode::NOT_AUTHORIZED,
        ] {
            assert_eq!(code.to_v3_connack(), 5, "{code}");
        }
        for code in [
            ReasonCode::UNSPECIFIED_ERROR,
            ReasonCode::MALFORMED_PACKET,
            ReasonCode::SERVER_BUSY,
            ReasonCode::QUOTA_EXCEEDED,
            ReasonCode::CONNECTION_RATE_EXCEEDED,
        ] {
            assert_eq!(code.to_v3_connack(), 3, "{code}");
        }
    }

    /// [MQTT-4.13]: malformed unless the spec says Protocol Error.
    #[test]
    fn decode_errors_map_to_reason_codes() {
        let cases = [
            (DecodeError::UnexpectedEnd, ReasonCode::MALFORMED_PACKET),
            (DecodeError::InvalidUtf8, ReasonCode::MALFORMED_PACKET),
            (
                DecodeError::InvalidProperty(0x7f),
                ReasonCode::MALFORMED_PACKET,
            ),
            (
                DecodeError::DuplicateProperty(0x11),
                ReasonCode::PROTOCOL_ERROR,
            ),
            (DecodeError::PropertyValue(0x21), ReasonCode::PROTOCOL_ERROR),
            (
                DecodeError::PropertyValue(0x23),
                ReasonCode::TOPIC_ALIAS_INVALID,
            ),
            (
                DecodeError::InvalidReasonCode(0x03),
                ReasonCode::PROTOCOL_ERROR,
            ),
            (DecodeError::ProtocolError("x"), ReasonCode::PROTOCOL_ERROR),
            // Section 2.1.2: type 0 is "Forbidden"; Mosquitto answers 0x82 (seq/ units
            // "FORBIDDEN 00", "FORBIDDEN 01" ...).
            (
                DecodeError::InvalidPacketType(0),
                ReasonCode::PROTOCOL_ERROR,
            ),
            (DecodeError::MalformedVarInt, ReasonCode::MALFORMED_PACKET),
            (DecodeError::PacketTooLarge, ReasonCode::PACKET_TOO_LARGE),
            (
                DecodeError::UnsupportedProtocolVersion(6),
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(ReasonCode::from(error), code, "{error:?}");
        }
    }
}
