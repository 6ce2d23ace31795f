//! MQTT 5 properties [MQTT-2.2.2]: one [`Properties`] struct with a field per property,
//! and the property table (id, name, data type, packets that allow it) declared once in
//! [`properties!`].
//!
//! A property block is a Property Length (a Variable Byte Integer) followed by that many
//! bytes of (identifier, value) pairs. Decoding checks what a receiver must: an unknown
//! identifier or one the packet type does not allow is malformed [MQTT-2.2.2.2]; a
//! property that may appear once and appears twice is a Protocol Error; values outside
//! their range (a Byte that must be 0 or 1, a Receive Maximum of 0, ...) are a Protocol
//! Error. Packets hold their properties as [`Props`]: nothing when the block is empty, so a
//! packet without properties allocates nothing and moves cheaply; a block with any
//! property is one allocation (two or three with User Properties or Subscription
//! Identifiers, the properties that may repeat).

use super::frame;
use super::packet::{field_len, put_binary, put_u16};
use super::reader::Reader;
use super::{DecodeError, PacketType};
use crate::topic;
use std::borrow::Cow;

/// Which property set a block belongs to: a packet type's, or the Will Properties of
/// CONNECT's payload [MQTT-3.1.3.2].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    Packet(PacketType),
    Will,
}

impl PropertyContext {
    fn bit(self) -> u32 {
        match self {
            PropertyContext::Packet(t) => 1 << (t as u8),
            PropertyContext::Will => WILL,
        }
    }
}

// Bit sets for the table: bit n is packet type n, bit 16 the Will Properties.
const CONNECT: u32 = 1 << 1;
const CONNACK: u32 = 1 << 2;
const PUBLISH: u32 = 1 << 3;
const PUBACK: u32 = 1 << 4;
const PUBREC: u32 = 1 << 5;
const PUBREL: u32 = 1 << 6;
const PUBCOMP: u32 = 1 << 7;
const SUBSCRIBE: u32 = 1 << 8;
const SUBACK: u32 = 1 << 9;
const UNSUBSCRIBE: u32 = 1 << 10;
const UNSUBACK: u32 = 1 << 11;
const DISCONNECT: u32 = 1 << 14;
const AUTH: u32 = 1 << 15;
const WILL: u32 = 1 << 16;

/// How a property value is read, sized and written: one type per data type of
/// [MQTT-1.5].
trait Codec<'a> {
    type Value: Copy;
    fn read(r: &mut Reader<'a>) -> Result<Self::Value, DecodeError>;
    fn len(v: Self::Value) -> usize;
    fn write(v: Self::Value, out: &mut Vec<u8>);
}

struct Byte;
struct TwoByte;
struct FourByte;
struct VarInt;
struct Utf8;
struct Binary;
struct StringPair;

impl<'a> Codec<'a> for Byte {
    type Value = u8;
    fn read(r: &mut Reader<'a>) -> Result<u8, DecodeError> {
        r.u8()
    }
    fn len(_: u8) -> usize {
        1
    }
    fn write(v: u8, out: &mut Vec<u8>) {
        out.push(v);
    }
}

impl<'a> Codec<'a> for TwoByte {
    type Value = u16;
    fn read(r: &mut Reader<'a>) -> Result<u16, DecodeError> {
        r.u16()
    }
    fn len(_: u16) -> usize {
        2
    }
    fn write(v: u16, out: &mut Vec<u8>) {
        put_u16(out, v);
    }
}

impl<'a> Codec<'a> for FourByte {
    type Value = u32;
    fn read(r: &mut Reader<'a>) -> Result<u32, DecodeError> {
        r.u32()
    }
    fn len(_: u32) -> usize {
        4
    }
    fn write(v: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

impl<'a> Codec<'a> for VarInt {
    type Value = u32;
    fn read(r: &mut Reader<'a>) -> Result<u32, DecodeError> {
        r.var_int()
    }
    fn len(v: u32) -> usize {
        frame::remaining_length_len(v as usize)
    }
    fn write(v: u32, out: &mut Vec<u8>) {
        frame::write_remaining_length(out, v as usize);
    }
}

impl<'a> Codec<'a> for Utf8 {
    type Value = &'a str;
    fn read(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        r.string()
    }
    fn len(v: &'a str) -> usize {
        field_len(v.len())
    }
    fn write(v: &'a str, out: &mut Vec<u8>) {
        put_binary(out, v.as_bytes());
    }
}

impl<'a> Codec<'a> for Binary {
    type Value = &'a [u8];
    fn read(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
        r.binary()
    }
    fn len(v: &'a [u8]) -> usize {
        field_len(v.len())
    }
    fn write(v: &'a [u8], out: &mut Vec<u8>) {
        put_binary(out, v);
    }
}

impl<'a> Codec<'a> for StringPair {
    type Value = (&'a str, &'a str);
    fn read(r: &mut Reader<'a>) -> Result<(&'a str, &'a str), DecodeError> {
        Ok((r.string()?, r.string()?))
    }
    fn len((k, v): (&'a str, &'a str)) -> usize {
        field_len(k.len()) + field_len(v.len())
    }
    fn write((k, v): (&'a str, &'a str), out: &mut Vec<u8>) {
        put_binary(out, k.as_bytes());
        put_binary(out, v.as_bytes());
    }
}

/// Where a decoded value goes: an `Option` takes one (a second is a duplicate), a `Vec`
/// takes any number.
trait Slot<T> {
    /// `false` if the slot holds a value already and cannot take another.
    fn put(&mut self, v: T) -> bool;
    fn values(&self) -> impl Iterator<Item = T> + '_;
}

impl<T: Copy> Slot<T> for Option<T> {
    fn put(&mut self, v: T) -> bool {
        self.replace(v).is_none()
    }
    fn values(&self) -> impl Iterator<Item = T> + '_ {
        self.iter().copied()
    }
}

impl<T: Copy> Slot<T> for Vec<T> {
    fn put(&mut self, v: T) -> bool {
        self.push(v);
        true
    }
    fn values(&self) -> impl Iterator<Item = T> + '_ {
        self.iter().copied()
    }
}

