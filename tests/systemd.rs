//! The broker binary under a systemd-like supervisor: READY=1 once listening, WATCHDOG=1
//! from the event loop at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM (sd_notify(3)).
//! culex's own binary, whatever CULEX_TEST_BROKER says: this is culex's unit contract.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn broker_notifies_ready_watchdog_and_stopping() {
    let dir = std::env::temp_dir().join(format!("culex-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = crate::common::candidate_port();
    let mut child = crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
        .args(["-p", &port.to_string()])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(Stdio::null())
        .spawn()
        .expect("start culex");
    let mut messages = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && messages.iter().filter(|m| *m == "WATCHDOG=1").count() < 3 {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !messages.iter().any(|m| m == "STOPPING=1") {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let status = child.wait().expect("culex exits");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        messages.first().map(String::as_str),
        Some("READY=1"),
        "{messages:?}"
    );
    assert!(
        messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "{messages:?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("STOPPING=1"),
        "{messages:?}"
    );
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}
