//! What `culex_pub`, `culex_sub` and `culex_rr` share around the sans-I/O
//! [`culex::client::Session`]: the defaults file, the transport (TCP, TLS with rustls,
//! Unix socket), a blocking driver with read timeouts for keep alive, Mosquitto's debug
//! lines (`-d`) and error texts.
//!
//! Blocking I/O is enough for a tool with one connection: the socket's read timeout is
//! the session's next deadline (or sooner when the tool has its own), so keep alive is
//! served while waiting for messages.

// Each tool uses a different part of this module.
#![allow(dead_code)]

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use culex::client::cli::{ArgsError, Config, Tool};
use culex::client::{ClientError, Options, Session, State, WillMessage};
use culex::protocol::{frame, Packet, ProtocolVersion, ReasonCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Largest packet a tool accepts from the server: MQTT's own limit.
const MAX_PACKET: usize = frame::MAX_REMAINING_LENGTH + 5;

/// Reads the defaults file and the command line; prints Mosquitto's texts and exits 1
/// when they are not acceptable.
pub fn load_config(tool: Tool, usage: &str) -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = defaults_file(tool)
        .and_then(|path| fs::read_to_string(path).ok())
        .unwrap_or_default();
    match Config::parse(tool, &defaults, &args) {
        Ok(config) => config,
        Err(ArgsError::Help) => {
            print!("{usage}");
            process::exit(1);
        }
        Err(ArgsError::InvalidWithUsage(message)) => {
            eprint!("{message}");
            print!("{usage}");
            process::exit(1);
        }
        Err(ArgsError::Invalid(message)) => {
            eprint!("{message}");
            eprintln!("\nUse '{} --help' to see usage.", tool.name());
            process::exit(1);
        }
    }
}

/// `$XDG_CONFIG_HOME/culex_pub`, else `$HOME/.config/culex_pub` (Mosquitto's places for
/// `mosquitto_pub`).
fn defaults_file(tool: Tool) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(Path::new(&dir).join(tool.name()));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".config").join(tool.name()))
}

/// Prints an error unless `--quiet`.
pub fn err(config: &Config, message: &str) {
    if !config.quiet {
        eprint!("{message}");
    }
}

/// The session options for a parsed command line.
pub fn session_options(config: &Config) -> Options {
    let mut options = Options::new(
        config.version,
        &config.client_id(process::id(), random_id_suffix),
    );
    options.clean_start = config.clean_session;
    options.keep_alive = config.keep_alive;
    options.username = config.username.clone();
    options.password = config.password.as_ref().map(|p| p.as_bytes().to_vec());
    options.max_inflight = config.max_inflight;
    options.properties = config.connect_properties.clone();
    options.will = config.will_topic.as_ref().map(|topic| WillMessage {
        topic: topic.clone(),
        payload: config.will_payload.clone().unwrap_or_default(),
        qos: config.will_qos,
        retain: config.will_retain,
        properties: config.will_properties.clone(),
    });
    if config.version == ProtocolVersion::V5 {
        // Mosquitto: with -C below 20 the Receive Maximum is the count, so no more
        // QoS 1/2 messages arrive than will be printed.
        if let Some(count) = config.msg_count.filter(|c| *c < 20) {
            if options.properties.receive_maximum.is_none() {
                options.properties.receive_maximum = u16::try_from(count).ok();
            }
        }
    }
    options
}

/// 18 random letters and digits, as libmosquitto makes up a 3.1 client id.
fn random_id_suffix() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 18];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: the process id and time still make it unique enough.
        let seed = u64::from(process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// One connection to the broker.
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Transport {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_read_timeout(timeout),
            Transport::Tls(s) => s.sock.set_read_timeout(timeout),
            Transport::Unix(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
        }
    }
}