/// A slot's value when the property is absent, usable in a `const`.
trait Absent {
    const ABSENT: Self;
}

impl<T> Absent for Option<T> {
    const ABSENT: Self = None;
}

impl<T> Absent for Vec<T> {
    const ABSENT: Self = Vec::new();
}

macro_rules! properties {
    {$(
        $(#[$doc:meta])*
        $id:literal $field:ident: $ty:ty = $codec:ident, $name:literal, $($packet:ident)|+;
    )*} => {
        /// Every MQTT 5 property, a field each; `None` or empty when absent. 3.1/3.1.1
        /// packets decode with `Properties::default()` and encode without them.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Properties<'a> {
            $($(#[$doc])* pub $field: $ty,)*
            /// The order of the message properties ([`MESSAGE_PROPERTY_IDS`]) of a PUBLISH
            /// or will as received, an identifier per value (one per User Property), kept
            /// only when it is not identifier order: `None` in the common case.
            /// [`Properties::encode_in_order`] writes them in this order.
            pub message_order: Option<Cow<'a, [u8]>>,
        }

        impl Properties<'static> {
            /// No property at all (what [`Props`] shows when it holds none).
            const NONE: Properties<'static> = Properties {
                $($field: Absent::ABSENT,)*
                message_order: None,
            };
        }

        impl<'a> Properties<'a> {
            /// Reads one identifier and its value into `self`; returns the identifier.
            fn read_one(
                &mut self,
                r: &mut Reader<'a>,
                context: PropertyContext,
            ) -> Result<u8, DecodeError> {
                // [MQTT-1.5.5]: the identifier is a Variable Byte Integer; every defined
                // one fits a byte.
                let id = r.var_int()?;
                let id = u8::try_from(id).map_err(|_| DecodeError::InvalidProperty(0xff))?;
                match id {
                    $($id => {
                        if ($($packet)|+) & context.bit() == 0 {
                            return Err(DecodeError::InvalidProperty(id));
                        }
                        let value = <$codec as Codec<'a>>::read(r)?;
                        if !self.$field.put(value) {
                            return Err(DecodeError::DuplicateProperty(id));
                        }
                        Ok(id)
                    })*
                    _ => Err(DecodeError::InvalidProperty(id)),
                }
            }

            /// Bytes of the properties, without the Property Length in front.
            fn body_len(&self) -> usize {
                0 $(+ self.$field.values().map(|v| 1 + <$codec as Codec<'_>>::len(v)).sum::<usize>())*
            }

            fn write_body(&self, out: &mut Vec<u8>) {
                $(for v in self.$field.values() {
                    out.push($id);
                    <$codec as Codec<'_>>::write(v, out);
                })*
            }

            /// Writes the values of property `id` (none if absent or unknown).
            fn write_id(&self, id: u8, out: &mut Vec<u8>) {
                match id {
                    $($id => for v in self.$field.values() {
                        out.push($id);
                        <$codec as Codec<'_>>::write(v, out);
                    },)*
                    _ => {}
                }
            }
        }

        /// The spec's name of a property identifier, `None` for an unknown one.
        pub fn property_name(id: u8) -> Option<&'static str> {
            match id {
                $($id => Some($name),)*
                _ => None,
            }
        }

        /// May a property block of `context` hold property `id`?
        pub fn is_property_allowed(id: u8, context: PropertyContext) -> bool {
            match id {
                $($id => ($($packet)|+) & context.bit() != 0,)*
                _ => false,
            }
        }

        /// Every identifier of the table, in identifier order.
        pub(crate) const PROPERTY_IDS: &[u8] = &[$($id),*];
    };
}

properties! {
    /// 0 unspecified bytes, 1 UTF-8. [MQTT-3.3.2.3.2]
    0x01 payload_format_indicator: Option<u8> = Byte, "Payload Format Indicator", PUBLISH | WILL;
    0x02 message_expiry_interval: Option<u32> = FourByte, "Message Expiry Interval", PUBLISH | WILL;
    0x03 content_type: Option<&'a str> = Utf8, "Content Type", PUBLISH | WILL;
    /// A topic name, no wildcards. [MQTT-3.3.2-14]
    0x08 response_topic: Option<&'a str> = Utf8, "Response Topic", PUBLISH | WILL;
    0x09 correlation_data: Option<&'a [u8]> = Binary, "Correlation Data", PUBLISH | WILL;
    /// Several in a PUBLISH to a client, at most one in SUBSCRIBE; 1 to 268,435,455.
    0x0b subscription_identifiers: Vec<u32> = VarInt, "Subscription Identifier", PUBLISH | SUBSCRIBE;
    0x11 session_expiry_interval: Option<u32> = FourByte, "Session Expiry Interval", CONNECT | CONNACK | DISCONNECT;
    0x12 assigned_client_identifier: Option<&'a str> = Utf8, "Assigned Client Identifier", CONNACK;
    0x13 server_keep_alive: Option<u16> = TwoByte, "Server Keep Alive", CONNACK;
    0x15 authentication_method: Option<&'a str> = Utf8, "Authentication Method", CONNECT | CONNACK | AUTH;
    0x16 authentication_data: Option<&'a [u8]> = Binary, "Authentication Data", CONNECT | CONNACK | AUTH;
    0x17 request_problem_information: Option<u8> = Byte, "Request Problem Information", CONNECT;
    0x18 will_delay_interval: Option<u32> = FourByte, "Will Delay Interval", WILL;
    0x19 request_response_information: Option<u8> = Byte, "Request Response Information", CONNECT;
    0x1a response_information: Option<&'a str> = Utf8, "Response Information", CONNACK;
    0x1c server_reference: Option<&'a str> = Utf8, "Server Reference", CONNACK | DISCONNECT;
    0x1f reason_string: Option<&'a str> = Utf8, "Reason String", CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK | DISCONNECT | AUTH;
    /// Not 0. [MQTT-3.1.2.11.3] [MQTT-3.2.2.3.3]
    0x21 receive_maximum: Option<u16> = TwoByte, "Receive Maximum", CONNECT | CONNACK;
    0x22 topic_alias_maximum: Option<u16> = TwoByte, "Topic Alias Maximum", CONNECT | CONNACK;
    /// Not 0. [MQTT-3.3.2-8]
    0x23 topic_alias: Option<u16> = TwoByte, "Topic Alias", PUBLISH;
    0x24 maximum_qos: Option<u8> = Byte, "Maximum QoS", CONNACK;
    0x25 retain_available: Option<u8> = Byte, "Retain Available", CONNACK;
    /// May repeat, and a name may appear more than once (section 3.1.2.11.8).
    0x26 user_properties: Vec<(&'a str, &'a str)> = StringPair, "User Property", CONNECT | CONNACK | PUBLISH | WILL | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBSCRIBE | SUBACK | UNSUBSCRIBE | UNSUBACK | DISCONNECT | AUTH;
    /// Not 0. [MQTT-3.1.2.11.4] [MQTT-3.2.2.3.6]
    0x27 maximum_packet_size: Option<u32> = FourByte, "Maximum Packet Size", CONNECT | CONNACK;
    0x28 wildcard_subscription_available: Option<u8> = Byte, "Wildcard Subscription Available", CONNACK;
    0x29 subscription_identifier_available: Option<u8> = Byte, "Subscription Identifier Available", CONNACK;
    0x2a shared_subscription_available: Option<u8> = Byte, "Shared Subscription Available", CONNACK;
}

/// Largest Subscription Identifier, the largest Variable Byte Integer. [MQTT-3.8.2.1.2]
pub const MAX_SUBSCRIPTION_IDENTIFIER: u32 = 268_435_455;

impl<'a> Properties<'a> {
    /// Reads a Property Length and the properties it covers, for a block of `context`.
    pub(crate) fn decode(
        r: &mut Reader<'a>,
        context: PropertyContext,
    ) -> Result<Properties<'a>, DecodeError> {
        let len = r.var_int()?;
        let mut block = r.sub(len as usize)?;
        let mut properties = Properties::default();
        // The order of the message properties, for the forwarded PUBLISH: nothing is
        // kept while they come in identifier order (a comparison each).
        let keeps_order = matches!(
            context,
            PropertyContext::Will | PropertyContext::Packet(PacketType::Publish)
        );
        let mut last = 0;
        let mut order: Option<Vec<u8>> = None;
        while !block.is_empty() {
            let id = properties.read_one(&mut block, context)?;
            if !keeps_order || !MESSAGE_PROPERTY_IDS.contains(&id) {
                continue;
            }
            match &mut order {
                Some(order) => order.push(id),
                None if id >= last => last = id,
                // The first one out of order. Those before it came in identifier order,
                // so they are the message properties read so far but this one (which
                // may appear once: User Property, the largest, is never out of order).
                None => {
                    let mut ids: Vec<u8> = properties
                        .message_property_ids()
                        .filter(|&i| i != id)
                        .collect();
                    ids.push(id);
                    order = Some(ids);
                }
            }
        }
        properties.message_order = order.map(Cow::Owned);
        properties.validate(context)?;
        Ok(properties)
    }

    /// The identifiers of the message properties present, in identifier order, one per
    /// value.
    fn message_property_ids(&self) -> impl Iterator<Item = u8> + '_ {
        let single = [
            (0x01, self.payload_format_indicator.is_some()),
            (0x03, self.content_type.is_some()),
            (0x08, self.response_topic.is_some()),
            (0x09, self.correlation_data.is_some()),
        ];
        single
            .into_iter()
            .filter_map(|(id, present)| present.then_some(id))
            .chain(std::iter::repeat_n(0x26, self.user_properties.len()))
    }

    /// Writes the message properties in [`Properties::message_order`], each exactly
    /// once whatever that order holds: values it does not name follow in identifier
    /// order, names without a value are skipped.
    fn write_message_properties(&self, order: &[u8], out: &mut Vec<u8>) {
        let mut users = self.user_properties.iter();
        // One bit per property that may appear once, set once it is written.
        let bit = |id: u8| match id {
            0x01 => 1u8,
            0x03 => 2,
            0x08 => 4,
            0x09 => 8,
            _ => 0,
        };
        let mut written = 0u8;
        for &id in order {
            if id == 0x26 {
                if let Some(&pair) = users.next() {
                    out.push(0x26);
                    StringPair::write(pair, out);
                }
            } else if bit(id) & !written != 0 {
                written |= bit(id);
                self.write_id(id, out);
            }
        }
        for id in [0x01, 0x03, 0x08, 0x09] {
            if bit(id) & written == 0 {
                self.write_id(id, out);
            }
        }
        for &pair in users {
            out.push(0x26);
            StringPair::write(pair, out);
        }
    }

    /// Range checks of the values, once every property is read.
    fn validate(&self, context: PropertyContext) -> Result<(), DecodeError> {
        let bad = |id| Err(DecodeError::PropertyValue(id));
        let is_bool = |v: Option<u8>| v.is_none_or(|v| v <= 1);
        for (id, value) in [
            (0x01, self.payload_format_indicator),
            (0x17, self.request_problem_information),
            (0x19, self.request_response_information),
            (0x24, self.maximum_qos),
            (0x25, self.retain_available),
            (0x28, self.wildcard_subscription_available),
            (0x29, self.subscription_identifier_available),
            (0x2a, self.shared_subscription_available),
        ] {
            if !is_bool(value) {
                return bad(id);
            }
        }
        if self.receive_maximum == Some(0) {
            return bad(0x21);
        }
        if self.maximum_packet_size == Some(0) {
            return bad(0x27);
        }
        if self.topic_alias == Some(0) {
            return bad(0x23);
        }
        if self.subscription_identifiers.contains(&0) {
            return bad(0x0b);
        }
        // [MQTT-3.8.2.1.2]: one Subscription Identifier at most in SUBSCRIBE.
        if context == PropertyContext::Packet(PacketType::Subscribe)
            && self.subscription_identifiers.len() > 1
        {
            return Err(DecodeError::DuplicateProperty(0x0b));
        }
        // [MQTT-3.3.2-14]
        if self
            .response_topic
            .is_some_and(|t| !topic::is_valid_name(t))
        {
            return bad(0x08);
        }
        // [MQTT-3.1.2.11.10]: Authentication Data without Authentication Method.
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(DecodeError::ProtocolError(
                "Authentication Data without Authentication Method",
            ));
        }
        Ok(())
    }

    /// Does the block hold no property at all?
    pub fn is_empty(&self) -> bool {
        self.body_len() == 0
    }

    /// Bytes [`Properties::encode`] appends: the Property Length and the properties.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        frame::remaining_length_len(body) + body
    }

    /// Appends the Property Length and the properties, in identifier order. The caller
    /// has put only properties the packet allows (checked in debug builds by the codec's
    /// tests).
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::write_remaining_length(out, self.body_len());
        self.write_body(out);
    }

    /// [`Properties::encode`] with the properties of `order` first, in that order, then
    /// the others in identifier order. The specification leaves the order to the sender
    /// (section 2.2.2.2 gives none); CONNACK and PUBLISH use this to write Mosquitto's
    /// order, which clients and test harnesses compare byte for byte. The length is
    /// [`Properties::encoded_len`], whatever the order.
    ///
    /// With a [`Properties::message_order`], the message properties are written in it,
    /// together, where the first of them would be.
    pub(crate) fn encode_in_order(&self, order: &[u8], out: &mut Vec<u8>) {
        frame::write_remaining_length(out, self.body_len());
        let message_order = self.message_order.as_deref();
        let mut message_written = false;
        let mut write = |id: u8, out: &mut Vec<u8>| match message_order {
            Some(ids) if MESSAGE_PROPERTY_IDS.contains(&id) => {
                if !message_written {
                    message_written = true;
                    self.write_message_properties(ids, out);
                }
            }
            _ => self.write_id(id, out),
        };
        for &id in order {
            write(id, out);
        }
        for &id in PROPERTY_IDS {
            if !order.contains(&id) {
                write(id, out);
            }
        }
    }
}

