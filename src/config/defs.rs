//! One entry per mosquitto.conf option (ripgrep's `defs.rs` shape): its exact name and
//! aliases, its [`Scope`], whether Mosquitto reloads it on SIGHUP, whether culex
//! implements it ([`Support`]), a one-line doc and its parser, which turns the line's text
//! into typed fields with Mosquitto's validation (`src/conf.c`, `config__read_file_core`).
//! The tests at the bottom are tables of (text, expected value) and (text, expected error).
//!
//! **The support column is the list to shrink**: when a feature lands, change its entry
//! from `No` (or `Only`) to `Yes` and [`super::Config::unsupported`] stops reporting it.
//!
//! Where culex is stricter than Mosquitto, it is where Mosquitto silently misreads
//! (`atoi("1o")` is 1): numbers must be numbers, extra words after a single value are an
//! error unless they start a `#` comment (which Mosquitto ignores there).

use super::lexer::Line;
use super::{
    Bridge, BridgeAddress, BridgePreset, BridgeProtocol, BridgeTopic, Config, ConfigError,
    Direction, ErrorKind, KeyForm, Listener, Location, LogDest, LogTypes, MappedPlugin, Plugin,
    Protocol, ProtocolVersions, ReloadType, RestartTimeout, Setting, SocketDomain, StartType,
    TcpKeepalive, TlsVersion,
};
use std::path::PathBuf;
use std::time::Duration;

/// Where an option may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere; applies to the whole broker.
    Global,
    /// Global, or the current listener's with `per_listener_settings true`.
    Security,
    /// The most recent `listener`; before any, Mosquitto's default listener.
    Listener,
    /// The most recent `listener`; an error before any.
    ListenerOnly,
    /// The most recent `connection`; an error before any.
    Bridge,
}

/// What culex does with an option that parsed.
#[derive(Debug, Clone, Copy)]
pub enum Support {
    /// Implemented.
    Yes,
    /// Not implemented yet: [`super::Config::unsupported`] reports it.
    No,
    /// Refused for good, with the reason (what culex's TLS library cannot do).
    Refused(&'static str),
    /// Implemented for these values (the first word of the value); others are reported.
    Only(&'static [&'static str]),
    /// Implemented when the value passes the test; otherwise reported.
    When(fn(&str) -> bool),
    /// Harmless to ignore: a warning with the reason.
    Ignored(&'static str),
    /// Implemented for these values; others are ignored with a warning and the reason.
    IgnoredUnless(&'static [&'static str], &'static str),
    /// Part of a plugin block: judged with its plugin.
    Plugin,
}

/// One mosquitto.conf option.
pub struct OptionDef {
    pub name: &'static str,
    /// Other names Mosquitto accepts for it (legacy spellings).
    pub aliases: &'static [&'static str],
    pub scope: Scope,
    /// Does Mosquitto apply a change on SIGHUP?
    pub reloadable: bool,
    pub support: Support,
    pub doc: &'static str,
    parse: fn(&mut Parser, &Value) -> Result<(), ErrorKind>,
}

const FALSE: &[&str] = &["false", "0"];

macro_rules! opt {
    ($name:literal $(| $alias:literal)*, $scope:ident, $reload:literal, $support:expr, $doc:literal, $parse:expr) => {
        OptionDef {
            name: $name,
            aliases: &[$($alias),*],
            scope: Scope::$scope,
            reloadable: $reload,
            support: $support,
            doc: $doc,
            parse: $parse,
        }
    };
}

use Support::{Ignored, IgnoredUnless, No, Only, Refused, When, Yes};

const NO_PSK: &str = "rustls, culex's TLS library, has no TLS-PSK cipher suites; use certificates (cafile/certfile/keyfile, or bridge_cafile/bridge_certfile/bridge_keyfile)";
const NO_CIPHER_STRINGS: &str = "these are OpenSSL cipher strings; rustls offers only its own safe suites (TLS 1.3 and ECDHE with AES-GCM or ChaCha20 for TLS 1.2), always on";

const BRIDGE_LOCAL_AUTH: &str = "culex checks no password or ACL for its own bridges, as Mosquitto's password_file and acl_file do not (only plugins saw this name)";

