//! The fixed header and Remaining Length. [MQTT-2.2]

use super::DecodeError;

/// Largest Remaining Length the encoding can express. [MQTT-2.2.3]
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Is a whole packet at the start of `buf`? `Ok(None)`: need more bytes (incomplete is not
/// an error). `Ok(Some(n))`: the first `n` bytes are one packet, fixed header included.
/// `Err`: a malformed Remaining Length, or one whose packet would exceed `max_len` bytes in
/// total — rejected before the body is buffered.
pub fn check(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let _ = (buf, max_len);
    Ok(None)
}
