//! Frames and decodes arbitrary bytes in every protocol version; whatever decodes must
//! re-encode to the same packet. The body is `culex::protocol::fuzz::fuzz_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::protocol::fuzz::fuzz_decode(data);
});
