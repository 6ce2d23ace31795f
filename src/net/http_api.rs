//! `protocol http_api` listeners (Mosquitto 2.1): a small HTTP server on the loop's own
//! connections. The request head is read and bounded by the WebSocket listener's code
//! ([`websocket::parse_request`], `websockets_headers_size`), a client that does not
//! finish it is closed by the broker's CONNECT timeout like any silent socket, and the
//! answer goes out through the same sender, followed by a close. This file decides what
//! a request gets and writes the bodies; it reads no socket.
//!
//! The endpoints, as Mosquitto 2.1's `src/http_api.c` serves them:
//! - `GET /api/v1/version`: the version, as text;
//! - `GET /api/v1/listeners`: `{"listeners":[{"port":1883,"protocol":"mqtt","tls":false,
//!   "mtls":false,"allow_anonymous":true}, ...]}` (a Unix socket listener has `"path"`
//!   instead of `"port"`; protocols `mqtt`, `websockets`, `httpapi`), one entry per
//!   `listener` line;
//! - `GET /api/v1/systree`: an object of every numeric `$SYS` topic and its value, with
//!   `$SYS/broker/uptime` in seconds;
//! - any other `/api/...` path: 404; other paths: the files of `http_dir` (404 without);
//! - a method other than GET: 405.
//!
//! Mosquitto answers with `Access-Control-Allow-Origin: *` and closes; so does culex.
//! Its `check_access` asks for HTTP basic credentials (RFC 7617) checked like a CONNECT's
//! username and password on that listener, so with `allow_anonymous false` a request
//! needs a user of the `password_file`; culex does the same (401 with
//! `WWW-Authenticate`). Mosquitto's man page says the listener has no authentication;
//! its code has this one.
//!
//! Beyond Mosquitto: `GET /metrics`, the Prometheus text exposition format (version
//! 0.0.4), see [`metrics_text`] and docs/METRICS.md.

use super::websocket::{self, Status};
use crate::bridge::Health;
use crate::broker::{DropCause, Metrics};
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::Path;

/// What an http_api request asks for, kept from its head until the loop answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub target: String,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
}

/// The endpoints, by path (query and fragment ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Version,
    Listeners,
    Systree,
    Metrics,
    /// Another `/api/` path: 404.
    UnknownApi,
    /// A file of `http_dir`.
    File,
}

pub fn route(target: &str) -> Endpoint {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match path {
        "/api/v1/version" => Endpoint::Version,
        "/api/v1/listeners" => Endpoint::Listeners,
        "/api/v1/systree" => Endpoint::Systree,
        "/metrics" => Endpoint::Metrics,
        // Mosquitto compares the prefix without regard to case.
        // `get`, not `[..5]`: byte 5 may fall inside a character.
        p if p.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("/api/")) => Endpoint::UnknownApi,
        _ => Endpoint::File,
    }
}

/// The user name and password of a `Basic` `Authorization` value (RFC 7617): `None` for
/// another scheme or one that does not decode.
pub fn basic_credentials(authorization: &str) -> Option<(String, Vec<u8>)> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// A whole response that ends the connection.
pub fn response(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\nConnection: close\r\n",
        body.len()
    );
    if code == 401 {
        r.push_str("WWW-Authenticate: Basic realm=\"culex API\", charset=\"UTF-8\"\r\n");
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Mosquitto's bodies for its errors.
pub fn error(code: u16) -> Vec<u8> {
    let (reason, body) = match code {
        401 => ("Unauthorized", "Not authorised\n"),
        404 => ("Not Found", "Not found.\n"),
        405 => ("Method Not Allowed", "Invalid HTTP Method\n"),
        _ => ("Internal Server Error", "Internal server error.\n"),
    };
    response(code, reason, "text/plain; charset=utf-8", body.as_bytes())
}

/// A file of `http_dir`, or the error to answer instead (404 without `http_dir`).
pub fn file(http_dir: Option<&Path>, target: &str) -> Vec<u8> {
    let Some(dir) = http_dir else {
        return error(404);
    };
    match websocket::file_path(dir, target).and_then(|path| websocket::file_response(&path)) {
        Ok(r) => r,
        Err(Status::NotFound) => error(404),
        Err(status) => status.response(),
    }
}

// ---- JSON ---------------------------------------------------------------------------

/// `s` as a JSON string (RFC 8259 section 7): quotes, backslash and the control
/// characters escaped, everything else as it is (the text is UTF-8 already).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One listener as `/api/v1/listeners` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    /// Its `listener` line (several sockets may share one: IPv4 and IPv6).
    pub index: usize,
    /// The port bound, or the Unix socket's path.
    pub port: u16,
    pub path: Option<String>,
    /// Mosquitto's names: `mqtt`, `websockets`, `httpapi`.
    pub protocol: &'static str,
    pub tls: bool,
    pub mtls: bool,
    pub allow_anonymous: bool,
    /// The socket's address (`127.0.0.1:1883`, `[::]:1883`, a path), for labels.
    pub address: String,
    pub connections: usize,
}

