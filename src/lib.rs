//! culex: an MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways.
//!
//! One thread, one mio poll loop, memory proportional to what it is asked to hold, and
//! Mosquitto's configuration and behaviour where users depend on them.
//!
//! # Layout
//! - [`protocol`]: the MQTT codec for 3.1, 3.1.1 and 5.0, one codec with the version as a
//!   parameter. No state, no I/O; never panics on input.
//! - [`topic`]: topic validation, the subscription tree (with shared subscriptions) and
//!   the retained tree. Pure data.
//! - [`message`]: the stored application message (topic, payload, MQTT 5 properties),
//!   shared by `broker` and `persist`.
//! - [`broker`]: the sans-I/O core: sessions, QoS flows, queues, wills, retained, MQTT 5,
//!   $SYS, and the journal records persistence writes. It is told what happened and
//!   answers with bytes in outboxes; it owns no socket, reads no clock and no file.
//! - [`auth`]: Mosquitto's password files (`mosquitto_passwd` hashes) and ACL files, and
//!   the checks against them. Loaded by `net`, applied by `broker`.
//! - [`bridge`]: `connection` blocks: topic mapping and the relay between the remote
//!   broker and a local session that the bridge drives as an ordinary broker session on a
//!   virtual connection (no socket, no client library). Sans-I/O: `net` owns its remote
//!   socket and hands it the host name and the backoff's seed.
//! - [`client`]: the MQTT client session as a sans-I/O state machine (3.1, 3.1.1 and
//!   5.0), and the command lines and output formats of `culex_pub`, `culex_sub` and
//!   `culex_rr`, Mosquitto's client tools.
//! - [`net`]: the mio loop: listeners and their set-up, client connections (TCP, TLS,
//!   WebSockets, Unix sockets), framing, flushing, signals and reload, the bridges'
//!   sockets, and the hand-off of journal records to [`persist`].
//! - [`config`]: mosquitto.conf into one typed [`config::Config`]: one definition per
//!   option, and which of them culex implements.
//! - [`persist`]: the journal and snapshots that keep retained messages and persistent
//!   sessions across restarts and power cuts: the record codec, the files (written and
//!   synced off the loop) and recovery.
//! - [`log_dest`]: the logger: Mosquitto's `log_dest`, `log_type` and time stamps.
//! - [`localtime`]: the local time zone, as tzset(3) finds it, for time stamps.
//! - [`timer`]: the ordered deadline set behind every timeout.
//! - [`slab`]: values in numbered, reused slots (connections, sessions, groups).
//! - [`notify`]: sd_notify for systemd's `Type=notify` units, without libsystemd.
//!
//! # How a PUBLISH flows
//! `net` reads a socket into its scratch buffer (through TLS and WebSocket framing, if
//! any), `protocol::frame::check` finds whole packets, and `Broker::handle_frame` decodes
//! one (borrowing topic and payload from the buffer), checks it, stores it if it is
//! retained, and routes it: the subscription tree yields matching sessions, each gets the
//! message at its granted QoS — encoded straight into its outbox for QoS 0, or through
//! its inflight window or queue for QoS 1/2, where the message is kept once, shared by
//! `Rc`. After the reads of one iteration, `net` hands the iteration's journal records to
//! the store (so no acknowledgement leaves before what it acknowledges is stored), then
//! writes every dirty outbox with one system call each.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bridge;
pub mod broker;
pub mod client;
pub mod config;
pub mod localtime;
pub mod log_dest;
pub mod message;
pub mod net;
pub mod notify;
pub mod persist;
pub mod protocol;
pub mod slab;
pub mod timer;
pub mod topic;
