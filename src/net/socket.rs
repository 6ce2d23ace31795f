//! The two kinds of sockets a listener has: TCP, and Unix stream sockets
//! (`listener 0 /path/to/socket`). The loop treats their connections alike.

use crate::broker::Peer;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

/// A listening socket.
pub(super) enum Listening {
    Tcp(TcpListener),
    /// With its path, which also names its clients (Mosquitto logs `PATH:0`).
    Unix(UnixListener, Rc<str>),
}

/// An accepted connection's socket.
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listening {
    /// Binds a Unix socket at `path`, removing a file left there by an earlier run (as
    /// Mosquitto does), and gives it Mosquitto's mode 0770: the owner's and group's
    /// clients may connect, others may not.
    pub(super) fn bind_unix(path: &Path) -> io::Result<Listening> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o770))?;
        Ok(Listening::Unix(
            listener,
            Rc::from(path.display().to_string().as_str()),
        ))
    }

    pub(super) fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listening::Tcp(l) => l.accept().map(|(s, peer)| {
                // Packets are batched per iteration, so Nagle's delay buys nothing.
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Peer::Inet(peer))
            }),
            Listening::Unix(l, path) => l
                .accept()
                .map(|(s, _)| (Stream::Unix(s), Peer::Unix(path.clone()))),
        }
    }

    /// The TCP address, for tests and logs; `None` for a Unix socket.
    pub(super) fn tcp_address(&self) -> Option<SocketAddr> {
        match self {
            Listening::Tcp(l) => l.local_addr().ok(),
            Listening::Unix(..) => None,
        }
    }

    /// "port N" or "path P", for log lines.
    pub(super) fn describe(&self) -> String {
        match self {
            Listening::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "port ?".into(), |a| format!("port {}", a.port())),
            Listening::Unix(_, path) => format!("path {path}"),
        }
    }
}

impl Stream {
    pub(super) fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    /// Sends FIN and keeps reading: an HTTP error response is followed by a lingering
    /// close, so the client reads the response before any reset its unread bytes cause.
    pub(super) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }

    /// The peer as the broker's log lines name it.
    pub(super) fn peer(&self, listener: &Listening) -> String {
        match (self, listener) {
            (Stream::Tcp(s), _) => s
                .peer_addr()
                .map_or_else(|_| "?".to_string(), |a| a.to_string()),
            (Stream::Unix(_), Listening::Unix(_, path)) => Peer::Unix(path.clone()).to_string(),
            (Stream::Unix(_), _) => "?".to_string(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

macro_rules! forward_source {
    ($ty:ident, $($variant:ident),+) => {
        impl Source for $ty {
            fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self { $($ty::$variant(s, ..) => s.register(r, t, i),)+ }
            }
            fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self { $($ty::$variant(s, ..) => s.reregister(r, t, i),)+ }
            }
            fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                match self { $($ty::$variant(s, ..) => s.deregister(r),)+ }
            }
        }
    };
}

forward_source!(Listening, Tcp, Unix);
forward_source!(Stream, Tcp, Unix);

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unix_listener_replaces_a_stale_socket_and_is_mode_0770() {
        let path = std::env::temp_dir().join(format!("culex-sock-{}", std::process::id()));
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale); // The file stays, as after a crash.
        let listening = Listening::bind_unix(&path).expect("stale socket replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o770);
        assert_eq!(listening.describe(), format!("path {}", path.display()));
        drop(listening);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unix_listener_does_not_remove_a_regular_file() {
        let path = std::env::temp_dir().join(format!("culex-notsock-{}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        let e = Listening::bind_unix(&path).err().expect("refused");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }
}