/// `/api/v1/listeners`: one entry per `listener` line.
pub fn listeners_json(listeners: &[ListenerView]) -> String {
    let mut out = String::from("{\"listeners\":[");
    let mut seen = Vec::new();
    for l in listeners {
        if seen.contains(&l.index) {
            continue;
        }
        if !seen.is_empty() {
            out.push(',');
        }
        seen.push(l.index);
        out.push_str("\n\t{");
        match &l.path {
            Some(path) => {
                let _ = write!(out, "\"path\":{}", json_string(path));
            }
            None => {
                let _ = write!(out, "\"port\":{}", l.port);
            }
        }
        let _ = write!(
            out,
            ",\"protocol\":{},\"tls\":{},\"mtls\":{},\"allow_anonymous\":{}}}",
            json_string(l.protocol),
            l.tls,
            l.mtls,
            l.allow_anonymous
        );
    }
    out.push_str("\n]}\n");
    out
}

/// `/api/v1/systree`: the `$SYS` values that are whole numbers, and the uptime in
/// seconds (its $SYS text is "N seconds"), as Mosquitto's JSON numbers.
pub fn systree_json(values: &[(&str, String)], uptime_seconds: u64) -> String {
    let mut out = String::from("{");
    for (topic, value) in values {
        if *topic == "$SYS/broker/uptime" || value.parse::<i64>().is_err() {
            continue;
        }
        let _ = write!(out, "\n\t{}:{},", json_string(topic), value);
    }
    let _ = write!(
        out,
        "\n\t{}:{}\n}}\n",
        json_string("$SYS/broker/uptime"),
        uptime_seconds
    );
    out
}

// ---- Prometheus ---------------------------------------------------------------------

/// The Content-Type of the text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's own figures, from `/proc/self` (none elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub threads: u64,
}

impl ProcessStats {
    /// Reads `/proc/self/stat`, `/proc/self/status`, `/proc/self/fd` and
    /// `/proc/self/limits`; `None` without procfs.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let mut p = ProcessStats::from_proc(&stat, &status)?;
        p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_open_files(&l));
        Some(p)
    }

    /// From the texts of `/proc/self/stat` and `/proc/self/status` (proc(5)). CPU times
    /// are in clock ticks of USER_HZ, which Linux fixes at 100 for user space on every
    /// architecture.
    fn from_proc(stat: &str, status: &str) -> Option<ProcessStats> {
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let kib = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(ProcessStats {
            resident_bytes: kib("VmRSS:").unwrap_or(0) * 1024,
            virtual_bytes: kib("VmSize:").unwrap_or(0) * 1024,
            cpu_seconds: ticks as f64 / 100.0,
            open_fds: 0,
            max_fds: None,
            threads: kib("Threads:").unwrap_or(1),
        })
    }
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Everything `/metrics` shows, gathered by the loop at the request.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub broker: Metrics,
    pub listeners: Vec<ListenerView>,
    pub bridges: Vec<Health>,
    pub process: Option<ProcessStats>,
    /// The wall clock (Unix seconds) now, for the process's start time.
    pub unix_time: u64,
}

/// Writes metric families in the text format: HELP and TYPE once, then the samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {kind}\n",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One broker-wide family with one unlabelled sample: name, type, help, and its value.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Metrics) -> u64,
);