/// An I/O error as C's strerror() says it ("Connection refused"), which is what
/// Mosquitto prints after "Error: ".
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// Opens the transport `config` asks for.
pub fn open(config: &Config) -> Result<Transport, String> {
    if let Some(path) = &config.unix {
        return UnixStream::connect(path)
            .map(Transport::Unix)
            .map_err(|e| format!("Error: {}\n", strerror(&e)));
    }
    if config.bind_address.is_some() {
        // std's TcpStream cannot bind before connecting; accepted so scripts keep
        // working, and said so.
        err(
            config,
            "Warning: -A is not supported by culex's tools; the system chooses the source address.\n",
        );
    }
    let host = config.host.as_deref().unwrap_or("localhost");
    let port = config.port();
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("Error: {}\n", strerror(&e)))?;
    let mut last = io::Error::new(ErrorKind::NotFound, "No address associated with hostname");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| format!("Error: {}\n", strerror(&last)))?;
    if config.nodelay {
        let _ = stream.set_nodelay(true);
    }
    if !config.uses_tls() {
        return Ok(Transport::Tcp(stream));
    }
    let tls = tls_config(config)?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("Error: Invalid TLS server name '{host}'.\n"))?;
    let connection = rustls::ClientConnection::new(tls, name)
        .map_err(|e| format!("Error: Problem setting TLS options: {e}.\n"))?;
    // A server that accepts TCP and never speaks TLS must not hang the tool.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(
        u64::from(config.keep_alive).max(1),
    )));
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // Complete the handshake now, so that a certificate problem is reported as such.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("Error: {}\n", strerror(&e)))?;
    }
    Ok(Transport::Tls(Box::new(tls)))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's CA bundle, for `--tls-use-os-certs` and `mqtts://` without `--cafile`.
const OS_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_config(config: &Config) -> Result<Arc<rustls::ClientConfig>, String> {
    let file_error = || "Error: Problem setting TLS options: File not found.\n".to_owned();
    let mut roots = rustls::RootCertStore::empty();
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(cafile) = &config.cafile {
        files.push(cafile.into());
    }
    if let Some(capath) = &config.capath {
        let entries = fs::read_dir(capath).map_err(|_| file_error())?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        files.extend(paths);
    }
    if config.tls_use_os_certs && config.cafile.is_none() && config.capath.is_none() {
        files.push(OS_CA_BUNDLE.into());
    }
    for (n, path) in files.iter().enumerate() {
        let certs: Vec<CertificateDer<'static>> = match CertificateDer::pem_file_iter(path) {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            // A capath may hold other files; a named cafile must be readable.
            Err(_) if config.capath.is_some() && n > 0 => continue,
            Err(_) => return Err(file_error()),
        };
        for cert in certs {
            let _ = roots.add(cert);
        }
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match config.tls_version.as_deref() {
        Some("tlsv1.3") => &[&rustls::version::TLS13],
        Some("tlsv1.2") => &[&rustls::version::TLS12],
        _ => rustls::ALL_VERSIONS,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error: Problem setting TLS options: {e}.\n"))?;
    let roots = Arc::new(roots);
    let builder = if config.insecure {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| format!("Error: Problem setting TLS options: {e}.\n"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(culex::net::tls::NoHostnameCheck(inner)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut tls = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect())
                .map_err(|_| file_error())?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|_| file_error())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("Error: Problem setting TLS options: {e}.\n"))?
        }
        _ => builder.with_no_client_auth(),
    };
    if let Some(alpn) = &config.tls_alpn {
        tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(Arc::new(tls))
}

/// Why the driver stopped.
#[derive(Debug)]
pub enum Failure {
    /// The server closed the connection.
    Closed,
    Io(io::Error),
    Session(ClientError),
}

impl Failure {
    /// The line a tool prints for it.
    pub fn message(&self) -> String {
        match self {
            Failure::Closed => "Error: The connection was lost.\n".to_owned(),
            Failure::Io(e) => format!("Error: {}\n", strerror(e)),
            Failure::Session(ClientError::KeepAliveTimeout) => {
                "Error: The connection was lost (keep alive timeout).\n".to_owned()
            }
            Failure::Session(ClientError::ConnackTimeout) => {
                "Error: The broker did not answer CONNECT.\n".to_owned()
            }
            Failure::Session(e) => format!("Error: {e}.\n"),
        }
    }
}

