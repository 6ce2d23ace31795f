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
    /// malformed; a non-minimal encoding is accepted, as for the Remaining Length (see
    /// `frame.rs`).
    pub(crate) fn var_int(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
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

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String: well-formed UTF-8 [MQTT-1.5.3-1] without U+0000
    /// [MQTT-1.5.3-2]. U+FFFF and other non-characters are allowed [MQTT-1.5.3-3].
    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.binary()?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        if bytes.contains(&0) {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(s)
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