/// Every option of Mosquitto 2.0 and 2.1, alphabetically by section.
pub static OPTIONS: &[OptionDef] = &[
    // ---- General and process -------------------------------------------------------
    opt!("user", Global, false,
        Ignored("culex does not switch users; start it as the user it should run as (systemd User=)"),
        "Drop root privileges to this user.",
        |p, v| { p.config.user = Some(v.string()?); Ok(()) }),
    opt!("pid_file", Global, false, Yes,
        "Write the process id to this file at start-up (after -d's fork); removed at a clean exit.",
        |p, v| set_once(&mut p.config.pid_file, v.path()?, v)),
    opt!("include_dir", Global, false, Yes,
        "Read the *.conf files of this directory here, sorted (main file only).",
        |_, _| Ok(())),
    opt!("sys_interval", Global, true, Yes,
        "Seconds between $SYS updates; 0 disables them.",
        |p, v| { p.config.sys_interval = v.int_in(0, 65535)? as u32; Ok(()) }),
    opt!("set_tcp_nodelay", Global, false,
        Ignored("culex does not set TCP_NODELAY yet; small messages may wait for the kernel's Nagle delay"),
        "Disable Nagle's algorithm on client sockets.",
        |p, v| { p.config.set_tcp_nodelay = v.bool()?; Ok(()) }),
    opt!("upgrade_outgoing_qos", Global, true, Yes,
        "Deliver at the subscription's QoS rather than the publication's (non-standard).",
        |p, v| { p.config.upgrade_outgoing_qos = v.bool()?; Ok(()) }),
    opt!("allow_duplicate_messages", Global, true,
        IgnoredUnless(FALSE, "culex delivers one copy per client for overlapping subscriptions [MQTT-3.3.5-1]"),
        "Deprecated: overlapping subscriptions may deliver a message twice.",
        |p, v| { p.config.allow_duplicate_messages = v.bool()?; Ok(()) }),
    opt!("check_retain_source", Security, false, Yes,
        "Re-check the publisher's ACL before serving a retained message.",
        |p, v| { p.security_seen = true; p.config.check_retain_source = v.bool()?; Ok(()) }),
    opt!("clientid_prefixes", Global, true, No,
        "Deprecated: only allow client ids starting with this prefix.",
        |p, v| set_once(&mut p.config.clientid_prefixes, v.string()?, v)),
    opt!("connection_messages", Global, true, Yes,
        "Log client connects and disconnects.",
        |p, v| { p.config.connection_messages = v.bool()?; Ok(()) }),
    opt!("enable_control_api", Global, false, Only(FALSE),
        "2.1: enable the $CONTROL/broker/v1 API.",
        |p, v| { p.config.enable_control_api = v.bool()?; Ok(()) }),
    opt!("global_max_clients", Global, false, Yes,
        "2.1: cap on sessions, offline persistent ones included (-1: unlimited).",
        |p, v| { p.config.global_max_clients = v.limit()?; Ok(()) }),
    opt!("global_max_connections", Global, false, Yes,
        "2.1: cap on live connections broker-wide (-1: unlimited).",
        |p, v| { p.config.global_max_connections = v.limit()?; Ok(()) }),
    opt!("max_connection_rate", Global, false, Yes,
        "culex only: new connections accepted per second from one IP address, in bursts of as many (0: unlimited).",
        |p, v| {
            p.config.max_connection_rate = match v.int_in(0, u32::MAX.into())? {
                0 => None,
                n => Some(n as u32),
            };
            Ok(())
        }),
    opt!("max_retained_messages", Global, true, Yes,
        "culex only: retained messages stored at most ($SYS aside); a new topic over it is delivered but not retained (0 or -1: unlimited).",
        |p, v| { p.config.max_retained_messages = v.int()?.max(0) as usize; Ok(()) }),
    opt!("max_retained_bytes", Global, true, Yes,
        "culex only: payload bytes of retained messages stored at most ($SYS aside); 0 or -1: unlimited.",
        |p, v| { p.config.max_retained_bytes = v.int()?.max(0) as usize; Ok(()) }),
    opt!("max_subscriptions_per_client", Global, true, Yes,
        "culex only: topic filters one client may hold; a SUBSCRIBE over it is refused per filter (0 or -1: unlimited).",
        |p, v| { p.config.max_subscriptions_per_client = v.int()?.max(0) as usize; Ok(()) }),
    opt!("subscriber_stall_timeout", Global, true, Yes,
        "culex only: seconds a subscriber that is behind may take no bytes before it stops holding back the publishers feeding it (default 2; 0: publishers are never held, what a subscriber cannot take is dropped).",
        |p, v| { p.config.subscriber_stall_timeout = v.int_in(0, 3600)? as u32; Ok(()) }),
    opt!("memory_limit", Global, false, Only(&["0"]),
        "Heap cap in bytes; 0: none.",
        |p, v| { p.config.memory_limit = v.int_in(0, i64::MAX)? as u64; Ok(()) }),
    opt!("retain_available", Global, false, Yes,
        "false: refuse retained messages.",
        |p, v| { p.config.retain_available = v.bool()?; Ok(()) }),
    opt!("retain_expiry_interval", Global, false, Only(&["0"]),
        "2.1.2: seconds between sweeps of expired retained messages.",
        |p, v| { p.config.retain_expiry_interval = v.int_in(0, u32::MAX.into())? as u32; Ok(()) }),
    opt!("persistent_client_expiration", Global, true, Yes,
        "Remove persistent clients disconnected for longer than this (e.g. 14d).",
        |p, v| { p.config.persistent_client_expiration = Some(v.duration()?); Ok(()) }),
    opt!("allow_zero_length_clientid", Security, true, Yes,
        "Let clients connect with an empty client id and assign one.",
        |p, v| {
            let b = v.bool()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => l.security.allow_zero_length_clientid = Some(b),
                None => p.config.allow_zero_length_clientid = b,
            }
            Ok(())
        }),
    opt!("auto_id_prefix", Security, true, Yes,
        "Prefix of assigned client ids (default auto-).",
        |p, v| {
            let s = v.string()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => set_once(&mut l.security.auto_id_prefix, s, v),
                None => set_once(&mut p.config.auto_id_prefix, s, v),
            }
        }),
    opt!("packet_buffer_size", Global, false,
        Ignored("culex sizes its read buffers itself"),
        "2.1.2: initial per-client read buffer in bytes.",
        |p, v| { p.config.packet_buffer_size = Some(v.int_in(1, u32::MAX.into())? as u32); Ok(()) }),
    opt!("retry_interval", Global, false,
        Ignored("removed in Mosquitto 2.0, which also ignores it"),
        "Removed in 2.0.",
        |_, _| Ok(())),

    // ---- Limits ---------------------------------------------------------------------
    opt!("max_inflight_messages", Global, false, Yes,
        "Outgoing QoS 1/2 messages in flight per client (0: unlimited).",
        |p, v| {
            let n = v.int()?;
            p.config.max_inflight_messages = match n {
                n if n < 0 || n == 65535 => 0,
                n if n > 65535 => return Err(v.invalid("at most 65535")),
                n => n as u16,
            };
            Ok(())
        }),
    opt!("max_inflight_bytes", Global, false, Yes,
        "Outgoing QoS 1/2 bytes in flight per client (0: unlimited).",
        |p, v| { p.config.max_inflight_bytes = v.int()?.max(0) as usize; Ok(()) }),
    opt!("max_queued_messages", Global, false, Yes,
        "Messages queued per client beyond those in flight (0: unlimited).",
        |p, v| { p.config.max_queued_messages = v.int()?.max(0) as usize; Ok(()) }),
    opt!("max_queued_bytes", Global, false, Yes,
        "Bytes queued per client beyond those in flight (0: unlimited).",
        |p, v| { p.config.max_queued_bytes = v.int()?.max(0) as usize; Ok(()) }),
    opt!("queue_qos0_messages", Global, true, Only(FALSE),
        "Queue QoS 0 messages for offline persistent clients.",
        |p, v| { p.config.queue_qos0_messages = v.bool()?; Ok(()) }),
    opt!("max_packet_size", Global, false, Yes,
        "Largest packet accepted, in bytes (at least 20).",
        |p, v| { p.config.max_packet_size = Some(v.int_in(20, u32::MAX.into())? as u32); Ok(()) }),
    opt!("message_size_limit", Global, true, Yes,
        "Largest PUBLISH payload accepted (0: the protocol's 268435455).",
        |p, v| {
            p.config.message_size_limit =
                v.int_in(0, crate::protocol::frame::MAX_REMAINING_LENGTH as i64)? as usize;
            Ok(())
        }),
    opt!("max_keepalive", Global, false, Yes,
        "Longest keep alive allowed (3.1.1 clients asking for more are refused).",
        |p, v| { p.config.max_keepalive = v.int_in(0, 65535)? as u16; Ok(()) }),

    // ---- Authentication and access control -------------------------------------------
    opt!("allow_anonymous", Security, true, Yes,
        "Let clients connect without a username.",
        |p, v| {
            let b = v.bool()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => l.security.allow_anonymous = Some(b),
                None => p.config.allow_anonymous = Some(b),
            }
            Ok(())
        }),
    opt!("password_file", Security, true, Yes,
        "mosquitto_passwd file of users and hashed passwords.",
        |p, v| {
            let path = v.path()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => set_once(&mut l.security.password_file, path, v),
                None => set_once(&mut p.config.password_file, path, v),
            }
        }),
    opt!("acl_file", Security, true, Yes,
        "Topic access control list.",
        |p, v| {
            let path = v.path()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => set_once(&mut l.security.acl_file, path, v),
                None => set_once(&mut p.config.acl_file, path, v),
            }
        }),
    opt!("psk_file", Security, true, Refused(NO_PSK),
        "identity:hexkey lines for TLS-PSK listeners.",
        |p, v| {
            let path = v.path()?;
            p.security_seen = true;
            match p.per_listener() {
                Some(l) => set_once(&mut l.security.psk_file, path, v),
                None => set_once(&mut p.config.psk_file, path, v),
            }
        }),
    opt!("per_listener_settings", Global, false, Yes,
        "Security options apply per listener instead of globally.",
        |p, v| {
            let b = v.bool()?;
            if p.config.per_listener_settings {
                return Ok(()); // As Mosquitto: once set, it stays set.
            }
            if b && p.security_seen {
                return Err(v.invalid(
                    "must come before any security option (allow_anonymous, password_file, acl_file, ...)",
                ));
            }
            p.config.per_listener_settings = b;
            Ok(())
        }),
    opt!("plugin" | "auth_plugin", Security, false, Support::Plugin,
        "Load a Mosquitto plugin (C shared object).",
        |p, v| p.add_plugin(v.string()?, None, false)),
    opt!("global_plugin", Global, false, Support::Plugin,
        "2.1: load a plugin for every listener.",
        |p, v| p.add_plugin(v.string()?, None, true)),
    opt!("plugin_load", Security, false, Support::Plugin,
        "2.1: load a plugin under a name: plugin_load NAME PATH.",
        |p, v| {
            let (name, path) = v.text.split_once([' ', '\t']).ok_or_else(|| v.invalid("expected 'plugin_load NAME PATH'"))?;
            p.add_plugin(path.trim().to_string(), Some(name.to_string()), false)
        }),
    opt!("plugin_use", Security, false, Support::Plugin,
        "2.1: use a plugin loaded with plugin_load on this listener.",
        |p, v| {
            let name = v.word()?.to_string();
            let listener = p.listener_index();
            p.config.plugin_use.push((name, listener, p.at.clone()));
            Ok(())
        }),
    opt!("plugin_opt_*" | "auth_opt_*", Security, false, Support::Plugin,
        "An option for the most recent plugin: plugin_opt_KEY VALUE.",
        |p, v| {
            let key = v.name.strip_prefix("plugin_opt_").or_else(|| v.name.strip_prefix("auth_opt_")).unwrap_or("");
            if key.is_empty() {
                return Err(ErrorKind::Invalid(v.name.into(), "expected plugin_opt_KEY VALUE".into()));
            }
            let value = v.string()?;
            let at = p.at.clone();
            p.current_plugin(v)?.options.push((key.to_string(), value, at));
            Ok(())
        }),
    opt!("auth_plugin_deny_special_chars", Security, false, Support::Plugin,
        "Refuse plugin checks for ids and usernames containing + or #.",
        |p, v| { let b = v.bool()?; p.current_plugin(v)?.auth_plugin_deny_special_chars = b; Ok(()) }),

    // ---- Persistence ----------------------------------------------------------------
    opt!("persistence" | "retained_persistence", Global, false, Yes,
        "Save sessions, subscriptions and retained messages to disk (a journal and snapshots).",
        |p, v| { p.config.persistence = v.bool()?; Ok(()) }),
    opt!("persistence_location", Global, false, Yes,
        "Directory of the persistence file.",
        |p, v| set_once(&mut p.config.persistence_location, v.path()?, v)),
    opt!("persistence_file", Global, false, Yes,
        "Name of the snapshot file (default culex.db); its journal is NAME.journal.",
        |p, v| set_once(&mut p.config.persistence_file, v.string()?, v)),
    opt!("autosave_interval", Global, true, Yes,
        "Most seconds (or changes) between snapshots; changes are journaled at once anyway.",
        |p, v| { p.config.autosave_interval = v.int()?.clamp(0, u32::MAX.into()) as u32; Ok(()) }),
    opt!("autosave_on_changes", Global, true, Yes,
        "Count autosave_interval in changes rather than seconds.",
        |p, v| { p.config.autosave_on_changes = v.bool()?; Ok(()) }),
    opt!("persistence_sync", Global, false, Yes,
        "culex: 'periodic' (default) syncs the journal within persistence_sync_interval; 'ack' acknowledges QoS 1/2 only once durable.",
        |p, v| {
            p.config.persistence_sync_ack = match v.word()? {
                "periodic" => false,
                "ack" => true,
                w => return Err(v.invalid(&format!("'{w}' is not periodic or ack"))),
            };
            Ok(())
        }),
    opt!("persistence_sync_interval", Global, false, Yes,
        "culex: most seconds between a change and its fsync (default 1; decimals allowed).",
        |p, v| {
            let w = v.word()?;
            match w.parse::<f64>() {
                Ok(secs) if secs > 0.0 && secs <= 3600.0 => {
                    p.config.persistence_sync_interval = Duration::from_secs_f64(secs);
                    Ok(())
                }
                _ => Err(v.invalid(&format!("'{w}' is not a number of seconds in (0, 3600]"))),
            }
        }),

    // ---- Logging --------------------------------------------------------------------
    opt!("log_dest", Global, true,
        IgnoredUnless(&["stderr", "stdout", "file", "syslog", "topic", "none"],
            "culex logs to stdout, stderr, a file, syslog or a topic; DLT and Android logging are for those platforms' builds of Mosquitto"),
        "Where logs go: stdout, stderr, syslog, topic, file PATH, dlt, android, none (repeats).",
        |p, v| p.log_dest(v)),
    opt!("log_facility", Global, true, Yes,
        "Syslog facility local0..local7.",
        |p, v| { p.config.log_facility = Some(v.int_in(0, 7)? as u8); Ok(()) }),
    opt!("log_type", Global, true, Yes,
        "Which messages to log (repeats; the first line replaces the default set).",
        |p, v| p.log_type(v)),
    opt!("log_timestamp", Global, true, Yes,
        "Prefix log lines with a time stamp.",
        |p, v| { p.config.log_timestamp = v.bool()?; Ok(()) }),
    opt!("log_timestamp_format", Global, true, Yes,
        "strftime format of the time stamp.",
        |p, v| set_once(&mut p.config.log_timestamp_format, v.string()?, v)),
    opt!("websockets_log_level", Global, true, Ignored("a libwebsockets setting; culex has no libwebsockets"),
        "libwebsockets log bitmask.",
        |p, v| { p.config.websockets_log_level = Some(v.int_in(i32::MIN.into(), i32::MAX.into())? as i32); Ok(()) }),
    opt!("websockets_headers_size", Global, false, Yes,
        "Largest HTTP request head of a websockets listener, in bytes (0: 4096).",
        |p, v| { p.config.websockets_headers_size = Some(v.int_in(0, 65535)? as u16); Ok(()) }),

    // ---- Listeners ------------------------------------------------------------------
    opt!("listener", Global, false, Yes,
        "Open a listener: listener PORT [ADDRESS], or listener 0 SOCKET_PATH.",
        |p, v| p.listener(v)),
    opt!("port", Global, false, Yes,
        "Deprecated: the default listener's port.",
        |p, v| { p.config.port = Some(v.port()?); Ok(()) }),
    opt!("bind_address", Global, false, Yes,
        "Deprecated: the default listener's address.",
        |p, v| set_once(&mut p.config.bind_address, v.word()?.to_string(), v)),
    opt!("bind_interface", Listener, false, Yes,
        "Bind the listener to this network interface (Linux).",
        |p, v| { let s = v.word()?.to_string(); set_once(&mut p.listener_mut().bind_interface, s, v) }),
    opt!("socket_domain", Listener, false, Yes,
        "Restrict the listener to ipv4 or ipv6.",
        |p, v| {
            p.listener_mut().socket_domain = Some(match v.word()? {
                "ipv4" => SocketDomain::Ipv4,
                "ipv6" => SocketDomain::Ipv6,
                w => return Err(v.invalid(&format!("'{w}' is not ipv4 or ipv6"))),
            });
            Ok(())
        }),
    opt!("protocol", Listener, false, Yes,
        "Listener transport: mqtt, websockets, or http_api (2.1: /api/v1/version, /api/v1/listeners, /api/v1/systree, and culex's Prometheus /metrics; certfile/keyfile for HTTPS; password_file users by HTTP basic authentication unless anonymous access is allowed).",
        |p, v| {
            p.listener_mut().protocol = match v.word()? {
                "mqtt" => Protocol::Mqtt,
                "websockets" => Protocol::Websockets,
                "http_api" => Protocol::HttpApi,
                w => return Err(v.invalid(&format!("'{w}' is not mqtt, websockets or http_api"))),
            };
            Ok(())
        }),
    opt!("mount_point", ListenerOnly, false, Yes,
        "Prefix every topic of this listener's clients.",
        |p, v| {
            let s = v.string()?;
            if !crate::topic::is_valid_name(&s) {
                return Err(v.invalid(&format!("'{s}' must be a topic without + or #")));
            }
            set_once(&mut p.listener_mut().mount_point, s, v)
        }),
    opt!("max_connections", Listener, false, Yes,
        "Connections this listener accepts (-1: unlimited).",
        |p, v| {
            let limit = v.limit()?.map(|n| n as usize);
            match p.config.listeners.last_mut() {
                Some(l) => l.max_connections = limit,
                None => p.config.max_connections = limit,
            }
            Ok(())
        }),
    opt!("max_qos" | "maximum_qos", Listener, false, Yes,
        "Highest QoS this listener's clients may use.",
        |p, v| { p.listener_mut().max_qos = v.int_in(0, 2)? as u8; Ok(()) }),
    opt!("max_topic_alias", Listener, false, Yes,
        "Topic aliases an MQTT 5 client may create.",
        |p, v| { p.listener_mut().max_topic_alias = v.int_in(0, 65535)? as u16; Ok(()) }),
    opt!("max_topic_alias_broker", Listener, false, Yes,
        "2.1: topic aliases the broker creates toward MQTT 5 clients.",
        |p, v| { p.listener_mut().max_topic_alias_broker = v.int_in(0, 65535)? as u16; Ok(()) }),
    opt!("accept_protocol_versions", ListenerOnly, false, Yes,
        "2.1: protocol levels accepted, e.g. 3, 4 or 5.",
        |p, v| {
            let mut versions = ProtocolVersions { v3: false, v4: false, v5: false };
            let mut any = false;
            for w in v.text.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
                match w {
                    "3" => versions.v3 = true,
                    "4" => versions.v4 = true,
                    "5" => versions.v5 = true,
                    _ => return Err(v.invalid(&format!("'{w}' is not 3, 4 or 5"))),
                }
                any = true;
            }
            if !any {
                return Err(ErrorKind::MissingValue(v.name.into()));
            }
            p.listener_mut().accept_protocol_versions = Some(versions);
            Ok(())
        }),
    opt!("use_username_as_clientid", Listener, false, Only(FALSE),
        "Replace the client id by the username.",
        |p, v| { p.listener_mut().use_username_as_clientid = v.bool()?; Ok(()) }),
    opt!("http_dir", Listener, false, Yes,
        "Serve static files from this directory (websockets and http_api listeners).",
        |p, v| { let s = v.path()?; set_once(&mut p.listener_mut().http_dir, s, v) }),
    opt!("websockets_origin", Listener, false, Yes,
        "2.1: an allowed WebSockets Origin (repeats).",
        |p, v| { let s = v.string()?; p.listener_mut().websockets_origin.push(s); Ok(()) }),
    opt!("enable_proxy_protocol", Listener, false, No,
        "2.1: expect a PROXY protocol v1 or v2 header from a trusted load balancer.",
        |p, v| { p.listener_mut().enable_proxy_protocol = Some(v.int_in(1, 2)? as u8); Ok(()) }),
    opt!("proxy_protocol_v2_require_tls", Listener, false, Only(FALSE),
        "2.1: require TLS information in the PROXY v2 header.",
        |p, v| { p.listener_mut().proxy_protocol_v2_require_tls = v.bool()?; Ok(()) }),
    opt!("listener_allow_anonymous", ListenerOnly, false, Yes,
        "2.1: allow_anonymous for this listener only.",
        |p, v| { p.listener_mut().listener_allow_anonymous = Some(v.bool()?); Ok(()) }),
    opt!("listener_auto_id_prefix", ListenerOnly, false, Yes,
        "2.1: auto_id_prefix for this listener only.",
        |p, v| { let s = v.string()?; set_once(&mut p.listener_mut().listener_auto_id_prefix, s, v) }),

    // ---- Listener TLS and PSK ------------------------------------------------------
    opt!("cafile", Listener, false, Yes,
        "CA certificates trusted for client certificates.",
        |p, v| { let s = v.path()?; p.no_psk_hint(v)?; set_once(&mut p.listener_mut().tls.cafile, s, v) }),
    opt!("capath", Listener, false, Yes,
        "Directory of CA certificates (openssl rehash).",
        |p, v| { let s = v.path()?; set_once(&mut p.listener_mut().tls.capath, s, v) }),
    opt!("certfile", Listener, false, Yes,
        "Server certificate chain (PEM); enables TLS with keyfile.",
        |p, v| { let s = v.path()?; p.no_psk_hint(v)?; set_once(&mut p.listener_mut().tls.certfile, s, v) }),
    opt!("keyfile", Listener, false, Yes,
        "Server private key (PEM).",
        |p, v| { let s = v.path()?; set_once(&mut p.listener_mut().tls.keyfile, s, v) }),
    opt!("ciphers", Listener, false, Refused(NO_CIPHER_STRINGS),
        "OpenSSL cipher list for TLS 1.2 and below.",
        |p, v| { let s = v.string()?; set_once(&mut p.listener_mut().tls.ciphers, s, v) }),
    opt!("ciphers_tls1.3", Listener, false, Refused(NO_CIPHER_STRINGS),
        "OpenSSL cipher suites for TLS 1.3.",
        |p, v| { let s = v.string()?; set_once(&mut p.listener_mut().tls.ciphers_tls13, s, v) }),
    opt!("crlfile", Listener, false, Yes,
        "Certificate revocation list for client certificates.",
        |p, v| { let s = v.path()?; set_once(&mut p.listener_mut().tls.crlfile, s, v) }),
    opt!("dhparamfile", Listener, false,
        Ignored("Diffie-Hellman parameters are not used by culex's TLS (ECDHE only)"),
        "DH parameters file.",
        |p, v| { let s = v.path()?; set_once(&mut p.listener_mut().tls.dhparamfile, s, v) }),
    opt!("disable_client_cert_date_checks", ListenerOnly, false, Only(FALSE),
        "2.1: accept expired or not yet valid client certificates.",
        |p, v| { p.listener_mut().tls.disable_client_cert_date_checks = v.bool()?; Ok(()) }),
    opt!("require_certificate", Listener, false, Yes,
        "Require a client certificate (mutual TLS).",
        |p, v| { p.listener_mut().tls.require_certificate = v.bool()?; Ok(()) }),
    opt!("use_identity_as_username", Listener, false, Yes,
        "The client certificate's CN (or PSK identity) becomes the username.",
        |p, v| { p.listener_mut().tls.use_identity_as_username = v.bool()?; Ok(()) }),
    opt!("use_subject_as_username", Listener, false, Yes,
        "The client certificate's subject becomes the username.",
        |p, v| { p.listener_mut().tls.use_subject_as_username = v.bool()?; Ok(()) }),
    opt!("tls_version", Listener, false, Only(&["tlsv1.2", "tlsv1.3"]),
        "Minimum TLS version: tlsv1.3, tlsv1.2 (or tlsv1.1).",
        |p, v| { let t = v.tls_version()?; p.listener_mut().tls.tls_version = Some(t); Ok(()) }),
    opt!("tls_engine", Listener, false, No,
        "OpenSSL engine holding the key (e.g. a TPM).",
        |p, v| { let s = v.string()?; set_once(&mut p.listener_mut().tls.tls_engine, s, v) }),
    opt!("tls_engine_kpass_sha1", Listener, false, No,
        "SHA1 of the engine key's password, in hex.",
        |p, v| {
            let s = v.word()?.to_string();
            if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(v.invalid("expected 40 hexadecimal digits"));
            }
            set_once(&mut p.listener_mut().tls.tls_engine_kpass_sha1, s, v)
        }),
    opt!("tls_keyform", Listener, false, Only(&["pem"]),
        "Key format: pem or engine.",
        |p, v| {
            p.listener_mut().tls.tls_keyform = match v.word()? {
                "pem" => KeyForm::Pem,
                "engine" => KeyForm::Engine,
                w => return Err(v.invalid(&format!("'{w}' is not pem or engine"))),
            };
            Ok(())
        }),
    opt!("psk_hint", Listener, false, Refused(NO_PSK),
        "Enable TLS-PSK on this listener with this hint.",
        |p, v| {
            let s = v.string()?;
            let l = p.listener_mut();
            if l.tls.cafile.is_some() || l.tls.certfile.is_some() {
                return Err(v.invalid("a listener uses certificates or PSK, not both"));
            }
            set_once(&mut l.tls.psk_hint, s, v)
        }),

    // ---- Bridges --------------------------------------------------------------------
    opt!("connection", Global, true, Yes,
        "Start a bridge to another broker: connection NAME.",
        |p, v| {
            let name = v.word()?;
            if p.config.bridges.iter().any(|b| b.name == name) {
                return Err(v.invalid(&format!("a bridge named '{name}' already exists")));
            }
            p.config.bridges.push(Bridge::new(name));
            p.bridge_lines.push(p.at.clone());
            Ok(())
        }),
    opt!("address" | "addresses", Bridge, true, Yes,
        "Remote broker(s): host[:port] ... (default port 1883).",
        |p, v| {
            let mut addresses = Vec::new();
            for w in v.words() {
                let (host, port) = match w.rsplit_once(':') {
                    Some((h, port)) => (h, parse_port(port).map_err(|why| v.invalid(&why))?),
                    None => (w, super::DEFAULT_PORT),
                };
                if host.is_empty() {
                    return Err(v.invalid(&format!("'{w}' has no host")));
                }
                addresses.push(BridgeAddress { host: host.to_string(), port });
            }
            if addresses.is_empty() {
                return Err(ErrorKind::MissingValue(v.name.into()));
            }
            let b = p.bridge();
            if !b.addresses.is_empty() {
                return Err(ErrorKind::Duplicate(v.name.into()));
            }
            b.addresses = addresses;
            Ok(())
        }),
    opt!("round_robin", Bridge, true, Yes,
        "false: the first address is the primary; true: keep whichever works.",
        |p, v| { p.bridge().round_robin = v.bool()?; Ok(()) }),
    opt!("topic", Bridge, true, Yes,
        "Bridge a topic: topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]].",
        |p, v| { let t = bridge_topic(v)?; p.bridge().topics.push(t); Ok(()) }),
    opt!("cleansession", Bridge, true, Yes,
        "Clean session toward the remote broker (default false).",
        |p, v| { p.bridge().cleansession = v.bool()?; Ok(()) }),
    opt!("local_cleansession", Bridge, true, Yes,
        "Clean session of the local side (default: cleansession).",
        |p, v| { p.bridge().local_cleansession = Some(v.bool()?); Ok(()) }),
    opt!("remote_clientid" | "clientid", Bridge, true, Yes,
        "Client id toward the remote (default <hostname>.<name>).",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().remote_clientid, s, v) }),
    opt!("remote_username" | "username", Bridge, true, Yes,
        "Username toward the remote.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().remote_username, s, v) }),
    opt!("remote_password" | "password", Bridge, true, Yes,
        "Password toward the remote.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().remote_password, s, v) }),
    opt!("local_clientid", Bridge, true, Yes,
        "Client id of the local side (default local.<remote_clientid>).",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().local_clientid, s, v) }),
    opt!("local_username", Bridge, true, Ignored(BRIDGE_LOCAL_AUTH),
        "Username of the local side, for the local ACLs.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().local_username, s, v) }),
    opt!("local_password", Bridge, true, Ignored(BRIDGE_LOCAL_AUTH),
        "Password of the local side.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().local_password, s, v) }),
    opt!("keepalive_interval", Bridge, true, Yes,
        "MQTT keep alive toward the remote, seconds (at least 5).",
        |p, v| {
            let mut n = v.int_in(i64::MIN, 65535)?;
            if n < 5 {
                p.notice(format!("keepalive_interval {n} is too low; using 5 seconds, as Mosquitto"));
                n = 5;
            }
            p.bridge().keepalive_interval = n as u16;
            Ok(())
        }),
    opt!("restart_timeout", Bridge, true, Yes,
        "Reconnect delay: restart_timeout SECONDS, or BASE CAP [STABLE] for backoff.",
        |p, v| {
            let words = v.words();
            if words.is_empty() {
                return Err(ErrorKind::MissingValue(v.name.into()));
            }
            if words.len() > 3 {
                return Err(v.invalid("expected 'restart_timeout SECONDS' or 'restart_timeout BASE CAP [STABLE]'"));
            }
            let nums = words.iter().map(|w| parse_int(w).map_err(|why| v.invalid(&why))).collect::<Result<Vec<_>, _>>()?;
            let mut first = nums[0];
            if first < 1 {
                p.notice(format!("restart_timeout {first} is too low; using 1 second, as Mosquitto"));
                first = 1;
            }
            let first = first.min(u32::MAX.into()) as u32;
            let timeout = match nums[1..] {
                [] => RestartTimeout::Constant(first),
                [cap, ..] => {
                    let cap = u32::try_from(cap).map_err(|_| v.invalid("the cap must be a number of seconds"))?;
                    if cap < first {
                        return Err(v.invalid(&format!("the cap ({cap}) is lower than the base ({first})")));
                    }
                    let stable = match nums.get(2) {
                        Some(&s) => Some(u32::try_from(s).map_err(|_| v.invalid("stable must be a number of seconds"))?),
                        None => None,
                    };
                    RestartTimeout::Backoff { base: first, cap, stable }
                }
            };
            p.bridge().restart_timeout = timeout;
            Ok(())
        }),
    opt!("start_type", Bridge, true, Yes,
        "automatic (default), lazy or once.",
        |p, v| {
            p.bridge().start_type = match v.word()? {
                "automatic" => StartType::Automatic,
                "lazy" => StartType::Lazy,
                "once" => StartType::Once,
                "manual" => return Err(v.invalid("'manual' is not supported by Mosquitto either")),
                w => return Err(v.invalid(&format!("'{w}' is not automatic, lazy or once"))),
            };
            Ok(())
        }),
    opt!("threshold", Bridge, true, Yes,
        "Queued messages that start a lazy bridge (default 10).",
        |p, v| {
            let mut n = v.int()?;
            if n < 1 {
                p.notice(format!("threshold {n} is too low; using 1 message, as Mosquitto"));
                n = 1;
            }
            p.bridge().threshold = n.min(u32::MAX.into()) as u32;
            Ok(())
        }),
    opt!("idle_timeout", Bridge, true, Yes,
        "Seconds without traffic before a lazy bridge stops (default 60).",
        |p, v| {
            let mut n = v.int()?;
            if n < 1 {
                p.notice(format!("idle_timeout {n} is too low; using 1 second, as Mosquitto"));
                n = 1;
            }
            p.bridge().idle_timeout = n.min(u32::MAX.into()) as u32;
            Ok(())
        }),
    opt!("notifications", Bridge, true, Yes,
        "Publish the bridge state as retained 1/0 messages (default true).",
        |p, v| { p.bridge().notifications = v.bool()?; Ok(()) }),
    opt!("notifications_local_only", Bridge, true, Yes,
        "Publish the bridge state locally only.",
        |p, v| { p.bridge().notifications_local_only = v.bool()?; Ok(()) }),
    opt!("notification_topic", Bridge, true, Yes,
        "Topic of the state messages.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().notification_topic, s, v) }),
    opt!("try_private", Bridge, true, Yes,
        "Announce a bridge to the remote for loop detection (default true).",
        |p, v| { p.bridge().try_private = v.bool()?; Ok(()) }),
    opt!("bridge_protocol_version", Bridge, true, Yes,
        "mqttv50, mqttv311 (default) or mqttv31.",
        |p, v| {
            p.bridge().bridge_protocol_version = match v.word()? {
                "mqttv31" => BridgeProtocol::Mqtt31,
                "mqttv311" => BridgeProtocol::Mqtt311,
                "mqttv50" => BridgeProtocol::Mqtt50,
                w => return Err(v.invalid(&format!("'{w}' is not mqttv50, mqttv311 or mqttv31"))),
            };
            Ok(())
        }),
    opt!("bridge_attempt_unsubscribe", Bridge, true, Yes,
        "Unsubscribe from out-only topics on the remote (default true).",
        |p, v| { p.bridge().bridge_attempt_unsubscribe = v.bool()?; Ok(()) }),
    opt!("bridge_outgoing_retain", Bridge, true, Yes,
        "Keep the retain flag on outgoing messages (default true).",
        |p, v| { p.bridge().bridge_outgoing_retain = v.bool()?; Ok(()) }),
    opt!("bridge_max_packet_size", Bridge, true, Yes,
        "Largest packet sent to the remote (0: unlimited).",
        |p, v| { p.bridge().bridge_max_packet_size = v.int()?.clamp(0, u32::MAX.into()) as u32; Ok(()) }),
    opt!("bridge_bind_address", Bridge, true, Yes,
        "Local address of the bridge connection.",
        |p, v| { let s = v.word()?.to_string(); set_once(&mut p.bridge().bridge_bind_address, s, v) }),
    opt!("bridge_max_topic_alias", Bridge, true, No,
        "2.1: topic aliases the remote may create (default 10).",
        |p, v| { p.bridge().bridge_max_topic_alias = v.int_in(0, 65535)? as u16; Ok(()) }),
    opt!("bridge_receive_maximum", Bridge, true, Yes,
        "2.1: MQTT 5 receive maximum toward the remote (1..65535).",
        |p, v| { p.bridge().bridge_receive_maximum = Some(v.int_in(1, 65535)? as u16); Ok(()) }),
    opt!("bridge_session_expiry_interval", Bridge, true, Yes,
        "2.1: MQTT 5 session expiry toward the remote, seconds.",
        |p, v| { p.bridge().bridge_session_expiry_interval = v.int_in(0, u32::MAX.into())? as u32; Ok(()) }),
    opt!("bridge_tcp_keepalive", Bridge, true, Yes,
        "2.1: TCP keepalive: bridge_tcp_keepalive IDLE INTERVAL COUNT.",
        |p, v| {
            let words = v.words();
            if words.len() != 3 {
                return Err(v.invalid("expected 'bridge_tcp_keepalive IDLE INTERVAL COUNT'"));
            }
            let mut n = [0u32; 3];
            for (slot, w) in n.iter_mut().zip(&words) {
                *slot = match parse_int(w) {
                    Ok(x) if x > 0 && x <= u32::MAX.into() => x as u32,
                    _ => return Err(v.invalid(&format!("'{w}' is not a positive number"))),
                };
            }
            p.bridge().bridge_tcp_keepalive = Some(TcpKeepalive { idle: n[0], interval: n[1], count: n[2] });
            Ok(())
        }),
    opt!("bridge_tcp_user_timeout", Bridge, true, Yes,
        "2.1: TCP_USER_TIMEOUT in milliseconds (Linux).",
        |p, v| { p.bridge().bridge_tcp_user_timeout = Some(v.int_in(0, u32::MAX.into())? as u32); Ok(()) }),
    opt!("bridge_reload_type", Bridge, true, Yes,
        "2.1: on SIGHUP, apply a changed bridge when its link next goes down (lazy, the default) or at once (immediate).",
        |p, v| {
            p.bridge().bridge_reload_type = match v.word()? {
                "lazy" => ReloadType::Lazy,
                "immediate" => ReloadType::Immediate,
                w => return Err(v.invalid(&format!("'{w}' is not lazy or immediate"))),
            };
            Ok(())
        }),
    opt!("bridge_outbox_messages", Bridge, true, Yes,
        "culex: messages kept for the remote while it is unreachable (default max_queued_messages; 0: unlimited).",
        |p, v| { let n = v.int_in(0, i64::MAX)?; p.bridge().outbox_messages = Some(usize::try_from(n).unwrap_or(usize::MAX)); Ok(()) }),
    opt!("bridge_outbox_bytes", Bridge, true, Yes,
        "culex: payload bytes kept for the remote while it is unreachable (default max_queued_bytes; 0: unlimited).",
        |p, v| { let n = v.int_in(0, i64::MAX)?; p.bridge().outbox_bytes = Some(usize::try_from(n).unwrap_or(usize::MAX)); Ok(()) }),
    opt!("bridge_outbox_full", Bridge, true, Yes,
        "culex: drop_newest (default, as Mosquitto) or drop_oldest when the bridge's outbox is full.",
        |p, v| {
            p.bridge().outbox_drop_oldest = match v.word()? {
                "drop_newest" => false,
                "drop_oldest" => true,
                w => return Err(v.invalid(&format!("'{w}' is not drop_newest or drop_oldest"))),
            };
            Ok(())
        }),
    opt!("bridge_outbox_max_age", Bridge, true, Yes,
        "culex: seconds a message may wait for the remote; older ones are dropped, not sent (checked while the link is down and when sending; 0: no limit, the default).",
        |p, v| { let n = v.int_in(0, u32::MAX.into())? as u32; p.bridge().outbox_max_age = (n != 0).then_some(n); Ok(()) }),
    opt!("bridge_latest_only", Bridge, true, Yes,
        "culex: a local topic filter (repeatable) whose topics keep only their newest message in the outbox while the remote is unreachable.",
        |p, v| {
            let filter = v.string()?;
            if !crate::topic::is_valid_filter(&filter) {
                return Err(v.invalid(&format!("'{filter}' is not a valid topic filter")));
            }
            p.bridge().latest_only.push(filter);
            Ok(())
        }),
    opt!("bridge_replay_rate", Bridge, true, Yes,
        "culex: after a (re)connection, messages that waited go out at most this many per second, after live ones (0: unlimited, the default).",
        |p, v| { p.bridge().replay_rate = v.int_in(0, u32::MAX.into())? as u32; Ok(()) }),
    opt!("bridge_preset", Bridge, true, Yes,
        "culex: aws-iot or azure-iot-hub: sets what the service needs (MQTT 3.1.1, try_private false, bridge_outgoing_retain false, notifications false, QoS at most 1; AWS: bridge_alpn x-amzn-mqtt-ca on port 443; Azure: TLS and the username HUB/DEVICE/?api-version=2021-04-12). Options the block sets itself win.",
        |p, v| {
            p.bridge().preset = Some(match v.word()? {
                "aws-iot" => BridgePreset::AwsIot,
                "azure-iot-hub" => BridgePreset::AzureIotHub,
                w => return Err(v.invalid(&format!("'{w}' is not aws-iot or azure-iot-hub"))),
            });
            Ok(())
        }),
    opt!("bridge_azure_sas_key", Bridge, true, Yes,
        "culex: the device's base64 key: the bridge signs its Azure IoT Hub SAS token (its password) itself and connects again with a fresh one before it expires.",
        |p, v| {
            let key = v.string()?;
            if !crate::bridge::sas::is_valid_key(&key) {
                return Err(v.invalid("expected the device's base64 key"));
            }
            p.bridge().azure_sas_key = Some(key);
            Ok(())
        }),
    opt!("bridge_azure_sas_ttl", Bridge, true, Yes,
        "culex: seconds a SAS token from bridge_azure_sas_key is valid (default 3600); a new connection with a fresh token is made before it expires.",
        |p, v| { p.bridge().azure_sas_ttl = v.int_in(2, u32::MAX.into())? as u32; Ok(()) }),
    opt!("bridge_cafile", Bridge, true, Yes,
        "CA certificates for the remote; enables TLS.",
        |p, v| { let s = v.path()?; p.no_bridge_psk(v)?; set_once(&mut p.bridge().tls.cafile, s, v) }),
    opt!("bridge_capath", Bridge, true, Yes,
        "Directory of CA certificates for the remote.",
        |p, v| { let s = v.path()?; p.no_bridge_psk(v)?; set_once(&mut p.bridge().tls.capath, s, v) }),
    opt!("bridge_tls_use_os_certs", Bridge, true, Yes,
        "2.1: trust the system's CA certificates; enables TLS.",
        |p, v| { p.bridge().tls.tls_use_os_certs = v.bool()?; Ok(()) }),
    opt!("bridge_certfile", Bridge, true, Yes,
        "Client certificate for the remote (mutual TLS).",
        |p, v| { let s = v.path()?; p.no_bridge_psk(v)?; set_once(&mut p.bridge().tls.certfile, s, v) }),
    opt!("bridge_keyfile", Bridge, true, Yes,
        "Client key for the remote.",
        |p, v| { let s = v.path()?; p.no_bridge_psk(v)?; set_once(&mut p.bridge().tls.keyfile, s, v) }),
    opt!("bridge_alpn", Bridge, true, Yes,
        "ALPN protocol, e.g. x-amzn-mqtt-ca.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().tls.alpn, s, v) }),
    opt!("bridge_insecure", Bridge, true, Yes,
        "Skip the remote's hostname check (testing only).",
        |p, v| { p.bridge().tls.insecure = v.bool()?; Ok(()) }),
    opt!("bridge_require_ocsp", Bridge, true, No,
        "Require an OCSP status from the remote.",
        |p, v| { p.bridge().tls.require_ocsp = v.bool()?; Ok(()) }),
    opt!("bridge_tls_version", Bridge, true, Yes,
        "Minimum TLS version toward the remote.",
        |p, v| { let t = v.tls_version()?; p.bridge().tls.tls_version = Some(t); Ok(()) }),
    opt!("bridge_ciphers", Bridge, true, Refused(NO_CIPHER_STRINGS),
        "Cipher list toward the remote (TLS 1.2 and below).",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().tls.ciphers, s, v) }),
    opt!("bridge_ciphers_tls1.3", Bridge, true, Refused(NO_CIPHER_STRINGS),
        "2.1: TLS 1.3 cipher suites toward the remote.",
        |p, v| { let s = v.string()?; set_once(&mut p.bridge().tls.ciphers_tls13, s, v) }),
    opt!("bridge_identity", Bridge, true, Refused(NO_PSK),
        "TLS-PSK identity toward the remote.",
        |p, v| { let s = v.string()?; p.no_bridge_certs(v)?; set_once(&mut p.bridge().tls.identity, s, v) }),
    opt!("bridge_psk", Bridge, true, Refused(NO_PSK),
        "TLS-PSK key in hex toward the remote.",
        |p, v| {
            let s = v.word()?.to_string();
            if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(v.invalid("expected a hexadecimal key"));
            }
            p.no_bridge_certs(v)?;
            set_once(&mut p.bridge().tls.psk, s, v)
        }),
];

