//! MQTT over WebSockets, sans I/O: the HTTP/1.1 upgrade handshake (RFC 6455 section 4),
//! the framing (section 5) and the static files of `http_dir`. The loop (`net/mod.rs`)
//! owns the sockets and hands bytes in and out; nothing here reads a socket or a clock.
//!
//! Buffer discipline, as for TCP connections: a frame's payload is unmasked in place in
//! the loop's scratch buffer and handed straight to the MQTT deframer, so a WebSocket
//! connection keeps no bytes of its own but a frame header that arrived in pieces (at most
//! 14 bytes, in a fixed array) and a control frame's payload while it is incomplete (at
//! most 125). Outgoing MQTT bytes are framed without copying: [`Sender`] writes a frame
//! header, then the broker's own output, as one vectored write.
//!
//! Guarantees: nothing here panics on input (the `ws_frames` fuzz target and the corpus
//! replay in `fuzz` check it); every size is bounded (the request head by
//! `websockets_headers_size`, a frame's payload by the largest MQTT packet accepted).
//!
//! MQTT's rules for the transport (MQTT 5.0 section 6, 3.1.1 section 6): MQTT control
//! packets travel in binary frames [MQTT-6.0.0-1] (a text frame closes the connection,
//! [MQTT-6.0.0-1] and RFC 6455's 1003); a packet may span frames and a frame may hold
//! several packets [MQTT-6.0.0-2]; the subprotocol is `mqtt` [MQTT-6.0.0-3/4], or
//! `mqttv3.1`, which Mosquitto also accepts for 3.1 clients.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::fmt::Write as _;
use std::io::{self, IoSlice, Write};
use std::path::{Component, Path, PathBuf};

/// The request head's bound when `websockets_headers_size` is not set (or 0). Mosquitto's
/// libwebsockets keeps 1024 bytes of header *values*; culex bounds the whole head, which
/// a browser with a few cookies brings close to 1 KiB, hence 4 KiB.
pub const DEFAULT_HEADERS_SIZE: usize = 4096;
/// Largest file `http_dir` serves: it is read whole into the connection's output.
pub const MAX_FILE_SIZE: u64 = 8 * 1024 * 1024;
/// RFC 6455 1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Subprotocols culex speaks, in order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];
/// RFC 6455 5.5: control frames carry at most 125 bytes.
const MAX_CONTROL_PAYLOAD: usize = 125;

// ---- The handshake ------------------------------------------------------------------

/// HTTP statuses culex answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// Wrong `Sec-WebSocket-Version` (RFC 6455 4.4).
    UpgradeRequired,
    HeadersTooLarge,
    InternalError,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::UpgradeRequired => 426,
            Status::HeadersTooLarge => 431,
            Status::InternalError => 500,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::UpgradeRequired => "Upgrade Required",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::InternalError => "Internal Server Error",
        }
    }

    /// The whole response: status line, the headers this status needs, a one-line body.
    /// The connection is closed after it.
    pub fn response(self) -> Vec<u8> {
        let body = format!("{} {}\n", self.code(), self.reason());
        let mut r = format!("HTTP/1.1 {} {}\r\n", self.code(), self.reason());
        match self {
            Status::MethodNotAllowed => r.push_str("Allow: GET\r\n"),
            Status::UpgradeRequired => {
                r.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
            }
            _ => {}
        }
        let _ = write!(
            r,
            "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        r.into_bytes()
    }
}

/// The parts of a request head culex looks at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub upgrade: Option<&'a str>,
    pub connection: Option<&'a str>,
    pub key: Option<&'a str>,
    pub ws_version: Option<&'a str>,
    /// Every `Sec-WebSocket-Protocol` value, comma lists split.
    pub protocols: Vec<&'a str>,
    pub origin: Option<&'a str>,
    /// `Authorization` (http_api listeners' basic authentication).
    pub authorization: Option<&'a str>,
}

/// Reads a request head from the start of `buf`. `Ok(None)`: not whole yet (and within
/// `max` bytes); `Ok(Some((request, head_len)))`; `Err(status)` to answer with.
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<(Request<'_>, usize)>, Status> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= max {
            Err(Status::HeadersTooLarge)
        } else {
            Ok(None)
        };
    };
    let head_len = end + 4;
    if head_len > max {
        return Err(Status::HeadersTooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| Status::BadRequest)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(Status::BadRequest);
    }
    let mut request = Request {
        method,
        target,
        version,
        ..Request::default()
    };
    for line in lines {
        // RFC 9112 5.2: obsolete line folding may be rejected with 400.
        let Some((name, value)) = line.split_once(':') else {
            return Err(Status::BadRequest);
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(Status::BadRequest);
        }
        let value = value.trim_matches([' ', '\t']);
        let slot = if name.eq_ignore_ascii_case("upgrade") {
            &mut request.upgrade
        } else if name.eq_ignore_ascii_case("connection") {
            &mut request.connection
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            &mut request.key
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            &mut request.ws_version
        } else if name.eq_ignore_ascii_case("origin") {
            &mut request.origin
        } else if name.eq_ignore_ascii_case("authorization") {
            &mut request.authorization
        } else {
            if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                request.protocols.extend(
                    value
                        .split(',')
                        .map(|p| p.trim_matches([' ', '\t']))
                        .filter(|p| !p.is_empty()),
                );
            }
            continue;
        };
        if slot.is_some() {
            // One Upgrade, Connection, key, version, origin and Authorization: a repeat is
            // ambiguous.
            return Err(Status::BadRequest);
        }
        *slot = Some(value);
    }
    Ok(Some((request, head_len)))
}

