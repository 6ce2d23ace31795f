//! Test harness: a broker process per test, a raw-byte client for spec edge cases, and a
//! thin wrapper around rumqttc's synchronous client.
//!
//! The broker runs as an external process so the same tests run against culex and against
//! Mosquitto 2.0, the reference (`CULEX_TEST_BROKER=mosquitto`). Every wait here is bounded:
//! a test fails, it never hangs.

#![allow(dead_code)] // Not every test module uses every helper.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnAck, ConnectReturnCode, Connection, Event, MqttOptions, Outgoing, Packet, Publish,
    QoS, SubscribeReasonCode,
};

/// A command that runs one of the crate's built binaries. `CULEX_TEST_RUNNER`, when set,
/// is the prefix that runs it (cross/test.sh sets `qemu-aarch64 -L ...` for ARM builds).
pub fn built_binary(path: impl AsRef<std::ffi::OsStr>) -> Command {
    match std::env::var("CULEX_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().expect("a non-empty runner"));
            c.args(words).arg(path);
            c
        }
        _ => Command::new(path),
    }
}

/// How long a test waits for something it expects to happen.
pub const WAIT: Duration = Duration::from_secs(3);
/// How long a test listens to make sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(500);
/// How long the broker may take to accept TCP connections after it was spawned.
const STARTUP: Duration = Duration::from_secs(10);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A broker process listening on its own port of 127.0.0.1, killed on drop.
pub struct Broker {
    pub port: u16,
    /// The program it runs, for `restart`.
    binary: PathBuf,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// Starts the broker chosen by `CULEX_TEST_BROKER` with `listener PORT 127.0.0.1`,
    /// `allow_anonymous true` and the lines of `extra_conf`, and waits until it accepts TCP
    /// connections.
    pub fn start(extra_conf: &str) -> Broker {
        Broker::start_with_args(extra_conf, &[])
    }

    /// As [`Broker::start`], with `args` after `-c FILE` on the command line.
    pub fn start_with_args(extra_conf: &str, args: &[&str]) -> Broker {
        Broker::start_binary(broker_binary(), extra_conf, args, &[])
    }

    /// As [`Broker::start`], with `env` added to the broker's environment.
    pub fn start_with_env(extra_conf: &str, env: &[(&str, &str)]) -> Broker {
        Broker::start_binary(broker_binary(), extra_conf, &[], env)
    }

    /// As [`Broker::start`], always culex whatever `CULEX_TEST_BROKER` says: for culex's
    /// own options, which Mosquitto refuses.
    pub fn start_culex(extra_conf: &str) -> Broker {
        Broker::start_binary(culex_binary(), extra_conf, &[], &[])
    }

