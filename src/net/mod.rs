//! The event loop: one mio `Poll`, the listeners, the accepted connections, and the
//! moving of bytes between sockets and the [`Broker`]. Nothing else happens here.
//!
//! - Each socket is registered once for read and write readiness (mio is edge-triggered;
//!   no per-event reregister).
//! - Reads go into one shared scratch buffer. A connection keeps bytes only while a packet
//!   is incomplete (`partial`), and only up to the largest packet the broker accepts.
//! - A connection is read at most `READS_PER_TURN` times per iteration; if it still has
//!   data, it is remembered and served again next iteration (draining readiness), so one
//!   busy client cannot starve the others.
//! - Writes happen once per dirty connection per iteration, after all reads, so many
//!   packets to one subscriber go out in one system call.
//! - A slot freed during an iteration is reused only after it, so a stale event of a
//!   closed connection never reaches a new one.

mod bridge;
pub mod cert_name;
mod rate;
mod socket;
pub mod tls;
pub mod websocket;

use crate::auth::{Acl, PasswordFile};
use crate::broker::{Broker, ConnId, ListenerAuth, Peer, Settings};
use crate::config::Config;
use crate::persist::{Store, StoreOptions, SyncMode};
use crate::protocol::{frame, DecodeError};
use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use socket::{Listening, Stream};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Size of the shared read buffer.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Reads of one connection per loop iteration before others get their turn.
const READS_PER_TURN: usize = 16;
/// An outbox buffer this large, once written and freed, makes the loop release memory:
/// a retained burst (100,000 messages of 64 bytes fill 16 MiB), not the 1 to 3 MB outboxes
/// of fast subscribers, which are freed many times a second (releasing after each cost
/// an madvise and page faults again: 51 calls a second in fan-through).
const RELEASE_AFTER_OUTPUT: usize = 8 * 1024 * 1024;
/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;

const WAKER_TOKEN: Token = Token(usize::MAX);
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);
const RELOAD_TOKEN: Token = Token(usize::MAX - 2);
const HOOK_TOKEN: Token = Token(usize::MAX - 3);
/// Listener tokens count down from here; connection tokens are slab slots from 0.
const FIRST_LISTENER_TOKEN: usize = usize::MAX - 4;

/// What a configuration reload (SIGHUP) produces: the settings, the password and ACL
/// files and the bridges, re-read. Listeners are not reopened, as in Mosquitto.
pub struct Reload {
    pub settings: Settings,
    pub passwords: Option<PasswordFile>,
    pub acl: Option<Acl>,
    /// Per configured listener, from [`load_listener_tls`]: certificates are re-read as
    /// Mosquitto does, for connections accepted from now on.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Per listener, from [`load_listener_auth`] (empty without per_listener_settings).
    pub listener_auth: Vec<ListenerAuth>,
    /// The `connection` blocks: changed bridges take their new configuration (see
    /// `Server::reload_bridges`).
    pub bridges: Vec<crate::config::Bridge>,
}

/// Re-reads the configuration; an error keeps the running configuration.
pub type Reloader = Box<dyn FnMut() -> Result<Reload, String>>;

/// Signals the binary handles itself, in the loop: the pipe their handlers write to, a
/// flag per signal (one pipe cannot say which arrived) and the handler.
struct SignalHooks {
    pipe: mio::net::UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
    handler: Box<dyn FnMut(i32)>,
}

/// The TLS configuration of a listener, or `None` for plain TCP.
fn listener_tls(l: &crate::config::Listener) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&l.tls.certfile, &l.tls.keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let options = tls::TlsOptions {
                certfile: certfile.clone(),
                keyfile: keyfile.clone(),
                cafile: l.tls.cafile.clone(),
                capath: l.tls.capath.clone(),
                require_certificate: l.tls.require_certificate,
                tls_version: l.tls.tls_version.map(|v| match v {
                    crate::config::TlsVersion::V1_3 => "tlsv1.3".to_string(),
                    _ => "tlsv1.2".to_string(),
                }),
                crlfile: l.tls.crlfile.clone(),
            };
            let config = tls::server_config(&options)
                .map_err(|e| io::Error::other(format!("listener {}: {e}", l.port)))?;
            Ok(Some(config))
        }
        (None, None) => Ok(None),
        _ => Err(io::Error::other(format!(
            "listener {}: certfile and keyfile must both be given for TLS",
            l.port
        ))),
    }
}

/// The TLS configurations of a configuration's listeners, in listener order: what a
/// reload hands to [`Server`] so renewed certificates apply to new connections.
pub fn load_listener_tls(
    config: &Config,
) -> Result<Vec<Option<Arc<rustls::ServerConfig>>>, String> {
    config
        .effective_listeners()
        .iter()
        .map(|l| listener_tls(l).map_err(|e| e.to_string()))
        .collect()
}

/// With `per_listener_settings true`: each listener's own `password_file` and `acl_file`,
/// in listener order; empty otherwise.
pub fn load_listener_auth(config: &Config) -> Result<Vec<ListenerAuth>, String> {
    if !config.per_listener_settings {
        return Ok(Vec::new());
    }
    config
        .effective_listeners()
        .iter()
        .map(|l| {
            Ok(ListenerAuth {
                passwords: match &l.security.password_file {
                    Some(path) => Some(PasswordFile::load(path).map_err(|e| e.to_string())?),
                    None => None,
                },
                acl: match &l.security.acl_file {
                    Some(path) => Some(Acl::load(path).map_err(|e| e.to_string())?),
                    None => None,
                },
            })
        })
        .collect()
}

