//! Arbitrary bytes as a request on `$CONTROL/dynamic-security/v1` (and as a
//! dynamic-security.json): never a panic, always Mosquitto's response shape, and a
//! state that still writes and reads back. The body is
//! `culex::auth::dynsec::fuzz::fuzz_dynsec_control`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::auth::dynsec::fuzz::fuzz_dynsec_control(data);
});
