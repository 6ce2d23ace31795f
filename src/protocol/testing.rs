//! Helpers shared by the codec's unit tests.

use super::{
    frame, is_property_allowed, PacketId, PacketType, Properties, PropertyContext, QoS, ReasonCode,
    MAX_SUBSCRIPTION_IDENTIFIER,
};
use super::{Packet, ProtocolVersion};

/// Encodes `packet` after three 0xa5 guard bytes, checks the guard is intact and that
/// exactly `encoded_len` bytes were appended, and returns the appended bytes.
pub(crate) fn encode(packet: &Packet<'_>, version: ProtocolVersion) -> Vec<u8> {
    let mut out = vec![0xa5; 3];
    packet.encode(version, &mut out);
    assert_eq!(
        &out[..3],
        &[0xa5; 3],
        "encode overwrote what was in the buffer"
    );
    let bytes = out.split_off(3);
    assert_eq!(
        bytes.len(),
        packet.encoded_len(version),
        "encoded_len of {packet:?}"
    );
    bytes
}

/// decode(encode(p)) == p, and the encoding is one whole frame.
pub(crate) fn assert_round_trip(packet: &Packet<'_>, version: ProtocolVersion) {
    let bytes = encode(packet, version);
    assert_eq!(
        frame::check(&bytes, usize::MAX),
        Ok(Some(bytes.len())),
        "frame of {packet:?}"
    );
    assert_eq!(
        Packet::decode(&bytes, version).as_ref(),
        Ok(packet),
        "round trip of {bytes:02x?}"
    );
}

/// xorshift64*: small, seeded, good enough to spread values over the fields.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub(crate) fn qos(&mut self) -> QoS {
        [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][self.below(3)]
    }
    pub(crate) fn id(&mut self) -> PacketId {
        PacketId::new(1 + self.below(65_535) as u16).expect("1 to 65,535")
    }
    pub(crate) fn bytes(&mut self, max: usize) -> &'static [u8] {
        let len = self.below(max + 1);
        let bytes: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        // Test values borrow for 'static, like decoded ones borrow the input.
        Box::leak(bytes.into_boxed_slice())
    }
    /// A string of 0..=max characters from `alphabet`, multi-byte ones included; the
    /// alphabets hold no character `Reader::string` refuses.
    pub(crate) fn string(&mut self, max: usize, alphabet: &[&str]) -> &'static str {
        let len = self.below(max + 1);
        let s: String = (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect();
        Box::leak(s.into_boxed_str())
    }
    pub(crate) fn topic_name(&mut self) -> &'static str {
        let name = self.string(12, &["a", "/", "$", "é", "€", "😀", " ", "\u{fffd}"]);
        if name.is_empty() {
            "t"
        } else {
            name
        }
    }
    pub(crate) fn topic_filter(&mut self) -> &'static str {
        let levels = 1 + self.below(4);
        let mut filter = String::new();
        for i in 0..levels {
            if i > 0 {
                filter.push('/');
            }
            match self.below(5) {
                0 => filter.push('+'),
                1 if i + 1 == levels => filter.push('#'),
                _ => filter.push_str(self.string(4, &["x", "ß", "😀"])),
            }
        }
        if filter.is_empty() {
            filter.push('#');
        }
        Box::leak(filter.into_boxed_str())
    }

    /// Properties allowed in `context`, each present with probability 1/2, or all of
    /// them if `all`. Values are in range, so the block decodes as generated.
    pub(crate) fn properties(
        &mut self,
        context: PropertyContext,
        all: bool,
    ) -> Properties<'static> {
        let mut p = Properties::default();
        let want = |rng: &mut Rng, id: u8| is_property_allowed(id, context) && (all || rng.bool());
        if want(self, 0x01) {
            p.payload_format_indicator = Some(self.below(2) as u8);
        }
        if want(self, 0x02) {
            p.message_expiry_interval = Some(self.next() as u32);
        }
        if want(self, 0x03) {
            p.content_type = Some(self.string(8, &["t", "/", "ü"]));
        }
        if want(self, 0x08) {
            p.response_topic = Some(self.topic_name());
        }
        if want(self, 0x09) {
            p.correlation_data = Some(self.bytes(8));
        }
        if want(self, 0x0b) {
            // One in SUBSCRIBE [MQTT-3.8.2.1.2], up to three in PUBLISH.
            let n = if context == PropertyContext::Packet(PacketType::Subscribe) {
                1
            } else {
                1 + self.below(3)
            };
            p.subscription_identifiers = (0..n)
                .map(|_| 1 + self.below(MAX_SUBSCRIPTION_IDENTIFIER as usize) as u32)
                .collect();
        }
        if want(self, 0x11) {
            p.session_expiry_interval = Some(self.next() as u32);
        }
        if want(self, 0x12) {
            p.assigned_client_identifier = Some(self.string(23, &["a", "0"]));
        }
        if want(self, 0x13) {
            p.server_keep_alive = Some(self.next() as u16);
        }
        if want(self, 0x15) {
            p.authentication_method = Some(self.string(8, &["S", "C", "R", "A", "M"]));
        }
        if want(self, 0x16) {
            p.authentication_data = Some(self.bytes(16));
            // Data needs a method. (Section 3.1.2.11.10)
            p.authentication_method.get_or_insert("PLAIN");
        }
        if want(self, 0x17) {
            p.request_problem_information = Some(self.below(2) as u8);
        }
        if want(self, 0x18) {
            p.will_delay_interval = Some(self.next() as u32);
        }
        if want(self, 0x19) {
            p.request_response_information = Some(self.below(2) as u8);
        }
        if want(self, 0x1a) {
            p.response_information = Some(self.string(8, &["r", "/"]));
        }
        if want(self, 0x1c) {
            p.server_reference = Some(self.string(8, &["h", ":", "1"]));
        }
        if want(self, 0x1f) {
            p.reason_string = Some(self.string(20, &["e", " ", "ß"]));
        }
        if want(self, 0x21) {
            p.receive_maximum = Some(1 + self.below(65_535) as u16);
        }
        if want(self, 0x22) {
            p.topic_alias_maximum = Some(self.next() as u16);
        }
        if want(self, 0x23) {
            p.topic_alias = Some(1 + self.below(65_535) as u16);
        }
        if want(self, 0x24) {
            p.maximum_qos = Some(self.below(2) as u8);
        }
        if want(self, 0x25) {
            p.retain_available = Some(self.below(2) as u8);
        }
        if want(self, 0x26) {
            p.user_properties = (0..1 + self.below(3))
                .map(|_| (self.string(6, &["k", "é"]), self.string(6, &["v", ""])))
                .collect();
        }
        if want(self, 0x27) {
            p.maximum_packet_size = Some(1 + self.below(u32::MAX as usize - 1) as u32);
        }
        if want(self, 0x28) {
            p.wildcard_subscription_available = Some(self.below(2) as u8);
        }
        if want(self, 0x29) {
            p.subscription_identifier_available = Some(self.below(2) as u8);
        }
        if want(self, 0x2a) {
            p.shared_subscription_available = Some(self.below(2) as u8);
        }
        p
    }

    /// A reason code `packet` may carry.
    pub(crate) fn reason(&mut self, packet: PacketType) -> ReasonCode {
        let valid: Vec<ReasonCode> = crate::protocol::reason::ALL
            .iter()
            .copied()
            .filter(|code| code.is_valid_for(packet))
            .collect();
        valid[self.below(valid.len())]
    }
}