    fn start_binary(
        binary: PathBuf,
        extra_conf: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Broker {
        let dir = std::env::temp_dir().join(format!(
            "culex-itest-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create the test's temporary directory");
        // A port of this process's own block (see `candidate_port`); if something else
        // holds it after all, the broker says "Address in use" and exits, and the next
        // port of the block is tried.
        for _attempt in 0..PORT_ATTEMPTS {
            let port = candidate_port();
            let conf = dir.join("broker.conf");
            write_conf(&conf, port, extra_conf);
            let log = dir.join("broker.log");
            let log_file = File::create(&log).expect("create the broker log");
            let child = Command::new(&binary)
                .arg("-c")
                .arg(&conf)
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("clone the log file handle"))
                .stderr(log_file)
                .spawn()
                .expect("spawn the broker");
            let mut broker = Broker {
                port,
                binary: binary.clone(),
                child,
                dir: dir.clone(),
                log,
            };
            if broker.wait_until_listening() {
                return broker;
            }
            let log_text = broker.log_text();
            let _ = broker.child.kill();
            let _ = broker.child.wait();
            std::mem::forget(broker); // Keep the directory for the next attempt.
            if !log_text.contains("in use") {
                let _ = fs::remove_dir_all(&dir);
                panic!("the broker did not start on port {port}:\n{log_text}");
            }
            eprintln!("port {port} is taken, trying another: {log_text}");
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("the broker did not start after {PORT_ATTEMPTS} attempts (see the logs above)");
    }

    /// Waits until the broker process itself listens on its port: a listening socket on
    /// 127.0.0.1:port whose inode is one of the child's file descriptors (Linux). A
    /// listener of another process on the same port does not count; a broker that exits
    /// (its port was taken) returns false at once.
    fn wait_until_listening(&mut self) -> bool {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(_status)) = self.child.try_wait() {
                return false;
            }
            if listens_on(self.child.id(), self.port) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the broker under test is Mosquitto. Only for the few places where culex
    /// follows the specification or Mosquitto's documentation and Mosquitto 2.0 does not;
    /// each such place asserts both behaviours and says why.
    /// Sends a signal (e.g. "HUP") to the broker process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The broker's resident set size in KiB, from /proc/PID/status (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS")
    }

    /// The broker's virtual memory size in KiB (VmSize): memory allocated but not yet
    /// touched shows here and not in the RSS.
    pub fn vm_size_kib(&self) -> u64 {
        self.proc_status_kib("VmSize")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status of the broker");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("a {field} line in /proc/PID/status"))
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Rewrites the configuration file with `extra_conf` in place of the lines given at
    /// start (the listener stays): what a SIGHUP then reads.
    pub fn rewrite_conf(&self, extra_conf: &str) {
        write_conf(&self.dir.join("broker.conf"), self.port, extra_conf);
    }

    /// A directory of this test's own, removed with the broker.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn is_mosquitto() -> bool {
        std::env::var("CULEX_TEST_BROKER").as_deref() == Ok("mosquitto")
    }

    /// The longest a broker may take to close a connection whose keep alive of 1 s has run
    /// out: 1.5 s [MQTT-3.1.2-24] plus slack for culex.
    ///
    /// Spec over Mosquitto: Mosquitto 2.0.11 checks keep alives coarsely and closes such a
    /// connection after 5.5 to 6 s (measured for keep alives 1, 2 and 3 s), so it gets 8 s.
    pub fn keep_alive_1s_close_limit() -> Duration {
        if Broker::is_mosquitto() {
            Duration::from_secs(8)
        } else {
            Duration::from_secs(4)
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A raw-byte connection to this broker.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// A raw connection that has sent a 3.1.1 CONNECT (clean session, keep alive 60) and
    /// received CONNACK accepted.
    pub fn raw_connected(&self, client_id: &str) -> Raw {
        let mut raw = self.raw();
        raw.send(&connect_packet(client_id, true, 60));
        raw.expect(&[0x20, 0x02, 0x00, 0x00]);
        raw
    }

    /// A rumqttc client with a clean session, connected (CONNACK accepted received).
    pub fn client(&self, client_id: &str) -> Peer {
        Peer::connect(self.options(client_id)).0
    }

    /// A rumqttc client subscribed to `filter` at `qos` (SUBACK received).
    pub fn subscriber(&self, client_id: &str, filter: &str, qos: QoS) -> Peer {
        let mut peer = self.client(client_id);
        let granted = peer.subscribe(filter, qos);
        assert_eq!(
            granted,
            SubscribeReasonCode::Success(qos),
            "SUBACK for {filter}"
        );
        peer
    }

    /// rumqttc options for this broker: keep alive 60 s, nothing else changed.
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", self.port);
        options.set_keep_alive(Duration::from_secs(60));
        options
    }
}

fn write_conf(path: &std::path::Path, port: u16, extra_conf: &str) {
    fs::write(
        path,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra_conf}\n"),
    )
    .expect("write the broker configuration");
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "---- broker log (port {}) ----\n{}---- end of broker log ----",
                self.port,
                self.log_text()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How many ports a test tries before it gives up.
const PORT_ATTEMPTS: usize = 8;
/// Test brokers listen on ports 20000..32287: below Linux's default ephemeral range
/// (32768-60999), so no client socket's local port (the tests open thousands) can take
/// one between its choice and the broker's bind, which is how the former "bind :0,
/// release, let the broker bind it" choice raced under load. Each test process has its
/// own block of the range (from its pid), and within the process a counter hands every
/// broker a port no other broker of the process had recently; two processes whose pids
/// share a block, or an unrelated service on a port, cost a retry, not a failure.
const PORT_BASE: u32 = 20_000;
const PORT_BLOCKS: u32 = 64;
const PORT_BLOCK_SIZE: u32 = 192;
static NEXT_PORT: AtomicUsize = AtomicUsize::new(0);

/// The next port for a test broker (see [`PORT_BASE`]).
pub fn candidate_port() -> u16 {
    let block = std::process::id() % PORT_BLOCKS;
    // Modulo first: the counter's range is far larger than a block.
    let n = (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % PORT_BLOCK_SIZE as usize) as u32;
    u16::try_from(PORT_BASE + block * PORT_BLOCK_SIZE + n).expect("the port range ends at 32287")
}

/// Whether process `pid` has a socket listening on 127.0.0.1:`port`, read from
/// /proc/net/tcp and /proc/PID/fd so that no connection is made: a probe connection would
/// show in `$SYS` counters, and Mosquitto 2.0.11 decrements its `max_connections` count
/// twice per closed connection, so one probe lets one connection too many in. Elsewhere
/// than Linux, a TCP connect (which cannot tell whose listener it is).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return TcpStream::connect(("127.0.0.1", port))
            .map(|probe| probe.shutdown(Shutdown::Both))
            .is_ok();
    };
    let local = format!("0100007F:{port:04X}");
    // Fields: sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode;
    // st 0A is TCP_LISTEN.
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
                .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                .flatten()
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .any(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
}

/// The culex binary under test: `CULEX_TEST_BROKER` when it names one (cross/test.sh's
/// wrapper that runs the ARM build under qemu), the crate's own build otherwise (also
/// when the suite runs against Mosquitto).
fn culex_binary() -> PathBuf {
    match std::env::var("CULEX_TEST_BROKER").as_deref() {
        Err(_) | Ok("") | Ok("culex") | Ok("mosquitto") => {
            PathBuf::from(env!("CARGO_BIN_EXE_culex"))
        }
        Ok(other) => PathBuf::from(other),
    }
}

fn broker_binary() -> PathBuf {
    match std::env::var("CULEX_TEST_BROKER").as_deref() {
        Err(_) | Ok("") | Ok("culex") => PathBuf::from(env!("CARGO_BIN_EXE_culex")),
        Ok("mosquitto") => {
            let sbin = PathBuf::from("/usr/sbin/mosquitto");
            if sbin.exists() {
                sbin
            } else {
                PathBuf::from("mosquitto")
            }
        }
        Ok(other) => PathBuf::from(other),
    }
}

/// A TCP connection that sends and expects exact bytes.
pub struct Raw {
    stream: TcpStream,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        Raw::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect to the broker"))
    }