/// A table: the broker-wide families of one sample each, in the order they are written.
const BROKER_FAMILIES: &[Family] = &[
    (
        "culex_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        |m| m.uptime_seconds,
    ),
    (
        "culex_clients_connected",
        "gauge",
        "Clients connected now.",
        |m| m.clients_connected,
    ),
    (
        "culex_clients_maximum",
        "gauge",
        "The most clients connected at once since start.",
        |m| m.clients_maximum,
    ),
    (
        "culex_clients_expired_total",
        "counter",
        "Sessions ended by their expiry.",
        |m| m.clients_expired,
    ),
    (
        "culex_sessions",
        "gauge",
        "Sessions, connected or not (bridges' local sessions included).",
        |m| m.sessions,
    ),
    (
        "culex_subscriptions",
        "gauge",
        "Subscriptions, shared ones included.",
        |m| m.subscriptions,
    ),
    (
        "culex_shared_subscriptions",
        "gauge",
        "$share/ subscription groups.",
        |m| m.shared_subscriptions,
    ),
    (
        "culex_retained_messages",
        "gauge",
        "Retained messages ($SYS ones included).",
        |m| m.retained_messages,
    ),
    (
        "culex_retained_refused_total",
        "counter",
        "Retained messages kept out by max_retained_messages or max_retained_bytes.",
        |m| m.retained_refused,
    ),
    (
        "culex_packets_received_total",
        "counter",
        "MQTT control packets received, of any type.",
        |m| m.packets_received,
    ),
    (
        "culex_packets_sent_total",
        "counter",
        "MQTT control packets sent, of any type.",
        |m| m.packets_sent,
    ),
    (
        "culex_received_bytes_total",
        "counter",
        "Bytes received from clients.",
        |m| m.bytes_received,
    ),
    (
        "culex_sent_bytes_total",
        "counter",
        "Bytes sent to clients.",
        |m| m.bytes_sent,
    ),
    (
        "culex_messages_received_total",
        "counter",
        "PUBLISH messages received.",
        |m| m.publish_received,
    ),
    (
        "culex_messages_sent_total",
        "counter",
        "PUBLISH messages sent.",
        |m| m.publish_sent,
    ),
    (
        "culex_messages_dropped_total",
        "counter",
        "Messages dropped, for any client, by any limit (bridges' drops by cause are in culex_bridge_dropped_messages_total).",
        |m| m.publish_dropped,
    ),
    (
        "culex_message_payload_received_bytes_total",
        "counter",
        "PUBLISH payload bytes received.",
        |m| m.publish_bytes_received,
    ),
    (
        "culex_message_payload_sent_bytes_total",
        "counter",
        "PUBLISH payload bytes sent.",
        |m| m.publish_bytes_sent,
    ),
    (
        "culex_stored_messages",
        "gauge",
        "Messages held for delivery: queued, in flight and retained.",
        |m| m.stored_messages,
    ),
    (
        "culex_stored_bytes",
        "gauge",
        "Payload bytes of the messages held for delivery.",
        |m| m.stored_bytes,
    ),
    (
        "culex_sockets_accepted_total",
        "counter",
        "Sockets accepted on all listeners.",
        |m| m.sockets_accepted,
    ),
    (
        "culex_clients_held",
        "gauge",
        "Publishers not read now because a subscriber is behind (backpressure).",
        |m| m.clients_held,
    ),
    (
        "culex_clients_stalled",
        "gauge",
        "Subscribers stalled now: their messages are dropped at their limits.",
        |m| m.clients_stalled,
    ),
];

/// The Prometheus text of `snapshot`: names prefixed `culex_` (and the conventional
/// `process_` ones), counters ending in `_total`, sizes in `_bytes`, times in `_seconds`.
pub fn metrics_text(snapshot: &Snapshot) -> String {
    let m = &snapshot.broker;
    let mut e = Exposition { out: String::new() };
    e.family(
        "culex_build_info",
        "gauge",
        "The culex version, as a label; always 1.",
    );
    e.sample(
        "culex_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    for &(name, kind, help, value) in BROKER_FAMILIES {
        e.one(name, kind, help, value(m));
    }
    if let Some((p, refused)) = &m.persistence {
        persistence_families(&mut e, p, *refused);
    }

    e.family(
        "culex_listener_connections",
        "gauge",
        "Connections open now, by listening socket.",
    );
    for l in &snapshot.listeners {
        e.sample(
            "culex_listener_connections",
            &[("listener", &l.address), ("protocol", l.protocol)],
            l.connections,
        );
    }

    bridge_families(&mut e, &snapshot.bridges);

    if let Some(p) = snapshot.process {
        process_families(
            &mut e,
            &p,
            snapshot.unix_time.saturating_sub(m.uptime_seconds),
        );
    }
    e.out
}