/// The table entry for an option name as written (aliases and `plugin_opt_*` included).
pub fn lookup(name: &str) -> Option<&'static OptionDef> {
    let wanted = if name.starts_with("plugin_opt_") || name.starts_with("auth_opt_") {
        "plugin_opt_*"
    } else {
        name
    };
    OPTIONS
        .iter()
        .find(|d| d.name == wanted || d.aliases.contains(&wanted))
}

/// The value of one line, with the option name as written.
pub(crate) struct Value<'a> {
    name: &'a str,
    text: &'a str,
}

impl Value<'_> {
    fn invalid(&self, why: &str) -> ErrorKind {
        ErrorKind::Invalid(self.name.into(), why.into())
    }

    /// The words of the value, up to a word starting with `#` (a trailing comment, which
    /// Mosquitto ignores after single-word values).
    fn words(&self) -> Vec<&str> {
        self.text
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .take_while(|w| !w.starts_with('#'))
            .collect()
    }

    fn word(&self) -> Result<&str, ErrorKind> {
        match self.words()[..] {
            [] => Err(ErrorKind::MissingValue(self.name.into())),
            [w] => Ok(w),
            [_, extra, ..] => {
                Err(self.invalid(&format!("expected one value, found '{extra}' after it")))
            }
        }
    }

    /// The whole value (paths and names may contain spaces).
    fn string(&self) -> Result<String, ErrorKind> {
        if self.text.is_empty() {
            return Err(ErrorKind::MissingValue(self.name.into()));
        }
        Ok(self.text.to_string())
    }

    fn path(&self) -> Result<PathBuf, ErrorKind> {
        self.string().map(PathBuf::from)
    }

    /// Mosquitto's booleans: true/false, 1/0.
    fn bool(&self) -> Result<bool, ErrorKind> {
        match self.word()? {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            w => Err(self.invalid(&format!("'{w}' is not true or false"))),
        }
    }

    fn int(&self) -> Result<i64, ErrorKind> {
        parse_int(self.word()?).map_err(|why| self.invalid(&why))
    }

    fn int_in(&self, lo: i64, hi: i64) -> Result<i64, ErrorKind> {
        let n = self.int()?;
        if n < lo || n > hi {
            let why = match (lo, hi) {
                (i64::MIN, hi) => format!("{n} is more than {hi}"),
                (lo, i64::MAX) => format!("{n} is less than {lo}"),
                (lo, hi) => format!("{n} is not between {lo} and {hi}"),
            };
            return Err(self.invalid(&why));
        }
        Ok(n)
    }

    /// A count where a negative number means unlimited (`None`).
    fn limit(&self) -> Result<Option<u64>, ErrorKind> {
        let n = self.int()?;
        Ok(u64::try_from(n).ok())
    }

    fn port(&self) -> Result<u16, ErrorKind> {
        parse_port(self.word()?).map_err(|why| self.invalid(&why))
    }

    fn tls_version(&self) -> Result<TlsVersion, ErrorKind> {
        match self.word()? {
            "tlsv1.3" => Ok(TlsVersion::V1_3),
            "tlsv1.2" => Ok(TlsVersion::V1_2),
            "tlsv1.1" => Ok(TlsVersion::V1_1),
            w => Err(self.invalid(&format!("'{w}' is not tlsv1.3, tlsv1.2 or tlsv1.1"))),
        }
    }

    /// `persistent_client_expiration`: a number and a unit, h d w m y (Mosquitto 2.0's
    /// m is 30 days, y 365 days); 2.1 also takes seconds (`s` or no unit).
    fn duration(&self) -> Result<Duration, ErrorKind> {
        let w = self.word()?;
        let bad = || {
            self.invalid(&format!(
                "'{w}' is not a duration: a positive number of seconds, or of h, d, w, m or y (e.g. 14d)"
            ))
        };
        let (digits, unit) = match w.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&w[..i], c),
            _ => (w, 's'),
        };
        let mult: u64 = match unit {
            's' => 1,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'm' => 30 * 86_400,
            'y' => 365 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match n.checked_mul(mult) {
            Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(bad()),
        }
    }
}