/// What a listener allows.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `websockets_origin`: if not empty, the `Origin` must be one of these.
    pub origins: Vec<String>,
    /// `http_dir`, canonical.
    pub http_dir: Option<PathBuf>,
    /// `websockets_headers_size`: the request head's bound (0: [`DEFAULT_HEADERS_SIZE`]).
    pub max_headers: usize,
    /// `protocol http_api`: requests are answered by the HTTP API (`http_api.rs`), never
    /// upgraded.
    pub is_http_api: bool,
}

impl Policy {
    pub fn max_headers(&self) -> usize {
        match self.max_headers {
            0 => DEFAULT_HEADERS_SIZE,
            n => n,
        }
    }
}

/// What to do with a whole request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Switch to WebSockets after sending this 101 response.
    Upgrade(Vec<u8>),
    /// Serve this file of `http_dir` (a path checked to stay inside it).
    File(PathBuf),
    /// An http_api listener's GET: answered by the loop, which has the broker's figures.
    Api(super::http_api::ApiRequest),
    Reject(Status),
}

/// Judges a request: an upgrade to MQTT over WebSockets, a file, or an error status.
pub fn decide(request: &Request<'_>, policy: &Policy) -> Outcome {
    if request.method != "GET" {
        return Outcome::Reject(Status::MethodNotAllowed);
    }
    if policy.is_http_api {
        return Outcome::Api(super::http_api::ApiRequest {
            target: request.target.to_owned(),
            authorization: request.authorization.map(str::to_owned),
        });
    }
    let wants_websocket = request.upgrade.is_some_and(|u| has_token(u, "websocket"));
    if !wants_websocket {
        return match &policy.http_dir {
            Some(dir) => match file_path(dir, request.target) {
                Ok(path) => Outcome::File(path),
                Err(status) => Outcome::Reject(status),
            },
            None => Outcome::Reject(Status::NotFound),
        };
    }
    // RFC 6455 4.2.1: HTTP/1.1 or higher, Connection: Upgrade, a 16-byte key, version 13.
    if request.version == "HTTP/1.0" || !request.connection.is_some_and(|c| has_token(c, "upgrade"))
    {
        return Outcome::Reject(Status::BadRequest);
    }
    if request.ws_version != Some("13") {
        return Outcome::Reject(Status::UpgradeRequired);
    }
    let Some(key) = request.key else {
        return Outcome::Reject(Status::BadRequest);
    };
    let key_is_16_bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|k| k.len() == 16);
    if !key_is_16_bytes {
        return Outcome::Reject(Status::BadRequest);
    }
    if !policy.origins.is_empty()
        && !request
            .origin
            .is_some_and(|o| policy.origins.iter().any(|allowed| allowed == o))
    {
        return Outcome::Reject(Status::Forbidden);
    }
    // [MQTT-6.0.0-4]: the server selects `mqtt`. A client that offers no subprotocol is
    // served (some embedded clients send none); one that offers only others is not.
    let protocol = match SUBPROTOCOLS
        .iter()
        .find(|ours| request.protocols.iter().any(|p| p == *ours))
    {
        Some(p) => Some(*p),
        None if request.protocols.is_empty() => None,
        None => return Outcome::Reject(Status::BadRequest),
    };
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    if let Some(p) = protocol {
        let _ = write!(r, "Sec-WebSocket-Protocol: {p}\r\n");
    }
    r.push_str("\r\n");
    Outcome::Upgrade(r.into_bytes())
}

/// RFC 6455 4.2.2: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Is `token` one of the comma-separated, case-insensitive tokens of `value`?
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
}

// ---- http_dir -----------------------------------------------------------------------

