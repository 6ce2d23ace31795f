//! The event loop: one mio `Poll`, the listeners, the accepted connections, the bridges'
//! remote sockets, and the moving of bytes between sockets and the [`Broker`]; the
//! process's I/O (files, clock, signals) is done here, not in the core.
//!
//! - Each socket is registered once for read and write readiness (mio is edge-triggered;
//!   no per-event reregister).
//! - Reads go into one shared scratch buffer. A connection keeps bytes only while a packet
//!   is incomplete (`partial`), and only up to the largest packet the broker accepts.
//! - A connection is read at most `READS_PER_TURN` times per iteration; if it still has
//!   data, it is remembered and served again next iteration (draining readiness), so one
//!   busy client cannot starve the others.
//! - A connection the broker holds (a subscriber its messages go to is behind; see
//!   broker/pressure.rs) is not read, and the packets left of the read that was cut short
//!   wait in its partial buffer; the publisher's own TCP buffers do the waiting. Once
//!   the broker releases it (`poll_resumed`, after the output is written), it joins the
//!   `unread` list and is read in the next iteration whether or not an event comes, since
//!   mio is edge-triggered and the data may already be there.
//! - Writes happen once per dirty connection per iteration, after all reads, so many
//!   packets to one subscriber go out in one system call.
//! - A slot freed during an iteration is reused only after it, so a stale event of a
//!   closed connection never reaches a new one.
//!
//! # Layout
//! - this file: the [`Server`], its loop ([`Server::run`]) and what the loop does once per
//!   iteration (persistence hand-off, flushing dirty connections, closing, memory release).
//! - `setup`: configuration into listeners: resolving and binding them, loading their TLS
//!   configurations, the password and ACL files and the persistence options.
//! - `signals`: the signal pipes (SIGTERM/SIGINT stop, SIGHUP reload, the binary's
//!   hooks) and what a reload applies.
//! - `conn`: one client connection: accept, read (TCP, TLS, WebSocket, WebSocket over
//!   TLS, all through one plaintext path), write, remove.
//! - `deframe`: plaintext bytes into whole MQTT packets for the broker.
//! - `bridge`: the bridges' remote sockets; [`crate::bridge`] is their sans-I/O half.
//! - [`tls`], [`cert_name`], [`websocket`], `socket`, `rate`: rustls set-up, certificate
//!   names, the WebSocket protocol, the TCP/Unix socket pair and `max_connection_rate`.
//! - [`http_api`]: `protocol http_api` listeners (Mosquitto 2.1's HTTP API and
//!   Prometheus `/metrics`), answered on the WebSocket listener's HTTP path.

mod bridge;
mod cert_chain;
pub mod cert_name;
mod conn;
mod deframe;
pub mod http_api;
mod rate;
mod setup;
mod signals;
mod socket;
pub mod tls;
pub mod websocket;

pub use setup::{
    load_auth, load_dynsec, load_listener_auth, load_listener_tls, store_options, ListenerSpec,
};
pub use signals::{Reload, Reloader};

use crate::auth::{Acl, PasswordFile};
use crate::broker::{Broker, ConnId};
use crate::persist::{Store, StoreOptions, SyncMode};
use conn::Connection;
use log::{debug, info};
use mio::{Events, Poll, Token, Waker};
use signals::{SignalHooks, SignalPipe};
use socket::Listening;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
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

fn listener_token(index: usize) -> Token {
    Token(FIRST_LISTENER_TOKEN - index)
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
    /// `require_certificate` (for `/api/v1/listeners`).
    is_mtls: bool,
}

