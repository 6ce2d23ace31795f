//! A cursor over a borrowed slice: every bounds check of the codec lives here.
//!
//! Decoders never index the input; they ask a [`Reader`] for the next field and get
//! [`DecodeError::UnexpectedEnd`] when the packet is shorter than what it announces. The
//! string helpers apply the UTF-8 rules every MQTT string obeys. [MQTT-1.5.3]

use super::{DecodeError, PacketId};

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Everything left; the reader is empty afterwards.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// The next byte, left in place.
    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, tail) = self.buf.split_first().ok_or(DecodeError::UnexpectedEnd)?;
        self.buf = tail;
        Ok(b)
    }

    /// A big-endian Two Byte Integer. [MQTT-1.5.2]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        match *self.take(2)? {
            [hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            // take(2) returned two bytes.
            _ => Err(DecodeError::UnexpectedEnd),
        }
    }

    /// A big-endian Four Byte Integer. [MQTT-1.5.3]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        match *self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            // take(4) returned four bytes.
            _ => Err(DecodeError::UnexpectedEnd),
        }
    }

    /// A Variable Byte Integer of one to four bytes [MQTT-1.5.5]. A fifth byte is
    /// malformed, and so is an encoding in more bytes than the value needs (a last byte
    /// of 0 after a continuation): "The encoded value MUST use the minimum number of bytes
    /// necessary to represent the value" [MQTT-1.5.5-1]. Mosquitto refuses it too
    /// (`packet__read_varint`: "Catch overlong encodings"). The Remaining Length is read
    /// by `frame.rs`, not here.
    pub(crate) fn var_int(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DecodeError::MalformedVarInt);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarInt)
    }

    /// A reader over the next `n` bytes (a property block), which this one skips.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        self.take(n).map(Reader::new)
    }

    /// A packet identifier, which is never 0. [MQTT-2.3.1-1]
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::PacketIdZero)
    }

    /// The packet identifier of a PUBLISH, PUBACK, PUBREC, PUBREL or PUBCOMP. Identifier
    /// 0 is refused as in SUBSCRIBE and UNSUBSCRIBE, but as a Protocol Error rather than
    /// malformed: the specification names neither ([MQTT-2.2.1-3] only says a sender
    /// MUST NOT use 0), and Mosquitto answers these five packet types with 0x82
    /// (lib/handle_pubackcomp.c, handle_pubrec.c, handle_pubrel.c, src/handle_publish.c)
    /// and SUBSCRIBE/UNSUBSCRIBE with 0x81.
    pub(crate) fn publish_packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ProtocolError("packet identifier 0"))
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String: well-formed UTF-8 [MQTT-1.5.3-1] without U+0000
    /// [MQTT-1.5.3-2], and without the code points section 1.5.4 (MQTT 5; 1.5.3 in
    /// 3.1.1) says a string "SHOULD NOT include" and a receiver "MAY treat as a Malformed
    /// Packet": the control characters U+0001 to U+001F and U+007F to U+009F, and the
    /// non-characters (U+FDD0 to U+FDEF, and U+nFFFE and U+nFFFF of every plane).
    /// Mosquitto takes that option for every string it reads (`mosquitto_validate_utf8`,
    /// lib/utf8_mosq.c), and so does culex. A BOM (U+FEFF) is an ordinary character
    /// [MQTT-1.5.4-3].
    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.binary()?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        let found = scan(bytes);
        if found & (CONTROL | WIDE) != 0 && is_refused(s, found) {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(s)
    }

    /// A topic name: a [`Reader::string`], and whether it has a wildcard (`+` or `#`,
    /// which a topic name must not [MQTT-3.3.2-2]), found in the same pass: the topic
    /// of every PUBLISH is read here.
    pub(crate) fn topic_name(&mut self) -> Result<(&'a str, bool), DecodeError> {
        let bytes = self.binary()?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        let found = scan(bytes);
        if found & (CONTROL | WIDE) != 0 && is_refused(s, found) {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok((s, found & WILDCARD != 0))
    }

    /// Bytes after the last field a packet defines make it malformed.
    pub(crate) fn expect_empty(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// What [`scan`] found, as 0x80 bits in a word: a byte below 0x20 or 0x7f.
const CONTROL: u64 = 1 << 7;
/// A byte of 0x80 or more (a character wider than one byte).
const WIDE: u64 = 1 << 15;
/// `+` or `#`.
const WILDCARD: u64 = 1 << 23;

/// Every byte of a word.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

const HIGH_BITS: u64 = splat(0x80);
const LOW_BITS: u64 = splat(0x7f);

/// 0x80 in each byte of `x` that is 0, and nothing else. Exact: `(b & 0x7f) + 0x7f` is at
/// most 0xfe, so no carry crosses into the next byte (the well-known `haszero` trick
/// is not exact in the bytes above a zero byte, which matters for no caller here but
/// would for a count).
const fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW_BITS) + LOW_BITS) | x | LOW_BITS)
}