/// The store's families, when persistence is on.
fn persistence_families(e: &mut Exposition, p: &crate::persist::Status, refused: u64) {
    e.one(
        "culex_persistence_healthy",
        "gauge",
        "1 while the store writes, 0 while it is degraded (serving from memory, retrying).",
        u8::from(p.healthy),
    );
    e.one(
        "culex_persistence_written_bytes_total",
        "counter",
        "Bytes written to the journal and snapshots since start (flash wear).",
        p.bytes_written,
    );
    e.one(
        "culex_persistence_syncs_total",
        "counter",
        "fsync/fdatasync calls of the store since start.",
        p.syncs,
    );
    e.one(
        "culex_persistence_records_recovered",
        "gauge",
        "Records start-up read back.",
        p.records_recovered,
    );
    e.one(
        "culex_persistence_records_lost",
        "gauge",
        "Records start-up could not read (at least this many).",
        p.records_lost,
    );
    e.one(
        "culex_persistence_acks_refused_total",
        "counter",
        "Acknowledgements refused while the store was degraded (persistence_sync ack).",
        refused,
    );
}

/// The conventional `process_` families, from /proc/self; `start_time` in Unix seconds.
fn process_families(e: &mut Exposition, p: &ProcessStats, start_time: u64) {
    e.one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    e.one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    e.one(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        p.cpu_seconds,
    );
    e.one(
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        p.open_fds,
    );
    if let Some(max) = p.max_fds {
        e.one(
            "process_max_fds",
            "gauge",
            "The limit of open file descriptors.",
            max,
        );
    }
    e.one(
        "process_threads",
        "gauge",
        "Threads of the process.",
        p.threads,
    );
    e.one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
        start_time,
    );
}

/// The per-bridge families, one series per bridge (`bridge="NAME"`).
fn bridge_families(e: &mut Exposition, bridges: &[Health]) {
    type Gauge = fn(&Health) -> u64;
    let series: [(&str, &str, &str, Gauge); 9] = [
        (
            "culex_bridge_up",
            "gauge",
            "1 while the bridge's link to its remote is up.",
            |h| u64::from(h.is_connected),
        ),
        (
            "culex_bridge_backlog_messages",
            "gauge",
            "Messages waiting for the remote (queued and in flight).",
            |h| h.backlog.messages as u64,
        ),
        (
            "culex_bridge_backlog_bytes",
            "gauge",
            "Payload bytes of the messages waiting for the remote.",
            |h| h.backlog.bytes as u64,
        ),
        (
            "culex_bridge_backlog_oldest_age_seconds",
            "gauge",
            "How long the oldest message waiting for the remote has waited.",
            |h| h.backlog.oldest_age.as_secs(),
        ),
        (
            "culex_bridge_connects_total",
            "counter",
            "Connections to the remote made (CONNACK accepted).",
            |h| h.connects,
        ),
        (
            "culex_bridge_reconnects_total",
            "counter",
            "Connections to the remote made after the first.",
            |h| h.reconnects,
        ),
        (
            "culex_bridge_connected_since_seconds",
            "gauge",
            "When the current link came up, since the Unix epoch; 0 while down.",
            |h| h.connected_since.unwrap_or(0),
        ),
        (
            "culex_bridge_messages_sent_total",
            "counter",
            "Messages sent to the remote.",
            |h| h.messages_sent,
        ),
        (
            "culex_bridge_messages_received_total",
            "counter",
            "Messages received from the remote.",
            |h| h.messages_received,
        ),
    ];
    for (name, kind, help, value) in series {
        e.family(name, kind, help);
        for h in bridges {
            e.sample(name, &[("bridge", &h.name)], value(h));
        }
    }
    e.family(
        "culex_bridge_dropped_messages_total",
        "counter",
        "Messages for the remote dropped, by cause (full: the outbox was at its limits).",
    );
    for h in bridges {
        for cause in DropCause::ALL {
            e.sample(
                "culex_bridge_dropped_messages_total",
                &[("bridge", &h.name), ("cause", cause.name())],
                h.drops.get(cause),
            );
        }
    }
    e.family(
        "culex_bridge_info",
        "gauge",
        "The bridge's state, address and last error, as labels; always 1.",
    );
    for h in bridges {
        e.sample(
            "culex_bridge_info",
            &[
                ("bridge", &h.name),
                ("state", h.state),
                ("address", &h.address),
                ("last_error", h.last_error.as_deref().unwrap_or("")),
            ],
            1,
        );
    }
}