/// Mosquitto 2.0's order of the CONNACK properties it sends. `connect__on_authorised`
/// (src/handle_connect.c) appends Server Keep Alive, Topic Alias Maximum, Assigned Client
/// Identifier, Authentication Method and Data; `send__connack` (src/send_connack.c) then
/// appends Retain Available, Maximum Packet Size, Receive Maximum and Maximum QoS. Its
/// property lists are written in insertion order. Properties Mosquitto never puts in a
/// CONNACK follow in identifier order.
pub(crate) const CONNACK_ORDER: &[u8] = &[0x13, 0x22, 0x12, 0x15, 0x16, 0x25, 0x27, 0x21, 0x24];

/// The message properties: those of a PUBLISH or will that travel with the message to
/// its subscribers, as they came (src/handle_publish.c and `property__process_will`,
/// src/property_broker.c, keep these of the publisher's list, in its order).
pub(crate) const MESSAGE_PROPERTY_IDS: &[u8] = &[0x01, 0x03, 0x08, 0x09, 0x26];

/// Mosquitto 2.0's order of the properties of a PUBLISH it sends (`send__real_publish`,
/// lib/send_publish.c): first the subscriber's own (the Subscription Identifier, added
/// in src/subs.c or src/retain.c), then the message's stored ones (Payload Format
/// Indicator, Content Type, Response Topic, Correlation Data, User Property: what
/// src/handle_publish.c keeps of the publisher's, in the publisher's order; here in
/// identifier order, or in [`Properties::message_order`] when the publisher used
/// another), then the Message Expiry Interval, what is left of it. Mosquitto 2.0 sends
/// no Topic Alias to a client; 2.1 writes it after the Message Expiry Interval, and so
/// does culex.
pub(crate) const PUBLISH_ORDER: &[u8] = &[0x0b, 0x01, 0x03, 0x08, 0x09, 0x26, 0x02, 0x23];

