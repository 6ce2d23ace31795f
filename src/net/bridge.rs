//! The sockets of bridges (`crate::bridge`): name resolution off the loop, non-blocking
//! connect, TLS with a rustls `ClientConnection`, and moving bytes between the remote
//! socket and the bridge's [`Link`].
//!
//! Each bridge owns one slot of the connection slab, reserved at start-up: its index is
//! both the broker's [`ConnId`] of the bridge's local session and the mio token of its
//! remote socket, so no client connection can ever get it.
//!
//! A host name is resolved by a short-lived thread (getaddrinfo blocks) that hands the
//! addresses back through a channel and wakes the loop; an IP address is used directly.

use super::{Server, READS_PER_TURN};
use crate::bridge::{HostFacts, Link, State};
use crate::broker::ConnId;
use crate::config::{self, Config, ReloadType};
use log::{debug, info, warn};
use mio::{Interest, Token};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Bounded work per call: rounds of "move local output, write it" before the loop gets
/// back to other connections.
const PUMP_ROUNDS: usize = 16;

pub(super) struct BridgeConn {
    link: Link,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The remote socket, while connecting or connected.
    socket: Option<mio::net::TcpStream>,
    tls: Option<Box<rustls::ClientConnection>>,
    is_connected: bool,
    /// A resolver thread's answer, and the host it resolves (for SNI).
    resolving: Option<mpsc::Receiver<io::Result<Vec<SocketAddr>>>>,
    /// The other addresses the host name resolved to, tried in order when a connect to
    /// the current one fails (an AAAA record without an IPv6 route, one server down).
    candidates: Vec<SocketAddr>,
    /// The address of the current attempt, for the log when it fails (a socket whose
    /// connect failed has no peer address to ask).
    address: Option<SocketAddr>,
    host: String,
    options: SocketOptions,
    /// `round_robin false`: a short-lived thread's answer to "does the primary take a
    /// TCP connection?".
    primary_probe: Option<mpsc::Receiver<bool>>,
    /// A changed `connection` block (SIGHUP, `bridge_reload_type lazy`), applied when
    /// the link next goes down.
    pending: Option<Box<(config::Bridge, Prepared)>>,
    /// Its `connection` block was removed (SIGHUP): stopped for good, unless a later
    /// reload brings the block back.
    is_removed: bool,
}

impl BridgeConn {
    /// Before each attempt, the certificate and key files are read again, as Mosquitto
    /// does (it makes a new TLS context per connection): renewed certificates apply on
    /// the next connection, without a reload. Files that do not load (caught halfway
    /// through a renewal) leave the previous configuration in use, with a warning.
    fn reread_tls(&mut self) {
        let tls = &self.link.config().tls;
        if self.tls_config.is_none() || !super::tls::is_bridge_tls(tls) {
            return;
        }
        match super::tls::client_config(tls) {
            Ok(config) => self.tls_config = Some(config),
            Err(e) => warn!(
                "Bridge {}: {e}; using the certificates read before.",
                self.link.name()
            ),
        }
    }
}

/// What a `connection` block needs that can fail, checked before a bridge is made or
/// replaced: its TLS configuration and its socket options.
type Prepared = (Option<Arc<rustls::ClientConfig>>, SocketOptions);

fn prepare(bridge: &config::Bridge) -> Result<Prepared, String> {
    let tls_config = if super::tls::is_bridge_tls(&bridge.tls) {
        Some(
            super::tls::client_config(&bridge.tls)
                .map_err(|e| format!("bridge {}: {e}", bridge.name))?,
        )
    } else {
        None
    };
    let bind_address = match &bridge.bridge_bind_address {
        Some(a) => Some(a.parse().map_err(|_| {
            format!(
                "bridge {}: bridge_bind_address {a} is not an IP address",
                bridge.name
            )
        })?),
        None => None,
    };
    Ok((
        tls_config,
        SocketOptions {
            bind_address,
            tcp_keepalive: bridge.bridge_tcp_keepalive,
            tcp_user_timeout_ms: bridge.bridge_tcp_user_timeout,
        },
    ))
}

/// Socket options of a bridge: `bridge_bind_address`, `bridge_tcp_keepalive`,
/// `bridge_tcp_user_timeout` (2.1).
#[derive(Debug, Clone, Default)]
struct SocketOptions {
    bind_address: Option<IpAddr>,
    tcp_keepalive: Option<crate::config::TcpKeepalive>,
    tcp_user_timeout_ms: Option<u32>,
}