    /// A raw-byte client on a connected stream.
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        // A broker that stops reading fails a test's `send`, it does not hang it.
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("set a write timeout");
        Raw { stream }
    }

    /// Sends, ignoring errors: for a connection the broker may already have closed.
    pub fn try_send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {}: {e}", hex(bytes)));
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact(expected.len());
        assert_eq!(
            hex(&got),
            hex(expected),
            "bytes from the broker differ from the expected ones"
        );
    }

    /// Reads one whole MQTT control packet: fixed header, Remaining Length and the rest.
    pub fn read_packet(&mut self) -> Vec<u8> {
        let mut packet = self.read_exact(2);
        let mut length = usize::from(packet[1] & 0x7f);
        let mut shift = 7;
        let mut last = packet[1];
        while last & 0x80 != 0 {
            last = self.read_exact(1)[0];
            packet.push(last);
            length |= usize::from(last & 0x7f) << shift;
            shift += 7;
        }
        let rest = self.read_exact(length);
        packet.extend_from_slice(&rest);
        packet
    }

    /// Packets arriving with pauses shorter than `timeout`, until a longer pause or the
    /// end of the connection; unlike the other readers, a closed connection is no error
    /// (for connections to a broker that is killed).
    pub fn read_until_closed(&mut self, timeout: Duration) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        loop {
            self.stream
                .set_read_timeout(Some(timeout))
                .expect("set a read timeout");
            let mut first = [0; 1];
            match self.stream.peek(&mut first) {
                Ok(n) if n > 0 => packets.push(self.read_packet()),
                _ => return packets,
            }
        }
    }

    /// The next whole packet if one starts arriving within `timeout`.
    pub fn try_read_packet(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut first = [0; 1];
        let started = match self.stream.peek(&mut first) {
            Ok(0) => panic!("the connection was closed while waiting for a packet"),
            Ok(_) => true,
            Err(e) if is_timeout(&e) => false,
            Err(e) => panic!("waiting for a packet: {e}"),
        };
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        started.then(|| self.read_packet())
    }

    /// Every packet that arrives until nothing more comes for `QUIET`.
    pub fn read_until_quiet(&mut self) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        while let Some(packet) = self.try_read_packet(QUIET) {
            packets.push(packet);
        }
        packets
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        let mut filled = 0;
        let deadline = Instant::now() + WAIT;
        while filled < n {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => panic!(
                    "connection closed after {} of {n} expected bytes: {}",
                    filled,
                    hex(&buf[..filled])
                ),
                Ok(k) => filled += k,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => continue,
                Err(e) => panic!(
                    "reading {n} bytes, got {filled} ({}): {e}",
                    hex(&buf[..filled])
                ),
            }
        }
        buf
    }

    /// Asserts that the broker closes the connection (EOF or reset) within `WAIT`, sending
    /// nothing before it.
    pub fn expect_closed(&mut self) {
        self.expect_closed_within(WAIT);
    }

    pub fn expect_closed_within(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set a read timeout");
        let mut buf = [0; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(n) => panic!(
                    "expected the connection to be closed, got bytes {}",
                    hex(&buf[..n])
                ),
                Err(e) if is_timeout(&e) => {
                    if start.elapsed() >= limit {
                        panic!("the connection is still open after {limit:?}");
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return start.elapsed()
                }
                Err(e) => panic!("expected a close, got error {e}"),
            }
        }
    }

    /// Asserts that nothing arrives and the connection stays open for `duration`.
    pub fn expect_silence(&mut self, duration: Duration) {
        self.stream
            .set_read_timeout(Some(duration))
            .expect("set a read timeout");
        let mut buf = [0; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!("the connection was closed, expected it to stay open"),
            Ok(n) => panic!("expected silence, got bytes {}", hex(&buf[..n])),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("expected silence, got error {e}"),
        }
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A control packet: the first byte of the fixed header, Remaining Length, `body`.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field, bytes taken as they are (may be invalid UTF-8).
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A will for [`connect_packet_with`].
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
}