/// What [`Props`] reads through when it holds nothing.
static NO_PROPERTIES: Properties<'static> = Properties::NONE;

/// The properties of a decoded or built packet: nothing at all when there are none (every
/// 3.1/3.1.1 packet and most MQTT 5 acknowledgements), a boxed [`Properties`] otherwise.
/// It reads as a [`Properties`] (through `Deref`) and allocates on the first write.
///
/// Why not the struct itself: it is 256 bytes, and every packet type held one, so each
/// move of a packet copied them. A profile of the fan-through benchmark on the static musl
/// build, whose `memcpy` is slow for copies of this size, put 14% of the broker's
/// instructions in those copies (callgrind). A pointer's width moves in a register; the price is one allocation
/// for a packet that does carry properties.
#[derive(Clone, Default)]
pub struct Props<'a>(Option<Box<Properties<'a>>>);

impl<'a> Props<'a> {
    /// Reads a Property Length and the properties it covers, for a block of `context`.
    /// A block of length 0 allocates nothing.
    pub(crate) fn decode(
        r: &mut Reader<'a>,
        context: PropertyContext,
    ) -> Result<Props<'a>, DecodeError> {
        if r.peek_u8() == Some(0) {
            r.u8()?;
            return Ok(Props(None));
        }
        // Any other block holds at least one property (a partial one is refused), so it
        // is boxed without asking `is_empty`; a zero length written in more bytes than
        // needed would cost an allocation, nothing else.
        Ok(Props(Some(Box::new(Properties::decode(r, context)?))))
    }
}

