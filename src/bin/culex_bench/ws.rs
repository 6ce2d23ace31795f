//! `--ws`: every client speaks MQTT over WebSockets (RFC 6455) instead of plain TCP, so
//! the scenarios measure a `protocol websockets` listener. The handshake is done blocking
//! at connect; after it, [`Stream`] looks like the socket to the rest of the tool: each
//! `write` becomes one masked binary frame, and `read` returns the payload bytes of the
//! broker's frames. This costs the tool a copy per byte both ways, which is the client's
//! share of the WebSocket work; the broker's share is what the comparison shows.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Set once from the command line, before any client connects.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Raw bytes read per system call.
const RAW_CHUNK: usize = 256 * 1024;

/// A client socket, with or without WebSocket framing.
pub enum Stream<S> {
    Plain(S),
    Ws(Box<WsStream<S>>),
}

pub struct WsStream<S> {
    inner: S,
    /// A frame (or its unwritten rest) the socket did not take yet.
    out: Vec<u8>,
    out_pos: usize,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
    /// Payload bytes of the current incoming frame still to hand out.
    payload_left: u64,
    /// The current incoming frame is a control frame (skipped).
    is_control: bool,
    mask: u32,
}

impl<S> Stream<S> {
    pub fn get_ref(&self) -> &S {
        match self {
            Stream::Plain(s) => s,
            Stream::Ws(w) => &w.inner,
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        match self {
            Stream::Plain(s) => s,
            Stream::Ws(w) => &mut w.inner,
        }
    }
}

impl<S: Write> Stream<S> {
    /// Writes what a previous `write` left (WebSockets only). Ok(true): nothing is left.
    pub fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Stream::Plain(_) => Ok(true),
            Stream::Ws(w) => w.flush_out(),
        }
    }
}

/// Connects (blocking, within `timeout`) and, with `--ws`, does the WebSocket handshake.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Stream<std::net::TcpStream>, String> {
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    if !is_enabled() {
        return Ok(Stream::Plain(stream));
    }
    let mut stream = stream;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("cannot set a read timeout: {e}"))?;
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    // The response head; what follows it (nothing, until the client's CONNECT) stays
    // in the raw buffer for the frame reader.
    let mut raw = vec![0u8; RAW_CHUNK];
    let mut raw_end = 0;
    let head_len = loop {
        if let Some(at) = raw[..raw_end].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if raw_end > 4096 {
            return Err("WebSocket handshake: response head too long".into());
        }
        match stream.read(&mut raw[raw_end..]) {
            Ok(0) => return Err("WebSocket handshake: the broker closed the connection".into()),
            Ok(n) => raw_end += n,
            Err(e) => return Err(format!("WebSocket handshake: {e}")),
        }
    };
    if !raw.starts_with(b"HTTP/1.1 101 ") {
        let head = String::from_utf8_lossy(&raw[..head_len]);
        let line = head.lines().next().unwrap_or_default();
        return Err(format!("WebSocket handshake refused: {line}"));
    }
    stream
        .set_read_timeout(None)
        .map_err(|e| format!("cannot clear the read timeout: {e}"))?;
    Ok(Stream::Ws(Box::new(WsStream {
        inner: stream,
        out: Vec::new(),
        out_pos: 0,
        raw,
        raw_start: head_len,
        raw_end,
        payload_left: 0,
        is_control: false,
        mask: 0x9E37_79B9,
    })))
}

/// As [`connect`], for the mio engine: the handshake blocking, then non-blocking.
pub fn connect_mio(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Stream<mio::net::TcpStream>, String> {
    let to_mio = |s: std::net::TcpStream| -> Result<mio::net::TcpStream, String> {
        s.set_nonblocking(true)
            .map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
        Ok(mio::net::TcpStream::from_std(s))
    };
    Ok(match connect(addr, timeout)? {
        Stream::Plain(s) => Stream::Plain(to_mio(s)?),
        Stream::Ws(w) => {
            let WsStream {
                inner,
                out,
                out_pos,
                raw,
                raw_start,
                raw_end,
                payload_left,
                is_control,
                mask,
            } = *w;
            Stream::Ws(Box::new(WsStream {
                inner: to_mio(inner)?,
                out,
                out_pos,
                raw,
                raw_start,
                raw_end,
                payload_left,
                is_control,
                mask,
            }))
        }
    })
}

impl<S: Write> WsStream<S> {
    fn flush_out(&mut self) -> io::Result<bool> {
        while self.out_pos < self.out.len() {
            match self.inner.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(true)
    }
}

impl<S: Write> Write for Stream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = match self {
            Stream::Plain(s) => return s.write(buf),
            Stream::Ws(w) => w,
        };
        if !w.flush_out()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // A new mask per frame (a xorshift step), as RFC 6455 5.3 asks of clients.
        w.mask ^= w.mask << 13;
        w.mask ^= w.mask >> 17;
        w.mask ^= w.mask << 5;
        let mask = w.mask.to_be_bytes();
        w.out.push(0x82);
        match buf.len() {
            n if n < 126 => w.out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                w.out.push(0x80 | 126);
                w.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                w.out.push(0x80 | 127);
                w.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        w.out.extend_from_slice(&mask);
        w.out
            .extend(buf.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        // The frame is taken whole: what the socket does not take now goes out with the
        // next write or flush_pending.
        w.flush_out()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Ws(w) => w.flush_out().map(|_| ()),
        }
    }
}

impl<S: Read> Read for Stream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let w = match self {
            Stream::Plain(s) => return s.read(buf),
            Stream::Ws(w) => w,
        };
        loop {
            let avail = w.raw_end - w.raw_start;
            if w.payload_left > 0 && avail > 0 {
                let n = avail.min(usize::try_from(w.payload_left).unwrap_or(usize::MAX));
                if w.is_control {
                    w.raw_start += n;
                    w.payload_left -= n as u64;
                    continue;
                }
                let n = n.min(buf.len());
                buf[..n].copy_from_slice(&w.raw[w.raw_start..w.raw_start + n]);
                w.raw_start += n;
                w.payload_left -= n as u64;
                return Ok(n);
            }
            if w.payload_left == 0 && avail >= 2 {
                let h = &w.raw[w.raw_start..w.raw_end];
                let (len, at) = match h[1] & 0x7F {
                    126 if h.len() >= 4 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
                    127 if h.len() >= 10 => {
                        let mut be = [0; 8];
                        be.copy_from_slice(&h[2..10]);
                        (u64::from_be_bytes(be), 10)
                    }
                    126 | 127 => (u64::MAX, 0),
                    n => (u64::from(n), 2),
                };
                if len != u64::MAX {
                    if h[0] & 0x0F == 0x8 {
                        return Ok(0); // the broker's close frame: the end
                    }
                    w.is_control = h[0] & 0x08 != 0;
                    w.payload_left = len;
                    w.raw_start += at;
                    continue;
                }
            }
            // More raw bytes: compact, then read.
            if w.raw_start > 0 {
                w.raw.copy_within(w.raw_start..w.raw_end, 0);
                w.raw_end -= w.raw_start;
                w.raw_start = 0;
            }
            let end = w.raw_end;
            match w.inner.read(&mut w.raw[end..])? {
                0 => return Ok(0),
                n => w.raw_end += n,
            }
        }
    }
}

impl<S: mio::event::Source> mio::event::Source for Stream<S> {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.get_mut().register(r, t, i)
    }
    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.get_mut().reregister(r, t, i)
    }
    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        self.get_mut().deregister(r)
    }
}
