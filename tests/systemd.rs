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

/// Runs culex with standard error on a file and `JOURNAL_STREAM` set to `journal`, until
/// it has logged its start-up; returns what it wrote.
fn run_with_journal_stream(
    dir: &std::path::Path,
    tag: &str,
    journal: impl Fn(&std::fs::File) -> String,
) -> String {
    use std::io::Read;
    let passwords = dir.join(format!("{tag}.passwd"));
    std::fs::write(&passwords, "broken-line\n").unwrap();
    let conf = dir.join(format!("{tag}.conf"));
    let port = crate::common::candidate_port();
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\npassword_file {}\n",
            passwords.display()
        ),
    )
    .unwrap();
    let out_path = dir.join(format!("{tag}.stderr"));
    let out = std::fs::File::create(&out_path).unwrap();
    let stream = journal(&out);
    let mut child = crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
        .arg("-c")
        .arg(&conf)
        .env("JOURNAL_STREAM", stream)
        .stderr(out)
        .spawn()
        .expect("start culex");
    let listening = crate::common::eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert!(listening, "culex did not start");
    let mut text = String::new();
    std::fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Under systemd (JOURNAL_STREAM names standard error's device and inode), each line
/// starts with its sd-daemon(3) priority, so `journalctl -p warning` works: `<4>` for
/// the skipped password line (a warning), `<6>` for "culex version X starting" (as
/// Mosquitto's "mosquitto version X starting", an information line). A standard
/// error that is not that stream gets plain lines.
#[test]
fn log_lines_carry_their_priority_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("culex-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = run_with_journal_stream(&dir, "journal", |f| {
        let m = f.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    });
    let elsewhere = run_with_journal_stream(&dir, "elsewhere", |f| {
        let m = f.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino() + 1)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = journal.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>") && l.contains("Invalid line in password file")),
        "{journal}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("culex version")),
        "{journal}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with('<')),
        "a line without its priority: {journal}"
    );
    assert!(elsewhere.contains("culex version"), "{elsewhere}");
    assert!(
        elsewhere.lines().all(|l| !l.starts_with('<')),
        "a priority on a stream that is not the journal: {elsewhere}"
    );
}

/// #22: `STATUS=` tells clients and bridges up and down when it changes, and a SIGHUP
/// reload is framed by `RELOADING=1` with `MONOTONIC_USEC=` and `READY=1` (what a
/// `Type=notify-reload` unit waits for), sd_notify(3).
#[test]
fn broker_tells_its_status_and_frames_a_reload() {
    let dir = std::env::temp_dir().join(format!("culex-notify-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = crate::common::candidate_port();
    let dead = crate::common::candidate_port();
    let conf = dir.join("culex.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\
             connection cloud\naddress 127.0.0.1:{dead}\ntopic x/# out 1\n"
        ),
    )
    .unwrap();
    let mut child = crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
        .arg("-c")
        .arg(&conf)
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::null())
        .spawn()
        .expect("start culex");
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    let mut wait_for = |messages: &mut Vec<String>, what: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = what(&m);
                messages.push(m);
                if found {
                    return true;
                }
            }
        }
        false
    };
    let down = "STATUS=0 clients connected; bridges 0 up, 1 down (cloud)";
    assert!(wait_for(&mut messages, &|m| m == down), "{messages:?}");
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    (&client)
        .write_all(&crate::common::connect_packet("status", true, 60))
        .unwrap();
    let one = "STATUS=1 client connected; bridges 0 up, 1 down (cloud)";
    assert!(wait_for(&mut messages, &|m| m == one), "{messages:?}");
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status();
    assert!(
        wait_for(&mut messages, &|m| m
            .starts_with("RELOADING=1\nMONOTONIC_USEC=")),
        "{messages:?}"
    );
    let usec: u64 = messages
        .last()
        .and_then(|m| m.rsplit('=').next())
        .and_then(|n| n.parse().ok())
        .expect("MONOTONIC_USEC is a number");
    assert!(usec > 0);
    assert!(
        wait_for(&mut messages, &|m| m == format!("READY=1\n{one}")),
        "{messages:?}"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("culex exits");
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        messages.first().map(String::as_str),
        Some("READY=1"),
        "{messages:?}"
    );
    assert!(status.success(), "{status:?}");
}
