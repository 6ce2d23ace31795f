//! The broker's command line as init systems without supervision use it (OpenWrt's
//! procd scripts, BusyBox and sysvinit start scripts on LoRaWAN gateways): `-d` with
//! `pid_file`, and `-t` checking a configuration before a restart. Issue #19.

use crate::common::{candidate_port, connect_packet, eventually, Broker, Raw, WAIT};
use crate::tls::Pki;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn culex() -> Command {
    crate::common::built_binary(env!("CARGO_BIN_EXE_culex"))
}

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("culex-standalone-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn test_config(conf: &Path) -> Output {
    culex()
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .output()
        .expect("run culex -t")
}

/// Rust's debug formatting of an enum or a struct, which no message should show.
fn assert_plain_english(text: &str) {
    for debug in [
        "OtherError",
        "Other(",
        "KeyMismatch",
        "Io(",
        "Os {",
        "kind:",
    ] {
        assert!(
            !text.contains(debug),
            "debug formatting ({debug}) in: {text}"
        );
    }
}

/// `culex -t` loads what start-up loads: each configuration here passes the option
/// parser but cannot start, and `-t` says why, in words, with status 1 (it said
/// "Configuration OK."). A configuration that starts is OK.
#[test]
fn test_config_loads_every_file_start_up_loads() {
    let pki = Pki::new("test-config");
    let scratch = Scratch::new("test-config");
    let port = candidate_port();
    let tls = |cert: &str, key: Option<&str>| {
        let mut conf = format!("listener {port} 127.0.0.1\ncertfile {}\n", pki.path(cert));
        if let Some(key) = key {
            conf.push_str(&format!("keyfile {}\n", pki.path(key)));
        }
        conf
    };
    let cases = [
        ("missing certfile", tls("nothing.pem", Some("server.key")), "nothing.pem"),
        ("certfile without keyfile", tls("server.pem", None), "certfile and keyfile must both be given"),
        ("mismatched key", tls("server.pem", Some("client.key")), "do not belong together"),
        (
            "missing password file",
            format!("listener {port}\npassword_file {}/none.passwd\n", scratch.0.display()),
            "none.passwd: cannot read the file",
        ),
        (
            "missing ACL file",
            format!("listener {port}\nacl_file {}/none.acl\n", scratch.0.display()),
            "none.acl",
        ),
        (
            "bridge with a missing CA file",
            format!(
                "listener {port}\nconnection up\naddress 127.0.0.1:1\ntopic # out\nbridge_cafile {}/none.pem\n",
                scratch.0.display()
            ),
            "bridge up: cafile",
        ),
        (
            "log file in a missing directory",
            format!("listener {port}\nlog_dest file {}/no/dir/culex.log\n", scratch.0.display()),
            "Unable to open log file",
        ),
    ];
    for (what, conf, expected) in cases {
        let path = scratch.file("c.conf", &conf);
        let out = test_config(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stdout}{stderr}");
        assert!(!stdout.contains("Configuration OK"), "{what}: {stdout}");
        assert!(
            stderr.contains(expected),
            "{what}: expected {expected:?} in {stderr}"
        );
        assert_plain_english(&stderr);
    }
    let good = scratch.file(
        "good.conf",
        &format!(
            "{}cafile {}\n",
            tls("server.pem", Some("server.key")),
            pki.path("ca.pem")
        ),
    );
    let out = test_config(&good);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Configuration OK.\n");
}

/// The pid of a process from /proc/PID/stat: (parent pid, session id).
fn parent_and_session(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces; split after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some((fields[1].parse().ok()?, fields[3].parse().ok()?))
}