/// What the bridge reads from the host, read here so that `crate::bridge` reads no file
/// and no clock: the host name, a seed for the backoff's jitter (the time and the
/// process id) and the wall clock.
fn host_facts() -> HostFacts {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok();
    let seed = since_epoch.map_or(0x2545_f491_4f6c_dd1d, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    HostFacts {
        hostname: hostname(),
        seed,
        unix_time: since_epoch.map_or(0, |d| d.as_secs()),
    }
}

/// This machine's host name, for the default remote client id (Mosquitto's
/// `<hostname>.<connection name>`), from gethostname(2) as Mosquitto takes it: a
/// system call, so it works where /proc/sys/kernel/hostname is hidden (systemd's
/// `ProcSubset=pid`, which the packaged unit sets) or not mounted.
fn hostname() -> String {
    host_name_or_default(nix::unistd::gethostname().ok())
}

/// The host name, or "localhost" when it cannot be read or is empty.
fn host_name_or_default(name: Option<std::ffi::OsString>) -> String {
    name.map(|s| s.to_string_lossy().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A non-blocking connect with the bridge's socket options set first (mio's
/// `TcpStream::connect` cannot bind or set them before connecting).
fn connect_socket(options: &SocketOptions, address: SocketAddr) -> io::Result<mio::net::TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::time::Duration;
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = options.bind_address {
        socket
            .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|e| io::Error::new(e.kind(), format!("bridge_bind_address {ip}: {e}")))?;
    }
    if let Some(k) = options.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(k.idle)))
            .with_interval(Duration::from_secs(u64::from(k.interval)))
            .with_retries(k.count);
        socket.set_tcp_keepalive(&keepalive)?;
    }
    if let Some(ms) = options.tcp_user_timeout_ms {
        socket.set_tcp_user_timeout(Some(Duration::from_millis(u64::from(ms))))?;
    }
    match socket.connect(&SockAddr::from(address)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) /* EINPROGRESS */ => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

impl Server {
    /// Sets up every `connection` block of the configuration: reserves its slot and
    /// builds its TLS configuration (a bad certificate stops start-up).
    pub(super) fn add_bridges(&mut self, config: &Config) -> io::Result<()> {
        let now = Instant::now();
        for (index, bridge) in config.bridges.iter().enumerate() {
            let prepared = prepare(bridge).map_err(io::Error::other)?;
            if self.conns.len() <= index {
                self.conns.resize_with(index + 1, || None);
            }
            let conn = self.start_bridge(index, bridge, prepared, now);
            self.bridges.push(conn);
        }
        Ok(())
    }

    /// The link of `bridge` in slot `index`, started: its outbox limits set, its local
    /// session created (see [`Link::start`]).
    fn start_bridge(
        &mut self,
        index: usize,
        bridge: &config::Bridge,
        (tls_config, options): Prepared,
        now: Instant,
    ) -> BridgeConn {
        let settings = self.broker.settings();
        let host = host_facts();
        let mut link = Link::new(
            bridge,
            ConnId(index as u32),
            settings.sys_interval,
            &host,
            now,
        );
        let limits = (bridge.outbox_messages.is_some()
            || bridge.outbox_bytes.is_some()
            || bridge.outbox_drop_oldest
            || bridge.outbox_max_age.is_some()
            || !bridge.latest_only.is_empty()
            || bridge.replay_rate != 0)
            .then(|| crate::broker::QueueLimits {
                max_messages: bridge
                    .outbox_messages
                    .unwrap_or(settings.max_queued_messages),
                max_bytes: bridge.outbox_bytes.unwrap_or(settings.max_queued_bytes),
                drop_oldest: bridge.outbox_drop_oldest,
                max_age: bridge
                    .outbox_max_age
                    .map(|s| Duration::from_secs(u64::from(s))),
                latest_only: bridge.latest_only.clone(),
                replay_rate: bridge.replay_rate,
            });
        self.broker.set_queue_limits(&link.local_clientid, limits);
        link.start(&mut self.broker, now);
        BridgeConn {
            link,
            tls_config,
            socket: None,
            tls: None,
            is_connected: false,
            resolving: None,
            candidates: Vec::new(),
            address: None,
            host: String::new(),
            primary_probe: None,
            options,
            pending: None,
            is_removed: false,
        }
    }