/// A session over a transport.
pub struct Client {
    pub session: Session,
    transport: Transport,
    buf: Vec<u8>,
    debug: bool,
    client_id: String,
}

impl Client {
    /// Opens the transport and sends CONNECT.
    pub fn connect(config: &Config) -> Result<Client, String> {
        let transport = open(config)?;
        let options = session_options(config);
        let client_id = options.client_id.clone();
        let mut client = Client {
            session: Session::new(options),
            transport,
            buf: Vec::new(),
            debug: config.debug,
            client_id,
        };
        client.session.connect(Instant::now());
        client.flush().map_err(|e| e.message())?;
        Ok(client)
    }

    /// Writes what the session queued.
    pub fn flush(&mut self) -> Result<(), Failure> {
        let out = self.session.take_outgoing();
        if out.is_empty() {
            return Ok(());
        }
        if self.debug {
            self.debug_packets(&out, "sending");
        }
        self.transport.write_all(&out).map_err(Failure::Io)?;
        self.transport.flush().map_err(Failure::Io)
    }

    /// Waits for input until `until` (or the session's next deadline), handles every
    /// whole packet that arrived and the keep-alive timer, and writes the answers.
    /// Returns without error when `until` passes; events are in the session.
    pub fn poll(&mut self, until: Option<Instant>) -> Result<(), Failure> {
        self.flush()?;
        let now = Instant::now();
        let deadline = match (until, self.session.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|d| {
            d.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        self.transport
            .set_read_timeout(timeout)
            .map_err(Failure::Io)?;
        let mut scratch = [0u8; 16 * 1024];
        match self.transport.read(&mut scratch) {
            Ok(0) => {
                self.session.handle_connection_lost();
                return Err(Failure::Closed);
            }
            Ok(n) => self.buf.extend_from_slice(&scratch[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                self.session.handle_connection_lost();
                return Err(Failure::Closed);
            }
            Err(e) => {
                self.session.handle_connection_lost();
                return Err(Failure::Io(e));
            }
        }
        let now = Instant::now();
        let result = self.handle_buffer(now);
        let timeout = self.session.handle_timeout(now);
        // Whatever the session queued (acks, DISCONNECT with a reason) goes out first.
        let flushed = self.flush();
        result?;
        timeout.map_err(Failure::Session)?;
        flushed
    }

    fn handle_buffer(&mut self, now: Instant) -> Result<(), Failure> {
        let version = self.session.version();
        let mut start = 0;
        let result = loop {
            let rest = &self.buf[start..];
            let len = match frame::check(rest, MAX_PACKET) {
                Ok(Some(len)) => len,
                Ok(None) => break Ok(()),
                Err(e) => break Err(Failure::Session(self.session.handle_decode_error(e, now))),
            };
            let bytes = &rest[..len];
            if self.debug {
                if let Ok(packet) = Packet::decode(bytes, version) {
                    println!("Client {} received {}", self.debug_id(), describe(&packet));
                }
            }
            if let Err(e) = self.session.handle_frame(bytes, now) {
                break Err(Failure::Session(e));
            }
            start += len;
        };
        self.buf.drain(..start);
        result
    }

    /// Sends DISCONNECT (with these MQTT 5 properties), writes it and closes.
    pub fn disconnect(&mut self, properties: &culex::client::OwnedProperties) {
        if self.session.state() != State::Disconnected {
            self.session
                .disconnect(ReasonCode::NORMAL_DISCONNECTION, properties, Instant::now());
            let _ = self.flush();
        }
        if let Transport::Tls(tls) = &mut self.transport {
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
        }
    }

    /// The id in debug lines: ours, the one the server assigned, or "(null)".
    fn debug_id(&self) -> &str {
        if !self.client_id.is_empty() {
            &self.client_id
        } else {
            self.session.assigned_client_id().unwrap_or("(null)")
        }
    }

    fn debug_packets(&self, bytes: &[u8], verb: &str) {
        let mut rest = bytes;
        while let Ok(Some(len)) = frame::check(rest, usize::MAX) {
            if let Ok(packet) = Packet::decode(&rest[..len], self.session.version()) {
                // libmosquitto logs a SUBSCRIBE once per filter.
                for line in describe(&packet).split('\n') {
                    println!("Client {} {verb} {line}", self.debug_id());
                }
            }
            rest = &rest[len..];
        }
    }
}

/// libmosquitto's debug text for a packet ("PUBLISH (d0, q1, r0, m1, 't', ... (5 bytes))").
fn describe(packet: &Packet<'_>) -> String {
    match packet {
        Packet::Connack(c) => format!("CONNACK ({})", connack_code(c.reason)),
        Packet::Publish(p) => format!(
            "PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos as u8,
            u8::from(p.retain),
            p.packet_id.map_or(0, |id| id.get()),
            p.topic,
            p.payload.len()
        ),
        Packet::Puback(a) => format!("PUBACK (Mid: {}, RC:{})", a.packet_id.get(), a.reason.0),
        Packet::Pubrec(a) => format!("PUBREC (Mid: {})", a.packet_id.get()),
        Packet::Pubrel(a) => format!("PUBREL (Mid: {})", a.packet_id.get()),
        Packet::Pubcomp(a) => format!("PUBCOMP (Mid: {}, RC:{})", a.packet_id.get(), a.reason.0),
        Packet::Subscribe(s) => {
            let parts: Vec<String> = s
                .filters
                .iter()
                .map(|(f, o)| {
                    let options = o.qos as u8
                        | u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | o.retain_handling << 4;
                    format!(
                        "Mid: {}, Topic: {f}, QoS: {}, Options: 0x{options:02x}",
                        s.packet_id.get(),
                        o.qos as u8
                    )
                })
                .collect();
            parts
                .iter()
                .map(|p| format!("SUBSCRIBE ({p})"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Packet::Unsubscribe(u) => format!("UNSUBSCRIBE (Mid: {})", u.packet_id.get()),
        other => other.name().to_owned(),
    }
}

/// The CONNACK code as libmosquitto reports it: the 3.1.1 return code, or the MQTT 5
/// reason code.
fn connack_code(reason: ReasonCode) -> u8 {
    reason.0
}

/// "Connection Refused: not authorised." and its siblings (libmosquitto's
/// `mosquitto_connack_string`).
pub fn connack_string(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// The "Connection error: ..." line for a refused CONNACK, and the exit code (the
/// CONNACK's code, as Mosquitto's tools return it).
pub fn refusal(version: ProtocolVersion, reason: ReasonCode) -> (String, i32) {
    if version == ProtocolVersion::V5 {
        let text = if reason == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
            format!("Connection error: {}. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.\n", reason.name())
        } else {
            format!("Connection error: {}\n", reason.name())
        };
        (text, i32::from(reason.0))
    } else {
        let code = reason.to_v3_connack();
        (
            format!("Connection error: {}\n", connack_string(code)),
            i32::from(code),
        )
    }
}

/// Drives the client until the CONNACK: `Ok` when accepted (the `Connected` event is
/// consumed), or the message and exit code to stop with.
pub fn wait_for_connack(
    client: &mut Client,
    config: &Config,
    deadline: Option<Instant>,
) -> Result<(), (String, i32)> {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // Mosquitto's MOSQ_ERR_TIMEOUT, as for -W elsewhere.
            return Err(("Timed out\n".to_owned(), 27));
        }
        match client.poll(deadline) {
            Ok(()) => {}
            Err(Failure::Closed) => {
                // A 3.1.1 broker closes on a 5.0 CONNECT, as Mosquitto's tools say.
                return Err(("Error: The connection was lost.\n".to_owned(), 1));
            }
            Err(e) => return Err((e.message(), 1)),
        }
        while let Some(event) = client.session.poll_event() {
            if let culex::client::Event::Connected {
                reason,
                session_present,
                ..
            } = event
            {
                if config.debug {
                    let _ = session_present;
                }
                if reason.is_error() {
                    return Err(refusal(config.version, reason));
                }
                return Ok(());
            }
        }
    }
}
