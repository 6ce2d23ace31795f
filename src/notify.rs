//! sd_notify(3) without libsystemd: tells systemd (a `Type=notify` unit) that the broker
//! is ready or stopping.
//!
//! The protocol is one datagram of `KEY=VALUE` lines sent to the `AF_UNIX` socket named
//! by the `NOTIFY_SOCKET` environment variable: a path, or an abstract socket name
//! written with a leading `@` (systemd's own convention; the kernel's is a leading NUL).
//! Without `NOTIFY_SOCKET` (not started by systemd, or a unit of another type) nothing
//! is sent and nothing fails. The broker calls [`notify`] with [`READY`] once its
//! listeners are bound and with [`STOPPING`] when its loop has returned; around a SIGHUP
//! reload with [`reloading`] and then [`READY`] (what a `Type=notify-reload` unit waits
//! for), and with a one-line [`status`] (clients, bridges up and down) when it changes.
//!
//! Linking libsystemd would add a shared library to the static builds and an unsafe FFI
//! boundary for what std's `UnixDatagram` does in a few lines.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Start-up is finished: the listeners are bound and accepting.
pub const READY: &str = "READY=1";
/// The broker is shutting down.
pub const STOPPING: &str = "STOPPING=1";
/// Still alive (a unit with `WatchdogSec=`): sent from the event loop, so a loop that
/// hangs stops sending it and systemd restarts the service.
pub const WATCHDOG: &str = "WATCHDOG=1";

/// A reload begins (SIGHUP; `Type=notify-reload` units): systemd wants the monotonic
/// time with it, and waits for [`READY`] when it is done.
pub fn reloading() -> String {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64) * 1_000_000 + (t.tv_nsec() as u64) / 1_000
    });
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// A one-line `STATUS=` for `systemctl status` (line breaks would end the field).
pub fn status(text: &str) -> String {
    format!("STATUS={}", text.replace('\n', " "))
}

/// How often to send [`WATCHDOG`]: half the `WATCHDOG_USEC` systemd set, as sd_watchdog_enabled(3)
/// advises; `None` without a watchdog, or if `WATCHDOG_PID` names another process.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        pid.as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Option<std::time::Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(std::time::Duration::from_micros(usec / 2))
}

/// Sends `state` (one or more `KEY=VALUE` lines) to the socket in `NOTIFY_SOCKET`.
/// Returns `Ok(false)` when the variable is unset, `Ok(true)` when the datagram was sent.
pub fn notify(state: &str) -> io::Result<bool> {
    send_state(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// [`notify`] with the socket name given: the environment is process-global, so the
/// tests call this instead of setting `NOTIFY_SOCKET`.
fn send_state(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let datagram = UnixDatagram::unbound()?;
    let name = socket.as_bytes();
    let sent = match name.first() {
        Some(b'/') => datagram.send_to(state.as_bytes(), socket)?,
        Some(b'@') => send_abstract(&datagram, &name[1..], state)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NOTIFY_SOCKET '{}' is neither an absolute path nor an @abstract name",
                    socket.to_string_lossy()
                ),
            ))
        }
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to NOTIFY_SOCKET",
        ));
    }
    Ok(true)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(datagram: &UnixDatagram, name: &[u8], state: &str) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    datagram.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec_for_this_process() {
        use std::time::Duration;
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }
    use std::path::PathBuf;
    use std::time::Duration;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("culex-notify-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir is writable");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a datagram arrives");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_is_sent_to_a_path_socket() {
        let dir = TempDir::new("path");
        let path = dir.0.join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        assert!(send_state(Some(path.as_os_str()), READY).unwrap());
        assert_eq!(receive(&systemd), "READY=1");
        assert!(send_state(Some(path.as_os_str()), STOPPING).unwrap());
        assert_eq!(receive(&systemd), "STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ready_is_sent_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("culex-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = format!("@{name}");
        assert!(send_state(Some(OsStr::new(&socket)), "READY=1\nSTATUS=ok").unwrap());
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=ok");
    }

    #[test]
    fn reloading_carries_the_monotonic_time_and_status_is_one_line() {
        let r = reloading();
        let usec: u64 = r
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|n| n.parse().ok())
            .expect(&r);
        assert!(usec > 0);
        assert_eq!(status("a\nb"), "STATUS=a b");
    }

    #[test]
    fn nothing_is_sent_without_a_socket() {
        assert!(!send_state(None, READY).unwrap());
        assert!(!send_state(Some(OsStr::new("")), READY).unwrap());
    }

    #[test]
    fn a_relative_socket_name_is_refused() {
        let err = send_state(Some(OsStr::new("run/notify")), READY).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_missing_socket_is_an_error() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("nobody-listens");
        assert!(send_state(Some(path.as_os_str()), READY).is_err());
    }
}
