//! A plain client on a std `TcpStream`, for the scenarios where one connection at a time
//! does the work (connections, retained, the paced latency publisher). Reads go into one
//! buffer and every whole frame is decoded in place, as in the engine; writes are batched
//! by the caller in `wbuf` and go out with one `write_all`.

use culex::protocol::{frame, Packet, ProtocolVersion};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const READ_CHUNK: usize = 64 * 1024;
const MAX_PACKET: usize = 16 * 1024 * 1024;
const V311: ProtocolVersion = ProtocolVersion::V311;

/// What a client does with each packet it reads: it may append a reply to the write buffer.
pub type OnPacket<'f, R> = dyn FnMut(Packet<'_>, &mut Vec<u8>) -> Result<R, String> + 'f;

pub struct Client {
    pub stream: crate::ws::Stream<TcpStream>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    pub wbuf: Vec<u8>,
}

impl Client {
    /// Connects and buffers a CONNECT (not yet sent). Reads and writes give up after
    /// `timeout`, so a stuck broker cannot hang the tool.
    pub fn connect(addr: SocketAddr, client_id: &str, timeout: Duration) -> Result<Client, String> {
        let stream = crate::ws::connect(addr, timeout)?;
        stream
            .get_ref()
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.get_ref().set_write_timeout(Some(timeout)))
            .map_err(|e| format!("cannot set socket timeouts: {e}"))?;
        let mut wbuf = Vec::with_capacity(READ_CHUNK);
        Packet::Connect(Box::new(crate::engine::connect_packet(client_id))).encode(V311, &mut wbuf);
        Ok(Client {
            stream,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf,
        })
    }

    /// Sends everything buffered. On a non-blocking socket, waits out a full send buffer.
    pub fn flush(&mut self) -> Result<(), String> {
        let mut pos = 0;
        while pos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[pos..]) {
                Ok(0) => return Err("the broker closed the connection".into()),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        self.wbuf.clear();
        // A WebSocket frame the socket took only part of.
        loop {
            match self.stream.flush_pending() {
                Ok(true) => return Ok(()),
                Ok(false) => std::thread::sleep(Duration::from_micros(50)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
    }

    /// Reads once. Ok(false): nothing arrived (a non-blocking socket had nothing, or a
    /// blocking one hit its read timeout).
    fn fill(&mut self) -> Result<bool, String> {
        if self.rbuf.is_empty() {
            self.rbuf = vec![0; READ_CHUNK];
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        } else if self.rend == self.rbuf.len() {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            } else {
                let len = self.rbuf.len() * 2;
                self.rbuf.resize(len, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Err("the broker closed the connection".into()),
                Ok(n) => {
                    self.rend += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }

    /// Hands buffered whole packets to `f` until it returns true (the rest stays
    /// buffered). Ok(true) if `f` did.
    fn process(&mut self, f: &mut OnPacket<'_, bool>) -> Result<bool, String> {
        while let Some(len) = frame::check(&self.rbuf[self.rstart..self.rend], MAX_PACKET)
            .map_err(|e| format!("malformed packet from the broker: {e}"))?
        {
            let bytes = &self.rbuf[self.rstart..self.rstart + len];
            self.rstart += len;
            let packet = Packet::decode(bytes, V311)
                .map_err(|e| format!("malformed packet from the broker: {e}"))?;
            if f(packet, &mut self.wbuf)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads what is there without waiting (non-blocking socket) and handles it.
    pub fn poll_packets(&mut self, f: &mut OnPacket<'_, ()>) -> Result<(), String> {
        while self.fill()? {
            self.process(&mut |p, w| f(p, w).map(|()| false))?;
        }
        Ok(())
    }

    /// Blocks until `f` returns true, handing it each packet; a read timeout is an error
    /// naming `what` was awaited.
    pub fn read_until(&mut self, what: &str, f: &mut OnPacket<'_, bool>) -> Result<(), String> {
        loop {
            if self.process(f)? {
                return Ok(());
            }
            if !self.fill()? {
                return Err(format!("timed out waiting for {what}"));
            }
        }
    }

    /// Waits for a successful CONNACK.
    pub fn expect_connack(&mut self) -> Result<(), String> {
        self.read_until("CONNACK", &mut |p, _| match p {
            Packet::Connack(a) if !a.reason.is_error() => Ok(true),
            Packet::Connack(a) => Err(format!("connection refused: {:?}", a.reason)),
            other => Err(format!("expected CONNACK, got {}", other.name())),
        })
    }
}
