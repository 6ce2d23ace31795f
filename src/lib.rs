//! culex: an MQTT broker for edge gateways.
//!
//! One thread, one mio poll loop, memory proportional to what it is asked to hold, and
//! Mosquitto's configuration and behaviour where users depend on them.
//!
//! # Layout
//! - [`protocol`]: the MQTT codec (3.1, 3.1.1 and 5.0; the broker speaks 3.1/3.1.1). No
//!   state, no I/O.
//! - [`topic`]: topic validation, the subscription tree and the retained tree. Pure data.
//! - [`broker`]: the sans-I/O core: sessions, QoS flows, queues, wills, retained, $SYS.
//!   It is told what happened and answers with bytes in outboxes; it owns no socket and
//!   reads no clock.
//! - [`client`]: the MQTT client session as a sans-I/O state machine (3.1, 3.1.1 and
//!   5.0), and the command lines and output formats of `culex_pub`, `culex_sub` and
//!   `culex_rr`, Mosquitto's client tools.
//! - [`net`]: the mio loop: listeners, connections, framing, flushing, signals.
//! - [`config`]: mosquitto.conf into one typed [`config::Config`].
//! - [`log_dest`]: the logger: Mosquitto's `log_dest`, `log_type` and time stamps.
//! - [`localtime`]: the local time zone, as tzset(3) finds it, for time stamps.
//! - [`timer`]: the ordered deadline set behind every timeout.
//! - [`notify`]: sd_notify for systemd's `Type=notify` units, without libsystemd.
//! - [`persist`]: the journal and snapshots that keep retained messages and persistent
//!   sessions across restarts and power cuts.
//!
//! # How a PUBLISH flows
//! `net` reads a socket into its scratch buffer, `protocol::frame::check` finds whole
//! packets, and `Broker::handle_frame` decodes one (borrowing topic and payload from the
//! buffer), checks it, stores it if it is retained, and routes it: the subscription tree
//! yields matching sessions, each gets the message at its granted QoS — encoded straight
//! into its outbox for QoS 0, or through its inflight window or queue for QoS 1/2, where
//! the message is kept once, shared by `Rc`. After the reads of one iteration, `net`
//! writes every dirty outbox with one system call each.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bridge;
pub mod broker;
pub mod client;
pub mod config;
pub mod localtime;
pub mod log_dest;
pub mod net;
pub mod notify;
pub mod persist;
pub mod protocol;
pub mod timer;
pub mod topic;