/// Looks at a string's bytes a word at a time: which of [`CONTROL`], [`WIDE`] and
/// [`WILDCARD`] occur. About a fifth of the instructions of a byte loop for a typical
/// topic; the last word overlaps the one before it rather than taking a byte loop.
fn scan(bytes: &[u8]) -> u64 {
    let (mut control, mut wide, mut wildcard) = (0, 0, 0);
    let mut look = |x: u64| {
        control |= zero_bytes(x & splat(0xe0)) | zero_bytes(x ^ splat(0x7f));
        wide |= x & HIGH_BITS;
        wildcard |= zero_bytes(x ^ splat(b'+')) | zero_bytes(x ^ splat(b'#'));
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        look(word_of(word));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        match bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
            Some(last) => look(word_of(last)),
            None => {
                // Shorter than a word: padded with a byte none of the tests find.
                let mut word = [b'a'; 8];
                for (to, from) in word.iter_mut().zip(rest) {
                    *to = *from;
                }
                look(u64::from_ne_bytes(word));
            }
        }
    }
    // Each found flag is a 0x80 bit somewhere in its word: fold the word to one bit.
    let any = |x: u64| u64::from(x != 0);
    (any(control) * CONTROL) | (any(wide) * WIDE) | (any(wildcard) * WILDCARD)
}

/// Eight bytes as a word; `bytes` has exactly eight (chunks_exact, or the last eight).
fn word_of(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map_or(0, u64::from_ne_bytes)
}