/// The file under `dir` that `target` names: query and fragment dropped, percent-decoded
/// once, `/` meaning `index.html`. Any `..`, `.`, empty-after-decoding segment trickery,
/// backslash or NUL is refused (400), as Mosquitto refuses paths that leave `http_dir`;
/// the result is also checked after resolving symbolic links (403 if it leaves `dir`).
pub fn file_path(dir: &Path, target: &str) -> Result<PathBuf, Status> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path).ok_or(Status::BadRequest)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Status::BadRequest)?;
    if decoded.contains(['\0', '\\']) {
        return Err(Status::BadRequest);
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == ".." || segment == "." {
            return Err(Status::BadRequest);
        }
        relative.push(segment);
    }
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Status::BadRequest);
    }
    let mut full = dir.join(&relative);
    if full.is_dir() {
        full.push("index.html");
    }
    let Ok(real) = full.canonicalize() else {
        return Err(Status::NotFound);
    };
    if !real.starts_with(dir) {
        return Err(Status::Forbidden);
    }
    Ok(real)
}

/// `%XX` decoding; `None` for a `%` not followed by two hex digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Content-Type by extension, for what a dashboard is made of.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The 200 response with the file, or the error status to answer with instead.
pub fn file_response(path: &Path) -> Result<Vec<u8>, Status> {
    let len = std::fs::metadata(path).map_err(|_| Status::NotFound)?.len();
    if len > MAX_FILE_SIZE {
        return Err(Status::InternalError);
    }
    let body = std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => Status::Forbidden,
        _ => Status::NotFound,
    })?;
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        content_type(path),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(&body);
    Ok(r)
}

// ---- Frames in ----------------------------------------------------------------------

/// RFC 6455 5.2 opcodes.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// RFC 6455 7.4.1 status codes culex sends.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
}

/// What the deframer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Unmasked bytes of a binary message (MQTT bytes, in order, in any split).
    Data(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    /// The peer's close, with its status code if it sent one.
    Close(Option<u16>),
}

/// The connection must be closed with this status code (RFC 6455 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation(pub u16);

/// Incoming frames, decoded as bytes arrive. Holds no buffer but a frame header that
/// arrived in pieces and an incomplete control frame's payload.
#[derive(Debug, Default)]
pub struct Deframer {
    header: [u8; 14],
    header_len: u8,
    /// The frame whose payload is arriving, if any.
    frame: Option<FrameState>,
    /// A binary message was started with FIN unset: continuations are expected.
    is_in_message: bool,
    /// A control frame's payload so far (empty and unallocated otherwise).
    control: Vec<u8>,
    is_closed: bool,
}

#[derive(Debug, Clone, Copy)]
struct FrameState {
    opcode: u8,
    left: u64,
    mask: [u8; 4],
    /// Payload bytes already unmasked, modulo 4.
    offset: u8,
}

impl Deframer {
    /// Is it idle between frames (no header, payload or control bytes kept)?
    pub fn is_idle(&self) -> bool {
        self.header_len == 0 && self.frame.is_none() && self.control.is_empty()
    }