fn parse_int(w: &str) -> Result<i64, String> {
    w.parse().map_err(|_| format!("'{w}' is not a number"))
}

fn parse_port(w: &str) -> Result<u16, String> {
    match parse_int(w)? {
        n @ 1..=65535 => Ok(n as u16),
        n => Err(format!("port {n} is not between 1 and 65535")),
    }
}

/// Single-valued options: a second value in the same place is an error, as Mosquitto's
/// `conf__parse_string` ("Duplicate ... value").
fn set_once<T>(slot: &mut Option<T>, value: T, v: &Value) -> Result<(), ErrorKind> {
    if slot.is_some() {
        return Err(ErrorKind::Duplicate(v.name.into()));
    }
    *slot = Some(value);
    Ok(())
}

/// `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`, Mosquitto's rules:
/// direction defaults to out and QoS to 0; `""` is an empty pattern or prefix; an empty
/// pattern needs both prefixes (the topic is then the prefix itself); prefixes are topic
/// names (no wildcards) and prefix + pattern must be a valid filter.
fn bridge_topic(v: &Value) -> Result<BridgeTopic, ErrorKind> {
    let mut all = v.text.split([' ', '\t']).filter(|w| !w.is_empty());
    // The pattern may be `#` itself; later words starting with `#` end the line.
    let pattern = all
        .next()
        .ok_or_else(|| ErrorKind::MissingValue(v.name.into()))?;
    let rest: Vec<&str> = all.take_while(|w| !w.starts_with('#')).collect();
    if rest.len() > 4 {
        return Err(v.invalid(&format!(
            "'{}' after the remote prefix; expected 'topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]'",
            rest[4]
        )));
    }
    let empty_is_none = |w: &str| (w != "\"\"").then(|| w.to_string());
    let direction = match rest.first().map(|d| d.to_ascii_lowercase()).as_deref() {
        None | Some("out") => Direction::Out,
        Some("in") => Direction::In,
        Some("both") => Direction::Both,
        Some(_) => {
            return Err(v.invalid(&format!("direction '{}' is not in, out or both", rest[0])))
        }
    };
    let qos = match rest.get(1) {
        None => 0,
        Some(q) => match q.parse::<u8>() {
            Ok(q @ 0..=2) => q,
            _ => return Err(v.invalid(&format!("QoS '{q}' is not 0, 1 or 2"))),
        },
    };
    let local_prefix = rest.get(2).and_then(|w| empty_is_none(w));
    let remote_prefix = rest.get(3).and_then(|w| empty_is_none(w));
    let pattern = empty_is_none(pattern);
    for (which, prefix) in [("local", &local_prefix), ("remote", &remote_prefix)] {
        if let Some(prefix) = prefix {
            if !crate::topic::is_valid_name(prefix) {
                return Err(v.invalid(&format!(
                    "the {which} prefix '{prefix}' must not contain + or #"
                )));
            }
        }
    }
    match &pattern {
        None if local_prefix.is_none() || remote_prefix.is_none() => {
            return Err(v.invalid(
                "an empty pattern (\"\") needs both a local and a remote prefix: the topic is then the prefix itself",
            ))
        }
        None => {}
        Some(pattern) => {
            for prefix in [&local_prefix, &remote_prefix] {
                let full = format!("{}{pattern}", prefix.as_deref().unwrap_or(""));
                if !crate::topic::is_valid_filter(&full) {
                    return Err(v.invalid(&format!(
                        "'{full}' is not a valid topic filter (a prefix usually ends with '/')"
                    )));
                }
            }
        }
    }
    Ok(BridgeTopic {
        pattern,
        direction,
        qos,
        local_prefix,
        remote_prefix,
    })
}

/// Parsing state beyond the [`Config`] being built.
/// `bridge_preset`: the options a cloud service needs, for those the block did not set
/// (`set`: the options it did). Azure's username needs `remote_clientid` (the device).
fn apply_preset(b: &mut Bridge, set: &[&str]) -> Result<(), String> {
    preset_options(b, set)?;
    if b.azure_sas_key.is_some() && (b.remote_clientid.is_none() || b.remote_username.is_none()) {
        return Err(
            "bridge_azure_sas_key needs remote_clientid (the device id) and remote_username \
             (or bridge_preset azure-iot-hub, which sets it)"
                .into(),
        );
    }
    Ok(())
}

fn preset_options(b: &mut Bridge, set: &[&str]) -> Result<(), String> {
    let Some(preset) = b.preset else {
        return Ok(());
    };
    let unset = |name: &str| !set.contains(&name);
    if unset("bridge_protocol_version") {
        b.bridge_protocol_version = BridgeProtocol::Mqtt311;
    }
    if unset("try_private") {
        b.try_private = false;
    }
    if unset("bridge_outgoing_retain") {
        b.bridge_outgoing_retain = false;
    }
    // Neither service accepts a $SYS topic.
    if unset("notifications") {
        b.notifications = false;
    }
    // Both services stop at QoS 1: a QoS 2 subscription is refused, so the lines ask 1.
    for t in &mut b.topics {
        t.qos = t.qos.min(1);
    }
    match preset {
        BridgePreset::AwsIot => {
            if unset("bridge_alpn") && b.addresses.iter().any(|a| a.port == 443) {
                b.tls.alpn = Some("x-amzn-mqtt-ca".into());
            }
        }
        BridgePreset::AzureIotHub => {
            let Some(device) = b.remote_clientid.clone() else {
                return Err("azure-iot-hub needs remote_clientid (the device id)".into());
            };
            if unset("remote_username") {
                if let Some(hub) = b.addresses.first() {
                    b.remote_username =
                        Some(format!("{}/{device}/?api-version=2021-04-12", hub.host));
                }
            }
            let tls = &b.tls;
            if tls.cafile.is_none() && tls.capath.is_none() && !tls.tls_use_os_certs {
                b.tls.tls_use_os_certs = true;
            }
        }
    }
    Ok(())
}

pub(crate) struct Parser {
    config: Config,
    at: Location,
    log_type_set: bool,
    log_dest_set: bool,
    /// A security option was seen (`per_listener_settings true` must come before them).
    security_seen: bool,
    /// Index in `config.plugins` of the plugin `plugin_opt_*` lines add to.
    current_plugin: Option<usize>,
    /// The `connection` line of each bridge.
    bridge_lines: Vec<Location>,
    /// The options each bridge's block set (by bridge index), which its
    /// `bridge_preset` leaves alone.
    bridge_options: Vec<(usize, &'static str)>,
}

impl Parser {
    /// The current listener: the last `listener`, or the default listener before any.
    fn listener_mut(&mut self) -> &mut Listener {
        match self.config.listeners.last_mut() {
            Some(l) => l,
            None => &mut self.config.default_listener,
        }
    }

    fn listener_index(&self) -> Option<usize> {
        self.config.listeners.len().checked_sub(1)
    }

    /// With `per_listener_settings true`, the listener security options apply to.
    fn per_listener(&mut self) -> Option<&mut Listener> {
        if self.config.per_listener_settings {
            Some(self.listener_mut())
        } else {
            None
        }
    }

    fn bridge(&mut self) -> &mut Bridge {
        // Scope::Bridge entries are only parsed after a `connection` line.
        self.config
            .bridges
            .last_mut()
            .expect("bridge options are checked to follow a connection line")
    }

    fn notice(&mut self, text: String) {
        let e = self.at.error(ErrorKind::Notice(text));
        self.config.notices.push(e);
    }

    fn no_psk_hint(&mut self, v: &Value) -> Result<(), ErrorKind> {
        if self.listener_mut().tls.psk_hint.is_some() {
            return Err(v.invalid("a listener uses certificates or PSK (psk_hint), not both"));
        }
        Ok(())
    }

    fn no_bridge_psk(&mut self, v: &Value) -> Result<(), ErrorKind> {
        let tls = &self.bridge().tls;
        if tls.identity.is_some() || tls.psk.is_some() {
            return Err(v.invalid("a bridge uses certificates or PSK, not both"));
        }
        Ok(())
    }