/// What the loop tells a supervisor (the binary maps it to sd_notify(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// A SIGHUP reload begins.
    Reloading,
    /// The reload is done (applied or refused): serving again, with the status now.
    Reloaded(&'a str),
    /// The one-line status changed.
    Status(&'a str),
}

/// What [`Server::notify_with`] installs.
pub type NoticeHook = Box<dyn FnMut(Notice<'_>)>;

/// How often the status line is recomputed (it is sent only when it changed).
const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
    signal_pipe: Option<SignalPipe>,
    reload_pipe: Option<SignalPipe>,
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
    /// Told of reloads and of the one-line status (systemd's sd_notify), with the status
    /// last told and when to look at it again.
    notices: Option<(NoticeHook, String, Instant)>,
    /// The `connection` blocks; bridge `i` owns slab slot `i` (see net/bridge.rs).
    bridges: Vec<bridge::BridgeConn>,
    /// The journal and snapshot files, with `persistence true`.
    store: Option<Store>,
    /// Scratch list of the sockets that became writable in one iteration.
    writable: Vec<u32>,
    /// Scratch list of the subscribers a held publisher waits on (`relieve`).
    relief: Vec<ConnId>,
}
impl Server {
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.tcp_address())
            .collect()
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

    /// Calls `notice` around reloads and when the status line changes (checked at most
    /// once a second): clients connected and bridges up and down.
    pub fn notify_with(&mut self, notice: NoticeHook) {
        self.notices = Some((notice, String::new(), Instant::now()));
    }

    /// The one-line summary: "3 clients connected; bridges 1 up, 1 down (cloud)".
    pub fn status_line(&self) -> String {
        let clients = self.broker.clients_connected();
        let mut line = format!(
            "{clients} client{} connected",
            if clients == 1 { "" } else { "s" }
        );
        let (up, down) = self.bridges_up_down();
        if up + down > 0 {
            line.push_str(&format!("; bridges {up} up, {down} down"));
            let names = self.bridges_down();
            if !names.is_empty() {
                line.push_str(&format!(" ({})", names.join(", ")));
            }
        }
        line
    }

    fn update_status(&mut self, now: Instant) {
        match &self.notices {
            Some((_, _, at)) if *at <= now => {}
            _ => return,
        }
        let line = self.status_line();
        if let Some((notice, last, at)) = self.notices.as_mut() {
            *at = now + STATUS_INTERVAL;
            if *last != line {
                notice(Notice::Status(&line));
                *last = line;
            }
        }
    }

    /// Installs the password file and ACL.
    pub fn set_auth(&mut self, passwords: Option<PasswordFile>, acl: Option<Acl>) {
        self.broker.set_auth(passwords, acl);
    }

    /// Loads the saved state into the broker and starts journaling, appending to the
    /// loaded journal.
    pub fn enable_persistence(&mut self, options: StoreOptions) -> io::Result<()> {
        // Read together: the journal stores times as wall-clock milliseconds through
        // this pair. A wall clock read after the load (which may write and sync a
        // snapshot) put every stored expiry that much later, and a message published
        // with 3600 s came back with 3601 s left.
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let strict = options.sync == SyncMode::Ack;
        let (store, loaded) = Store::open(options, now).map_err(io::Error::other)?;
        let mut state = loaded.state;
        let next_message = state.max_message_id();
        let (retained, sessions) = (state.retained.len(), state.sessions.len());
        state.finish();
        self.broker.restore(state, now);
        self.broker.enable_journal(strict, next_message, now, wall);
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
    /// and tells the broker what is durable (held acknowledgements go out) and whether
    /// the store is degraded (they are refused after `broker::REFUSE_AFTER`).
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
        let status = store.status();
        self.broker.set_durable(status.durable);
        self.broker
            .set_persistence_status(status, store.degraded_since());
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
                    self.notices.as_ref().map(|n| n.2),
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
                            self.note_writable(slot);
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
            self.save_dynsec();
            self.persist(now);
            self.flush_writable(now);
            self.flush_and_close(now);
            while let Some(id) = self.broker.poll_resumed() {
                self.unread.push(id.0);
            }
            self.update_status(now);
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
            // Everything journaled is written and synced before the process ends, and the
            // whole state goes to `persistence_file` (as Mosquitto saves its database).
            let mut state = Vec::new();
            self.broker.write_snapshot(&mut state);
            store.stop_with_snapshot(state);
        }
        self.flush_and_close(Instant::now());
        Ok(())
    }

    /// A dynamic-security command changed the clients, groups or roles: the file is
    /// written before the response goes out, as Mosquitto saves before it answers. Rare
    /// and small, so on the loop: write, fsync, rename, fsync of the directory.
    fn save_dynsec(&mut self) {
        if let Some((path, text)) = self.broker.take_dynsec_save() {
            if let Err(e) = crate::auth::dynsec::write_atomically(&path, &text) {
                log::error!(
                    "Error saving the dynamic-security file {}: {e}",
                    path.display()
                );
            }
        }
    }

    fn flush_and_close(&mut self, now: Instant) {
        self.save_dynsec();
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
                if let Some(conn) = self.conns.get_mut(id.0 as usize).and_then(Option::as_mut) {
                    conn.close_websocket();
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
}