/// A 3.1.1 CONNECT without will, user name or password.
pub fn connect_packet(client_id: &str, clean_session: bool, keep_alive: u16) -> Vec<u8> {
    connect_packet_with(client_id, clean_session, keep_alive, None)
}

/// A 3.1.1 CONNECT, optionally with a will.
pub fn connect_packet_with(
    client_id: &str,
    clean_session: bool,
    keep_alive: u16,
    will: Option<&Will>,
) -> Vec<u8> {
    let mut flags = 0u8;
    if clean_session {
        flags |= 0x02;
    }
    if let Some(will) = will {
        flags |= 0x04 | (will.qos << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    let mut body = field(b"MQTT");
    body.push(0x04);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&field(client_id.as_bytes()));
    if let Some(will) = will {
        body.extend_from_slice(&field(will.topic.as_bytes()));
        body.extend_from_slice(&field(will.payload));
    }
    packet(0x10, &body)
}

/// A PUBLISH; `packet_id` is written only for QoS 1 and 2.
pub fn publish_packet(
    topic: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let first = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut body = field(topic);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(first, &body)
}

/// A SUBSCRIBE for one filter.
pub fn subscribe_packet(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend_from_slice(&field(filter.as_bytes()));
    body.push(qos);
    packet(0x82, &body)
}

/// A rumqttc client with its connection, which must be polled to make progress; every
/// method here polls it for a bounded time.
pub struct Peer {
    pub client: Client,
    pub conn: Connection,
    /// PUBLISH packets that arrived while waiting for something else (a retained message
    /// may come before or after the SUBACK).
    pending: VecDeque<Publish>,
}

impl Peer {
    /// Connects and waits for CONNACK; panics unless the connection is accepted.
    pub fn connect(options: MqttOptions) -> (Peer, ConnAck) {
        let (client, mut conn) = Client::new(options, 64);
        let connack = loop {
            match conn.recv_timeout(WAIT) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(connack)))) => break connack,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("connecting: {e}"),
                Err(e) => panic!("no CONNACK within {WAIT:?}: {e:?}"),
            }
        };
        assert_eq!(connack.code, ConnectReturnCode::Success);
        (
            Peer {
                client,
                conn,
                pending: VecDeque::new(),
            },
            connack,
        )
    }

    /// Subscribes and returns the granted QoS from the SUBACK.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.client.subscribe(filter, qos).expect("queue SUBSCRIBE");
        match self.wait_for(|packet| matches!(packet, Packet::SubAck(_))) {
            Packet::SubAck(suback) => {
                assert_eq!(suback.return_codes.len(), 1);
                suback.return_codes[0]
            }
            _ => unreachable!("wait_for returns the packet it matched"),
        }
    }

    /// Unsubscribes and waits for the UNSUBACK.
    pub fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).expect("queue UNSUBSCRIBE");
        self.wait_for(|packet| matches!(packet, Packet::UnsubAck(_)));
    }

    /// Publishes and waits until the flow is complete: sent for QoS 0, PUBACK for QoS 1,
    /// PUBCOMP for QoS 2.
    pub fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .expect("queue PUBLISH");
        match qos {
            QoS::AtMostOnce => self.wait_for_outgoing(|o| matches!(o, Outgoing::Publish(_))),
            QoS::AtLeastOnce => {
                self.wait_for(|p| matches!(p, Packet::PubAck(_)));
            }
            QoS::ExactlyOnce => {
                self.wait_for(|p| matches!(p, Packet::PubComp(_)));
            }
        }
    }

    /// The next PUBLISH from the broker within `timeout`; `None` on timeout or on a
    /// connection error.
    pub fn next_publish(&mut self, timeout: Duration) -> Option<Publish> {
        if let Some(publish) = self.pending.pop_front() {
            return Some(publish);
        }
        next_publish(&mut self.conn, timeout)
    }

    /// The next PUBLISH, which must arrive within `WAIT`.
    pub fn expect_publish(&mut self) -> Publish {
        self.next_publish(WAIT)
            .unwrap_or_else(|| panic!("no PUBLISH arrived within {WAIT:?}"))
    }

    /// Asserts that no PUBLISH arrives within `QUIET`.
    pub fn expect_no_publish(&mut self) {
        if let Some(publish) = self.next_publish(QUIET) {
            panic!("expected no PUBLISH, got {publish:?}");
        }
    }

    /// Sends DISCONNECT and waits until it has been written.
    pub fn disconnect(mut self) {
        self.client.disconnect().expect("queue DISCONNECT");
        self.wait_for_outgoing(|o| matches!(o, Outgoing::Disconnect));
    }

    /// Polls until an incoming packet matches, for at most `WAIT`.
    pub fn wait_for(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.recv_timeout(left) {
                Ok(Ok(Event::Incoming(packet))) if wanted(&packet) => return packet,
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    self.pending.push_back(publish)
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("connection error while waiting: {e}"),
                Err(_) => panic!("the expected packet did not arrive within {WAIT:?}"),
            }
        }
    }

    fn wait_for_outgoing(&mut self, wanted: impl Fn(&Outgoing) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.recv_timeout(left) {
                Ok(Ok(Event::Outgoing(outgoing))) if wanted(&outgoing) => return,
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    self.pending.push_back(publish)
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("connection error while waiting: {e}"),
                Err(_) => panic!("the packet was not sent within {WAIT:?}"),
            }
        }
    }

    /// Polls until the connection fails (the broker closed it), for at most `limit`.
    /// Returns whether it failed.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.recv_timeout(left) {
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The next PUBLISH on `conn` within `timeout`, skipping other events; `None` on timeout
/// or on a connection error (rumqttc would reconnect on the next poll, which a test must
/// not do by accident).
pub fn next_publish(conn: &mut Connection, timeout: Duration) -> Option<Publish> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => return Some(publish),
            Ok(Ok(_)) => continue,
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

/// Waits until `ready` holds, polling every 20 ms, for at most `limit`.
pub fn eventually(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    ready()
}

/// How [`Broker::restart`] stops the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: a clean stop.
    Term,
    /// SIGKILL: a crash, as far as the process can tell.
    Kill,
}

impl Broker {
    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the broker process and starts it again with the same configuration and
    /// port, its log appended to the same file; waits until it listens again.
    pub fn restart(&mut self, how: Stop) {
        match how {
            Stop::Term => self.signal("TERM"),
            Stop::Kill => {
                let _ = self.child.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not stop within 10 s"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let log_file = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open the broker log");
        self.child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.join("broker.conf"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file handle"))
            .stderr(log_file)
            .spawn()
            .expect("spawn the broker");
        assert!(
            self.wait_until_listening(),
            "the broker did not start again:\n{}",
            self.log_text()
        );
    }
}
