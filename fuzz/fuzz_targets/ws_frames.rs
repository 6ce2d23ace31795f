//! WebSocket input from a peer: the HTTP request head and RFC 6455 frames. The body is
//! `culex::net::websocket::fuzz::fuzz_ws` (no panic; the same events however the bytes
//! are split).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::net::websocket::fuzz::fuzz_ws(data);
});