impl super::Server {
    /// The response to an http_api request on connection `id`, and its status code.
    pub(super) fn api_response(
        &self,
        id: crate::broker::ConnId,
        policy: &websocket::Policy,
        request: &ApiRequest,
    ) -> (Vec<u8>, u16) {
        let credentials = request.authorization.as_deref().and_then(basic_credentials);
        let credentials = credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_slice()));
        if !self.broker.is_http_authorized(id, credentials) {
            return (error(401), 401);
        }
        let now = std::time::Instant::now();
        let json = |body: String| {
            let r = response(200, "OK", "application/json", body.as_bytes());
            (r, 200)
        };
        match route(&request.target) {
            Endpoint::Version => {
                let version = env!("CARGO_PKG_VERSION").as_bytes();
                (
                    response(200, "OK", "text/plain; charset=utf-8", version),
                    200,
                )
            }
            Endpoint::Listeners => json(listeners_json(&self.listener_views())),
            Endpoint::Systree => {
                let uptime = self.broker.metrics(now).uptime_seconds;
                json(systree_json(&self.broker.sys_values(now), uptime))
            }
            Endpoint::Metrics => {
                let snapshot = Snapshot {
                    broker: self.broker.metrics(now),
                    listeners: self.listener_views(),
                    bridges: self.bridges_health(now),
                    process: ProcessStats::read(),
                    unix_time: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                let body = metrics_text(&snapshot);
                (
                    response(200, "OK", METRICS_CONTENT_TYPE, body.as_bytes()),
                    200,
                )
            }
            Endpoint::UnknownApi => (error(404), 404),
            Endpoint::File => {
                let r = file(policy.http_dir.as_deref(), &request.target);
                let code = std::str::from_utf8(r.get(9..12).unwrap_or_default())
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(500);
                (r, code)
            }
        }
    }

    /// Every listening socket as the API shows it.
    pub(super) fn listener_views(&self) -> Vec<ListenerView> {
        let settings = self.broker.settings();
        self.listeners
            .iter()
            .map(|l| {
                let allow_anonymous = settings
                    .listeners
                    .get(l.index)
                    .and_then(|limits| limits.allow_anonymous)
                    .unwrap_or(settings.allow_anonymous);
                let (port, path, address) = match &l.socket {
                    super::socket::Listening::Tcp(t) => match t.local_addr() {
                        Ok(a) => (a.port(), None, a.to_string()),
                        Err(_) => (0, None, String::new()),
                    },
                    super::socket::Listening::Unix(_, path) => {
                        (0, Some(path.to_string()), path.to_string())
                    }
                };
                ListenerView {
                    index: l.index,
                    port,
                    path,
                    protocol: match &l.websocket {
                        Some(p) if p.is_http_api => "httpapi",
                        Some(_) => "websockets",
                        None => "mqtt",
                    },
                    tls: l.tls.is_some(),
                    mtls: l.is_mtls,
                    allow_anonymous,
                    address,
                    connections: l.connections,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            json_string("l1\nl2\r\t\u{1}\u{1f}\u{8}\u{c}"),
            "\"l1\\nl2\\r\\t\\u0001\\u001f\\b\\f\""
        );
        assert_eq!(json_string("é ✓ \u{7f}"), "\"é ✓ \u{7f}\"");
    }

    #[test]
    fn routes_are_mosquittos_plus_metrics() {
        assert_eq!(route("/api/v1/version"), Endpoint::Version);
        assert_eq!(route("/api/v1/listeners?x=1"), Endpoint::Listeners);
        assert_eq!(route("/api/v1/systree"), Endpoint::Systree);
        assert_eq!(route("/metrics"), Endpoint::Metrics);
        assert_eq!(route("/api/v1/nothing"), Endpoint::UnknownApi);
        assert_eq!(route("/API/v2"), Endpoint::UnknownApi);
        assert_eq!(route("/"), Endpoint::File);
        assert_eq!(route("/index.html"), Endpoint::File);
    }

    #[test]
    fn a_multibyte_character_across_the_prefix_is_a_file_path_not_a_panic() {
        // The ws_frames fuzzer's find: "/mq2\u{5a1}..." has a character on bytes 4..6.
        assert_eq!(route("/mq2\u{5a1}8"), Endpoint::File);
        assert_eq!(route("/ap\u{e9}/"), Endpoint::File);
        assert_eq!(route("\u{e9}"), Endpoint::File);
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "gw:s3cr:et" — the password may hold a colon, the user name may not.
        assert_eq!(
            basic_credentials("Basic Z3c6czNjcjpldA=="),
            Some(("gw".into(), b"s3cr:et".to_vec()))
        );
        assert_eq!(
            basic_credentials("basic Z3c6czNjcjpldA=="),
            Some(("gw".into(), b"s3cr:et".to_vec()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic Z3c="), None); // no colon
        assert_eq!(basic_credentials(""), None);
    }

    #[test]
    fn listeners_json_has_one_entry_per_listener_line() {
        let l = |index, port, address: &str| ListenerView {
            index,
            port,
            path: None,
            protocol: "mqtt",
            tls: false,
            mtls: false,
            allow_anonymous: true,
            address: address.into(),
            connections: 0,
        };
        let mut unix = l(2, 0, "/run/q\"uote");
        unix.path = Some("/run/q\"uote".into());
        unix.protocol = "httpapi";
        let json = listeners_json(&[
            l(0, 1883, "0.0.0.0:1883"),
            l(0, 1883, "[::]:1883"),
            l(1, 8883, "0.0.0.0:8883"),
            unix,
        ]);
        let compact: String = json.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(
            compact,
            "{\"listeners\":[\
             {\"port\":1883,\"protocol\":\"mqtt\",\"tls\":false,\"mtls\":false,\"allow_anonymous\":true},\
             {\"port\":8883,\"protocol\":\"mqtt\",\"tls\":false,\"mtls\":false,\"allow_anonymous\":true},\
             {\"path\":\"/run/q\\\"uote\",\"protocol\":\"httpapi\",\"tls\":false,\"mtls\":false,\"allow_anonymous\":true}]}"
        );
    }

    #[test]
    fn systree_json_keeps_whole_numbers_and_the_uptime() {
        let values = [
            ("$SYS/broker/version", "culex version 1".to_string()),
            ("$SYS/broker/uptime", "12 seconds".to_string()),
            ("$SYS/broker/clients/connected", "3".to_string()),
            ("$SYS/broker/load/bytes/sent/1min", "1.50".to_string()),
        ];
        let compact: String = systree_json(&values, 12)
            .chars()
            .filter(|c| *c != '\n' && *c != '\t')
            .collect();
        assert_eq!(
            compact,
            "{\"$SYS/broker/clients/connected\":3,\"$SYS/broker/uptime\":12}"
        );
    }

    #[test]
    fn proc_figures_are_read_from_stat_and_status() {
        let stat = "4242 (cul ex) (x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 125 0 0 20 0 \
                    1 0 12345 10000000 300 18446744073709551615";
        let status = "Name:\tculex\nVmSize:\t   10240 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        let p = ProcessStats::from_proc(stat, status).unwrap();
        assert_eq!(p.resident_bytes, 2048 * 1024);
        assert_eq!(p.virtual_bytes, 10240 * 1024);
        assert_eq!(p.cpu_seconds, 3.75);
        assert_eq!(p.threads, 3);
        assert_eq!(ProcessStats::from_proc("garbage", status), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition { out: String::new() };
        e.family("x_total", "counter", "a\\b\nc");
        e.sample("x_total", &[("bridge", "q\"b\\n\nx")], 7);
        assert_eq!(
            e.out,
            "# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{bridge=\"q\\\"b\\\\n\\nx\"} 7\n"
        );
    }
}