    /// SIGHUP: each bridge whose `connection` block changed takes its new configuration,
    /// as Mosquitto 2.1 does: at once with `bridge_reload_type immediate` (the link is
    /// ended cleanly and made again), otherwise when the link next goes down (at once if
    /// it is down now). A bridge no longer configured is stopped cleanly. A new
    /// `connection` block needs a restart: bridges own the first slots of the
    /// connection table, reserved at start. A block that cannot be used (its
    /// certificates do not load) keeps the running bridge as it is.
    pub(super) fn reload_bridges(&mut self, configured: &[config::Bridge], now: Instant) {
        for bridge in configured {
            if !self.bridges.iter().any(|b| b.link.name() == bridge.name) {
                warn!(
                    "Bridge {}: added to the configuration; a new bridge needs a restart.",
                    bridge.name
                );
            }
        }
        for index in 0..self.bridges.len() {
            let name = self.bridges[index].link.name().to_owned();
            let is_removed = self.bridges[index].is_removed;
            let Some(bridge) = configured.iter().find(|b| b.name == name) else {
                if !is_removed {
                    info!("Bridge {name}: removed from the configuration; stopping it.");
                    self.bridges[index].pending = None;
                    self.bridge_end(index, "removed from the configuration", now);
                    self.bridges[index].link.stop();
                    self.bridges[index].is_removed = true;
                    // Its local session would otherwise keep collecting messages for a
                    // remote that is gone (a bridge's session never expires).
                    let local = self.bridges[index].link.local_clientid.clone();
                    self.broker.set_queue_limits(&local, None);
                    match self.broker.discard_session(&local) {
                        Some(0) | None => {}
                        Some(n) => warn!(
                            "Bridge {name}: {n} messages waiting for the remote are dropped \
                             with its local session."
                        ),
                    }
                }
                continue;
            };
            if self.bridges[index].link.config() == bridge && !is_removed {
                // Unchanged, or changed back before a lazy change was applied.
                self.bridges[index].pending = None;
                continue;
            }
            let prepared = match prepare(bridge) {
                Ok(p) => p,
                Err(e) => {
                    warn!("{e}; keeping the running bridge.");
                    continue;
                }
            };
            let is_down = matches!(
                self.bridges[index].link.state(),
                State::Waiting(_) | State::Idle | State::Stopped
            ) && self.bridges[index].socket.is_none()
                && self.bridges[index].resolving.is_none();
            if bridge.bridge_reload_type == ReloadType::Immediate || is_down {
                info!("Bridge {name}: applying its new configuration.");
                self.bridges[index].pending = None;
                self.bridge_end(index, "reloading its configuration", now);
                self.replace_bridge(index, bridge, prepared, now);
            } else {
                info!("Bridge {name}: its new configuration applies when the link next goes down.");
                self.bridges[index].pending = Some(Box::new((bridge.clone(), prepared)));
            }
        }
    }

    /// Ends the link of bridge `index`: DISCONNECT (after the "0" notification) if it is
    /// up, then the socket is closed and the local session goes offline.
    fn bridge_end(&mut self, index: usize, why: &str, now: Instant) {
        if self.bridges[index].link.state() == State::Up {
            self.bridges[index].link.send_disconnect();
            let _ = self.bridge_flush(index);
        }
        self.bridge_drop(index, why, now);
    }

    /// The link in slot `index` (down) is made again from `bridge`. The local session
    /// stays in the broker: with the same local client id, the new link resumes it and
    /// what waits in it.
    fn replace_bridge(
        &mut self,
        index: usize,
        bridge: &config::Bridge,
        prepared: Prepared,
        now: Instant,
    ) {
        self.broker
            .set_queue_limits(&self.bridges[index].link.local_clientid, None);
        self.bridges[index] = self.start_bridge(index, bridge, prepared, now);
    }

    /// Every bridge's figures now (`/metrics`).
    pub(super) fn bridges_health(&self, now: Instant) -> Vec<crate::bridge::Health> {
        self.bridges
            .iter()
            .filter(|b| !b.is_removed)
            .map(|b| b.link.health(&self.broker, now))
            .collect()
    }

    /// Bridges connected and not (`STATUS=` for systemd).
    pub(super) fn bridges_up_down(&self) -> (usize, usize) {
        let configured = self.bridges.iter().filter(|b| !b.is_removed);
        let up = configured
            .clone()
            .filter(|b| b.link.state() == State::Up)
            .count();
        (up, configured.count() - up)
    }