fn is_alive(pid: u32) -> bool {
    // A zombie (state Z) has exited; its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"))
        .unwrap_or(false)
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Kills the daemon if a test fails before it stopped it.
struct Daemon(u32);

impl Drop for Daemon {
    fn drop(&mut self) {
        if is_alive(self.0) {
            kill(self.0, "KILL");
        }
    }
}

/// `culex -d` with `pid_file`, as Mosquitto (`mosquitto__daemonise`, `pid__write`): the
/// command returns 0 at once; the daemon's pid is in the file (decimal, no newline); it
/// leads a new session, is not our child, has /dev/null as standard input, and
/// answers MQTT; SIGTERM stops it cleanly and removes the pid file.
#[test]
fn daemon_writes_its_pid_file_serves_and_cleans_up_on_sigterm() {
    let scratch = Scratch::new("daemon");
    let port = candidate_port();
    let pid_path = scratch.0.join("culex.pid");
    let log = scratch.0.join("culex.log");
    let conf = scratch.file(
        "d.conf",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npid_file {}\nlog_dest file {}\n",
            pid_path.display(),
            log.display()
        ),
    );
    let started = std::time::Instant::now();
    let status = culex()
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .status()
        .expect("run culex -d");
    assert!(status.success(), "culex -d exited with {status}");
    assert!(started.elapsed() < WAIT, "culex -d did not return at once");

    assert!(
        eventually(WAIT, || std::fs::read_to_string(&pid_path)
            .is_ok_and(|s| s.parse::<u32>().is_ok())),
        "no pid in {}",
        pid_path.display()
    );
    let text = std::fs::read_to_string(&pid_path).unwrap();
    let pid: u32 = text.parse().unwrap();
    let _guard = Daemon(pid);
    assert!(is_alive(pid), "the daemon {pid} is not running");
    let (parent, session) = parent_and_session(pid).expect("/proc/PID/stat");
    assert_ne!(parent, std::process::id(), "the daemon is still our child");
    // setsid(2): out of our session. glibc's daemon(3) leaves it the session's leader;
    // musl's (the static builds) forks once more after setsid, so only this is common.
    let (_, own_session) = parent_and_session(std::process::id()).expect("/proc/self/stat");
    assert_ne!(
        session, own_session,
        "the daemon is still in the caller's session (no setsid)"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(),
        PathBuf::from("/dev/null")
    );

    assert!(
        eventually(WAIT, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "the daemon does not listen on {port}"
    );
    let mut raw = Raw::connect(port);
    raw.send(&connect_packet("daemon-check", true, 30));
    raw.expect(&[0x20, 0x02, 0x00, 0x00]);
    drop(raw);

    kill(pid, "TERM");
    assert!(
        eventually(Duration::from_secs(10), || !is_alive(pid)),
        "the daemon did not stop on SIGTERM"
    );
    assert!(
        !pid_path.exists(),
        "the pid file is left after a clean stop"
    );
}

/// Without -d, `pid_file` holds the broker's own pid while it runs (Mosquitto writes it
/// either way), and is gone after SIGTERM.
#[test]
fn pid_file_without_daemon_holds_the_brokers_pid() {
    let scratch = Scratch::new("pidfile");
    let pid_path = scratch.0.join("b.pid");
    let mut broker = Broker::start(&format!("pid_file {}\n", pid_path.display()));
    assert_eq!(
        std::fs::read_to_string(&pid_path).unwrap(),
        broker.pid().to_string()
    );
    broker.signal("TERM");
    assert!(eventually(Duration::from_secs(10), || !broker.is_running()));
    assert!(
        !pid_path.exists(),
        "the pid file is left after a clean stop"
    );
}

/// A pid file that cannot be written stops start-up with Mosquitto's words, on the
/// terminal even with -d (the file is opened before the fork).
#[test]
fn pid_file_that_cannot_be_written_stops_start_up() {
    let scratch = Scratch::new("pidfail");
    let port = candidate_port();
    let conf = scratch.file(
        "p.conf",
        &format!(
            "listener {port} 127.0.0.1\npid_file {}/no/such/dir/culex.pid\n",
            scratch.0.display()
        ),
    );
    for args in [&["-c"][..], &["-d", "-c"][..]] {
        let out = culex().args(args).arg(&conf).output().expect("run culex");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Error: Unable to write pid file: "),
            "{stderr}"
        );
        assert_plain_english(&stderr);
    }
}