/// Loads `password_file` and `acl_file` of a configuration.
pub fn load_auth(config: &Config) -> Result<(Option<PasswordFile>, Option<Acl>), String> {
    let passwords = match &config.password_file {
        Some(path) => Some(PasswordFile::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let acl = match &config.acl_file {
        Some(path) => Some(Acl::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((passwords, acl))
}

/// `persistence_location` (default: the working directory, as Mosquitto),
/// `persistence_file` (default `culex.db`) and the sync and autosave options.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        dir: config
            .persistence_location
            .clone()
            .unwrap_or_else(|| PathBuf::from(".")),
        file: config
            .persistence_file
            .clone()
            .unwrap_or_else(|| "culex.db".to_string()),
        sync: if config.persistence_sync_ack {
            SyncMode::Ack
        } else {
            SyncMode::Periodic
        },
        sync_interval: config.persistence_sync_interval,
        autosave_interval: config.autosave_interval,
        autosave_on_changes: config.autosave_on_changes,
    }
}

fn listener_token(index: usize) -> Token {
    Token(FIRST_LISTENER_TOKEN - index)
}

/// What the loop needs to open one listener: built from the configuration by
/// [`Server::bind`], or directly (tests).
#[derive(Clone)]
pub struct ListenerSpec {
    pub port: u16,
    /// `listener 0 PATH`: a Unix socket at PATH (port and address are not used).
    pub unix_socket_path: Option<PathBuf>,
    /// `None`: every address.
    pub bind_address: Option<String>,
    /// `socket_domain ipv4`: IPv4 addresses only (the wildcard is 0.0.0.0).
    pub is_ipv4_only: bool,
    /// `socket_domain ipv6`: IPv6 addresses only, and IPV6_V6ONLY on the socket.
    pub is_ipv6_only: bool,
    /// `bind_interface`: SO_BINDTODEVICE.
    pub bind_interface: Option<String>,
    pub max_connections: Option<usize>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `use_identity_as_username` / `use_subject_as_username` (TLS listeners only).
    pub cert_username: Option<cert_name::CertUsername>,
    /// A loopback listener culex adds by default: failing to bind it is a warning.
    pub is_optional: bool,
    /// `protocol websockets`: MQTT over WebSockets with this policy (origins, http_dir).
    pub websocket: Option<websocket::Policy>,
}

struct ListenerSocket {
    /// Index of its configuration listener (`Settings::listeners`).
    index: usize,
    socket: Listening,
    max_connections: Option<usize>,
    connections: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    cert_username: Option<cert_name::CertUsername>,
    websocket: Option<Rc<websocket::Policy>>,
}

struct Connection {
    stream: Stream,
    listener: usize,
    /// The bytes of an incomplete packet; empty (and unallocated) otherwise.
    partial: Vec<u8>,
    /// TLS state of a connection accepted on a TLS listener. Boxed: it is large, and a
    /// plain TCP connection should not pay for it.
    tls: Option<Box<rustls::ServerConnection>>,
    /// The broker still has to be told the certificate's username, once the handshake
    /// is done.
    pending_cert_username: Option<cert_name::CertUsername>,
    /// WebSocket state of a connection accepted on a websockets listener (between TLS,
    /// if any, and MQTT). Boxed for the same reason as `tls`.
    ws: Option<Box<WsConn>>,
}

/// A WebSocket connection: its phase and the sans-I/O framing state, which keeps no
/// buffer while the connection is idle.
struct WsConn {
    policy: Rc<websocket::Policy>,
    phase: WsPhase,
    deframer: websocket::Deframer,
    sender: websocket::Sender,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsPhase {
    /// Reading the HTTP request head (kept in `partial` while incomplete).
    Handshake,
    /// Upgraded: frames carry MQTT.
    Open,
    /// A close frame is going out (after the output before it); input is dropped, and
    /// the socket is closed once it is written (RFC 6455 7.1.1: the server closes first).
    Closing,
    /// An HTTP response (a file or an error) is going out; input is dropped. Once it is
    /// written the socket is half-closed: [`WsPhase::Lingering`].
    HttpDone,
    /// Waiting for the client to close after the response (input dropped), within the
    /// broker's CONNECT timeout, which still runs for this connection.
    Lingering,
}

/// Stops a running [`Server`] from another thread (tests, signal handlers).
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<ListenerSocket>,
    conns: Vec<Option<Connection>>,
    free: BinaryHeap<Reverse<u32>>,
    /// Slots freed in this iteration; reusable from the next.
    freed: Vec<u32>,
    /// Connections that still had data to read when their turn ended.
    unread: Vec<u32>,
    broker: Broker,
    scratch: Box<[u8]>,
    max_packet_size: usize,
    shutdown: ShutdownHandle,
    signal_pipe: Option<mio::net::UnixStream>,
    reload_pipe: Option<mio::net::UnixStream>,
    reloader: Option<Reloader>,
    hooks: Option<SignalHooks>,
    /// Gives freed heap memory back to the system (the binary's allocator hook).
    release_memory: Option<fn()>,
    /// Most connections open since memory was last released.
    connections_peak: usize,
    open_connections: usize,
    /// 2.1 `global_max_connections`: live connections broker-wide.
    global_max_connections: Option<usize>,
    /// `max_connection_rate`: new connections per second per IP address.
    connection_rate: Option<rate::ConnectionRate>,
    /// A callback the loop makes at a fixed interval (systemd's watchdog), and when next.
    heartbeat: Option<(std::time::Duration, fn(), Instant)>,
    /// The `connection` blocks; bridge `i` owns slab slot `i` (see net/bridge.rs).
    bridges: Vec<bridge::BridgeConn>,
    /// The journal and snapshot files, with `persistence true`.
    store: Option<Store>,
    /// Scratch list of the sockets that became writable in one iteration.
    writable: Vec<u32>,
}

impl Server {
    /// Binds every listener of the configuration.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let implicit = config.is_local_only();
        let mut specs = Vec::new();
        for l in config.effective_listeners() {
            let tls = listener_tls(&l)?;
            let websocket = match l.protocol {
                crate::config::Protocol::Websockets => Some(websocket::Policy {
                    origins: l.websockets_origin.clone(),
                    http_dir: match &l.http_dir {
                        Some(dir) => Some(dir.canonicalize().map_err(|e| {
                            io::Error::new(
                                e.kind(),
                                format!("listener {}: http_dir {}: {e}", l.port, dir.display()),
                            )
                        })?),
                        None => None,
                    },
                    max_headers: usize::from(config.websockets_headers_size.unwrap_or(0)),
                }),
                _ => {
                    if l.http_dir.is_some() || !l.websockets_origin.is_empty() {
                        warn!(
                            "Listener {}: http_dir and websockets_origin apply to \
                             'protocol websockets' listeners only; ignored here.",
                            l.port
                        );
                    }
                    None
                }
            };
            specs.push(ListenerSpec {
                websocket,
                is_optional: implicit || l.bind_address.as_deref() == Some("::1"),
                port: l.port,
                unix_socket_path: l.unix_socket_path,
                is_ipv4_only: l.socket_domain == Some(crate::config::SocketDomain::Ipv4),
                is_ipv6_only: l.socket_domain == Some(crate::config::SocketDomain::Ipv6),
                bind_interface: l.bind_interface.clone(),
                bind_address: l.bind_address,
                max_connections: l.max_connections,
                cert_username: if tls.is_none() {
                    None
                } else if l.tls.use_identity_as_username {
                    Some(cert_name::CertUsername::Identity)
                } else if l.tls.use_subject_as_username {
                    Some(cert_name::CertUsername::Subject)
                } else {
                    None
                },
                tls,
            });
        }
        let (passwords, acl) = load_auth(config).map_err(io::Error::other)?;
        let mut server = Server::bind_listeners(specs, Settings::from_config(config))?;
        server.global_max_connections = config
            .global_max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        server.connection_rate = config.max_connection_rate.map(rate::ConnectionRate::new);
        server.set_auth(passwords, acl);
        server
            .broker
            .set_listener_auth(load_listener_auth(config).map_err(io::Error::other)?);
        if config.persistence {
            server.enable_persistence(store_options(config))?;
        }
        // After the store is loaded: a bridge resumes its restored local session and the
        // messages that waited in it.
        server.add_bridges(config)?;
        Ok(server)
    }

    /// Binds the given listeners. A listener that cannot be bound is an error unless it
    /// is optional (a host without IPv6 still gets its 127.0.0.1 listener).
    pub fn bind_listeners(specs: Vec<ListenerSpec>, settings: Settings) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        let mut last_error = None;
        for (spec_index, spec) in specs.into_iter().enumerate() {
            if let Some(path) = &spec.unix_socket_path {
                let socket = Listening::bind_unix(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot listen on {}: {e}", path.display()),
                    )
                })?;
                info!(
                    "Opening {} listen socket on path {}{}.",
                    if spec.websocket.is_some() {
                        "websockets"
                    } else {
                        "unix"
                    },
                    path.display(),
                    if spec.tls.is_some() { " (TLS)" } else { "" }
                );
                listeners.push(ListenerSocket {
                    index: spec_index,
                    socket,
                    max_connections: spec.max_connections,
                    connections: 0,
                    tls: spec.tls.clone(),
                    cert_username: spec.cert_username,
                    websocket: spec.websocket.clone().map(Rc::new),
                });
                continue;
            }
            let addresses = match resolve(
                spec.bind_address.as_deref(),
                spec.port,
                spec.is_ipv4_only,
                spec.is_ipv6_only,
            ) {
                Ok(a) => a,
                Err(e) => {
                    let e = io::Error::new(e.kind(), format!("listener {}: {e}", spec.port));
                    if spec.is_optional {
                        last_error = Some(e);
                        continue;
                    }
                    return Err(e);
                }
            };
            for address in addresses {
                match bind_one(address, spec.is_ipv6_only, spec.bind_interface.as_deref()) {
                    Ok(socket) => {
                        let address = socket.local_addr()?;
                        // Mosquitto: "Opening websockets listen socket on port 8080."
                        info!(
                            "Opening {} listen socket on port {}{}.",
                            if spec.websocket.is_some() {
                                "websockets"
                            } else {
                                family(&address)
                            },
                            address.port(),
                            if spec.tls.is_some() { " (TLS)" } else { "" }
                        );
                        listeners.push(ListenerSocket {
                            index: spec_index,
                            socket: Listening::Tcp(socket),
                            max_connections: spec.max_connections,
                            connections: 0,
                            tls: spec.tls.clone(),
                            cert_username: spec.cert_username,
                            websocket: spec.websocket.clone().map(Rc::new),
                        });
                    }
                    Err(e) => {
                        let e =
                            io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"));
                        if spec.is_optional {
                            warn!("{e}");
                            last_error = Some(e);
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
        }
        if listeners.is_empty() {
            return Err(last_error.unwrap_or_else(|| io::Error::other("no listener configured")));
        }
        for (index, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(&mut l.socket, listener_token(index), Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let broker = Broker::new(settings, Instant::now());
        Ok(Server {
            poll,
            listeners,
            conns: Vec::new(),
            free: BinaryHeap::new(),
            freed: Vec::new(),
            unread: Vec::new(),
            max_packet_size: broker.max_packet_size(),
            broker,
            scratch: vec![0; SCRATCH_SIZE].into_boxed_slice(),
            shutdown: ShutdownHandle {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
            signal_pipe: None,
            reload_pipe: None,
            reloader: None,
            hooks: None,
            release_memory: None,
            connections_peak: 0,
            open_connections: 0,
            global_max_connections: None,
            connection_rate: None,
            heartbeat: None,
            bridges: Vec::new(),
            store: None,
            writable: Vec::new(),
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.tcp_address())
            .collect()
    }

    /// Stops the loop cleanly on SIGTERM and SIGINT. signal-hook writes a byte into a
    /// socket pair from the handler (async-signal-safe); the loop sees it as an event.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        let mut reader = mio::net::UnixStream::from_std(reader);
        self.poll
            .registry()
            .register(&mut reader, SIGNAL_TOKEN, Interest::READABLE)?;
        self.signal_pipe = Some(reader);
        Ok(())
    }

    /// On SIGHUP, calls `reloader` and applies what it returns (Mosquitto's "Reloading
    /// config."): limits, anonymous access, password file and ACL. A failed reload is
    /// logged and the running configuration kept.
    pub fn reload_on_sighup(&mut self, reloader: Reloader) -> io::Result<()> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGHUP, writer)?;
        let mut reader = mio::net::UnixStream::from_std(reader);
        self.poll
            .registry()
            .register(&mut reader, RELOAD_TOKEN, Interest::READABLE)?;
        self.reload_pipe = Some(reader);
        self.reloader = Some(reloader);
        Ok(())
    }

    /// Calls `handler` from the loop with the number of each of `signals` that arrived
    /// (the binary's SIGUSR1, SIGUSR2 and SIGRTMIN).
    pub fn on_signals(&mut self, signals: &[i32], handler: Box<dyn FnMut(i32)>) -> io::Result<()> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for &signal in signals {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first: the pipe's byte must find it set.
            signal_hook::flag::register(signal, flag.clone())?;
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
            flags.push((signal, flag));
        }
        let mut pipe = mio::net::UnixStream::from_std(reader);
        self.poll
            .registry()
            .register(&mut pipe, HOOK_TOKEN, Interest::READABLE)?;
        self.hooks = Some(SignalHooks {
            pipe,
            flags,
            handler,
        });
        Ok(())
    }

    fn run_signal_hooks(&mut self) {
        let Some(hooks) = self.hooks.as_mut() else {
            return;
        };
        let mut bytes = [0u8; 64];
        while matches!(hooks.pipe.read(&mut bytes), Ok(n) if n > 0) {}
        for (signal, flag) in &hooks.flags {
            if flag.swap(false, Ordering::SeqCst) {
                (hooks.handler)(*signal);
            }
        }
    }

    fn reload(&mut self) {
        if let Some(pipe) = self.reload_pipe.as_mut() {
            let mut bytes = [0u8; 64];
            while matches!(pipe.read(&mut bytes), Ok(n) if n > 0) {}
        }
        let Some(reloader) = self.reloader.as_mut() else {
            return;
        };
        info!("Reloading config.");
        match reloader() {
            Ok(reload) => {
                for listener in &mut self.listeners {
                    match reload.listener_tls.get(listener.index) {
                        // A listener that was TLS stays TLS (and plain stays plain): turning
                        // TLS on or off means reopening it, which needs a restart.
                        Some(Some(tls)) if listener.tls.is_some() => {
                            listener.tls = Some(tls.clone())
                        }
                        Some(new) if new.is_some() != listener.tls.is_some() => warn!(
                            "Listener {}: switching TLS on or off needs a restart.",
                            listener.index
                        ),
                        _ => {}
                    }
                }
                self.broker.set_settings(reload.settings);
                self.broker.set_auth(reload.passwords, reload.acl);
                self.broker.set_listener_auth(reload.listener_auth);
                let now = Instant::now();
                self.broker.reauthenticate(now);
                self.reload_bridges(&reload.bridges, now);
                self.flush_and_close(now);
            }
            Err(e) => warn!("Reload failed, keeping the running configuration: {e}"),
        }
    }

    /// `release` is called when the number of connections falls to a quarter of its peak
    /// (and at least 256 have left): the process gives the memory of departed clients back instead
    /// of staying at its peak. The library has no allocator code of its own; the binary
    /// passes glibc's `malloc_trim`.
    pub fn release_memory_with(&mut self, release: fn()) {
        self.release_memory = Some(release);
    }

    fn note_connections(&mut self) {
        // A burst's outbox of megabytes (100,000 retained messages to a new subscriber
        // are 9 MB) leaves its pages in the heap once written: give them back too.
        if self.broker.take_dropped_output() >= RELEASE_AFTER_OUTPUT {
            if let Some(release) = self.release_memory {
                debug!("A large outbox was written: releasing memory.");
                release();
            }
        }
        let open = self.open_connections;
        if self.connections_peak - open >= 256 && open <= self.connections_peak / 4 {
            if let Some(release) = self.release_memory {
                debug!(
                    "{open} connections left of {}: releasing memory.",
                    self.connections_peak
                );
                release();
            }
            self.connections_peak = open;
        }
    }

    /// Calls `beat` every `interval` from the loop itself: if the loop stalls, the beats
    /// stop (systemd's WATCHDOG=1).
    pub fn heartbeat_every(&mut self, interval: std::time::Duration, beat: fn()) {
        self.heartbeat = Some((interval, beat, Instant::now()));
    }

    /// Installs the password file and ACL.
    pub fn set_auth(&mut self, passwords: Option<PasswordFile>, acl: Option<Acl>) {
        self.broker.set_auth(passwords, acl);
    }

    /// Loads the saved state into the broker and starts journaling, appending to the
    /// loaded journal.
    pub fn enable_persistence(&mut self, options: StoreOptions) -> io::Result<()> {
        let now = Instant::now();
        let strict = options.sync == SyncMode::Ack;
        let (store, loaded) = Store::open(options, now).map_err(io::Error::other)?;
        let mut state = loaded.state;
        let next_message = state.max_message_id();
        let (retained, sessions) = (state.retained.len(), state.sessions.len());
        state.finish();
        self.broker.restore(state, now);
        self.broker
            .enable_journal(strict, next_message, now, std::time::SystemTime::now());
        store.set_waker(self.shutdown.waker.clone());
        info!(
            "Persistence: {} ({} snapshot and {} journal records: {retained} retained messages, {sessions} sessions) loaded in {} ms.",
            store.path().display(),
            loaded.snapshot_records,
            loaded.journal_records,
            now.elapsed().as_millis()
        );
        self.store = Some(store);
        Ok(())
    }

    /// Hands this iteration's journal records to the store, compacts when it is time,
    /// and releases acknowledgements whose records are durable.
    fn persist(&mut self, now: Instant) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Some((batch, bytes)) = self.broker.take_journal() {
            store.append(batch, bytes);
        }
        if store.wants_snapshot(self.broker.journal_records(), now) {
            let mut bytes = Vec::new();
            let batch = self.broker.write_snapshot(&mut bytes);
            store.snapshot(batch, bytes, now);
        }
        self.broker.set_durable(store.durable());
        self.broker
            .set_persistence_status(store.healthy(), store.bytes_written());
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until [`ShutdownHandle::shutdown`] is called.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        while !self.shutdown.flag.load(Ordering::SeqCst) {
            let timeout = if self.unread.is_empty()
                && !self.broker.wants_refill()
                && !crate::log_dest::has_topic_lines()
            {
                let next = [
                    self.broker.next_deadline(),
                    self.heartbeat.map(|h| h.2),
                    self.bridges_deadline(),
                ]
                .into_iter()
                .flatten()
                .min();
                next.map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(std::time::Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            let unread = std::mem::take(&mut self.unread);
            for slot in unread {
                self.read(slot, now);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER_TOKEN => {}
                    RELOAD_TOKEN => self.reload(),
                    HOOK_TOKEN => self.run_signal_hooks(),
                    SIGNAL_TOKEN => {
                        info!("Signal received, stopping.");
                        self.shutdown.flag.store(true, Ordering::SeqCst);
                    }
                    Token(t) if t > FIRST_LISTENER_TOKEN - self.listeners.len() => {
                        self.accept(FIRST_LISTENER_TOKEN - t, now)
                    }
                    Token(slot) if self.is_bridge_slot(slot as u32) => {
                        self.bridge_event(slot, event, now)
                    }
                    Token(slot) => {
                        let slot = slot as u32;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(slot, now);
                        }
                        if event.is_writable() {
                            self.writable.push(slot);
                        }
                    }
                }
            }
            self.drive_bridges(now);
            self.broker.handle_timeout(now);
            self.broker.refill(now);
            crate::log_dest::publish_topic_lines(|topic, line| {
                self.broker.publish_log(topic, line, now)
            });
            // Output is written only once this iteration's records are in the journal:
            // an acknowledgement never leaves before what it acknowledges is stored.
            self.persist(now);
            self.flush_writable(now);
            self.flush_and_close(now);
            if let Some((interval, beat, at)) = self.heartbeat.as_mut() {
                if *at <= now {
                    beat();
                    *at = now + *interval;
                }
            }
            self.free.extend(self.freed.drain(..).map(Reverse));
            if crate::broker::trim_slab(&mut self.conns) {
                // Bridges' slots stay reserved.
                if self.conns.len() < self.bridges.len() {
                    self.conns.resize_with(self.bridges.len(), || None);
                }
                let len = self.conns.len() as u32;
                self.free.retain(|Reverse(slot)| *slot < len);
            }
            self.note_connections();
        }
        self.stop_bridges(Instant::now());
        self.broker.shutdown();
        self.persist(Instant::now());
        if let Some(store) = self.store.take() {
            // Everything journaled is written and synced before the process ends.
            store.stop();
        }
        self.flush_and_close(Instant::now());
        info!("culex shutting down.");
        Ok(())
    }

    fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listeners[index].socket.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors and the like: try again on the next event.
                    warn!("Cannot accept a connection: {e}.");
                    return;
                }
            };
            if self
                .global_max_connections
                .is_some_and(|max| self.open_connections >= max)
            {
                info!("Client connection from {peer} denied: global_max_connections exceeded.");
                continue;
            }
            if let (Some(rate), Peer::Inet(address)) = (&mut self.connection_rate, &peer) {
                if !rate.admit(address.ip(), now) {
                    info!("Client connection from {peer} denied: max_connection_rate exceeded.");
                    continue;
                }
            }
            let listener = &mut self.listeners[index];
            if listener
                .max_connections
                .is_some_and(|max| listener.connections >= max)
            {
                info!("Client connection from {peer} denied: max_connections exceeded.");
                continue;
            }
            let slot = match self.free.pop() {
                Some(Reverse(slot)) => slot,
                None => {
                    self.conns.push(None);
                    (self.conns.len() - 1) as u32
                }
            };
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(slot as usize),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("Cannot register a connection from {peer}: {e}.");
                self.free.push(Reverse(slot));
                continue;
            }
            let tls = match &listener.tls {
                Some(config) => match rustls::ServerConnection::new(config.clone()) {
                    Ok(c) => Some(Box::new(c)),
                    Err(e) => {
                        warn!("Cannot start TLS for {peer}: {e}.");
                        let _ = self.poll.registry().deregister(&mut stream);
                        self.free.push(Reverse(slot));
                        continue;
                    }
                },
                None => None,
            };
            listener.connections += 1;
            self.open_connections += 1;
            self.connections_peak = self.connections_peak.max(self.open_connections);
            debug!(
                "New connection from {peer} on {}.",
                listener.socket.describe()
            );
            self.conns[slot as usize] = Some(Connection {
                stream,
                listener: index,
                partial: Vec::new(),
                tls,
                pending_cert_username: listener.cert_username,
                ws: listener.websocket.as_ref().map(|policy| {
                    Box::new(WsConn {
                        policy: policy.clone(),
                        phase: WsPhase::Handshake,
                        deframer: websocket::Deframer::default(),
                        sender: websocket::Sender::default(),
                    })
                }),
            });
            let limits_index = self.listeners[index].index;
            self.broker
                .handle_open(ConnId(slot), peer, limits_index, now);
        }
    }

    /// Reads what `slot` has (within its turn) and hands whole packets to the broker.
    fn read(&mut self, slot: u32, now: Instant) {
        if self.is_bridge_slot(slot) {
            return self.bridge_read(slot as usize, now);
        }
        let id = ConnId(slot);
        let is_tls = self
            .conns
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.tls.is_some());
        if is_tls {
            return self.read_tls(slot, now);
        }
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => return self.lose(slot, now),
                Ok(n) if conn.ws.is_some() => {
                    let Connection {
                        stream,
                        listener,
                        partial,
                        ws: Some(ws),
                        ..
                    } = conn
                    else {
                        return;
                    };
                    ws_input(
                        &mut self.broker,
                        id,
                        WsParts {
                            ws,
                            partial,
                            stream,
                            listener: &self.listeners[*listener].socket,
                        },
                        &mut self.scratch[..n],
                        self.max_packet_size,
                        now,
                    );
                    // The handshake response or control frames; written after persist(),
                    // with the MQTT output.
                    self.writable.push(slot);
                }
                Ok(n) => {
                    let ok = deframe(
                        &mut self.broker,
                        id,
                        &mut conn.partial,
                        &self.scratch[..n],
                        self.max_packet_size,
                        now,
                    );
                    if !ok {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.lose(slot, now),
            }
        }
        self.unread.push(slot);
    }

    /// Reads TLS records, decrypts them and hands whole packets to the broker; sends
    /// what the handshake wants to send.
    fn read_tls(&mut self, slot: u32, now: Instant) {
        let id = ConnId(slot);
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            let Some(tls) = conn.tls.as_mut() else { return };
            let pending_cert_username = conn.pending_cert_username;
            let is_eof = match tls.read_tls(&mut conn.stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.lose(slot, now),
            };
            if let Err(e) = tls.process_new_packets() {
                info!(
                    "TLS error from {}: {e}.",
                    conn.stream.peer(&self.listeners[conn.listener].socket)
                );
                // Send the alert rustls prepared, then close.
                let _ = tls.write_tls(&mut conn.stream);
                return self.lose(slot, now);
            }
            if let Some(kind) = pending_cert_username.filter(|_| !tls.is_handshaking()) {
                conn.pending_cert_username = None;
                let username = tls
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| cert_name::username(cert, kind));
                if username.is_none() {
                    info!(
                        "Client certificate from {} gives no username ({kind:?}).",
                        conn.stream.peer(&self.listeners[conn.listener].socket)
                    );
                }
                self.broker
                    .set_certificate_username(id, username.map(String::into_boxed_str));
            }
            let is_ws = conn.ws.is_some();
            loop {
                match tls.reader().read(&mut self.scratch) {
                    Ok(0) => return self.lose(slot, now),
                    Ok(n) if is_ws => {
                        let Connection {
                            stream,
                            listener,
                            partial,
                            ws: Some(ws),
                            ..
                        } = conn
                        else {
                            return;
                        };
                        ws_input(
                            &mut self.broker,
                            id,
                            WsParts {
                                ws,
                                partial,
                                stream,
                                listener: &self.listeners[*listener].socket,
                            },
                            &mut self.scratch[..n],
                            self.max_packet_size,
                            now,
                        );
                    }
                    Ok(n) => {
                        let ok = deframe(
                            &mut self.broker,
                            id,
                            &mut conn.partial,
                            &self.scratch[..n],
                            self.max_packet_size,
                            now,
                        );
                        if !ok {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return self.lose(slot, now),
                }
            }
            if is_eof {
                return self.lose(slot, now);
            }
            if tls.wants_write() || is_ws {
                // Handshake and alert records, and a WebSocket connection's response or
                // control frames; written with the rest after persist().
                self.writable.push(slot);
            }
        }
        self.unread.push(slot);
    }

    /// Writes as much of a connection's outbox as the socket takes.
    fn flush(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return false;
        };
        if let Some(tls) = conn.tls.as_mut() {
            return flush_tls(
                &mut self.broker,
                id,
                tls,
                &mut conn.stream,
                conn.ws.as_deref_mut(),
            );
        }
        if let Some(ws) = conn.ws.as_mut() {
            return flush_ws(&mut self.broker, id, ws, &mut conn.stream);
        }
        loop {
            let out = self.broker.output(id);
            if out.is_empty() {
                return true;
            }
            match conn.stream.write(out) {
                Ok(0) => return false,
                Ok(n) => self.broker.consume_output(id, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Writes the sockets that became writable (or have TLS records to send) in this
    /// iteration.
    fn flush_writable(&mut self, now: Instant) {
        let mut writable = std::mem::take(&mut self.writable);
        for slot in writable.drain(..) {
            let is_open = self.conns.get(slot as usize).is_some_and(Option::is_some);
            if is_open && !self.flush(ConnId(slot)) {
                self.lose(slot, now);
            }
        }
        self.writable = writable;
    }

    fn flush_and_close(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(id) = self.broker.poll_dirty() {
                progressed = true;
                if self.is_bridge_slot(id.0) {
                    self.bridge_service(id.0 as usize, now);
                } else if !self.flush(id) {
                    self.lose(id.0, now);
                }
            }
            while let Some(id) = self.broker.poll_close() {
                progressed = true;
                if self.is_bridge_slot(id.0) {
                    self.bridge_local_closed(id.0 as usize, now);
                    continue;
                }
                if let Some(ws) = self
                    .conns
                    .get_mut(id.0 as usize)
                    .and_then(Option::as_mut)
                    .and_then(|c| c.ws.as_mut())
                {
                    // RFC 6455 7.1.1: a close frame before the TCP close.
                    ws.sender.close(websocket::close_code::NORMAL);
                    ws.phase = WsPhase::Closing;
                }
                self.flush(id);
                self.remove(id.0);
                self.broker.handle_closed(id, now);
            }
            if !progressed {
                return;
            }
        }
    }

    /// The socket ended or failed.
    fn lose(&mut self, slot: u32, now: Instant) {
        if self.remove(slot) {
            self.broker.handle_closed(ConnId(slot), now);
        }
    }

    fn remove(&mut self, slot: u32) -> bool {
        let Some(mut conn) = self.conns.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.stream.shutdown();
        self.listeners[conn.listener].connections -= 1;
        self.open_connections -= 1;
        self.freed.push(slot);
        true
    }
}

/// Moves the broker's output through TLS to the socket: plaintext into rustls (within its
/// buffer limit), records out until the socket would block. Returns false if the
/// connection failed.
fn flush_tls(
    broker: &mut Broker,
    id: ConnId,
    tls: &mut rustls::ServerConnection,
    stream: &mut Stream,
    mut ws: Option<&mut WsConn>,
) -> bool {
    loop {
        let mut progressed = false;
        let out = broker.output(id);
        if let Some(ws) = ws.as_deref_mut() {
            // WebSocket frames into rustls's plaintext buffer, until it is full.
            for _ in 0..64 {
                match ws.sender.write_step(&mut tls.writer(), broker.output(id)) {
                    Ok(websocket::Step::Wrote { written: 0, .. }) => break,
                    Ok(websocket::Step::Wrote { consumed, .. }) => {
                        if consumed > 0 {
                            broker.consume_output(id, consumed);
                        }
                        progressed = true;
                    }
                    Ok(websocket::Step::Idle) => break,
                    Err(_) => return false,
                }
            }
        } else if !out.is_empty() {
            match tls.writer().write(out) {
                Ok(0) => {}
                Ok(n) => {
                    broker.consume_output(id, n);
                    progressed = true;
                }
                Err(_) => return false,
            }
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return false,
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !progressed {
            // A closing WebSocket connection is done once all is sent.
            return match ws {
                Some(ws) if ws.sender.is_done() && !tls.wants_write() => ws_output_done(ws, stream),
                _ => true,
            };
        }
    }
}

/// Moves the broker's output to the socket in WebSocket frames. Returns false if the
/// connection failed, or was closing and everything is written.
fn flush_ws(broker: &mut Broker, id: ConnId, ws: &mut WsConn, stream: &mut Stream) -> bool {
    loop {
        match ws.sender.write_step(stream, broker.output(id)) {
            Ok(websocket::Step::Wrote { written: 0, .. }) => return false,
            Ok(websocket::Step::Wrote { consumed, .. }) => {
                if consumed > 0 {
                    broker.consume_output(id, consumed);
                }
            }
            Ok(websocket::Step::Idle) if ws.sender.is_done() => return ws_output_done(ws, stream),
            Ok(websocket::Step::Idle) => return true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Everything queued is written: a closing connection ends (false), an HTTP response
/// is followed by a half-close and lingering; otherwise nothing happens (true).
fn ws_output_done(ws: &mut WsConn, stream: &Stream) -> bool {
    match ws.phase {
        WsPhase::Closing => false,
        WsPhase::HttpDone => {
            stream.shutdown_write();
            ws.phase = WsPhase::Lingering;
            true
        }
        WsPhase::Handshake | WsPhase::Open | WsPhase::Lingering => true,
    }
}

/// The parts of a connection the WebSocket input needs.
struct WsParts<'a> {
    ws: &'a mut WsConn,
    partial: &'a mut Vec<u8>,
    stream: &'a Stream,
    listener: &'a Listening,
}

/// Bytes read from a WebSocket connection (after TLS, if any): the HTTP request while
/// in the handshake, then frames whose MQTT bytes go to [`deframe`]. What must be sent
/// (the response, a pong, a close) is queued in the connection's sender.
fn ws_input(
    broker: &mut Broker,
    id: ConnId,
    parts: WsParts<'_>,
    data: &mut [u8],
    max_packet_size: usize,
    now: Instant,
) {
    let WsParts {
        ws,
        partial,
        stream,
        listener,
    } = parts;
    match ws.phase {
        WsPhase::Closing | WsPhase::HttpDone | WsPhase::Lingering => return,
        WsPhase::Open => return ws_frames(broker, id, ws, partial, data, max_packet_size, now),
        WsPhase::Handshake => {}
    }
    // The head is parsed where it lies: in `data` if it came in one read, else in the
    // bytes kept so far (bounded by the head's limit, which parse_request enforces).
    let mut head = std::mem::take(partial);
    let is_whole_read = head.is_empty();
    if !is_whole_read {
        head.extend_from_slice(data);
    }
    let buf: &mut [u8] = if is_whole_read { data } else { &mut head };
    let result = websocket::parse_request(buf, ws.policy.max_headers())
        .map(|r| r.map(|(request, len)| (websocket::decide(&request, &ws.policy), len)));
    let status = match result {
        Ok(None) => {
            *partial = if is_whole_read { buf.to_vec() } else { head };
            return;
        }
        Ok(Some((websocket::Outcome::Upgrade(response), len))) => {
            debug!("WebSocket connection from {}.", stream.peer(listener));
            ws.sender.queue(&response);
            ws.sender.open();
            ws.phase = WsPhase::Open;
            let rest = &mut buf[len..];
            if !rest.is_empty() {
                ws_frames(broker, id, ws, partial, rest, max_packet_size, now);
            }
            return;
        }
        Ok(Some((websocket::Outcome::File(path), _))) => match websocket::file_response(&path) {
            Ok(response) => {
                debug!("HTTP {} to {}.", path.display(), stream.peer(listener));
                ws.sender.queue(&response);
                ws.phase = WsPhase::HttpDone;
                return;
            }
            Err(status) => status,
        },
        Ok(Some((websocket::Outcome::Reject(status), _))) | Err(status) => status,
    };
    info!(
        "HTTP request from {} refused: {}.",
        stream.peer(listener),
        status.code()
    );
    ws.sender.queue(&status.response());
    ws.phase = WsPhase::HttpDone;
}

/// WebSocket frames of an open connection.
fn ws_frames(
    broker: &mut Broker,
    id: ConnId,
    ws: &mut WsConn,
    partial: &mut Vec<u8>,
    data: &mut [u8],
    max_packet_size: usize,
    now: Instant,
) {
    use websocket::{close_code, opcode, Event};
    let sender = &mut ws.sender;
    let mut peer_close = None;
    let result = ws
        .deframer
        .feed(data, max_packet_size as u64, |event| match event {
            Event::Data(bytes) => deframe(broker, id, partial, bytes, max_packet_size, now),
            Event::Ping(payload) => {
                sender.queue(&websocket::control_frame(opcode::PONG, payload));
                true
            }
            Event::Pong => true,
            Event::Close(code) => {
                peer_close = Some(code.unwrap_or(close_code::NORMAL));
                false
            }
        });
    let code = match (result, peer_close) {
        (Err(websocket::Violation(code)), _) => {
            debug!(
                "WebSocket protocol error on connection {}: closing with {code}.",
                id.0
            );
            code
        }
        // RFC 6455 5.5.1: answer a close with a close, echoing its code.
        (Ok(()), Some(code)) => code,
        (Ok(()), None) => return,
    };
    ws.sender.close(code);
    ws.phase = WsPhase::Closing;
}

/// Hands every whole packet in `partial` + `data` to the broker and keeps the incomplete
/// rest in `partial`. Returns false if the stream cannot continue (a framing error).
fn deframe(
    broker: &mut Broker,
    id: ConnId,
    partial: &mut Vec<u8>,
    mut data: &[u8],
    max_packet_size: usize,
    now: Instant,
) -> bool {
    // A read nearly always ends inside a packet. The pending packet is completed with
    // just the bytes it lacks, and the rest of the read is decoded where it lies: copying
    // every read behind the pending bytes into a fresh buffer cost a quarter of the
    // broker's time in the fan-through profile (the copy, and page faults on the buffer).
    while !partial.is_empty() {
        let (want, is_whole_known) = match frame::len(partial, max_packet_size) {
            Ok(Some(len)) => (len, true),
            // The fixed header is incomplete: one byte more, then look again.
            Ok(None) => (partial.len() + 1, false),
            Err(e) => {
                broker.handle_framing_error(id, e, now);
                return false;
            }
        };
        // `take` <= data.len(), so the split cannot fail.
        let take = want.saturating_sub(partial.len()).min(data.len());
        let (head, rest) = data.split_at(take);
        partial.extend_from_slice(head);
        data = rest;
        if !is_whole_known || partial.len() < want {
            if data.is_empty() {
                return true;
            }
            continue;
        }
        if deframe_slice(broker, id, partial, max_packet_size, now).is_none() {
            return false;
        }
        // Give the memory back: an idle connection owns no buffer.
        *partial = Vec::new();
    }
    let consumed = match deframe_slice(broker, id, data, max_packet_size, now) {
        Some(n) => n,
        None => return false,
    };
    // `consumed` <= data.len(): deframe_slice counts bytes it took from `data`.
    partial.extend_from_slice(data.get(consumed..).unwrap_or_default());
    true
}

/// Returns how many bytes of whole packets were handed over, or None on a framing error.
///
/// `frame::check` promises a length of at least 2 that the buffer holds (fuzzed by
/// `protocol::fuzz`); should it ever break that promise, this connection gets a framing
/// error, and the loop neither panics on a slice nor spins on an empty frame.
fn deframe_slice(
    broker: &mut Broker,
    id: ConnId,
    data: &[u8],
    max_packet_size: usize,
    now: Instant,
) -> Option<usize> {
    let mut rest = data;
    while !rest.is_empty() {
        match frame::check(rest, max_packet_size) {
            Ok(Some(len)) => {
                let Some((frame, tail)) = rest.split_at_checked(len).filter(|_| len > 0) else {
                    broker.handle_framing_error(id, DecodeError::UnexpectedEnd, now);
                    return None;
                };
                broker.handle_frame(id, frame, now);
                rest = tail;
            }
            Ok(None) => break,
            Err(e) => {
                broker.handle_framing_error(id, e, now);
                return None;
            }
        }
    }
    Some(data.len() - rest.len())
}

fn resolve(
    address: Option<&str>,
    port: u16,
    is_ipv4_only: bool,
    is_ipv6_only: bool,
) -> io::Result<Vec<SocketAddr>> {
    if is_ipv6_only {
        // socket_domain ipv6, as Mosquitto's getaddrinfo hint AF_INET6.
        let all: Vec<SocketAddr> = match address {
            None => vec![SocketAddr::from(([0u16; 8], port))],
            Some(host) => (host, port)
                .to_socket_addrs()?
                .filter(|a| a.is_ipv6())
                .collect(),
        };
        if all.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no IPv6 address (socket_domain ipv6)",
            ));
        }
        return Ok(all);
    }
    if is_ipv4_only {
        // socket_domain ipv4, as Mosquitto's getaddrinfo hint AF_INET.
        let all: Vec<SocketAddr> = match address {
            None => vec![SocketAddr::from(([0, 0, 0, 0], port))],
            Some(host) => (host, port)
                .to_socket_addrs()?
                .filter(|a| a.is_ipv4())
                .collect(),
        };
        if all.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no IPv4 address (socket_domain ipv4)",
            ));
        }
        return Ok(all);
    }
    match address {
        // Every address: IPv6 wildcard, which on Linux also accepts IPv4 unless the host
        // disabled it; then the IPv4 wildcard.
        None => Ok(vec![SocketAddr::from(([0u16; 8], port))]),
        Some(host) => {
            let mut all: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
            all.dedup();
            Ok(all)
        }
    }
}