    /// Decodes what `data` holds, unmasking payloads in place, and calls `sink` for each
    /// event; `sink` returns false to stop (the rest of `data` is then dropped). After a
    /// `Close` event or an error nothing more is decoded. `max_payload` bounds a frame's
    /// payload length (1009 beyond it).
    pub fn feed(
        &mut self,
        data: &mut [u8],
        max_payload: u64,
        mut sink: impl FnMut(Event<'_>) -> bool,
    ) -> Result<(), Violation> {
        let mut pos = 0;
        while pos < data.len() && !self.is_closed {
            let Some(mut frame) = self.frame else {
                pos += self.take_header(&data[pos..]);
                if let Some(frame) = self.parse_header(max_payload)? {
                    self.frame = Some(frame);
                    if frame.left == 0 && !self.finish_frame(frame.opcode, &mut sink)? {
                        return Ok(());
                    }
                }
                continue;
            };
            let available = data.len() - pos;
            let n = usize::try_from(frame.left).map_or(available, |left| left.min(available));
            let chunk = &mut data[pos..pos + n];
            unmask(chunk, frame.mask, usize::from(frame.offset));
            pos += n;
            frame.left -= n as u64;
            frame.offset = ((usize::from(frame.offset) + n) % 4) as u8;
            self.frame = Some(frame);
            if is_control(frame.opcode) {
                self.control.extend_from_slice(chunk);
            } else if !sink(Event::Data(chunk)) {
                return Ok(());
            }
            if frame.left == 0 && !self.finish_frame(frame.opcode, &mut sink)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Copies header bytes from `data` into the header array, as many as the header
    /// needs so far; returns how many were taken.
    fn take_header(&mut self, data: &[u8]) -> usize {
        let mut taken = 0;
        loop {
            let want = header_len(&self.header[..usize::from(self.header_len)]);
            let have = usize::from(self.header_len);
            if have >= want {
                return taken;
            }
            let n = (want - have).min(data.len() - taken);
            if n == 0 {
                return taken;
            }
            self.header[have..have + n].copy_from_slice(&data[taken..taken + n]);
            self.header_len += n as u8;
            taken += n;
        }
    }

    /// The frame whose header is complete, checked; `None` while the header is not.
    fn parse_header(&mut self, max_payload: u64) -> Result<Option<FrameState>, Violation> {
        let h = &self.header[..usize::from(self.header_len)];
        if h.len() < 2 || h.len() < header_len(h) {
            return Ok(None);
        }
        let (b0, b1) = (h[0], h[1]);
        let is_fin = b0 & 0x80 != 0;
        let op = b0 & 0x0F;
        let (len, mask_at) = match b1 & 0x7F {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            n => (u64::from(n), 2),
        };
        let protocol_error = Err(Violation(close_code::PROTOCOL_ERROR));
        // RSV1-3 without a negotiated extension (5.2); RFC 6455 5.1: a client masks
        // every frame; 5.2: the 64-bit length's top bit is 0.
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 || len >> 63 != 0 {
            return protocol_error;
        }
        match op {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                // 5.5: control frames are not fragmented and carry at most 125 bytes.
                if !is_fin || len > MAX_CONTROL_PAYLOAD as u64 {
                    return protocol_error;
                }
            }
            opcode::TEXT => {
                // [MQTT-6.0.0-1]: MQTT travels in binary frames.
                return Err(Violation(if self.is_in_message {
                    close_code::PROTOCOL_ERROR
                } else {
                    close_code::UNSUPPORTED_DATA
                }));
            }
            opcode::BINARY | opcode::CONTINUATION => {
                // 5.4: a continuation only inside a message, a new message only outside.
                if (op == opcode::BINARY) == self.is_in_message {
                    return protocol_error;
                }
                if len > max_payload {
                    return Err(Violation(close_code::TOO_BIG));
                }
                self.is_in_message = !is_fin;
            }
            _ => return protocol_error,
        }
        let mut mask = [0; 4];
        mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        self.header_len = 0;
        Ok(Some(FrameState {
            opcode: op,
            left: len,
            mask,
            offset: 0,
        }))
    }

    /// A frame's payload is complete; returns false if the sink asked to stop.
    fn finish_frame(
        &mut self,
        op: u8,
        sink: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<bool, Violation> {
        self.frame = None;
        let control = std::mem::take(&mut self.control);
        match op {
            opcode::PING => Ok(sink(Event::Ping(&control))),
            opcode::PONG => Ok(sink(Event::Pong)),
            opcode::CLOSE => {
                self.is_closed = true;
                let code = match control.len() {
                    0 => None,
                    1 => return Err(Violation(close_code::PROTOCOL_ERROR)),
                    _ => {
                        let code = u16::from_be_bytes([control[0], control[1]]);
                        // 7.4: codes an endpoint may send.
                        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                            return Err(Violation(close_code::PROTOCOL_ERROR));
                        }
                        if std::str::from_utf8(&control[2..]).is_err() {
                            return Err(Violation(close_code::INVALID_PAYLOAD));
                        }
                        Some(code)
                    }
                };
                sink(Event::Close(code));
                Ok(false)
            }
            _ => Ok(true),
        }
    }
}

/// XORs `data` with the mask (RFC 6455 5.3), `offset` bytes into the payload: eight
/// bytes at a time (fan-in over WebSockets spent a fifth more broker CPU than over TCP
/// with a byte loop here).
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= m[i % 4];
    }
}

fn is_control(op: u8) -> bool {
    op & 0x08 != 0
}

/// How long the header starting with `h` is, as far as `h` tells (2 until it has 2 bytes).
fn header_len(h: &[u8]) -> usize {
    let Some(&b1) = h.get(1) else { return 2 };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    2 + mask
        + match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        }
}

// ---- Frames out ---------------------------------------------------------------------

/// A server frame's header (RFC 6455 5.2: unmasked, FIN set): the bytes and their count.
pub fn frame_header(op: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | op;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(len) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A whole control frame (payload at most 125 bytes; longer is cut).
pub fn control_frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let (h, n) = frame_header(op, payload.len());
    let mut f = h[..n].to_vec();
    f.extend_from_slice(payload);
    f
}

/// A close frame with a status code (and no reason).
pub fn close_frame(code: u16) -> Vec<u8> {
    control_frame(opcode::CLOSE, &code.to_be_bytes())
}

/// The outgoing side of a connection: raw bytes to send first (the handshake response,
/// control frames), and the framing of the application's output into binary frames,
/// written header and payload together without copying the payload.
#[derive(Debug, Default)]
pub struct Sender {
    header: [u8; 10],
    header_len: u8,
    header_sent: u8,
    /// Bytes of the current frame's payload not written yet: the first bytes of the
    /// application's output.
    payload_left: usize,
    /// Whole frames or HTTP bytes waiting (empty and unallocated otherwise).
    pending: Vec<u8>,
    /// Application output may be framed (the handshake is done and no close was sent).
    is_open: bool,
}

/// What one [`Sender::write_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `written` bytes went out, of which `consumed` were the application's output (to
    /// remove from it). `written == 0`: the writer took nothing.
    Wrote { written: usize, consumed: usize },
    /// Nothing left to write.
    Idle,
}