    /// The names of the configured bridges that are not connected.
    pub(super) fn bridges_down(&self) -> Vec<&str> {
        self.bridges
            .iter()
            .filter(|b| !b.is_removed && b.link.state() != State::Up)
            .map(|b| b.link.name())
            .collect()
    }

    pub(super) fn is_bridge_slot(&self, slot: u32) -> bool {
        (slot as usize) < self.bridges.len()
    }

    /// The earliest deadline of any bridge.
    pub(super) fn bridges_deadline(&self) -> Option<Instant> {
        self.bridges
            .iter()
            .filter_map(|b| b.link.next_deadline())
            .min()
    }

    /// Once per iteration: resolver answers, timeouts and keep alive, attempts that are
    /// due.
    pub(super) fn drive_bridges(&mut self, now: Instant) {
        for index in 0..self.bridges.len() {
            if let Some(answer) = self.bridges[index]
                .resolving
                .as_ref()
                .and_then(|rx| rx.try_recv().ok())
            {
                self.bridges[index].resolving = None;
                match answer {
                    Ok(mut addresses) if !addresses.is_empty() => {
                        let first = addresses.remove(0);
                        self.bridges[index].candidates = addresses;
                        self.bridge_connect(index, first, now)
                    }
                    Ok(_) => self.bridge_drop(index, "the name has no address", now),
                    Err(e) => self.bridge_drop(index, &format!("cannot resolve: {e}"), now),
                }
            }
            if let Err(why) = self.bridges[index]
                .link
                .handle_timeout(&mut self.broker, now)
            {
                // A lazy bridge's DISCONNECT goes out first; a dead link just fails.
                let _ = self.bridge_flush(index);
                self.bridge_drop(index, &why, now);
            }
            if let Some(address) = self.bridges[index].link.poll_connect(now) {
                self.bridges[index].reread_tls();
                self.bridges[index].host = address.host.clone();
                self.bridges[index].candidates.clear();
                match address.host.parse::<IpAddr>() {
                    Ok(ip) => self.bridge_connect(index, SocketAddr::new(ip, address.port), now),
                    Err(_) => {
                        let (tx, rx) = mpsc::channel();
                        let waker = self.shutdown.waker.clone();
                        let (host, port) = (address.host, address.port);
                        let spawned = std::thread::Builder::new()
                            .name("culex-resolve".into())
                            .spawn(move || {
                                let answer = (host.as_str(), port)
                                    .to_socket_addrs()
                                    .map(|a| a.collect::<Vec<_>>());
                                let _ = tx.send(answer);
                                let _ = waker.wake();
                            });
                        match spawned {
                            Ok(_) => self.bridges[index].resolving = Some(rx),
                            Err(e) => self.bridge_drop(
                                index,
                                &format!("cannot start a resolver thread: {e}"),
                                now,
                            ),
                        }
                    }
                }
            }
            self.probe_primary(index, now);
            self.bridge_service(index, now);
        }
    }

    /// `round_robin false`: while on a secondary address, a thread tries a TCP connection
    /// to the primary every few seconds (resolving and connecting block); if it works,
    /// the link goes back to the primary.
    fn probe_primary(&mut self, index: usize, now: Instant) {
        if let Some(reachable) = self.bridges[index]
            .primary_probe
            .as_ref()
            .and_then(|rx| rx.try_recv().ok())
        {
            self.bridges[index].primary_probe = None;
            if reachable && self.bridges[index].link.handle_primary_reachable() {
                let _ = self.bridge_flush(index);
                self.bridge_drop(index, "going back to the primary address", now);
            }
        }
        if self.bridges[index].primary_probe.is_some() {
            return;
        }
        let Some(address) = self.bridges[index].link.poll_primary_retry(now) else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        let waker = self.shutdown.waker.clone();
        let spawned = std::thread::Builder::new()
            .name("culex-probe".into())
            .spawn(move || {
                let reachable = (address.host.as_str(), address.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .is_some_and(|a| {
                        std::net::TcpStream::connect_timeout(&a, crate::bridge::PRIMARY_RETRY)
                            .is_ok()
                    });
                let _ = tx.send(reachable);
                let _ = waker.wake();
            });
        if spawned.is_ok() {
            self.bridges[index].primary_probe = Some(rx);
        }
    }

    fn bridge_connect(&mut self, index: usize, address: SocketAddr, now: Instant) {
        let mut socket = match connect_socket(&self.bridges[index].options, address) {
            Ok(s) => s,
            Err(e) => return self.bridge_connect_failed(index, &format!("{address}: {e}"), now),
        };
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.bridge_drop(index, &format!("cannot register the socket: {e}"), now);
        }
        debug!(
            "Bridge {}: connecting to {address}.",
            self.bridges[index].link.name()
        );
        let b = &mut self.bridges[index];
        b.socket = Some(socket);
        b.address = Some(address);
        b.is_connected = false;
    }

