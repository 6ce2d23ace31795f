//! Helpers shared by the codec's unit tests.

use super::{frame, Packet, ProtocolVersion};

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
