//! The MQTT codec: every control packet of MQTT 3.1 (protocol level 3, "MQIsdp"), 3.1.1
//! (level 4, "MQTT") and 5.0 (level 5). The protocol version is a parameter of decoding
//! and encoding, never a second codec: the packet types carry MQTT 5's reason codes and
//! [`Properties`], which 3.1/3.1.1 decoding leaves empty and 3.1/3.1.1 encoding ignores.
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
//! - In MQTT 5, properties are checked as a receiver must (unknown or misplaced ids,
//!   duplicates, value ranges), and so are reason codes per packet type;
//!   `ReasonCode::from(DecodeError)` is the code to answer a failure with.
//!
//! # Layout
//! `frame.rs` finds frame boundaries; `reader.rs` holds every bounds check; `packet.rs`
//! dispatches on the packet type to `connect.rs` (CONNECT, CONNACK), `publish.rs`,
//! `subscribe.rs` (SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK) and `ack.rs` (PUBACK to
//! PUBCOMP, DISCONNECT, AUTH). `properties.rs` and `reason.rs` hold MQTT 5's two tables. `fuzz.rs` holds the fuzz target
//! bodies that `fuzz/` wraps and `cargo test` replays on the seed corpus.

// `fuzzing` is the cfg cargo-fuzz sets; Cargo.toml's `[lints.rust] unexpected_cfgs`
// declares it.

// No panic reachable from input: outside tests the codec uses no `unwrap`/`expect` and
// no indexing or slicing that could go out of bounds (reads go through `reader.rs`'s
// checked `take`/`sub`). Reviewed for issue #11; docs/SECURITY.md.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod frame;
#[cfg(any(test, fuzzing))]
pub mod fuzz;

mod ack;
mod connect;
mod packet;
mod properties;
mod publish;
mod reader;
mod reason;
mod subscribe;
#[cfg(test)]
pub(crate) mod testing;

pub use connect::is_bridge_connect;
pub use packet::*;
pub use properties::{
    is_property_allowed, property_name, Properties, PropertyContext, Props,
    MAX_SUBSCRIPTION_IDENTIFIER,
};
pub use reason::ReasonCode;
pub use subscribe::{is_valid_shared_filter, split_shared_filter};