impl Sender {
    /// Queues raw bytes (a response, a whole frame), sent before the next data frame.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Application output is framed from now on (the upgrade response is queued).
    pub fn open(&mut self) {
        self.is_open = true;
    }

    /// Queues a close frame and frames no more output (the current frame is finished).
    pub fn close(&mut self, code: u16) {
        if self.is_open {
            self.queue(&close_frame(code));
        }
        self.is_open = false;
    }

    pub fn is_open(&self) -> bool {
        self.is_open
    }

    /// Closed (or never opened) and everything queued is written: the socket may go.
    pub fn is_done(&self) -> bool {
        !self.is_open
            && self.header_sent == self.header_len
            && self.payload_left == 0
            && self.pending.is_empty()
    }

    /// One write toward `w`. `out` is the application's unwritten output; the caller
    /// removes `consumed` bytes from its front. Errors are the writer's (WouldBlock
    /// included), or `InvalidData` if `out` shrank under a frame already announced.
    pub fn write_step(&mut self, w: &mut impl Write, out: &[u8]) -> io::Result<Step> {
        if out.len() < self.payload_left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "output shrank under a WebSocket frame",
            ));
        }
        if self.header_sent < self.header_len {
            let header = &self.header[usize::from(self.header_sent)..usize::from(self.header_len)];
            let n = w.write_vectored(&[
                IoSlice::new(header),
                IoSlice::new(&out[..self.payload_left]),
            ])?;
            let of_header = n.min(header.len());
            self.header_sent += of_header as u8;
            let consumed = n - of_header;
            self.payload_left -= consumed;
            return Ok(Step::Wrote {
                written: n,
                consumed,
            });
        }
        if self.payload_left > 0 {
            let n = w.write(&out[..self.payload_left])?;
            self.payload_left -= n;
            return Ok(Step::Wrote {
                written: n,
                consumed: n,
            });
        }
        if !self.pending.is_empty() {
            let n = w.write(&self.pending)?;
            if n >= self.pending.len() {
                self.pending = Vec::new();
            } else {
                self.pending.drain(..n);
            }
            return Ok(Step::Wrote {
                written: n,
                consumed: 0,
            });
        }
        if self.is_open && !out.is_empty() {
            let (h, n) = frame_header(opcode::BINARY, out.len());
            self.header = h;
            self.header_len = n as u8;
            self.header_sent = 0;
            self.payload_left = out.len();
            return self.write_step(w, out);
        }
        Ok(Step::Idle)
    }
}

/// Fuzz target bodies (`fuzz/fuzz_targets/ws_frames.rs`), replayed on the seed corpus
/// by `cargo test`.
#[cfg(any(test, fuzzing))]
pub mod fuzz {
    use super::*;

    /// Everything culex decodes from a WebSocket peer, on arbitrary bytes: the request
    /// head (parsed and judged, with and without an origin list) and the frames.
    /// Oracles: no panic; the frames decode to the same events and the same verdict
    /// however the bytes are split (the first byte picks the split size); unmasked data
    /// is never longer than the input.
    pub fn fuzz_ws(data: &[u8]) {
        let policy = Policy {
            origins: vec!["http://a".into()],
            http_dir: None,
            max_headers: 256,
            is_http_api: false,
        };
        if let Ok(Some((request, len))) = parse_request(data, 4096) {
            assert!(len <= data.len());
            let _ = decide(&request, &policy);
            let _ = decide(&request, &Policy::default());
            let api = Policy {
                is_http_api: true,
                ..Policy::default()
            };
            if let super::Outcome::Api(r) = decide(&request, &api) {
                let _ = super::super::http_api::route(&r.target);
                let _ = r
                    .authorization
                    .as_deref()
                    .and_then(super::super::http_api::basic_credentials);
            }
        }
        let Some((&split, frames)) = data.split_first() else {
            return;
        };
        let whole = events(frames, frames.len().max(1));
        let pieces = events(frames, usize::from(split % 16) + 1);
        assert_eq!(whole, pieces, "split {}", split % 16 + 1);
        let data_len: usize = whole
            .0
            .iter()
            .filter_map(|e| e.strip_prefix(b"D"))
            .map(<[u8]>::len)
            .sum();
        assert!(data_len <= frames.len());
    }

    /// Events as bytes (data merged), and the verdict.
    fn events(data: &[u8], piece: usize) -> (Vec<Vec<u8>>, Result<(), Violation>) {
        let mut d = Deframer::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut data = data.to_vec();
        for chunk in data.chunks_mut(piece) {
            let r = d.feed(chunk, 1 << 16, |e| {
                match e {
                    Event::Data(b) => match out.last_mut() {
                        Some(last) if last.first() == Some(&b'D') => last.extend_from_slice(b),
                        _ => out.push([b"D", b].concat()),
                    },
                    Event::Ping(b) => out.push([b"P", b].concat()),
                    Event::Pong => out.push(b"O".to_vec()),
                    Event::Close(c) => out.push(format!("C{c:?}").into_bytes()),
                }
                true
            });
            if r.is_err() {
                return (out, r);
            }
        }
        (out, Ok(()))
    }