/// Whether a string with a control byte or a wide character (`found`, from [`scan`])
/// has a character section 1.5.4 lets a receiver refuse. An ASCII control byte always
/// is one; wider characters are looked at one by one.
fn is_refused(s: &str, found: u64) -> bool {
    found & CONTROL != 0
        || s.chars().any(|c| {
            let c = u32::from(c);
            (0x7f..=0x9f).contains(&c) || (0xfdd0..=0xfdef).contains(&c) || c & 0xfffe == 0xfffe
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_order() {
        static BYTES: [u8; 12] = [
            0x07, 0x01, 0x02, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, 0xff, 0xee,
        ];
        let mut r = Reader::new(&BYTES);
        assert_eq!(r.u8(), Ok(0x07));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.string(), Ok("a/b"));
        assert_eq!(r.binary(), Ok(&[0xff][..]));
        assert_eq!(r.expect_empty(), Err(DecodeError::TrailingBytes));
        assert_eq!(r.rest(), &[0xee]);
        assert!(r.is_empty());
        assert_eq!(r.expect_empty(), Ok(()));
    }

    /// [MQTT-1.5.5]: 1 to 4 bytes, seven bits each, least significant first.
    #[test]
    fn reads_variable_byte_integers() {
        let cases: [(&[u8], u32); 5] = [
            (&[0x00], 0),
            (&[0x7f], 127),
            (&[0x80, 0x01], 128),
            (&[0xff, 0xff, 0x7f], 2_097_151),
            (&[0xff, 0xff, 0xff, 0x7f], 268_435_455),
        ];
        for (bytes, value) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.var_int(), Ok(value), "{bytes:02x?}");
            assert!(r.is_empty());
        }
        assert_eq!(
            Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x01]).var_int(),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            Reader::new(&[0x80]).var_int(),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    #[test]
    fn sub_reader_covers_exactly_n_bytes() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03]);
        let mut sub = r.sub(2).unwrap();
        assert_eq!(sub.u16(), Ok(0x0102));
        assert!(sub.is_empty());
        assert_eq!(r.u8(), Ok(0x03));
        assert_eq!(
            Reader::new(&[0x01]).sub(2).err(),
            Some(DecodeError::UnexpectedEnd)
        );
        assert_eq!(Reader::new(&[0, 0, 0, 1]).u32(), Ok(1));
    }

    #[test]
    fn short_input_is_unexpected_end() {
        assert_eq!(Reader::new(&[]).u8(), Err(DecodeError::UnexpectedEnd));
        assert_eq!(Reader::new(&[0x01]).u16(), Err(DecodeError::UnexpectedEnd));
        assert_eq!(
            Reader::new(&[0x00, 0x02, b'a']).string(),
            Err(DecodeError::UnexpectedEnd)
        );
        assert_eq!(
            Reader::new(&[0x00]).take(2),
            Err(DecodeError::UnexpectedEnd)
        );
    }

    /// [MQTT-1.5.3-1]
    #[test]
    fn string_with_invalid_utf8_is_malformed() {
        // An encoded surrogate (U+D800) is not well-formed UTF-8.
        let mut r = Reader::new(&[0x00, 0x03, 0xed, 0xa0, 0x80]);
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
    }

    /// Section 1.5.4: a string with a control character or a non-character "MAY" be
    /// treated as malformed; culex does, as Mosquitto (the suite's seq/ units "topic
    /// with U+0001", "Client ID with U+009F", ...). Their neighbours are accepted.
    #[test]
    fn string_with_control_character_or_non_character_is_malformed() {
        for refused in [
            "\u{1}",
            "a\u{1f}",
            "\u{7f}",
            "\u{80}",
            "b\u{9f}c",
            "\u{fdd0}",
            "\u{fdef}",
            "\u{fffe}",
            "\u{ffff}",
            "\u{1fffe}",
            "\u{10ffff}",
        ] {
            let mut bytes = vec![0, refused.len() as u8];
            bytes.extend_from_slice(refused.as_bytes());
            assert_eq!(
                Reader::new(&bytes).string(),
                Err(DecodeError::InvalidUtf8),
                "{refused:?}"
            );
        }
        for accepted in [
            " ~",
            "\u{a0}",
            "\u{fdcf}",
            "\u{fdf0}",
            "\u{fefe}",
            "\u{feff}",
            "\u{fffd}",
            "\u{1fffd}",
            "\u{10000}",
        ] {
            let mut bytes = vec![0, accepted.len() as u8];
            bytes.extend_from_slice(accepted.as_bytes());
            assert_eq!(Reader::new(&bytes).string(), Ok(accepted), "{accepted:?}");
        }
    }

    /// [MQTT-1.5.5-1]: the minimum number of bytes. Mosquitto's seq/ unit "PUBLISH
    /// ALLOWED PROPERTIES subscription-identifier=0x8000" sends 0x80 0x00.
    #[test]
    fn variable_byte_integer_in_more_bytes_than_needed_is_malformed() {
        for bytes in [
            &[0x80, 0x00][..],
            &[0x81, 0x00],
            &[0xff, 0x80, 0x00],
            &[0x80, 0x80, 0x80, 0x00],
        ] {
            assert_eq!(
                Reader::new(bytes).var_int(),
                Err(DecodeError::MalformedVarInt),
                "{bytes:02x?}"
            );
        }
        assert_eq!(Reader::new(&[0x80, 0x80, 0x01]).var_int(), Ok(16_384));
    }

    /// The word-at-a-time scan finds exactly what a byte loop finds, for every byte
    /// value at every place in strings of 0 to 24 bytes (whole words, overlapping last
    /// words and padded short ones), and for random strings.
    #[test]
    fn scan_agrees_with_a_byte_loop() {
        fn by_bytes(bytes: &[u8]) -> u64 {
            let mut found = 0;
            for &b in bytes {
                if b < 0x20 || b == 0x7f {
                    found |= CONTROL;
                }
                if b >= 0x80 {
                    found |= WIDE;
                }
                if b == b'+' || b == b'#' {
                    found |= WILDCARD;
                }
            }
            found
        }
        for len in 0..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    assert_eq!(scan(&bytes), by_bytes(&bytes), "{bytes:02x?}");
                }
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            // Bytes mostly printable, some of each kind.
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let r = seed.rotate_left(i as u32 * 5) as u8;
                    if r.is_multiple_of(7) {
                        r
                    } else {
                        0x20 + r % 0x5f
                    }
                })
                .collect();
            assert_eq!(scan(&bytes), by_bytes(&bytes), "{bytes:02x?}");
        }
    }

    /// [MQTT-3.3.2-2]: the topic name reader reports wildcards; its string rules are
    /// those of every string.
    #[test]
    fn topic_name_reports_wildcards() {
        for (topic, wildcard) in [
            ("a/b", false),
            ("a/+/c", true),
            ("sensors/building-7/floor-3/#", true),
            ("sensors/building-7/floor-3/room", false),
            ("", false),
        ] {
            let mut bytes = vec![0, topic.len() as u8];
            bytes.extend_from_slice(topic.as_bytes());
            assert_eq!(
                Reader::new(&bytes).topic_name(),
                Ok((topic, wildcard)),
                "{topic}"
            );
        }
        assert_eq!(
            Reader::new(&[0, 3, b'a', 0x01, b'b']).topic_name(),
            Err(DecodeError::InvalidUtf8)
        );
    }

    /// [MQTT-1.5.3-2]
    #[test]
    fn string_with_nul_is_malformed() {
        let mut r = Reader::new(&[0x00, 0x03, b'a', 0x00, b'b']);
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
    }

    /// [MQTT-2.3.1-1]
    #[test]
    fn packet_id_zero_is_malformed() {
        assert_eq!(
            Reader::new(&[0x00, 0x00]).packet_id(),
            Err(DecodeError::PacketIdZero)
        );
    }
}