    fn no_bridge_certs(&mut self, v: &Value) -> Result<(), ErrorKind> {
        let tls = &self.bridge().tls;
        if tls.cafile.is_some()
            || tls.capath.is_some()
            || tls.certfile.is_some()
            || tls.keyfile.is_some()
        {
            return Err(v.invalid("a bridge uses certificates or PSK, not both"));
        }
        Ok(())
    }

    fn add_plugin(
        &mut self,
        path: String,
        name: Option<String>,
        global: bool,
    ) -> Result<(), ErrorKind> {
        self.security_seen = true;
        let listener = if self.config.per_listener_settings && !global {
            self.listener_index()
        } else {
            None
        };
        self.config.plugins.push(Plugin {
            path,
            name,
            global,
            listener,
            options: Vec::new(),
            auth_plugin_deny_special_chars: true,
            at: self.at.clone(),
            maps_to: None,
        });
        self.current_plugin = Some(self.config.plugins.len() - 1);
        Ok(())
    }

    fn current_plugin(&mut self, v: &Value) -> Result<&mut Plugin, ErrorKind> {
        match self.current_plugin {
            Some(i) => Ok(&mut self.config.plugins[i]),
            None => Err(v.invalid("it must follow the 'plugin' line it configures")),
        }
    }

    fn listener(&mut self, v: &Value) -> Result<(), ErrorKind> {
        let usage = "expected 'listener PORT [ADDRESS]' or 'listener 0 SOCKET_PATH'";
        let words = v.words();
        let (port, second) = match words[..] {
            [] => return Err(ErrorKind::MissingValue(v.name.into())),
            [port] => (port, None),
            [port, second] => (port, Some(second.to_string())),
            _ => return Err(v.invalid(usage)),
        };
        let port = match parse_int(port) {
            Ok(0) => 0,
            Ok(_) => parse_port(port).map_err(|why| v.invalid(&why))?,
            Err(why) => return Err(v.invalid(&format!("{why}; {usage}"))),
        };
        let mut listener = Listener::tcp(port, None);
        if port == 0 {
            let path = second
                .ok_or_else(|| v.invalid("a listener with port 0 needs a Unix socket path"))?;
            listener.unix_socket_path = Some(PathBuf::from(path));
        } else {
            listener.bind_address = second;
        }
        self.config.listeners.push(listener);
        Ok(())
    }

    fn log_dest(&mut self, v: &Value) -> Result<(), ErrorKind> {
        // As Mosquitto: the first log_dest line replaces the default (stderr).
        if !self.log_dest_set {
            self.log_dest_set = true;
            self.config.log_dest = LogDest::none();
        }
        let (first, rest) = match v.text.split_once([' ', '\t']) {
            Some((f, r)) => (f, r.trim_start_matches([' ', '\t'])),
            None => (v.text, ""),
        };
        let d = &mut self.config.log_dest;
        let flag = match first {
            "" => return Err(ErrorKind::MissingValue(v.name.into())),
            "file" => {
                if rest.is_empty() {
                    return Err(v.invalid("'log_dest file' needs a path"));
                }
                if d.file.is_some() {
                    return Err(ErrorKind::Duplicate("log_dest file".into()));
                }
                d.file = Some(PathBuf::from(rest));
                return Ok(());
            }
            "none" => {
                *d = LogDest::none();
                None
            }
            "stderr" => Some(&mut d.stderr),
            "stdout" => Some(&mut d.stdout),
            "syslog" => Some(&mut d.syslog),
            "topic" => Some(&mut d.topic),
            "dlt" => Some(&mut d.dlt),
            "android" => Some(&mut d.android),
            other => {
                return Err(v.invalid(&format!(
                "'{other}' is not stdout, stderr, syslog, topic, file PATH, dlt, android or none"
            )))
            }
        };
        if let Some(flag) = flag {
            *flag = true;
        }
        v.word().map(|_| ())
    }

    fn log_type(&mut self, v: &Value) -> Result<(), ErrorKind> {
        // As Mosquitto: the first log_type line replaces the default set.
        if !self.log_type_set {
            self.log_type_set = true;
            self.config.log_type = LogTypes::none();
        }
        let t = &mut self.config.log_type;
        match v.word()? {
            "error" => t.error = true,
            "warning" => t.warning = true,
            "notice" => t.notice = true,
            "information" => t.information = true,
            "subscribe" => t.subscribe = true,
            "unsubscribe" => t.unsubscribe = true,
            "websockets" => t.websockets = true,
            "debug" => t.debug = true,
            "all" => *t = LogTypes::all(),
            "none" => *t = LogTypes::none(),
            other => return Err(v.invalid(&format!("unknown log type '{other}'"))),
        }
        Ok(())
    }

    /// Checks made once every line is read: bridges are complete, 2.1's password-file and
    /// acl-file plugins become password_file/acl_file, plugin_use names a plugin_load.
    fn finish(mut self) -> Result<Config, ConfigError> {
        for (index, (bridge, at)) in self
            .config
            .bridges
            .iter_mut()
            .zip(&self.bridge_lines)
            .enumerate()
        {
            let set: Vec<&str> = self
                .bridge_options
                .iter()
                .filter(|(i, _)| *i == index)
                .map(|(_, name)| *name)
                .collect();
            apply_preset(bridge, &set).map_err(|why| {
                at.error(ErrorKind::Invalid(
                    "bridge_preset".into(),
                    format!("bridge '{}': {why}", bridge.name),
                ))
            })?;
        }
        for (bridge, at) in self.config.bridges.iter().zip(&self.bridge_lines) {
            let missing = if bridge.addresses.is_empty() {
                Some("no 'address'")
            } else if bridge.topics.is_empty() {
                Some("no 'topic'")
            } else if bridge.tls.psk.is_some() != bridge.tls.identity.is_some() {
                Some("'bridge_psk' and 'bridge_identity' go together")
            } else {
                None
            };
            if let Some(what) = missing {
                return Err(at.error(ErrorKind::Invalid(
                    "connection".into(),
                    format!("bridge '{}' has {what}", bridge.name),
                )));
            }
        }
        for (name, _, at) in &self.config.plugin_use {
            if !self
                .config
                .plugins
                .iter()
                .any(|p| p.name.as_ref() == Some(name))
            {
                return Err(at.error(ErrorKind::Invalid(
                    "plugin_use".into(),
                    format!("no 'plugin_load {name} PATH' before it"),
                )));
            }
        }
        for i in 0..self.config.plugins.len() {
            self.map_plugin(i)?;
        }
        Ok(self.config)
    }

    fn map_plugin(&mut self, i: usize) -> Result<(), ConfigError> {
        let plugin = &self.config.plugins[i];
        let stem = plugin
            .path
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or("")
            .trim_end_matches(".so")
            .trim_end_matches(".dll")
            .trim_end_matches(".dylib");
        let key = match stem {
            "mosquitto_password_file" => "password_file",
            "mosquitto_acl_file" => "acl_file",
            "mosquitto_dynamic_security" => "config_file",
            _ => return Ok(()),
        };
        let Some((_, value, at)) = plugin.options.iter().find(|(k, _, _)| k == key) else {
            return Err(plugin.at.error(ErrorKind::Invalid(
                "plugin".into(),
                format!("'{}' needs a 'plugin_opt_{key} PATH' line", plugin.path),
            )));
        };
        let (path, at) = (PathBuf::from(value), at.clone());
        if key == "config_file" {
            // Mosquitto's plugin is one set of clients for the whole broker ("can only be
            // loaded once"); with per_listener_settings it would be one listener's.
            if self.config.per_listener_settings && !plugin.global {
                return Err(plugin.at.error(ErrorKind::Invalid(
                    "plugin".into(),
                    format!(
                        "'{}': culex's dynamic security is for the whole broker; use \
                         'per_listener_settings false' or 'global_plugin'",
                        plugin.path
                    ),
                )));
            }
            if self.config.dynsec_file.is_some() {
                return Err(plugin.at.error(ErrorKind::Invalid(
                    "plugin".into(),
                    "the dynamic-security plugin can only be loaded once".into(),
                )));
            }
            self.config.dynsec_file = Some(path.clone());
            self.config.plugins[i].maps_to = Some(MappedPlugin::DynSec(path));
            return Ok(());
        }
        let target = match plugin.listener {
            Some(l) if !plugin.global => &mut self.config.listeners[l].security,
            _ if self.config.per_listener_settings && !plugin.global => {
                &mut self.config.default_listener.security
            }
            _ => {
                let slot = if key == "password_file" {
                    &mut self.config.password_file
                } else {
                    &mut self.config.acl_file
                };
                return fill(slot, path, key, &at).map(|mapped| {
                    self.config.plugins[i].maps_to = Some(mapped);
                });
            }
        };
        let slot = if key == "password_file" {
            &mut target.password_file
        } else {
            &mut target.acl_file
        };
        let mapped = fill(slot, path, key, &at)?;
        self.config.plugins[i].maps_to = Some(mapped);
        return Ok(());

        fn fill(
            slot: &mut Option<PathBuf>,
            path: PathBuf,
            key: &str,
            at: &Location,
        ) -> Result<MappedPlugin, ConfigError> {
            if slot.is_some() {
                return Err(at.error(ErrorKind::Duplicate(key.into())));
            }
            *slot = Some(path.clone());
            Ok(if key == "password_file" {
                MappedPlugin::PasswordFile(path)
            } else {
                MappedPlugin::AclFile(path)
            })
        }
    }
}

/// Parses lexed lines into a [`Config`].
pub(crate) fn parse_lines(lines: &[Line]) -> Result<Config, ConfigError> {
    let mut p = Parser {
        config: Config::default(),
        at: Location {
            file: PathBuf::new(),
            line: 0,
        },
        log_type_set: false,
        log_dest_set: false,
        security_seen: false,
        current_plugin: None,
        bridge_lines: Vec::new(),
        bridge_options: Vec::new(),
    };
    for line in lines {
        p.at = line.at.clone();
        if line.name == "include_dir" && line.depth > 0 {
            p.notice(format!(
                "'include_dir {}' in an included file is skipped: Mosquitto reads include_dir in the main file only",
                line.value
            ));
            continue;
        }
        let Some(def) = lookup(&line.name) else {
            return Err(line
                .at
                .error(ErrorKind::Unknown(line.name.clone(), suggest(&line.name))));
        };
        let misplaced = match def.scope {
            Scope::Bridge => p.config.bridges.is_empty(),
            Scope::ListenerOnly => p.config.listeners.is_empty(),
            _ => false,
        };
        if misplaced {
            return Err(line
                .at
                .error(ErrorKind::WrongScope(line.name.clone(), def.scope)));
        }
        let value = Value {
            name: &line.name,
            text: &line.value,
        };
        (def.parse)(&mut p, &value).map_err(|kind| line.at.error(kind))?;
        if def.scope == Scope::Bridge {
            let index = p.config.bridges.len() - 1;
            p.bridge_options.push((index, def.name));
        }
        p.config.settings.push(Setting {
            option: def.name,
            written: line.name.clone(),
            value: line.value.clone(),
            at: line.at.clone(),
        });
    }
    p.finish()
}

fn first_word(value: &str) -> &str {
    value.split([' ', '\t']).next().unwrap_or("")
}

/// The implementation status of `option` for `value`: `None` if implemented (or judged
/// elsewhere), `Some(Ok(reason))` if ignored with a warning, `Some(Err(()))` if unsupported.
fn judge(def: &OptionDef, value: &str) -> Option<Result<&'static str, ()>> {
    match def.support {
        Yes | Support::Plugin => None,
        No | Refused(_) => Some(Err(())),
        Only(values) => (!values.contains(&first_word(value))).then_some(Err(())),
        When(test) => (!test(value)).then_some(Err(())),
        Ignored(why) => Some(Ok(why)),
        IgnoredUnless(values, why) => (!values.contains(&first_word(value))).then_some(Ok(why)),
    }
}

pub(crate) fn unsupported(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for s in &config.settings {
        let def = lookup(s.option).expect("settings hold table names");
        if let Some(Err(())) = judge(def, &s.value) {
            let kind = match def.support {
                No => ErrorKind::NotSupported(s.written.clone()),
                Refused(why) => ErrorKind::Refused(s.written.clone(), why),
                _ => ErrorKind::NotSupported(format!("{} {}", s.written, s.value)),
            };
            errors.push(s.at.error(kind));
        }
    }
    for plugin in &config.plugins {
        let (option, path) = match &plugin.maps_to {
            None => {
                errors.push(
                    plugin
                        .at
                        .error(ErrorKind::PluginRefused(plugin.path.clone())),
                );
                continue;
            }
            Some(MappedPlugin::PasswordFile(p)) => ("password_file", p),
            Some(MappedPlugin::AclFile(p)) => ("acl_file", p),
            Some(MappedPlugin::DynSec(_)) => continue,
        };
        let def = lookup(option).expect("password_file and acl_file are in the table");
        if let Some(Err(())) = judge(def, &path.to_string_lossy()) {
            let at = plugin
                .options
                .iter()
                .find(|(k, _, _)| k == option)
                .map_or(&plugin.at, |(_, _, at)| at);
            errors.push(at.error(ErrorKind::NotSupported(option.into())));
        }
    }
    sort_in_reading_order(config, &mut errors);
    errors
}

/// Orders messages as the lines were read (an included file sits where its include_dir
/// is), not by path.
fn sort_in_reading_order(config: &Config, messages: &mut [ConfigError]) {
    messages.sort_by_key(|m| {
        config
            .settings
            .iter()
            .position(|s| s.at.file == m.file && s.at.line == m.line)
            .unwrap_or(usize::MAX)
    });
}

pub(crate) fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut warnings = config.notices.clone();
    for s in &config.settings {
        let def = lookup(s.option).expect("settings hold table names");
        if let Some(Ok(why)) = judge(def, &s.value) {
            warnings.push(s.at.error(ErrorKind::Ignored(s.written.clone(), why)));
        }
    }
    for plugin in &config.plugins {
        let mapped = match &plugin.maps_to {
            Some(MappedPlugin::PasswordFile(p)) => format!("password_file {}", p.display()),
            Some(MappedPlugin::AclFile(p)) => format!("acl_file {}", p.display()),
            Some(MappedPlugin::DynSec(p)) => format!("dynamic security from {}", p.display()),
            None => continue,
        };
        warnings.push(
            plugin
                .at
                .error(ErrorKind::PluginMapped(plugin.path.clone(), mapped)),
        );
    }
    sort_in_reading_order(config, &mut warnings);
    warnings
}