impl<'a> From<Properties<'a>> for Props<'a> {
    fn from(p: Properties<'a>) -> Props<'a> {
        if p.is_empty() {
            Props(None)
        } else {
            Props(Some(Box::new(p)))
        }
    }
}

impl<'a> std::ops::Deref for Props<'a> {
    type Target = Properties<'a>;
    fn deref(&self) -> &Properties<'a> {
        match &self.0 {
            Some(p) => p,
            None => &NO_PROPERTIES,
        }
    }
}

impl std::ops::DerefMut for Props<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Props<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Props<'_> {}

impl std::fmt::Debug for Props<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 2.2.2.2: the identifiers and names of MQTT 5.0's property table.
    #[test]
    fn property_table_has_the_spec_identifiers() {
        assert_eq!(
            PROPERTY_IDS,
            [
                0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
                0x1a, 0x1c, 0x1f, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a
            ]
        );
        assert_eq!(property_name(0x26), Some("User Property"));
        assert_eq!(property_name(0x04), None);
        assert!(is_property_allowed(0x18, PropertyContext::Will));
        assert!(!is_property_allowed(
            0x18,
            PropertyContext::Packet(PacketType::Connect)
        ));
    }

    use super::super::testing::Rng;

    const CONNECT_CTX: PropertyContext = PropertyContext::Packet(PacketType::Connect);
    const CONNACK_CTX: PropertyContext = PropertyContext::Packet(PacketType::Connack);
    const PUBLISH_CTX: PropertyContext = PropertyContext::Packet(PacketType::Publish);
    const SUBSCRIBE_CTX: PropertyContext = PropertyContext::Packet(PacketType::Subscribe);

    /// Decodes a block made of a Property Length and `body`.
    fn decode(body: &[u8], context: PropertyContext) -> Result<Properties<'_>, DecodeError> {
        let mut block = Vec::new();
        frame::write_remaining_length(&mut block, body.len());
        block.extend_from_slice(body);
        let block = Box::leak(block.into_boxed_slice());
        let mut r = Reader::new(block);
        let properties = Properties::decode(&mut r, context)?;
        r.expect_empty()?;
        Ok(properties)
    }

    #[test]
    fn an_empty_block_is_held_as_nothing_and_reads_as_no_property() {
        let mut r = Reader::new(&[0x00, 0xaa]);
        let props = Props::decode(&mut r, PUBLISH_CTX).unwrap();
        assert!(props.0.is_none(), "no allocation for an empty block");
        assert_eq!(r.u8(), Ok(0xaa), "exactly the Property Length was read");
        assert!(props.is_empty());
        assert_eq!(props.message_expiry_interval, None);
        assert_eq!(props, Props::from(Properties::default()));
        assert!(Props::from(Properties::default()).0.is_none());
    }

    #[test]
    fn a_block_with_a_property_is_boxed_and_compares_by_content() {
        // Message Expiry Interval 60, then a byte after the block.
        let mut r = Reader::new(&[0x05, 0x02, 0, 0, 0, 60, 0xaa]);
        let props = Props::decode(&mut r, PUBLISH_CTX).unwrap();
        assert!(props.0.is_some());
        assert_eq!(props.message_expiry_interval, Some(60));
        assert_eq!(r.u8(), Ok(0xaa));
        let mut built = Props::default();
        *built = Properties {
            message_expiry_interval: Some(60),
            ..Properties::default()
        };
        assert_eq!(built, props, "a write through DerefMut lands in the box");
        assert_ne!(Props::default(), props);
        // A malformed block is still refused: a duplicate Message Expiry Interval.
        let mut r = Reader::new(&[0x0a, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]);
        assert_eq!(
            Props::decode(&mut r, PUBLISH_CTX),
            Err(DecodeError::DuplicateProperty(0x02))
        );
    }

    /// Section 2.2.2: "Property Length ... followed by the Properties"; one byte of
    /// identifier, then the value in its data type.
    #[test]
    fn decode_and_encode_a_property_block() {
        static BLOCK: [u8; 19] = [
            0x11, // Property Length 17
            0x11, 0x00, 0x00, 0x00, 0x3c, // Session Expiry Interval 60
            0x21, 0x00, 0x0a, // Receive Maximum 10
            0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // User Property ("k", "v")
            0x17, 0x01, // Request Problem Information 1
            0x00, // (the byte after the block)
        ];
        let mut r = Reader::new(&BLOCK);
        let properties = Properties::decode(&mut r, CONNECT_CTX).unwrap();
        assert_eq!(r.rest(), [0x00]);
        let expected = Properties {
            session_expiry_interval: Some(60),
            receive_maximum: Some(10),
            user_properties: vec![("k", "v")],
            request_problem_information: Some(1),
            ..Properties::default()
        };
        assert_eq!(properties, expected);
        // Encoded in table order, so the bytes differ only in order.
        let mut out = vec![0xa5];
        expected.encode(&mut out);
        assert_eq!(out.len(), 1 + expected.encoded_len());
        assert_eq!(
            out[1..],
            [
                0x11, 0x11, 0x00, 0x00, 0x00, 0x3c, 0x17, 0x01, 0x21, 0x00, 0x0a, 0x26, 0x00, 0x01,
                b'k', 0x00, 0x01, b'v'
            ]
        );
        assert_eq!(Properties::default().encoded_len(), 1);
    }

    /// The message properties of a PUBLISH or will keep the publisher's order when it is
    /// not identifier order, and only then; PUBLISH_ORDER then writes them in it, between
    /// the Subscription Identifier and the Message Expiry Interval (Mosquitto's order).
    /// User Properties keep their order [MQTT-3.3.2-17] [MQTT-3.3.2-18].
    #[test]
    fn message_properties_keep_the_publishers_order() {
        const TA: [u8; 3] = [0x23, 0x00, 0x01]; // Topic Alias 1
        const MEI: [u8; 5] = [0x02, 0, 0, 0, 60]; // Message Expiry Interval 60
        const WDI: [u8; 5] = [0x18, 0, 0, 0, 0]; // Will Delay Interval 0
        const RT: [u8; 4] = [0x08, 0x00, 0x01, b'r']; // Response Topic "r"
        const PFI: [u8; 2] = [0x01, 0x01]; // Payload Format Indicator 1
        const CT: [u8; 4] = [0x03, 0x00, 0x01, b'c']; // Content Type "c"
        const U1: [u8; 7] = [0x26, 0, 1, b'k', 0, 1, b'1']; // User Property ("k", "1")
        const U2: [u8; 7] = [0x26, 0, 1, b'k', 0, 1, b'2']; // User Property ("k", "2")
        let order = |body: &[&[u8]], context| {
            let p = decode(Box::leak(body.concat().into_boxed_slice()), context).unwrap();
            p.message_order.map(|o| o.into_owned())
        };
        // Identifier order among the message properties: nothing kept, whatever the
        // place of the others.
        assert_eq!(order(&[&TA, &PFI, &MEI, &RT, &U1, &U2], PUBLISH_CTX), None);
        assert_eq!(order(&[&WDI, &CT, &U1], PropertyContext::Will), None);
        // Another order is kept, one identifier per value, the others left out.
        assert_eq!(
            order(&[&U1, &TA, &RT, &MEI, &PFI, &U2], PUBLISH_CTX),
            Some(vec![0x26, 0x08, 0x01, 0x26])
        );
        assert_eq!(
            order(&[&PFI, &RT, &U1, &CT, &U2], PropertyContext::Will),
            Some(vec![0x01, 0x08, 0x26, 0x03, 0x26])
        );
        // Only for a PUBLISH or a will.
        let connect = decode(&[0x26, 0, 0, 0, 0, 0x11, 0, 0, 0, 1], CONNECT_CTX).unwrap();
        assert_eq!(connect.message_order, None);

        // Written back in that order, Subscription Identifier first and Message Expiry
        // Interval after them, Topic Alias last.
        let body = [&U1[..], &TA, &RT, &MEI, &PFI, &U2].concat();
        let mut p = decode(Box::leak(body.into_boxed_slice()), PUBLISH_CTX).unwrap();
        p.subscription_identifiers = vec![5];
        let mut out = Vec::new();
        p.encode_in_order(PUBLISH_ORDER, &mut out);
        assert_eq!(out.len(), p.encoded_len());
        let expected = [&[0x0b, 0x05][..], &U1, &RT, &PFI, &U2, &MEI, &TA].concat();
        assert_eq!(out[1..], expected);

        // An order that does not match the values still writes each exactly once.
        for order in [
            &[][..],
            &[0x26, 0x26, 0x26, 0x09, 0x08, 0x08],
            &[0x03, 0x02],
        ] {
            p.message_order = Some(Cow::Borrowed(order));
            let mut out = Vec::new();
            p.encode_in_order(PUBLISH_ORDER, &mut out);
            assert_eq!(out.len(), p.encoded_len(), "{order:02x?}");
            let back = Properties::decode(&mut Reader::new(&out), PUBLISH_CTX).unwrap();
            assert_eq!(back.user_properties, p.user_properties, "{order:02x?}");
            assert_eq!(back.response_topic, p.response_topic);
            assert_eq!(back.payload_format_indicator, p.payload_format_indicator);
            assert_eq!(back.message_expiry_interval, p.message_expiry_interval);
        }
    }

    /// Every property alone, in every context that allows it, round-trips; generated
    /// values, seed in the message.
    #[test]
    fn every_property_round_trips_in_every_context_that_allows_it() {
        let contexts = [
            PropertyContext::Will,
            CONNECT_CTX,
            CONNACK_CTX,
            PUBLISH_CTX,
            PropertyContext::Packet(PacketType::Puback),
            PropertyContext::Packet(PacketType::Pubrec),
            PropertyContext::Packet(PacketType::Pubrel),
            PropertyContext::Packet(PacketType::Pubcomp),
            SUBSCRIBE_CTX,
            PropertyContext::Packet(PacketType::Suback),
            PropertyContext::Packet(PacketType::Unsubscribe),
            PropertyContext::Packet(PacketType::Unsuback),
            PropertyContext::Packet(PacketType::Disconnect),
            PropertyContext::Packet(PacketType::Auth),
        ];
        for seed in 1..=200u64 {
            let mut rng = Rng(seed);
            for context in contexts {
                let all = seed == 1 || rng.bool();
                let properties = rng.properties(context, all);
                let mut out = Vec::new();
                properties.encode(&mut out);
                assert_eq!(out.len(), properties.encoded_len(), "seed {seed}");
                let mut r = Reader::new(&out);
                assert_eq!(
                    Properties::decode(&mut r, context).as_ref(),
                    Ok(&properties),
                    "seed {seed}, {context:?}"
                );
                assert!(r.is_empty());
            }
        }
    }

    /// Section 2.2.2.2: an identifier not valid for the packet type is malformed.
    #[test]
    fn property_not_allowed_in_packet_is_malformed() {
        // Will Delay Interval belongs to the will, not to CONNECT.
        assert_eq!(
            decode(&[0x18, 0, 0, 0, 1], CONNECT_CTX),
            Err(DecodeError::InvalidProperty(0x18))
        );
        // Topic Alias only in PUBLISH.
        assert_eq!(
            decode(&[0x23, 0x00, 0x01], CONNACK_CTX),
            Err(DecodeError::InvalidProperty(0x23))
        );
        // Every identifier outside the table, including a multi-byte one.
        for id in [0x00, 0x04, 0x0a, 0x14, 0x2b, 0x7f] {
            assert_eq!(
                decode(&[id, 0x00], PUBLISH_CTX),
                Err(DecodeError::InvalidProperty(id))
            );
        }
        assert!(matches!(
            decode(&[0x80, 0x01], PUBLISH_CTX),
            Err(DecodeError::InvalidProperty(_))
        ));
    }

    /// "It is a Protocol Error to include the <property> more than once" (each property
    /// of section 3), except User Property and, in PUBLISH, Subscription Identifier.
    #[test]
    fn duplicate_property_is_a_protocol_error() {
        assert_eq!(
            decode(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], CONNECT_CTX),
            Err(DecodeError::DuplicateProperty(0x11))
        );
        assert_eq!(
            decode(&[0x01, 0, 0x01, 1], PUBLISH_CTX),
            Err(DecodeError::DuplicateProperty(0x01))
        );
        // [MQTT-3.8.2.1.2]: one Subscription Identifier in SUBSCRIBE ...
        assert_eq!(
            decode(&[0x0b, 0x01, 0x0b, 0x02], SUBSCRIBE_CTX),
            Err(DecodeError::DuplicateProperty(0x0b))
        );
        // ... several in PUBLISH (section 3.3.2.3.8), and User Property repeats anywhere.
        let p = decode(&[0x0b, 0x01, 0x0b, 0x02], PUBLISH_CTX).unwrap();
        assert_eq!(p.subscription_identifiers, [1, 2]);
        let p = decode(
            &[0x26, 0, 1, b'a', 0, 0, 0x26, 0, 1, b'a', 0, 0],
            PUBLISH_CTX,
        )
        .unwrap();
        assert_eq!(p.user_properties, [("a", ""), ("a", "")]);
    }

    /// Value ranges of sections 3.1.2.11, 3.2.2.3 and 3.3.2.3.
    #[test]
    fn property_value_out_of_range_is_a_protocol_error() {
        let cases: [(&[u8], PropertyContext, u8); 13] = [
            (&[0x01, 0x02], PUBLISH_CTX, 0x01),
            (&[0x17, 0x02], CONNECT_CTX, 0x17),
            (&[0x19, 0x02], CONNECT_CTX, 0x19),
            (&[0x24, 0x02], CONNACK_CTX, 0x24),
            (&[0x25, 0x02], CONNACK_CTX, 0x25),
            (&[0x28, 0x02], CONNACK_CTX, 0x28),
            (&[0x29, 0x02], CONNACK_CTX, 0x29),
            (&[0x2a, 0x02], CONNACK_CTX, 0x2a),
            (&[0x21, 0x00, 0x00], CONNECT_CTX, 0x21),
            (&[0x27, 0, 0, 0, 0], CONNACK_CTX, 0x27),
            // [MQTT-3.3.2-8]
            (&[0x23, 0x00, 0x00], PUBLISH_CTX, 0x23),
            // Section 3.8.2.1.2: "a value of 0 is a Protocol Error".
            (&[0x0b, 0x00], SUBSCRIBE_CTX, 0x0b),
            // [MQTT-3.3.2-14]: the Response Topic is a topic name.
            (&[0x08, 0x00, 0x03, b'a', b'/', b'#'], PUBLISH_CTX, 0x08),
        ];
        for (body, context, id) in cases {
            assert_eq!(
                decode(body, context),
                Err(DecodeError::PropertyValue(id)),
                "{body:02x?}"
            );
        }
        // The edges that are allowed.
        assert!(decode(&[0x24, 0x01, 0x21, 0xff, 0xff], CONNACK_CTX).is_ok());
    }

    /// Section 3.1.2.11.10: Authentication Data needs an Authentication Method.
    #[test]
    fn authentication_data_without_method_is_a_protocol_error() {
        assert_eq!(
            decode(&[0x16, 0x00, 0x01, 0xff], CONNECT_CTX),
            Err(DecodeError::ProtocolError(
                "Authentication Data without Authentication Method"
            ))
        );
    }

    /// The Property Length covers exactly the properties: a value may not run past it.
    #[test]
    fn property_running_past_the_block_is_malformed() {
        let bytes = [0x02, 0x11, 0x00, 0x00, 0x00, 0x01];
        let mut r = Reader::new(&bytes);
        assert_eq!(
            Properties::decode(&mut r, CONNECT_CTX),
            Err(DecodeError::UnexpectedEnd)
        );
        let mut r = Reader::new(&[0x05, 0x11]);
        assert_eq!(
            Properties::decode(&mut r, CONNECT_CTX),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    #[test]
    fn property_errors_display_the_property_name() {
        assert_eq!(
            DecodeError::DuplicateProperty(0x21).to_string(),
            "property Receive Maximum (0x21) appears more than once"
        );
        assert_eq!(
            DecodeError::InvalidProperty(0x04).to_string(),
            "unknown property identifier 0x04"
        );
    }
}