    /// A readiness event of a bridge's remote socket.
    pub(super) fn bridge_event(&mut self, index: usize, event: &mio::event::Event, now: Instant) {
        if self.bridges[index].socket.is_none() {
            return;
        }
        if !self.bridges[index].is_connected {
            if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
                return;
            }
            let b = &mut self.bridges[index];
            let Some(socket) = b.socket.as_ref() else {
                return;
            };
            match socket.take_error() {
                Ok(Some(e)) | Err(e) => {
                    let why = match b.address {
                        Some(a) => format!("{a}: {e}"),
                        None => e.to_string(),
                    };
                    return self.bridge_connect_failed(index, &why, now);
                }
                Ok(None) => {}
            }
            match socket.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.bridge_connect_failed(index, &e.to_string(), now),
            }
            b.is_connected = true;
            b.candidates.clear();
            if let Some(config) = &b.tls_config {
                let name = match rustls::pki_types::ServerName::try_from(b.host.clone()) {
                    Ok(n) => n,
                    Err(e) => {
                        let why = format!("{} is not a TLS server name: {e}", b.host);
                        return self.bridge_drop(index, &why, now);
                    }
                };
                match rustls::ClientConnection::new(config.clone(), name) {
                    Ok(c) => b.tls = Some(Box::new(c)),
                    Err(e) => return self.bridge_drop(index, &format!("TLS: {e}"), now),
                }
            }
            b.link.handle_connected(&self.broker, now);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.bridge_read(index, now);
        }
        self.bridge_service(index, now);
    }

    /// Reads what the remote sent and hands it to the link.
    pub(super) fn bridge_read(&mut self, index: usize, now: Instant) {
        for _ in 0..READS_PER_TURN {
            let b = &mut self.bridges[index];
            let Some(socket) = b.socket.as_mut() else {
                return;
            };
            let n = if let Some(tls) = b.tls.as_mut() {
                match tls.read_tls(socket) {
                    Ok(0) => {
                        return self.bridge_drop(index, "the remote closed the connection", now)
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.bridge_drop(index, &e.to_string(), now),
                }
                if let Err(e) = tls.process_new_packets() {
                    let _ = tls.write_tls(socket);
                    return self.bridge_drop(index, &format!("TLS error: {e}"), now);
                }
                let mut total = 0;
                loop {
                    match tls.reader().read(&mut self.scratch[total..]) {
                        Ok(0) => {
                            if total == 0 {
                                return self.bridge_drop(index, "the remote closed TLS", now);
                            }
                            break;
                        }
                        Ok(n) => {
                            total += n;
                            if total == self.scratch.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return self.bridge_drop(index, &e.to_string(), now),
                    }
                }
                total
            } else {
                match socket.read(&mut self.scratch) {
                    Ok(0) => {
                        return self.bridge_drop(index, "the remote closed the connection", now)
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.bridge_drop(index, &e.to_string(), now),
                }
            };
            if n > 0 {
                let b = &mut self.bridges[index];
                if let Err(e) = b
                    .link
                    .handle_remote_data(&mut self.broker, &self.scratch[..n], now)
                {
                    if e.is_protocol_error {
                        self.bridge_reset(index);
                    }
                    return self.bridge_drop(index, &e.why, now);
                }
            }
        }
        self.unread.push(index as u32);
    }

    /// Moves the local session's output to the remote and writes as much as the socket
    /// takes; bounded rounds.
    pub(super) fn bridge_service(&mut self, index: usize, now: Instant) {
        for _ in 0..PUMP_ROUNDS {
            let b = &mut self.bridges[index];
            if b.link.state() == State::Up && b.link.has_room() {
                b.link.pump_local(&mut self.broker, now);
            }
            if !self.bridge_flush(index) {
                return self.bridge_drop(index, "write failed", now);
            }
            let b = &self.bridges[index];
            let more_local = b.link.is_local_open()
                && !self.broker.output(b.link.local_conn()).is_empty()
                && b.link.has_room();
            let wrote_all = b.link.remote_output().is_empty();
            if !(more_local && wrote_all) {
                return;
            }
        }
    }

    /// Writes the link's output to the remote socket. Returns false if the socket failed.
    fn bridge_flush(&mut self, index: usize) -> bool {
        let b = &mut self.bridges[index];
        let Some(socket) = b.socket.as_mut() else {
            return true;
        };
        if !b.is_connected {
            return true;
        }
        if let Some(tls) = b.tls.as_mut() {
            let out = b.link.remote_output();
            if !out.is_empty() {
                match tls.writer().write(out) {
                    Ok(n) => b.link.consume_remote(n),
                    Err(_) => return false,
                }
            }
            while tls.wants_write() {
                match tls.write_tls(socket) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            return true;
        }
        loop {
            let out = b.link.remote_output();
            if out.is_empty() {
                return true;
            }
            match socket.write(out) {
                Ok(0) => return false,
                Ok(n) => b.link.consume_remote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Ends the remote connection (if any) and tells the link why.
    /// A TCP connect failed: the next address the host name resolved to is tried, as
    /// Mosquitto does with getaddrinfo's list; after the last, the attempt has failed.
    fn bridge_connect_failed(&mut self, index: usize, why: &str, now: Instant) {
        let b = &mut self.bridges[index];
        if b.candidates.is_empty() {
            return self.bridge_drop(index, why, now);
        }
        let next = b.candidates.remove(0);
        if let Some(mut socket) = b.socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        info!("Bridge {}: {why}; trying {next}.", b.link.name());
        self.bridge_connect(index, next, now);
    }

    /// Closes a bridge's remote socket with RST (SO_LINGER 0) instead of FIN: the remote
    /// broke the protocol. Then [`Self::bridge_drop`] ends the link.
    fn bridge_reset(&mut self, index: usize) {
        if let Some(mut socket) = self.bridges[index].socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
            let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
        }
    }

    fn bridge_drop(&mut self, index: usize, why: &str, now: Instant) {
        let b = &mut self.bridges[index];
        b.candidates.clear();
        if let Some(mut socket) = b.socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        b.tls = None;
        b.is_connected = false;
        b.resolving = None;
        b.link.handle_lost(&mut self.broker, why, now);
        if let Some(next) = b.pending.take() {
            let (bridge, prepared) = *next;
            info!("Bridge {}: applying its new configuration.", bridge.name);
            self.replace_bridge(index, &bridge, prepared, now);
        }
    }

    /// `poll_close` named a bridge's local connection: the broker ended the session's
    /// connection itself.
    pub(super) fn bridge_local_closed(&mut self, index: usize, now: Instant) {
        let b = &mut self.bridges[index];
        if b.link.handle_local_closed(&mut self.broker, now) {
            warn!(
                "Bridge {}: the broker closed its local session; reconnecting.",
                b.link.name()
            );
            if let Some(mut socket) = b.socket.take() {
                let _ = self.poll.registry().deregister(&mut socket);
            }
            b.tls = None;
            b.is_connected = false;
        } else {
            self.broker.handle_closed(ConnId(index as u32), now);
        }
    }

    /// Stopping: each connected bridge says DISCONNECT to the remote (MQTT: no will) and
    /// its local session goes offline, as a clean stop of Mosquitto does.
    pub(super) fn stop_bridges(&mut self, now: Instant) {
        for index in 0..self.bridges.len() {
            self.bridges[index].pending = None;
            if self.bridges[index].link.state() == State::Up {
                info!("Bridge {}: stopping.", self.bridges[index].link.name());
                self.bridges[index].link.send_disconnect();
                let _ = self.bridge_flush(index);
            }
            self.bridge_drop(index, "the broker is stopping", now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_the_kernels() {
        // gethostname(2) and the kernel's own file say the same where /proc is visible.
        let proc = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let name = hostname();
        assert_eq!(name, proc.trim());
        assert!(!name.is_empty());
    }

    #[test]
    fn hostname_falls_back_to_localhost() {
        assert_eq!(host_name_or_default(None), "localhost");
        assert_eq!(host_name_or_default(Some("".into())), "localhost");
        assert_eq!(host_name_or_default(Some("gw-7\n".into())), "gw-7");
    }
}
