//! The MQTT codec: every control packet of MQTT 3.1 (protocol level 3, "MQIsdp") and
//! 3.1.1 (level 4, "MQTT"). MQTT 5.0 (level 5) extends these types in a later step; the
//! protocol version is a parameter of decoding and encoding, never a second codec.
//!
//! # Guarantees
//! - Nothing here panics on input. Every decoder works on a borrowed slice and returns a
//!   typed [`DecodeError`] for anything the specification says a receiver must reject.
//! - [`frame::check`] tells whether a whole packet is in a buffer without allocating, and
//!   rejects an oversized Remaining Length before any of the body is buffered.
//! - A [`Packet`] returned by [`Packet::decode`] is valid: reserved flags, QoS 3, packet id
//!   0, UTF-8 (including U+0000), wildcards in a topic name, empty SUBSCRIBE/UNSUBSCRIBE,
//!   trailing bytes have all been checked ("parse, don't validate").
//! - The PUBLISH path does not allocate: a decoded [`Publish`] borrows topic and payload.
//! - Encoding appends to a `Vec<u8>`; [`Packet::encoded_len`] is exact, so a caller can
//!   reserve once. Lengths are converted with `try_from`, never truncated with `as`.
//! - Until MQTT 5 lands, CONNECT level 5 decodes to
//!   `Err(UnsupportedProtocolVersion(5))` and every other packet is refused on a level-5
//!   connection.
//!
//! # Layout
//! `frame.rs` finds frame boundaries; `reader.rs` holds every bounds check; `packet.rs`
//! dispatches on the packet type to `connect.rs` (CONNECT, CONNACK), `publish.rs` and
//! `subscribe.rs` (SUBSCRIBE, SUBACK, UNSUBSCRIBE). `fuzz.rs` holds the fuzz target
//! bodies that `fuzz/` wraps and `cargo test` replays on the seed corpus.

// `fuzzing` is the cfg cargo-fuzz sets. Declaring it belongs in Cargo.toml
// (`[lints.rust] unexpected_cfgs = { level = "warn", check-cfg = ["cfg(fuzzing)"] }`);
// until that file is changed, this module allows the unknown name.

pub mod frame;
#[cfg(any(test, fuzzing))]
pub mod fuzz;

mod connect;
mod packet;
mod publish;
mod reader;
mod subscribe;
#[cfg(test)]
mod testing;

pub use packet::*;