fn bind_one(
    address: SocketAddr,
    is_ipv6_only: bool,
    interface: Option<&str>,
) -> io::Result<TcpListener> {
    match listen_socket(address, is_ipv6_only, interface) {
        Err(e) if address.ip().is_unspecified() && address.is_ipv6() && !is_ipv6_only => {
            debug!("IPv6 wildcard unavailable ({e}); listening on IPv4 only.");
            listen_socket(
                SocketAddr::from(([0, 0, 0, 0], address.port())),
                false,
                interface,
            )
        }
        other => other,
    }
}

/// A listening socket with the options that must be set before bind; otherwise as mio's
/// `TcpListener::bind` (SO_REUSEADDR, non-blocking, backlog 1024).
fn listen_socket(
    address: SocketAddr,
    is_ipv6_only: bool,
    interface: Option<&str>,
) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() && is_ipv6_only {
        socket.set_only_v6(true)?;
    }
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("bind_interface {interface}: {e}")))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn family(address: &SocketAddr) -> &'static str {
    if address.is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Props;

    /// Packets split at every possible place across reads are all handled, once each:
    /// a PUBLISH to the client's own subscription comes back to it.
    #[test]
    fn packets_split_across_reads_are_reassembled() {
        use crate::protocol::{Connect, Packet, PacketId, ProtocolVersion, QoS};
        use crate::protocol::{Subscribe, SubscriptionOptions};
        let v = ProtocolVersion::V311;
        let mut stream = Vec::new();
        Packet::Connect(Box::new(Connect::minimal(v, "split"))).encode(v, &mut stream);
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).expect("1 is not 0"),
            filters: vec![("t/#", SubscriptionOptions::new(QoS::AtMostOnce))],
            properties: Props::default(),
        })
        .encode(v, &mut stream);
        const MESSAGES: usize = 40;
        for i in 0..MESSAGES {
            // Payloads of 0 to 390 bytes: Remaining Lengths of one and two bytes.
            let payload = vec![i as u8; i * 10];
            crate::protocol::encode_publish(
                &mut stream,
                "t/x",
                &payload,
                QoS::AtMostOnce,
                false,
                false,
                None,
            );
        }
        for chunk in [1, 2, 3, 5, 7, 64, 127, 1000, stream.len()] {
            let now = Instant::now();
            let mut broker = Broker::new(Settings::default(), now);
            let id = ConnId(1);
            broker.handle_open(id, SocketAddr::from(([127, 0, 0, 1], 40_000)), 0, now);
            let mut partial = Vec::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                assert!(deframe(&mut broker, id, &mut partial, piece, 1 << 20, now));
                out.extend_from_slice(broker.output(id));
                let n = broker.output(id).len();
                broker.consume_output(id, n);
            }
            assert!(
                partial.is_empty(),
                "chunk {chunk}: {} bytes left",
                partial.len()
            );
            let mut publishes = Vec::new();
            let mut pos = 0;
            while let Ok(Some(len)) = frame::check(&out[pos..], usize::MAX) {
                if let Ok(Packet::Publish(p)) = Packet::decode(&out[pos..pos + len], v) {
                    publishes.push(p.payload.to_vec());
                }
                pos += len;
            }
            assert_eq!(pos, out.len(), "chunk {chunk}");
            assert_eq!(
                publishes.len(),
                MESSAGES,
                "chunk {chunk}: PUBLISHes delivered"
            );
            for (i, payload) in publishes.iter().enumerate() {
                assert!(
                    *payload == vec![i as u8; i * 10],
                    "chunk {chunk}: message {i}"
                );
            }
        }
    }

    #[test]
    fn socket_domain_ipv4_restricts_the_wildcard_and_names() {
        assert_eq!(
            resolve(None, 1883, true, false).unwrap(),
            [SocketAddr::from(([0, 0, 0, 0], 1883))]
        );
        assert_eq!(
            resolve(None, 1883, false, false).unwrap(),
            [SocketAddr::from(([0u16; 8], 1883))]
        );
        assert!(resolve(Some("::1"), 1883, true, false).is_err());
        assert_eq!(
            resolve(Some("127.0.0.1"), 1883, true, false).unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 1883))]
        );
    }

    #[test]
    fn socket_domain_ipv6_restricts_to_ipv6_and_sets_v6only() {
        assert!(resolve(Some("127.0.0.1"), 1883, false, true).is_err());
        assert_eq!(
            resolve(Some("::1"), 1883, false, true).unwrap(),
            [SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1883))]
        );
        // An IPv6-only wildcard does not take IPv4 connections.
        let Ok(listener) = listen_socket(SocketAddr::from(([0u16; 8], 0)), true, None) else {
            panic!("this host needs IPv6 for culex's tests");
        };
        let port = listener.local_addr().unwrap().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(std::net::TcpStream::connect(("::1", port)).is_ok());
    }

    #[test]
    fn bind_interface_binds_to_the_device() {
        // SO_BINDTODEVICE on the loopback device: connections over it still arrive.
        let listener = listen_socket(SocketAddr::from(([127, 0, 0, 1], 0)), false, Some("lo"))
            .expect("bind to lo (needs CAP_NET_RAW before Linux 5.7; CI runs as root)");
        let port = listener.local_addr().unwrap().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let e = listen_socket(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            false,
            Some("no-such-if0"),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(e.to_string().contains("bind_interface no-such-if0"), "{e}");
    }

    #[test]
    fn socket_domain_and_bind_interface_are_supported_options() {
        let text = "listener 1883\nsocket_domain ipv6\nlistener 1884\nsocket_domain ipv4\nbind_interface eth0\n";
        let c = Config::parse_str(text, std::path::Path::new("t.conf")).unwrap();
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
    }
}