    #[cfg(test)]
    mod tests {
        /// Replays the cargo-fuzz seed corpus (and whatever the fuzzer added to it).
        #[test]
        fn ws_corpus_replays() {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ws_frames");
            let mut replayed = 0;
            for entry in std::fs::read_dir(dir).expect("fuzz/corpus/ws_frames exists") {
                let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
                super::fuzz_ws(&data);
                replayed += 1;
            }
            assert!(replayed >= 8, "only {replayed} corpus files in {dir}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` (in pieces of `piece` bytes) and collects the events, data merged.
    fn decode(data: &[u8], piece: usize) -> (Vec<String>, Result<(), Violation>) {
        let mut d = Deframer::default();
        let mut events = Vec::new();
        let mut data = data.to_vec();
        for chunk in data.chunks_mut(piece.max(1)) {
            let r = d.feed(chunk, 1 << 20, |e| {
                events.push(match e {
                    Event::Data(b) => format!("data {}", String::from_utf8_lossy(b)),
                    Event::Ping(b) => format!("ping {}", String::from_utf8_lossy(b)),
                    Event::Pong => "pong".into(),
                    Event::Close(c) => format!("close {c:?}"),
                });
                true
            });
            if r.is_err() {
                return (events, r);
            }
        }
        // Merge consecutive data pieces.
        let mut merged: Vec<String> = Vec::new();
        for e in events {
            match (merged.last_mut(), e.strip_prefix("data ")) {
                (Some(last), Some(more)) if last.starts_with("data ") => last.push_str(more),
                _ => merged.push(e),
            }
        }
        (merged, Ok(()))
    }

    /// RFC 6455 5.7: "A single-frame masked text message" is refused (MQTT is binary)...
    #[test]
    fn rfc_masked_text_hello_is_unsupported_data() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (events, r) = decode(&frame, 64);
        assert!(events.is_empty());
        assert_eq!(r, Err(Violation(1003)));
    }

    /// ...and the same frame as binary carries "Hello", in any split.
    #[test]
    fn rfc_masked_hello_as_binary_unmasks_in_any_split() {
        let frame = [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        for piece in 1..=frame.len() {
            assert_eq!(
                decode(&frame, piece),
                (vec!["data Hello".into()], Ok(())),
                "{piece}"
            );
        }
    }

    /// RFC 6455 5.7: "A single-frame unmasked text message": from a client, a
    /// protocol error (5.1).
    #[test]
    fn rfc_unmasked_frame_from_client_is_protocol_error() {
        let (_, r) = decode(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 64);
        assert_eq!(r, Err(Violation(1002)));
        let (_, r) = decode(&[0x82, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 64);
        assert_eq!(r, Err(Violation(1002)));
    }

    /// Masks a client frame with the RFC's example key.
    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// RFC 6455 5.7: "A fragmented unmasked text message" ("Hel", "lo"), as a masked
    /// binary message: one message in two frames.
    #[test]
    fn rfc_fragmented_message_is_joined() {
        let mut bytes = masked(0x02, b"Hel");
        bytes.extend(masked(0x80, b"lo"));
        assert_eq!(decode(&bytes, 3), (vec!["data Hello".into()], Ok(())));
    }

    /// RFC 6455 5.7: "Unmasked Ping request and masked Ping response" with "Hello"; a
    /// ping may come between the fragments of a message (5.4).
    #[test]
    fn rfc_ping_between_fragments() {
        let mut bytes = masked(0x02, b"Hel");
        bytes.extend(masked(0x89, b"Hello"));
        bytes.extend(masked(0x80, b"lo"));
        bytes.extend(masked(0x8A, b"Hello"));
        assert_eq!(
            decode(&bytes, 2),
            (
                vec![
                    "data Hel".into(),
                    "ping Hello".into(),
                    "data lo".into(),
                    "pong".into()
                ],
                Ok(())
            )
        );
    }

    /// RFC 6455 5.7: "256 bytes binary message in a single unmasked frame" (0x82 0x7E
    /// 0x0100) and "64KiB binary message" (0x82 0x7F 0x0000000000010000): the server's
    /// headers, and the masked client forms decode.
    #[test]
    fn rfc_256_byte_and_64_kib_lengths() {
        assert_eq!(
            frame_header(opcode::BINARY, 256).0[..4],
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(frame_header(opcode::BINARY, 256).1, 4);
        assert_eq!(
            frame_header(opcode::BINARY, 65536).0,
            [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0]
        );
        assert_eq!(frame_header(opcode::BINARY, 125).0[..2], [0x82, 125]);
        assert_eq!(
            frame_header(opcode::BINARY, 65535).0[..4],
            [0x82, 126, 0xFF, 0xFF]
        );
        for len in [256, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let bytes = masked(0x82, &payload);
            assert_eq!(&bytes[..2], &[0x82, if len == 256 { 0xFE } else { 0xFF }]);
            let (events, r) = decode(&bytes, 1000);
            assert_eq!(r, Ok(()));
            assert_eq!(
                events,
                vec![format!("data {}", String::from_utf8_lossy(&payload))]
            );
        }
    }

    /// The word-wise unmasking equals the byte-wise definition at every offset and length.
    #[test]
    fn unmask_matches_the_definition() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..61u8).map(|i| i.wrapping_mul(37)).collect();
        for offset in 0..8 {
            for len in 0..data.len() {
                let mut fast = data[..len].to_vec();
                unmask(&mut fast, mask, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn oversized_frame_is_too_big() {
        let mut d = Deframer::default();
        let mut bytes = masked(0x82, &[0; 200]);
        assert_eq!(d.feed(&mut bytes, 100, |_| true), Err(Violation(1009)));
    }

    #[test]
    fn control_frame_rules() {
        // Fragmented ping; ping over 125 bytes; close with a 1-byte body; bad close
        // code; a continuation with no message; a new message inside one; RSV bits;
        // an unknown opcode; the 64-bit length's top bit.
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (masked(0x09, b"x"), 1002),
            (masked(0x89, &[0; 126]), 1002),
            (masked(0x88, &[3]), 1002),
            (masked(0x88, &999u16.to_be_bytes()), 1002),
            (masked(0x88, &[0x03, 0xE8, 0xFF]), 1007),
            (masked(0x80, b"x"), 1002),
            ([masked(0x02, b"x"), masked(0x82, b"y")].concat(), 1002),
            ([masked(0x02, b"x"), masked(0x81, b"y")].concat(), 1002),
            (masked(0xC2, b"x"), 1002),
            (masked(0x83, b"x"), 1002),
            (
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
                1002,
            ),
        ];
        for (bytes, code) in cases {
            assert_eq!(decode(&bytes, 64).1, Err(Violation(code)), "{bytes:02x?}");
        }
    }

    #[test]
    fn close_frame_ends_decoding() {
        let mut bytes = masked(0x88, &1000u16.to_be_bytes());
        bytes.extend(masked(0x82, b"after"));
        assert_eq!(
            decode(&bytes, 64),
            (vec!["close Some(1000)".into()], Ok(()))
        );
        assert_eq!(
            decode(&masked(0x88, b""), 64),
            (vec!["close None".into()], Ok(()))
        );
    }

    #[test]
    fn deframer_is_idle_between_frames_only() {
        let mut d = Deframer::default();
        let mut bytes = masked(0x82, b"Hello");
        d.feed(&mut bytes[..4], 100, |_| true).unwrap();
        assert!(!d.is_idle());
        d.feed(&mut bytes[4..], 100, |_| true).unwrap();
        assert!(d.is_idle());
    }

    /// RFC 6455 1.3's example: key "dGhlIHNhbXBsZSBub25jZQ==" gives
    /// "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (also in 4.2.2 and 4.1's client check).
    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    const UPGRADE: &str = "GET /mqtt HTTP/1.1\r\nHost: server.example.com\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn outcome(text: &str, policy: &Policy) -> Outcome {
        match parse_request(text.as_bytes(), 4096) {
            Ok(Some((r, n))) => {
                assert_eq!(n, text.len());
                decide(&r, policy)
            }
            Ok(None) => panic!("incomplete"),
            Err(s) => Outcome::Reject(s),
        }
    }

    #[test]
    fn upgrade_is_answered_with_accept_and_mqtt() {
        let Outcome::Upgrade(r) = outcome(UPGRADE, &Policy::default()) else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        let v31 = UPGRADE.replace("chat, mqtt", "mqttv3.1");
        let Outcome::Upgrade(r) = outcome(&v31, &Policy::default()) else {
            panic!()
        };
        assert!(String::from_utf8(r)
            .unwrap()
            .contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"));
    }

    #[test]
    fn bad_handshakes_get_their_status() {
        let p = Policy::default();
        let cases = [
            (UPGRADE.replace("GET", "POST"), 405),
            (UPGRADE.replace("Version: 13", "Version: 8"), 426),
            (
                UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
            (UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), 400),
            (UPGRADE.replace("keep-alive, Upgrade", "keep-alive"), 400),
            (UPGRADE.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (UPGRADE.replace("chat, mqtt", "chat"), 400),
            (
                UPGRADE.replace("GET /mqtt HTTP/1.1", "GET mqtt HTTP/1.1"),
                400,
            ),
            (UPGRADE.replace("Host: ", "Host "), 400),
            (UPGRADE.replace("Upgrade: websocket\r\n", ""), 404),
        ];
        for (text, code) in cases {
            match outcome(&text, &p) {
                Outcome::Reject(s) => assert_eq!(s.code(), code, "{text}"),
                o => panic!("{text}: {o:?}"),
            }
        }
        let r = String::from_utf8(Status::UpgradeRequired.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{r}");
        let r = String::from_utf8(Status::MethodNotAllowed.response()).unwrap();
        assert!(r.contains("\r\nAllow: GET\r\n"), "{r}");
    }

    #[test]
    fn origin_is_checked_against_the_list() {
        let mut p = Policy {
            origins: vec!["http://example.com".into()],
            ..Policy::default()
        };
        assert!(matches!(outcome(UPGRADE, &p), Outcome::Upgrade(_)));
        p.origins = vec!["https://other".into()];
        assert_eq!(outcome(UPGRADE, &p), Outcome::Reject(Status::Forbidden));
        let no_origin = UPGRADE.replace("Origin: http://example.com\r\n", "");
        assert_eq!(outcome(&no_origin, &p), Outcome::Reject(Status::Forbidden));
    }

    #[test]
    fn request_head_is_bounded() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert_eq!(
            parse_request(big.as_bytes(), 100).err(),
            Some(Status::HeadersTooLarge)
        );
        assert_eq!(parse_request(&big.as_bytes()[..99], 100), Ok(None));
        assert_eq!(
            parse_request(&big.as_bytes()[..100], 100).err(),
            Some(Status::HeadersTooLarge)
        );
        assert_eq!(
            parse_request(b"\xff\xfe / HTTP/1.1\r\n\r\n", 100).err(),
            Some(Status::BadRequest)
        );
    }

    #[test]
    fn http_dir_paths_stay_inside() {
        let dir = std::env::temp_dir().join(format!("culex-ws-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("sub/a b.js"), "x").unwrap();
        let dir = dir.canonicalize().unwrap();
        assert_eq!(file_path(&dir, "/"), Ok(dir.join("index.html")));
        assert_eq!(
            file_path(&dir, "/index.html?x=1#y"),
            Ok(dir.join("index.html"))
        );
        assert_eq!(file_path(&dir, "/sub/a%20b.js"), Ok(dir.join("sub/a b.js")));
        assert_eq!(file_path(&dir, "/sub/"), Err(Status::NotFound));
        assert_eq!(file_path(&dir, "/missing"), Err(Status::NotFound));
        for evil in [
            "/../etc/passwd",
            "/sub/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/sub/%2e%2e/%2e%2e/x",
            "/..%5cx",
            "/a%00b",
            "/%zz",
            "/%",
            "/%c0%ae%c0%ae/x",
        ] {
            assert_eq!(file_path(&dir, evil), Err(Status::BadRequest), "{evil}");
        }
        // A symbolic link out of the directory is refused.
        let outside = dir.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
        assert_eq!(file_path(&dir, "/out/secret"), Err(Status::Forbidden));
        std::fs::remove_dir_all(&outside).unwrap();
        let r = file_response(&dir.join("index.html")).unwrap();
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n<p>hi</p>"), "{r}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("a/mqtt.min.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.CSS")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    /// A writer that takes at most `limit` bytes per call.
    struct Trickle {
        taken: Vec<u8>,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Output is framed as one binary frame per batch, whatever the socket takes per
    /// write; control frames wait for the end of the frame being written.
    #[test]
    fn sender_frames_output_across_partial_writes() {
        for limit in [1, 3, 7, 1000] {
            let mut s = Sender::default();
            s.queue(b"HTTP/1.1 101\r\n\r\n");
            s.open();
            let mut out: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
            let mut w = Trickle {
                taken: Vec::new(),
                limit,
            };
            let mut steps = 0;
            let mut pinged = false;
            loop {
                steps += 1;
                assert!(steps < 10_000);
                match s.write_step(&mut w, &out).unwrap() {
                    Step::Wrote { consumed, .. } => {
                        out.drain(..consumed);
                    }
                    Step::Idle => break,
                }
                if !pinged && w.taken.len() > 20 {
                    s.queue(&control_frame(opcode::PONG, b"p"));
                    pinged = true;
                }
            }
            let mut expected = b"HTTP/1.1 101\r\n\r\n".to_vec();
            expected.extend_from_slice(&[0x82, 126, 0x01, 0x2C]);
            expected.extend((0..300u16).map(|i| i as u8));
            expected.extend_from_slice(&[0x8A, 1, b'p']);
            assert_eq!(w.taken, expected, "limit {limit}");
            s.close(1000);
            while let Step::Wrote { .. } = s.write_step(&mut w, &[]).unwrap() {}
            assert!(s.is_done());
            assert!(w.taken.ends_with(&[0x88, 2, 0x03, 0xE8]));
        }
    }
}