/// The known option closest to `name` (at most two edits away).
fn suggest(name: &str) -> Option<String> {
    OPTIONS
        .iter()
        .flat_map(|d| std::iter::once(&d.name).chain(d.aliases))
        .filter(|k| !k.ends_with('*'))
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Security};
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str(text, Path::new("t.conf"))
    }

    const BRIDGE: &str = "connection b\naddress h\ntopic a\n";

    type Check = fn(&Config) -> bool;

    /// (configuration text, what it must produce). Every option of the table appears at
    /// the start of a line here (checked by `every_option_has_a_valid_case`).
    ///
    /// A table: one row per case, as long as the option table it covers.
    fn valid_cases() -> Vec<(String, Check)> {
        let cases: Vec<(&str, Check)> = vec![
            ("user mosquitto", |c| c.user.as_deref() == Some("mosquitto")),
            ("pid_file /run/my dir/m.pid", |c| c.pid_file == Some("/run/my dir/m.pid".into())),
            ("sys_interval 0", |c| c.sys_interval == 0),
            ("set_tcp_nodelay 1", |c| c.set_tcp_nodelay),
            ("upgrade_outgoing_qos true", |c| c.upgrade_outgoing_qos),
            ("allow_duplicate_messages true", |c| c.allow_duplicate_messages),
            ("check_retain_source false", |c| !c.check_retain_source),
            ("clientid_prefixes sensor-", |c| c.clientid_prefixes.as_deref() == Some("sensor-")),
            ("connection_messages false", |c| !c.connection_messages),
            ("enable_control_api true", |c| c.enable_control_api),
            ("global_max_clients 100", |c| c.global_max_clients == Some(100)),
            ("global_max_clients -1", |c| c.global_max_clients.is_none()),
            ("global_max_connections 50", |c| c.global_max_connections == Some(50)),
            ("max_connection_rate 20", |c| c.max_connection_rate == Some(20)),
            ("max_connection_rate 0", |c| c.max_connection_rate.is_none()),
            ("max_subscriptions_per_client 100", |c| c.max_subscriptions_per_client == 100),
            ("max_retained_messages 5000", |c| c.max_retained_messages == 5000),
            ("max_retained_bytes 1000000", |c| c.max_retained_bytes == 1_000_000),
            ("max_subscriptions_per_client -1", |c| c.max_subscriptions_per_client == 0),
            ("subscriber_stall_timeout 5", |c| c.subscriber_stall_timeout == 5),
            ("subscriber_stall_timeout 0", |c| c.subscriber_stall_timeout == 0),
            ("memory_limit 1048576", |c| c.memory_limit == 1_048_576),
            ("retain_available false", |c| !c.retain_available),
            ("retain_expiry_interval 60", |c| c.retain_expiry_interval == 60),
            ("persistent_client_expiration 14d", |c| c.persistent_client_expiration == Some(Duration::from_secs(14 * 86_400))),
            ("persistent_client_expiration 2h", |c| c.persistent_client_expiration == Some(Duration::from_secs(7200))),
            ("persistent_client_expiration 1w", |c| c.persistent_client_expiration == Some(Duration::from_secs(604_800))),
            ("persistent_client_expiration 1m", |c| c.persistent_client_expiration == Some(Duration::from_secs(30 * 86_400))),
            ("persistent_client_expiration 1y", |c| c.persistent_client_expiration == Some(Duration::from_secs(365 * 86_400))),
            ("persistent_client_expiration 90", |c| c.persistent_client_expiration == Some(Duration::from_secs(90))),
            ("allow_zero_length_clientid false", |c| !c.allow_zero_length_clientid),
            ("auto_id_prefix gw-", |c| c.auto_id_prefix.as_deref() == Some("gw-")),
            ("packet_buffer_size 8192", |c| c.packet_buffer_size == Some(8192)),
            ("retry_interval 20", |c| c.settings[0].option == "retry_interval"),
            ("max_inflight_messages 1", |c| c.max_inflight_messages == 1),
            ("max_inflight_messages -1", |c| c.max_inflight_messages == 0),
            ("max_inflight_messages 65535", |c| c.max_inflight_messages == 0),
            ("max_inflight_bytes 1000", |c| c.max_inflight_bytes == 1000),
            ("max_queued_messages -5", |c| c.max_queued_messages == 0),
            ("max_queued_bytes 4096", |c| c.max_queued_bytes == 4096),
            ("queue_qos0_messages true", |c| c.queue_qos0_messages),
            ("max_packet_size 20", |c| c.max_packet_size == Some(20)),
            ("message_size_limit 268435455", |c| c.message_size_limit == 268_435_455),
            ("max_keepalive 0", |c| c.max_keepalive == 0),
            ("max_keepalive 60 # one minute", |c| c.max_keepalive == 60),
            ("allow_anonymous false", |c| c.allow_anonymous == Some(false)),
            ("password_file /etc/mosquitto/passwd", |c| c.password_file == Some("/etc/mosquitto/passwd".into())),
            ("acl_file /etc/mosquitto/acl", |c| c.acl_file == Some("/etc/mosquitto/acl".into())),
            ("psk_file /etc/psk", |c| c.psk_file == Some("/etc/psk".into())),
            ("per_listener_settings true", |c| c.per_listener_settings),
            ("plugin /usr/lib/x.so\nplugin_opt_key a value", |c| c.plugins[0].options[0].0 == "key" && c.plugins[0].options[0].1 == "a value"),
            ("auth_plugin /usr/lib/x.so\nauth_opt_k v\nauth_plugin_deny_special_chars false", |c| c.plugins[0].options[0].0 == "k" && !c.plugins[0].auth_plugin_deny_special_chars),
            ("global_plugin /usr/lib/y.so", |c| c.plugins[0].global),
            ("plugin_load dynsec /usr/lib/d.so\nlistener 1\nplugin_use dynsec", |c| c.plugins[0].name.as_deref() == Some("dynsec") && c.plugin_use[0].1 == Some(0)),
            ("persistence true", |c| c.persistence),
            ("retained_persistence true", |c| c.persistence),
            ("persistence_location /var/lib/mosquitto/", |c| c.persistence_location == Some("/var/lib/mosquitto/".into())),
            ("persistence_file m.db", |c| c.persistence_file.as_deref() == Some("m.db")),
            ("autosave_interval -3", |c| c.autosave_interval == 0),
            ("autosave_on_changes true", |c| c.autosave_on_changes),
            ("persistence_sync ack", |c| c.persistence_sync_ack),
            ("persistence_sync periodic", |c| !c.persistence_sync_ack),
            ("persistence_sync_interval 0.25", |c| c.persistence_sync_interval == Duration::from_millis(250)),
            ("log_dest stderr", |c| c.log_dest == LogDest::default()),
            ("log_dest stdout\nlog_dest syslog", |c| c.log_dest.stdout && c.log_dest.syslog && !c.log_dest.stderr),
            ("log_dest file /var/log/mosquitto/my log.txt", |c| c.log_dest.file == Some("/var/log/mosquitto/my log.txt".into()) && !c.log_dest.stderr),
            ("log_dest topic\nlog_dest none", |c| c.log_dest == LogDest::none()),
            ("log_dest dlt\nlog_dest android", |c| c.log_dest.dlt && c.log_dest.android),
            ("log_facility 5", |c| c.log_facility == Some(5)),
            ("log_type websockets", |c| c.log_type.websockets && !c.log_type.error),
            ("log_timestamp false", |c| !c.log_timestamp),
            ("log_timestamp_format %Y-%m-%dT%H:%M:%S", |c| c.log_timestamp_format.as_deref() == Some("%Y-%m-%dT%H:%M:%S")),
            ("websockets_log_level 255", |c| c.websockets_log_level == Some(255)),
            ("websockets_headers_size 1024", |c| c.websockets_headers_size == Some(1024)),
            ("listener 8883 ::1", |c| c.listeners[0] == Listener::tcp(8883, Some("::1".into()))),
            ("listener 0 /run/culex.sock", |c| c.listeners[0].unix_socket_path == Some("/run/culex.sock".into()) && c.listeners[0].port == 0),
            ("port 1884", |c| c.port == Some(1884)),
            ("bind_address 127.0.0.1", |c| c.bind_address.as_deref() == Some("127.0.0.1")),
            ("listener 1\nbind_interface eth0", |c| c.listeners[0].bind_interface.as_deref() == Some("eth0")),
            ("listener 1\nsocket_domain ipv6", |c| c.listeners[0].socket_domain == Some(SocketDomain::Ipv6)),
            ("listener 1\nprotocol websockets", |c| c.listeners[0].protocol == Protocol::Websockets),
            ("listener 1\nprotocol http_api", |c| c.listeners[0].protocol == Protocol::HttpApi),
            ("listener 1\nmount_point site/a/", |c| c.listeners[0].mount_point.as_deref() == Some("site/a/")),
            ("listener 1\nmax_connections 9", |c| c.listeners[0].max_connections == Some(9)),
            ("listener 1\nmax_qos 1", |c| c.listeners[0].max_qos == 1),
            ("listener 1\nmaximum_qos 0", |c| c.listeners[0].max_qos == 0),
            ("listener 1\nmax_topic_alias 0", |c| c.listeners[0].max_topic_alias == 0),
            ("listener 1\nmax_topic_alias_broker 5", |c| c.listeners[0].max_topic_alias_broker == 5),
            ("listener 1\naccept_protocol_versions 3, 4", |c| c.listeners[0].accept_protocol_versions == Some(ProtocolVersions { v3: true, v4: true, v5: false })),
            ("listener 1\nuse_username_as_clientid true", |c| c.listeners[0].use_username_as_clientid),
            ("listener 1\nhttp_dir /srv/www", |c| c.listeners[0].http_dir == Some("/srv/www".into())),
            ("listener 1\nwebsockets_origin https://a\nwebsockets_origin https://b", |c| c.listeners[0].websockets_origin == ["https://a", "https://b"]),
            ("listener 1\nenable_proxy_protocol 2", |c| c.listeners[0].enable_proxy_protocol == Some(2)),
            ("listener 1\nproxy_protocol_v2_require_tls true", |c| c.listeners[0].proxy_protocol_v2_require_tls),
            ("listener 1\nlistener_allow_anonymous true", |c| c.listeners[0].listener_allow_anonymous == Some(true)),
            ("listener 1\nlistener_auto_id_prefix l1-", |c| c.listeners[0].listener_auto_id_prefix.as_deref() == Some("l1-")),
            ("listener 1\ncafile /c/ca.pem\ncapath /c/\ncertfile /c/s.pem\nkeyfile /c/s.key\ncrlfile /c/crl.pem\ndhparamfile /c/dh.pem", |c| {
                let t = &c.listeners[0].tls;
                t.cafile == Some("/c/ca.pem".into()) && t.capath == Some("/c/".into()) && t.certfile == Some("/c/s.pem".into())
                    && t.keyfile == Some("/c/s.key".into()) && t.crlfile == Some("/c/crl.pem".into()) && t.dhparamfile == Some("/c/dh.pem".into())
            }),
            ("listener 1\nciphers ECDHE-RSA-AES256-GCM-SHA384:HIGH\nciphers_tls1.3 TLS_AES_256_GCM_SHA384", |c| {
                c.listeners[0].tls.ciphers.as_deref() == Some("ECDHE-RSA-AES256-GCM-SHA384:HIGH") && c.listeners[0].tls.ciphers_tls13.as_deref() == Some("TLS_AES_256_GCM_SHA384")
            }),
            ("listener 1\ndisable_client_cert_date_checks true\nrequire_certificate true\nuse_identity_as_username true\nuse_subject_as_username true", |c| {
                let t = &c.listeners[0].tls;
                t.disable_client_cert_date_checks && t.require_certificate && t.use_identity_as_username && t.use_subject_as_username
            }),
            ("listener 1\ntls_version tlsv1.3", |c| c.listeners[0].tls.tls_version == Some(TlsVersion::V1_3)),
            ("listener 1\ntls_engine pkcs11\ntls_keyform engine\ntls_engine_kpass_sha1 0123456789abcdef0123456789abcdef01234567", |c| {
                let t = &c.listeners[0].tls;
                t.tls_engine.as_deref() == Some("pkcs11") && t.tls_keyform == KeyForm::Engine && t.tls_engine_kpass_sha1.is_some()
            }),
            ("listener 1\npsk_hint gateway", |c| c.listeners[0].tls.psk_hint.as_deref() == Some("gateway")),
            ("connection cloud\naddress broker.example.com:8883 10.0.0.2\ntopic sensors/# out 1", |c| {
                c.bridges[0].name == "cloud" && c.bridges[0].addresses == [
                    BridgeAddress { host: "broker.example.com".into(), port: 8883 },
                    BridgeAddress { host: "10.0.0.2".into(), port: 1883 },
                ]
            }),
            ("connection c\naddresses ::1:1884\ntopic a", |c| c.bridges[0].addresses[0] == BridgeAddress { host: "::1".into(), port: 1884 }),
            ("connection c\naddress h\ntopic # both 2 local/ remote/", |c| c.bridges[0].topics[0] == BridgeTopic {
                pattern: Some("#".into()), direction: Direction::Both, qos: 2, local_prefix: Some("local/".into()), remote_prefix: Some("remote/".into()),
            }),
            ("connection c\naddress h\ntopic \"\" IN 0 a/b c/d", |c| c.bridges[0].topics[0] == BridgeTopic {
                pattern: None, direction: Direction::In, qos: 0, local_prefix: Some("a/b".into()), remote_prefix: Some("c/d".into()),
            }),
            ("connection c\naddress h\ntopic x # out by default", |c| c.bridges[0].topics[0].direction == Direction::Out),
            ("connection c\naddress h\ntopic a/+ out 0 \"\" r/", |c| c.bridges[0].topics[0].local_prefix.is_none() && c.bridges[0].topics[0].remote_prefix.as_deref() == Some("r/")),
        ];
        let mut out: Vec<(String, Check)> =
            cases.into_iter().map(|(t, f)| (t.to_string(), f)).collect();
        let bridge: Vec<(&str, Check)> = vec![
            ("round_robin true", |c| c.bridges[0].round_robin),
            ("cleansession true", |c| c.bridges[0].cleansession),
            ("local_cleansession false", |c| c.bridges[0].local_cleansession == Some(false)),
            ("remote_clientid gw-1", |c| c.bridges[0].remote_clientid.as_deref() == Some("gw-1")),
            ("clientid gw-2", |c| c.bridges[0].remote_clientid.as_deref() == Some("gw-2")),
            ("remote_username u", |c| c.bridges[0].remote_username.as_deref() == Some("u")),
            ("username u2", |c| c.bridges[0].remote_username.as_deref() == Some("u2")),
            ("remote_password p#ss word", |c| c.bridges[0].remote_password.as_deref() == Some("p#ss word")),
            ("password p", |c| c.bridges[0].remote_password.as_deref() == Some("p")),
            ("local_clientid l", |c| c.bridges[0].local_clientid.as_deref() == Some("l")),
            ("local_username lu", |c| c.bridges[0].local_username.as_deref() == Some("lu")),
            ("local_password lp", |c| c.bridges[0].local_password.as_deref() == Some("lp")),
            ("keepalive_interval 30", |c| c.bridges[0].keepalive_interval == 30),
            ("keepalive_interval 2", |c| c.bridges[0].keepalive_interval == 5 && c.warnings().len() == 1),
            ("restart_timeout 10", |c| c.bridges[0].restart_timeout == RestartTimeout::Constant(10)),
            ("restart_timeout 0", |c| c.bridges[0].restart_timeout == RestartTimeout::Constant(1)),
            ("restart_timeout 2 60", |c| c.bridges[0].restart_timeout == RestartTimeout::Backoff { base: 2, cap: 60, stable: None }),
            ("restart_timeout 2 60 300", |c| c.bridges[0].restart_timeout == RestartTimeout::Backoff { base: 2, cap: 60, stable: Some(300) }),
            ("start_type lazy", |c| c.bridges[0].start_type == StartType::Lazy),
            ("start_type once", |c| c.bridges[0].start_type == StartType::Once),
            ("threshold 0", |c| c.bridges[0].threshold == 1),
            ("idle_timeout 120", |c| c.bridges[0].idle_timeout == 120),
            ("notifications false", |c| !c.bridges[0].notifications),
            ("notifications_local_only true", |c| c.bridges[0].notifications_local_only),
            ("notification_topic $SYS/state", |c| c.bridges[0].notification_topic.as_deref() == Some("$SYS/state")),
            ("try_private false", |c| !c.bridges[0].try_private),
            ("bridge_protocol_version mqttv50", |c| c.bridges[0].bridge_protocol_version == BridgeProtocol::Mqtt50),
            ("bridge_attempt_unsubscribe false", |c| !c.bridges[0].bridge_attempt_unsubscribe),
            ("bridge_outgoing_retain false", |c| !c.bridges[0].bridge_outgoing_retain),
            ("bridge_max_packet_size -1", |c| c.bridges[0].bridge_max_packet_size == 0),
            ("bridge_bind_address 10.0.0.9", |c| c.bridges[0].bridge_bind_address.as_deref() == Some("10.0.0.9")),
            ("bridge_max_topic_alias 0", |c| c.bridges[0].bridge_max_topic_alias == 0),
            ("bridge_receive_maximum 100", |c| c.bridges[0].bridge_receive_maximum == Some(100)),
            ("bridge_session_expiry_interval 3600", |c| c.bridges[0].bridge_session_expiry_interval == 3600),
            ("bridge_tcp_keepalive 60 10 3", |c| c.bridges[0].bridge_tcp_keepalive == Some(TcpKeepalive { idle: 60, interval: 10, count: 3 })),
            ("bridge_tcp_user_timeout 5000", |c| c.bridges[0].bridge_tcp_user_timeout == Some(5000)),
            ("bridge_reload_type immediate", |c| c.bridges[0].bridge_reload_type == ReloadType::Immediate),
            ("bridge_cafile /c/ca.pem\nbridge_capath /c\nbridge_certfile /c/c.pem\nbridge_keyfile /c/c.key", |c| {
                let t = &c.bridges[0].tls;
                t.cafile.is_some() && t.capath.is_some() && t.certfile.is_some() && t.keyfile.is_some()
            }),
            ("bridge_tls_use_os_certs true\nbridge_alpn x-amzn-mqtt-ca\nbridge_insecure true\nbridge_require_ocsp true", |c| {
                let t = &c.bridges[0].tls;
                t.tls_use_os_certs && t.alpn.as_deref() == Some("x-amzn-mqtt-ca") && t.insecure && t.require_ocsp
            }),
            ("bridge_tls_version tlsv1.2\nbridge_ciphers HIGH\nbridge_ciphers_tls1.3 TLS_AES_128_GCM_SHA256", |c| {
                let t = &c.bridges[0].tls;
                t.tls_version == Some(TlsVersion::V1_2) && t.ciphers.as_deref() == Some("HIGH") && t.ciphers_tls13.is_some()
            }),
            ("bridge_identity gw\nbridge_psk 0a1b2c", |c| c.bridges[0].tls.identity.as_deref() == Some("gw") && c.bridges[0].tls.psk.as_deref() == Some("0a1b2c")),
            ("bridge_outbox_messages 5000\nbridge_outbox_bytes 1000000\nbridge_outbox_full drop_oldest", |c| {
                let b = &c.bridges[0];
                b.outbox_messages == Some(5000) && b.outbox_bytes == Some(1_000_000) && b.outbox_drop_oldest
            }),
            ("bridge_outbox_max_age 3600\nbridge_latest_only state/#\nbridge_latest_only fw/+/version\nbridge_replay_rate 50", |c| {
                let b = &c.bridges[0];
                b.outbox_max_age == Some(3600) && b.latest_only == ["state/#", "fw/+/version"] && b.replay_rate == 50
            }),
            ("bridge_outbox_max_age 0", |c| c.bridges[0].outbox_max_age.is_none()),
            ("bridge_preset aws-iot", |c| c.bridges[0].preset == Some(BridgePreset::AwsIot) && !c.bridges[0].try_private),
            ("remote_clientid d\nbridge_preset azure-iot-hub\nbridge_azure_sas_key c2VjcmV0\nbridge_azure_sas_ttl 60", |c| {
                let b = &c.bridges[0];
                b.preset == Some(BridgePreset::AzureIotHub) && b.azure_sas_key.as_deref() == Some("c2VjcmV0") && b.azure_sas_ttl == 60
            }),
        ];
        out.extend(bridge.into_iter().map(|(t, f)| (format!("{BRIDGE}{t}"), f)));
        out
    }

    #[test]
    fn valid_values_parse_into_typed_fields() {
        for (text, check) in valid_cases() {
            let c = parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(check(&c), "{text:?} parsed into the wrong value");
        }
    }

    #[test]
    fn every_option_has_a_valid_case() {
        let cases = valid_cases();
        for def in OPTIONS {
            let names = std::iter::once(def.name).chain(def.aliases.iter().copied());
            // include_dir needs directories: see the lexer's tests and
            // include_dir_in_an_included_file_is_skipped_with_a_notice.
            for name in names.filter(|n| !n.ends_with('*') && *n != "include_dir") {
                let covered = cases
                    .iter()
                    .any(|(text, _)| text.lines().any(|l| l.split(' ').next() == Some(name)));
                assert!(covered, "no valid case for '{name}'");
            }
        }
    }

    #[test]
    fn the_table_has_no_duplicate_names_and_every_entry_is_documented() {
        let mut seen = std::collections::HashSet::new();
        for def in OPTIONS {
            assert!(!def.doc.is_empty(), "{}", def.name);
            for name in std::iter::once(def.name).chain(def.aliases.iter().copied()) {
                assert!(seen.insert(name), "'{name}' is in the table twice");
            }
        }
    }

    /// bridge_preset sets what the service needs, except what the block sets itself,
    /// before or after the preset line.
    #[test]
    fn a_bridge_preset_fills_what_the_block_leaves_unset() {
        let aws = parse(
            "connection aws\ntry_private true\naddress a.iot.eu-west-1.amazonaws.com:443\n\
             bridge_preset aws-iot\ntopic t/# out 2\nbridge_outgoing_retain true\n",
        )
        .unwrap();
        let b = &aws.bridges[0];
        assert_eq!(b.bridge_protocol_version, BridgeProtocol::Mqtt311);
        assert!(
            b.try_private && b.bridge_outgoing_retain,
            "explicit options win"
        );
        assert!(!b.notifications);
        assert_eq!(b.tls.alpn.as_deref(), Some("x-amzn-mqtt-ca"));
        assert_eq!(b.topics[0].qos, 1, "AWS IoT's maximum QoS is 1");
        let aws_8883 = parse(
            "connection aws\naddress a.iot.eu-west-1.amazonaws.com:8883\nbridge_preset aws-iot\ntopic t/# out 1\n",
        )
        .unwrap();
        assert_eq!(aws_8883.bridges[0].tls.alpn, None, "ALPN only on port 443");

        let azure = parse(
            "connection az\naddress hub7.azure-devices.net:8883\nremote_clientid gw7\n\
             bridge_preset azure-iot-hub\nbridge_azure_sas_key c2VjcmV0\nbridge_azure_sas_ttl 600\n\
             topic t/# out 1 \"\" devices/gw7/messages/events/\n",
        )
        .unwrap();
        let b = &azure.bridges[0];
        assert_eq!(
            b.remote_username.as_deref(),
            Some("hub7.azure-devices.net/gw7/?api-version=2021-04-12")
        );
        assert!(b.tls.tls_use_os_certs && !b.try_private);
        assert_eq!(
            (b.azure_sas_key.as_deref(), b.azure_sas_ttl),
            (Some("c2VjcmV0"), 600)
        );

        for (text, why) in [
            (
                "connection az\naddress h:8883\nbridge_preset azure-iot-hub\ntopic t out 1\n",
                "azure-iot-hub needs remote_clientid",
            ),
            (
                "connection az\naddress h:8883\nremote_clientid d\nbridge_azure_sas_key c2VjcmV0\ntopic t out 1\n",
                "bridge_azure_sas_key needs remote_clientid (the device id) and remote_username",
            ),
            ("connection az\naddress h\ntopic t\nbridge_preset gcp", "'gcp' is not aws-iot or azure-iot-hub"),
            ("connection az\naddress h\ntopic t\nbridge_azure_sas_key !!", "expected the device's base64 key"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn bad_values_are_errors_with_their_line() {
        let cases: &[(&str, &str)] = &[
            ("allow_anonymous yes", "invalid value for 'allow_anonymous': 'yes' is not true or false"),
            ("allow_anonymous", "'allow_anonymous' needs a value"),
            ("max_keepalive 70000", "invalid value for 'max_keepalive': 70000 is not between 0 and 65535"),
            ("max_inflight_messages 70000", "invalid value for 'max_inflight_messages': at most 65535"),
            ("max_packet_size 19", "invalid value for 'max_packet_size': 19 is not between 20 and 4294967295"),
            ("message_size_limit 268435456", "invalid value for 'message_size_limit': 268435456 is not between 0 and 268435455"),
            ("sys_interval 1o", "invalid value for 'sys_interval': '1o' is not a number"),
            ("persistence_sync always", "invalid value for 'persistence_sync': 'always' is not periodic or ack"),
            ("persistence_sync_interval 0", "invalid value for 'persistence_sync_interval': '0' is not a number of seconds in (0, 3600]"),
            ("listener", "'listener' needs a value"),
            ("listener abc", "invalid value for 'listener': 'abc' is not a number; expected 'listener PORT [ADDRESS]' or 'listener 0 SOCKET_PATH'"),
            ("listener 70000", "invalid value for 'listener': port 70000 is not between 1 and 65535"),
            ("listener 0", "invalid value for 'listener': a listener with port 0 needs a Unix socket path"),
            ("listener 1 a b", "invalid value for 'listener': expected 'listener PORT [ADDRESS]' or 'listener 0 SOCKET_PATH'"),
            ("port 0", "invalid value for 'port': port 0 is not between 1 and 65535"),
            ("port 1 2", "invalid value for 'port': expected one value, found '2' after it"),
            ("log_type chatty", "invalid value for 'log_type': unknown log type 'chatty'"),
            ("log_dest paper", "invalid value for 'log_dest': 'paper' is not stdout, stderr, syslog, topic, file PATH, dlt, android or none"),
            ("log_dest file", "invalid value for 'log_dest': 'log_dest file' needs a path"),
            ("log_dest file /a\nlog_dest file /b", "'log_dest file' is set twice here (Mosquitto refuses that too); keep one"),
            ("log_facility 8", "invalid value for 'log_facility': 8 is not between 0 and 7"),
            ("pid_file /a\npid_file /b", "'pid_file' is set twice here (Mosquitto refuses that too); keep one"),
            ("persistent_client_expiration 0d", "invalid value for 'persistent_client_expiration': '0d' is not a duration: a positive number of seconds, or of h, d, w, m or y (e.g. 14d)"),
            ("persistent_client_expiration 3x", "invalid value for 'persistent_client_expiration': '3x' is not a duration: a positive number of seconds, or of h, d, w, m or y (e.g. 14d)"),
            ("persistent_client_expiration d", "invalid value for 'persistent_client_expiration': 'd' is not a duration: a positive number of seconds, or of h, d, w, m or y (e.g. 14d)"),
            ("listener 1\nprotocol mqttsn", "invalid value for 'protocol': 'mqttsn' is not mqtt, websockets or http_api"),
            ("listener 1\nmax_qos 3", "invalid value for 'max_qos': 3 is not between 0 and 2"),
            ("listener 1\nsocket_domain ipv5", "invalid value for 'socket_domain': 'ipv5' is not ipv4 or ipv6"),
            ("listener 1\nmount_point a/#", "invalid value for 'mount_point': 'a/#' must be a topic without + or #"),
            ("listener 1\naccept_protocol_versions 4,6", "invalid value for 'accept_protocol_versions': '6' is not 3, 4 or 5"),
            ("listener 1\nenable_proxy_protocol 3", "invalid value for 'enable_proxy_protocol': 3 is not between 1 and 2"),
            ("listener 1\ntls_version sslv3", "invalid value for 'tls_version': 'sslv3' is not tlsv1.3, tlsv1.2 or tlsv1.1"),
            ("listener 1\ncertfile /a\ncertfile /b", "'certfile' is set twice here (Mosquitto refuses that too); keep one"),
            ("listener 1\npsk_hint h\ncafile /ca", "invalid value for 'cafile': a listener uses certificates or PSK (psk_hint), not both"),
            ("listener 1\ntls_engine_kpass_sha1 abc", "invalid value for 'tls_engine_kpass_sha1': expected 40 hexadecimal digits"),
            ("per_listener_settings maybe", "invalid value for 'per_listener_settings': 'maybe' is not true or false"),
            ("plugin_opt_x 1", "invalid value for 'plugin_opt_x': it must follow the 'plugin' line it configures"),
            ("plugin /p.so\nplugin_opt_x", "'plugin_opt_x' needs a value"),
            ("connection", "'connection' needs a value"),
            ("connection a\naddress h\ntopic t\nconnection a", "invalid value for 'connection': a bridge named 'a' already exists"),
            ("connection a\ntopic t", "invalid value for 'connection': bridge 'a' has no 'address'"),
            ("connection a\naddress h", "invalid value for 'connection': bridge 'a' has no 'topic'"),
            ("connection a\naddress h:0", "invalid value for 'address': port 0 is not between 1 and 65535"),
            ("connection a\naddress h\naddress i", "'address' is set twice here (Mosquitto refuses that too); keep one"),
            ("connection a\naddress h\ntopic t sideways", "invalid value for 'topic': direction 'sideways' is not in, out or both"),
            ("connection a\naddress h\ntopic t in 3", "invalid value for 'topic': QoS '3' is not 0, 1 or 2"),
            ("connection a\naddress h\ntopic \"\" in 0 a/", "invalid value for 'topic': an empty pattern (\"\") needs both a local and a remote prefix: the topic is then the prefix itself"),
            ("connection a\naddress h\ntopic t in 0 a/+ b/", "invalid value for 'topic': the local prefix 'a/+' must not contain + or #"),
            ("connection a\naddress h\ntopic # in 0 a b/", "invalid value for 'topic': 'a#' is not a valid topic filter (a prefix usually ends with '/')"),
            ("connection a\naddress h\ntopic a/#/b", "invalid value for 'topic': 'a/#/b' is not a valid topic filter (a prefix usually ends with '/')"),
            ("connection a\naddress h\ntopic t in 0 a/ b/ c", "invalid value for 'topic': 'c' after the remote prefix; expected 'topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]'"),
            ("connection a\naddress h\ntopic t\nrestart_timeout 30 10", "invalid value for 'restart_timeout': the cap (10) is lower than the base (30)"),
            ("connection a\naddress h\ntopic t\nrestart_timeout 1 2 3 4", "invalid value for 'restart_timeout': expected 'restart_timeout SECONDS' or 'restart_timeout BASE CAP [STABLE]'"),
            ("connection a\naddress h\ntopic t\nstart_type manual", "invalid value for 'start_type': 'manual' is not supported by Mosquitto either"),
            ("connection a\naddress h\ntopic t\nkeepalive_interval 65536", "invalid value for 'keepalive_interval': 65536 is more than 65535"),
            ("connection a\naddress h\ntopic t\nbridge_receive_maximum 0", "invalid value for 'bridge_receive_maximum': 0 is not between 1 and 65535"),
            ("connection a\naddress h\ntopic t\nbridge_tcp_keepalive 60 10", "invalid value for 'bridge_tcp_keepalive': expected 'bridge_tcp_keepalive IDLE INTERVAL COUNT'"),
            ("connection a\naddress h\ntopic t\nbridge_tcp_keepalive 60 0 3", "invalid value for 'bridge_tcp_keepalive': '0' is not a positive number"),
            ("connection a\naddress h\ntopic t\nbridge_protocol_version mqttv5", "invalid value for 'bridge_protocol_version': 'mqttv5' is not mqttv50, mqttv311 or mqttv31"),
            ("connection a\naddress h\ntopic t\nbridge_psk xyz", "invalid value for 'bridge_psk': expected a hexadecimal key"),
            ("connection a\naddress h\ntopic t\nbridge_cafile /ca\nbridge_identity i", "invalid value for 'bridge_identity': a bridge uses certificates or PSK, not both"),
            ("connection a\naddress h\ntopic t\nbridge_psk 00", "invalid value for 'connection': bridge 'a' has 'bridge_psk' and 'bridge_identity' go together"),
            ("plugin_use x", "invalid value for 'plugin_use': no 'plugin_load x PATH' before it"),
        ];
        for (text, expected) in cases {
            let e = parse(text).expect_err(text);
            let line = e.line;
            assert_eq!(e.kind_text(), *expected, "{text:?}");
            assert!(
                line >= 1 && line <= text.lines().count(),
                "{text:?}: line {line}"
            );
        }
    }

    impl ConfigError {
        /// The message without its `file:line: ` prefix.
        fn kind_text(&self) -> String {
            let full = self.to_string();
            let prefix = format!("{}:{}: ", self.file.display(), self.line);
            full.strip_prefix(&prefix).unwrap_or(&full).to_string()
        }
    }

    #[test]
    fn options_in_the_wrong_place_say_where_they_belong() {
        let e = parse("listener 1883\naddress 10.0.0.1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:2: 'address' is a bridge option: put it after a 'connection NAME' line"
        );
        let e = parse("mount_point a/\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:1: 'mount_point' is a listener option: put it after a 'listener PORT' line"
        );
        // As Mosquitto, a listener option applies to the latest listener even after a
        // bridge, and general options are global wherever they are.
        let c = parse("listener 1\nconnection b\naddress h\ntopic t\nmax_connections 4\nmax_queued_messages 5\n").unwrap();
        assert_eq!(c.listeners[0].max_connections, Some(4));
        assert_eq!(c.max_queued_messages, 5);
        // Listener options before any listener configure the default listener.
        let c = parse("protocol websockets\nlistener 1\n").unwrap();
        assert_eq!(c.default_listener.protocol, Protocol::Websockets);
        assert_eq!(c.listeners[0].protocol, Protocol::Mqtt);
        assert_eq!(c.effective_listeners().len(), 2);
    }

    #[test]
    fn per_listener_settings_moves_security_options_to_the_listener() {
        let c = parse(
            "per_listener_settings true\nallow_anonymous true\nlistener 1\npassword_file /p1\nallow_anonymous false\nlistener 2\nacl_file /a2\n",
        )
        .unwrap();
        assert_eq!(c.allow_anonymous, None);
        assert_eq!(c.default_listener.security.allow_anonymous, Some(true));
        assert_eq!(
            c.listeners[0].security,
            Security {
                allow_anonymous: Some(false),
                password_file: Some("/p1".into()),
                ..Security::default()
            }
        );
        assert_eq!(c.listeners[1].security.acl_file, Some("/a2".into()));
        assert_eq!(c.password_file, None);
        // Without it, the same lines are global.
        let c = parse("listener 1\npassword_file /p\nallow_anonymous false\n").unwrap();
        assert_eq!(c.password_file, Some("/p".into()));
        assert_eq!(c.listeners[0].security, Security::default());
        // It must come first, and once true it stays true.
        let e = parse("allow_anonymous true\nper_listener_settings true\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:2: invalid value for 'per_listener_settings': must come before any security option (allow_anonymous, password_file, acl_file, ...)"
        );
        let c = parse("per_listener_settings true\nper_listener_settings false\n").unwrap();
        assert!(c.per_listener_settings);
        assert!(
            c.unsupported().is_empty(),
            "per_listener_settings is supported"
        );
    }

    fn texts(errors: Vec<ConfigError>) -> Vec<String> {
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn what_the_broker_implements_passes_the_support_check() {
        let c = parse(
            "listener 1883 0.0.0.0\nmax_connections 100\nprotocol mqtt\nallow_anonymous true\n\
             allow_zero_length_clientid false\nmax_inflight_messages 10\nmax_queued_messages 100\n\
             max_queued_bytes 0\nmax_keepalive 120\nmessage_size_limit 1000\nsys_interval 5\n\
             log_type all\nlog_dest stderr\nconnection_messages true\npersistence false\n\
             max_qos 2\nauto_id_prefix auto-\nqueue_qos0_messages false\nper_listener_settings false\n\
             listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\ncapath /etc/ssl/certs\n\
             crlfile /crl.pem\nrequire_certificate true\ntls_version tlsv1.3\n\
             connection cloud\naddresses a.example:8883 b.example\nround_robin true\n\
             topic sensors/# out 1 gw/ site/\ntopic cmd/# in 2\ntopic \"\" both 0 a/b c/d\n\
             cleansession false\nlocal_cleansession false\nremote_clientid gw\n\
             remote_username u\nremote_password p\nlocal_clientid lgw\nkeepalive_interval 30\n\
             restart_timeout 5 60\nstart_type lazy\nthreshold 5\nidle_timeout 30\nnotifications true\n\
             notifications_local_only false\nnotification_topic gw/state\ntry_private false\n\
             bridge_protocol_version mqttv50\nbridge_attempt_unsubscribe false\n\
             bridge_outgoing_retain false\nbridge_max_packet_size 10000\n\
             bridge_receive_maximum 10\nbridge_session_expiry_interval 60\n\
             bridge_cafile /ca.pem\nbridge_capath /etc/ssl/certs\nbridge_tls_use_os_certs true\n\
             bridge_certfile /c.pem\nbridge_keyfile /k.pem\nbridge_alpn x-amzn-mqtt-ca\n\
             bridge_insecure false\nbridge_tls_version tlsv1.2\nbridge_bind_address 10.0.0.1\n\
             bridge_tcp_keepalive 60 10 3\nbridge_tcp_user_timeout 20000\n\
             bridge_outbox_messages 100000\nbridge_outbox_bytes 0\nbridge_outbox_full drop_oldest\n",
        )
        .unwrap();
        assert_eq!(texts(c.unsupported()), Vec::<String>::new());
        assert_eq!(texts(c.warnings()), Vec::<String>::new());
    }

    #[test]
    fn unsupported_options_and_values_are_listed_with_file_and_line() {
        let c = parse(
            "persistence true\npersistence_location /var/lib/mosquitto/\nmemory_limit 100\n\
             listener 8883\nciphers HIGH\nprotocol http_api\n\
             connection cloud\naddress h\ntopic # out\nbridge_ciphers HIGH\n",
        )
        .unwrap();
        assert_eq!(
            texts(c.unsupported()),
            vec![
                "t.conf:3: 'memory_limit 100' is a Mosquitto option culex does not support yet",
                "t.conf:5: 'ciphers' is a Mosquitto option culex refuses: these are OpenSSL cipher strings; rustls offers only its own safe suites (TLS 1.3 and ECDHE with AES-GCM or ChaCha20 for TLS 1.2), always on",
                "t.conf:10: 'bridge_ciphers' is a Mosquitto option culex refuses: these are OpenSSL cipher strings; rustls offers only its own safe suites (TLS 1.3 and ECDHE with AES-GCM or ChaCha20 for TLS 1.2), always on",
            ]
        );
        // Persistence is implemented: lines 1 and 2 are neither.
        assert_eq!(texts(c.warnings()), Vec::<String>::new());
    }

    #[test]
    fn harmless_options_are_warnings() {
        let c = parse("user mosquitto\npid_file /run/m.pid\nretry_interval 20\nallow_duplicate_messages false\nallow_duplicate_messages true\n").unwrap();
        assert!(c.unsupported().is_empty());
        assert_eq!(
            texts(c.warnings()),
            vec![
                "t.conf:1: 'user' is ignored: culex does not switch users; start it as the user it should run as (systemd User=)",
                "t.conf:3: 'retry_interval' is ignored: removed in Mosquitto 2.0, which also ignores it",
                "t.conf:5: 'allow_duplicate_messages' is ignored: culex delivers one copy per client for overlapping subscriptions [MQTT-3.3.5-1]",
            ]
        );
    }

    #[test]
    fn plugins_are_refused_by_name() {
        let c = parse("plugin /usr/lib/mosquitto_auth_by_ldap.so\nplugin_opt_config_file /d.json\nauth_plugin /x/auth.so\n").unwrap();
        assert_eq!(
            texts(c.unsupported()),
            vec![
                "t.conf:1: plugin '/usr/lib/mosquitto_auth_by_ldap.so' refused: culex does not load Mosquitto plugins (it reads only Mosquitto's dynamic-security plugin and 2.1's password-file and acl-file plugins, as built-in handling)",
                "t.conf:3: plugin '/x/auth.so' refused: culex does not load Mosquitto plugins (it reads only Mosquitto's dynamic-security plugin and 2.1's password-file and acl-file plugins, as built-in handling)",
            ]
        );
    }

    #[test]
    fn dynamic_security_plugin_is_read_as_built_in_dynsec() {
        // As Mosquitto's own tests write it, and 2.1's global_plugin.
        for line in [
            "plugin ../../plugins/dynamic-security/mosquitto_dynamic_security.so",
            "global_plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        ] {
            let c = parse(&format!("listener 1883\n{line}\nplugin_opt_config_file /var/lib/mosquitto/dynamic-security.json\n")).unwrap();
            assert_eq!(
                c.dynsec_file,
                Some("/var/lib/mosquitto/dynamic-security.json".into())
            );
            assert_eq!(texts(c.unsupported()), Vec::<String>::new());
            assert_eq!(texts(c.warnings()).len(), 1);
            assert!(texts(c.warnings())[0].contains(
                "is read as 'dynamic security from /var/lib/mosquitto/dynamic-security.json'"
            ));
        }
        let e = parse("plugin /p/mosquitto_dynamic_security.so\n").unwrap_err();
        assert_eq!(e.to_string(), "t.conf:1: invalid value for 'plugin': '/p/mosquitto_dynamic_security.so' needs a 'plugin_opt_config_file PATH' line");
        let e = parse("plugin /p/mosquitto_dynamic_security.so\nplugin_opt_config_file /a\nplugin /q/mosquitto_dynamic_security.so\nplugin_opt_config_file /b\n").unwrap_err();
        assert!(e.to_string().contains("can only be loaded once"), "{e}");
        let e = parse("per_listener_settings true\nlistener 1\nplugin /p/mosquitto_dynamic_security.so\nplugin_opt_config_file /a\n").unwrap_err();
        assert!(e.to_string().contains("for the whole broker"), "{e}");
    }

    #[test]
    fn mosquitto_2_1_password_and_acl_plugins_map_onto_the_built_in_options() {
        let c = parse(
            "listener 1883\nglobal_plugin /usr/lib/mosquitto_password_file.so\nplugin_opt_password_file /etc/mosquitto/passwd\n\
             plugin /usr/lib/x86_64-linux-gnu/mosquitto_acl_file.so\nplugin_opt_acl_file /etc/mosquitto/acl\n",
        )
        .unwrap();
        assert_eq!(c.password_file, Some("/etc/mosquitto/passwd".into()));
        assert_eq!(c.acl_file, Some("/etc/mosquitto/acl".into()));
        assert_eq!(
            texts(c.warnings()),
            vec![
                "t.conf:2: plugin '/usr/lib/mosquitto_password_file.so' is read as 'password_file /etc/mosquitto/passwd' (culex's built-in handling)",
                "t.conf:4: plugin '/usr/lib/x86_64-linux-gnu/mosquitto_acl_file.so' is read as 'acl_file /etc/mosquitto/acl' (culex's built-in handling)",
            ]
        );
        // culex checks passwords and ACLs itself: the mapped options are supported.
        assert_eq!(texts(c.unsupported()), Vec::<String>::new());
        // Per listener.
        let c = parse("per_listener_settings true\nlistener 1\nplugin C:\\m\\mosquitto_acl_file.dll\nplugin_opt_acl_file /a\n").unwrap();
        assert_eq!(c.listeners[0].security.acl_file, Some("/a".into()));
        // Without its option, or with the option also given directly: errors.
        let e = parse("plugin /l/mosquitto_password_file.so\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:1: invalid value for 'plugin': '/l/mosquitto_password_file.so' needs a 'plugin_opt_password_file PATH' line"
        );
        let e = parse(
            "password_file /p\nplugin /l/mosquitto_password_file.so\nplugin_opt_password_file /q\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf:3: 'password_file' is set twice here (Mosquitto refuses that too); keep one"
        );
    }

    #[test]
    fn did_you_mean_covers_aliases_and_stays_quiet_for_strangers() {
        for (typo, suggestion) in [
            ("alow_anonymous", Some("allow_anonymous")),
            ("listner", Some("listener")),
            ("bridge_cafle", Some("bridge_cafile")),
            ("maximum_qso", Some("maximum_qos")),
            ("hostname", None),
        ] {
            assert_eq!(suggest(typo).as_deref(), suggestion, "{typo}");
        }
    }

    #[test]
    fn include_dir_in_an_included_file_is_skipped_with_a_notice() {
        use super::super::lexer::tests::MemIncludes;
        let mut inc = MemIncludes::default();
        inc.0.insert(
            "/d".into(),
            vec![(
                "/d/a.conf".into(),
                "include_dir /e\nsys_interval 2\n".into(),
            )],
        );
        let c = Config::parse_with("include_dir /d\n", Path::new("m.conf"), &inc).unwrap();
        assert_eq!(c.sys_interval, 2);
        assert_eq!(
            texts(c.warnings()),
            vec!["/d/a.conf:1: 'include_dir /e' in an included file is skipped: Mosquitto reads include_dir in the main file only"]
        );
        // Errors in included files name the included file.
        let mut inc = MemIncludes::default();
        inc.0.insert(
            "/d".into(),
            vec![("/d/b.conf".into(), "\nmax_keepalive x\n".into())],
        );
        let e = Config::parse_with("include_dir /d\n", Path::new("m.conf"), &inc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/d/b.conf:2: invalid value for 'max_keepalive': 'x' is not a number"
        );
    }
}
