//! The fixed header and Remaining Length. [MQTT-2.2]
//!
//! A frame is one control packet: a first byte (type and flags), the Remaining Length as a
//! Variable Byte Integer of one to four bytes, then that many bytes of body. [`check`]
//! finds frame boundaries without allocating; the encoders share
//! [`write_remaining_length`] and [`remaining_length_len`].
//!
//! Non-minimal Remaining Length encodings (`0x80 0x00` for 0) are accepted: 3.1.1 does not
//! forbid them for this field and Mosquitto accepts them. Only a fifth byte is malformed.

use super::DecodeError;

/// Largest Remaining Length the encoding can express. [MQTT-2.2.3]
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Is a whole packet at the start of `buf`? `Ok(None)`: need more bytes (incomplete is not
/// an error). `Ok(Some(n))`: the first `n` bytes are one packet, fixed header included.
/// `Err`: a malformed Remaining Length, or one whose packet would exceed `max_len` bytes in
/// total — rejected before the body is buffered.
pub fn check(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = parse_header(buf)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    if frame_len > max_len {
        return Err(DecodeError::PacketTooLarge);
    }
    Ok((buf.len() >= frame_len).then_some(frame_len))
}

/// The length of the frame starting at `buf` once its fixed header has arrived, whether
/// or not the rest has: `Ok(None)` while the header is incomplete. Lets a reader complete
/// a pending packet with just the bytes it lacks.
pub fn len(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = parse_header(buf)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    if frame_len > max_len {
        return Err(DecodeError::PacketTooLarge);
    }
    Ok(Some(frame_len))
}

/// Bytes the Remaining Length field takes for a body of `len` bytes: 1 to 4 (5 for a
/// `len` over [`MAX_REMAINING_LENGTH`], which no valid packet has).
pub fn remaining_length_len(len: usize) -> usize {
    let mut n = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        n += 1;
        rest >>= 7;
    }
    n
}

/// Appends `len` as a Variable Byte Integer, minimally encoded. [MQTT-2.2.3]
pub fn write_remaining_length(out: &mut Vec<u8>, len: usize) {
    debug_assert!(
        len <= MAX_REMAINING_LENGTH,
        "remaining length {len} too large"
    );
    let mut rest = len;
    loop {
        // Truncation is the encoding: the low seven bits of what is left.
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Total frame length for a body of `remaining` bytes: first byte, length field, body.
pub fn frame_len(remaining: usize) -> usize {
    1 + remaining_length_len(remaining) + remaining
}

/// The fixed header of a frame whose Remaining Length is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) first_byte: u8,
    /// Bytes of the first byte plus the Remaining Length field (2 to 5).
    pub(crate) header_len: usize,
    pub(crate) remaining: usize,
}

impl Header {
    pub(crate) fn frame_len(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Reads the first byte and the Remaining Length; `Ok(None)` if either is incomplete.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<Header>, DecodeError> {
    let Some((&first_byte, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    for (i, shift) in [0u32, 7, 14, 21].into_iter().enumerate() {
        let Some(&byte) = rest.get(i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(Some(Header {
                first_byte,
                header_len: 2 + i,
                remaining,
            }));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn empty_buffer_is_incomplete() {
        assert_eq!(check(&[], MAX), Ok(None));
        assert_eq!(check(&[0x30], MAX), Ok(None));
    }

    #[test]
    fn pingreq_is_two_bytes() {
        assert_eq!(check(&[0xc0, 0x00], MAX), Ok(Some(2)));
        assert_eq!(check(&[0xc0, 0x00, 0xd0, 0x00], MAX), Ok(Some(2)));
    }

    #[test]
    fn incomplete_body_is_not_an_error() {
        // PUBLISH, remaining length 5, three body bytes so far.
        assert_eq!(check(&[0x30, 0x05, 0x00, 0x01, b'a'], MAX), Ok(None));
        assert_eq!(
            check(&[0x30, 0x05, 0x00, 0x01, b'a', b'x', b'y'], MAX),
            Ok(Some(7))
        );
    }

    /// [MQTT-2.2.3]: up to four bytes; a missing continuation byte means "need more".
    #[test]
    fn incomplete_remaining_length_is_not_an_error() {
        assert_eq!(check(&[0x30, 0x80], MAX), Ok(None));
        assert_eq!(check(&[0x30, 0xff, 0xff], MAX), Ok(None));
        assert_eq!(check(&[0x30, 0xff, 0xff, 0xff], MAX), Ok(None));
    }

    /// [MQTT-2.2.3]: the Remaining Length is at most four bytes.
    #[test]
    fn remaining_length_of_five_bytes_is_malformed() {
        assert_eq!(
            check(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f], usize::MAX),
            Err(DecodeError::MalformedRemainingLength)
        );
        // Known as soon as the fourth length byte has its continuation bit set.
        assert_eq!(
            check(&[0x30, 0x80, 0x80, 0x80, 0x80], usize::MAX),
            Err(DecodeError::MalformedRemainingLength)
        );
    }

    /// Rejected from the fixed header alone, before any of the body is buffered
    /// (rumqttd's `protocol/v4/mod.rs` does the same).
    #[test]
    fn oversized_remaining_length_is_rejected_before_body() {
        // 0xff 0xff 0xff 0x7f = 268_435_455, the largest expressible.
        assert_eq!(
            check(&[0x30, 0xff, 0xff, 0xff, 0x7f], MAX),
            Err(DecodeError::PacketTooLarge)
        );
        // Limit applies to the whole frame: 2 + 10 = 12 bytes.
        assert_eq!(check(&[0x30, 0x0a], 11), Err(DecodeError::PacketTooLarge));
        assert_eq!(check(&[0x30, 0x0a], 12), Ok(None));
    }

    /// 3.1.1 does not require the minimal encoding for this field; Mosquitto accepts
    /// `0x80 0x00` and so do we.
    #[test]
    fn non_minimal_remaining_length_is_accepted() {
        assert_eq!(check(&[0xc0, 0x80, 0x00], MAX), Ok(Some(3)));
        assert_eq!(check(&[0xc0, 0x80, 0x80, 0x80, 0x00], MAX), Ok(Some(5)));
    }

    /// Boundaries from the table in [MQTT-2.2.3].
    #[test]
    fn remaining_length_boundaries() {
        let cases: [(usize, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (len, bytes) in cases {
            let mut out = vec![0x30];
            write_remaining_length(&mut out, len);
            assert_eq!(&out[1..], bytes, "encoding {len}");
            assert_eq!(remaining_length_len(len), bytes.len(), "length of {len}");
            let header = parse_header(&out).unwrap().unwrap();
            assert_eq!(header.remaining, len);
            assert_eq!(header.header_len, 1 + bytes.len());
            assert_eq!(frame_len(len), 1 + bytes.len() + len);
        }
    }
}
