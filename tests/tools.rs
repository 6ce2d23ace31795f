//! culex_pub and culex_sub against a real broker (culex, or Mosquitto with
//! `CULEX_TEST_BROKER=mosquitto`): round trips, output formats, binary payloads, retained
//! messages, wills, filters, Mosquitto's errors and exit codes. MQTT 3.1/3.1.1 only here;
//! the MQTT 5 paths (-D properties, culex_rr) are checked against Mosquitto in
//! tests/interop/tools.sh until the broker speaks MQTT 5.
//!
//! Every tool runs with a bounded wait: a test fails, it never hangs.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::Broker;

/// Longest a tool may run in a test: 10 s, three times that under an emulator
/// (`CULEX_TEST_RUNNER`, qemu in cross/test.sh), where start-up alone takes seconds.
fn limit() -> Duration {
    if std::env::var_os("CULEX_TEST_RUNNER").is_some() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(10)
    }
}

fn tool(name: &str) -> PathBuf {
    match name {
        "culex_pub" => PathBuf::from(env!("CARGO_BIN_EXE_culex_pub")),
        "culex_rr" => PathBuf::from(env!("CARGO_BIN_EXE_culex_rr")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_culex_sub")),
    }
}

/// A command for a tool, with an empty defaults directory so the user's
/// ~/.config/culex_* cannot change the test.
fn command(name: &str, args: &[&str]) -> Command {
    let mut c = crate::common::built_binary(tool(name));
    c.args(args)
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("culex-itest-no-config"),
        )
        .env("TZ", "UTC")
        .stdin(Stdio::null());
    c
}

/// Runs a tool to completion within `limit()`, with `input` on standard input.
fn run_with(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn the tool");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = wait_output(child);
    let _ = writer.join();
    output
}

fn run(name: &str, args: &[&str]) -> Output {
    run_with(command(name, args), b"")
}

/// Waits for a child within `limit()`, collecting its output; kills it and fails after.
fn wait_output(mut child: Child) -> Output {
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let deadline = Instant::now() + limit();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the tool did not finish within {:?}; stdout: {:?} stderr: {:?}",
                limit(),
                String::from_utf8_lossy(&out.lock().unwrap()),
                String::from_utf8_lossy(&err.lock().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    // The readers end when the pipes close.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&out) > 1 || Arc::strong_count(&err) > 1 {
        if Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let stdout = out.lock().unwrap().clone();
    let stderr = err.lock().unwrap().clone();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads a pipe on a thread into a shared buffer.
fn collect(pipe: Option<impl Read + Send + 'static>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let shared = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                shared.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
    }
    buf
}

/// A culex_sub running in the background with `-d`, started once its SUBACK arrived.
struct Sub {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Sub {
    fn start(port: u16, args: &[&str]) -> Sub {
        let port = port.to_string();
        let mut all = vec!["-p", &port, "-d"];
        all.extend_from_slice(args);
        let mut child = command("culex_sub", &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn culex_sub");
        let out = collect(child.stdout.take());
        let err = collect(child.stderr.take());
        let sub = Sub { child, out, err };
        let deadline = Instant::now() + limit();
        while !sub.stdout_text().contains("Subscribed (mid: ") {
            assert!(
                Instant::now() < deadline,
                "no SUBACK for culex_sub {args:?}: {:?} {:?}",
                sub.stdout_text(),
                String::from_utf8_lossy(&sub.err.lock().unwrap())
            );
            thread::sleep(Duration::from_millis(10));
        }
        sub
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits for the subscriber to exit; its output without the debug lines.
    fn finish(self) -> (Output, String) {
        let Sub { child, out, err } = self;
        let mut child = child;
        let deadline = Instant::now() + limit();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "culex_sub did not finish: {:?}",
                    String::from_utf8_lossy(&out.lock().unwrap())
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        thread::sleep(Duration::from_millis(50));
        let stdout = out.lock().unwrap().clone();
        let text: String = String::from_utf8_lossy(&stdout)
            .lines()
            .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed (mid: "))
            .map(|l| format!("{l}\n"))
            .collect();
        let stderr = err.lock().unwrap().clone();
        (
            Output {
                status,
                stdout,
                stderr,
            },
            text,
        )
    }
}

fn publish(port: u16, args: &[&str]) {
    let port = port.to_string();
    let mut all = vec!["-p", port.as_str()];
    all.extend_from_slice(args);
    let out = run("culex_pub", &all);
    assert!(
        out.status.success(),
        "culex_pub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The three QoS levels end to end, in MQTT 3.1.1 and 3.1, at the lower of publish and
/// subscription QoS.
#[test]
fn pub_to_sub_round_trips_at_every_qos() {
    let broker = Broker::start("");
    for version in ["311", "31"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("tools/v{version}/q{qos}");
            let sub = Sub::start(
                broker.port,
                &[
                    "-V", version, "-q", qos, "-t", &topic, "-C", "2", "-F", "%q %t %p",
                ],
            );
            publish(
                broker.port,
                &["-V", version, "-q", qos, "-t", &topic, "-m", "first"],
            );
            publish(
                broker.port,
                &["-V", version, "-q", "2", "-t", &topic, "-m", "second"],
            );
            let (out, text) = sub.finish();
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(text, format!("{qos} {topic} first\n{qos} {topic} second\n"));
        }
    }
}

/// -F output, compared with what mosquitto_sub 2.0.11 prints for the same messages.
#[test]
fn format_specifiers_print_exactly_what_mosquitto_sub_prints() {
    let broker = Broker::start("");
    let format = r"%t|%p|%q|%r|%l|%x|%X|%5l|%-5l|%05l|%10.3p|%%|\t|@@";
    let sub = Sub::start(
        broker.port,
        &["-t", "fmt/#", "-q", "1", "-C", "3", "-F", format],
    );
    publish(broker.port, &["-t", "fmt/a", "-m", r#"hi "there"\"#]);
    publish(broker.port, &["-t", "fmt/b", "-q", "1", "-m", r#"{"a":1}"#]);
    publish(broker.port, &["-t", "fmt/c", "-n"]);
    let (out, text) = sub.finish();
    assert!(out.status.success());
    assert_eq!(
        text,
        "fmt/a|hi \"there\"\\|0|0|11|686920227468657265225c|686920227468657265225C|   11|11   |00011|hi \"there\"|%|\t|@\n\
         fmt/b|{\"a\":1}|1|0|7|7b2261223a317d|7B2261223A317D|    7|7    |00007|   {\"a\":1}|%|\t|@\n\
         fmt/c||0|0|0|||    0|0    |00000|          |%|\t|@\n"
    );
}

/// -v prints "topic payload", and "topic (null)" for an empty payload; without -v an
/// empty payload prints nothing, as in Mosquitto.
#[test]
fn verbose_and_plain_output() {
    let broker = Broker::start("");
    let verbose = Sub::start(broker.port, &["-t", "v/#", "-C", "2", "-v"]);
    let plain = Sub::start(broker.port, &["-t", "v/#", "-C", "2"]);
    publish(broker.port, &["-t", "v/a", "-m", "x y"]);
    publish(broker.port, &["-t", "v/b", "-n"]);
    assert_eq!(verbose.finish().1, "v/a x y\nv/b (null)\n");
    assert_eq!(plain.finish().1, "x y\n");
}

/// Every byte value through -f and -N, and through -s; nothing is added or changed.
#[test]
fn binary_payloads_pass_through_unchanged() {
    let broker = Broker::start("");
    let port = broker.port.to_string();
    let mut payload: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
    payload.extend_from_slice(b"\r\n\0\xff");
    let file = std::env::temp_dir().join(format!("culex-tools-{}.bin", std::process::id()));
    std::fs::write(&file, &payload).unwrap();
    // A persistent session subscribed beforehand, so -N output has no debug lines to
    // skip and nothing can be published before the subscription exists.
    let session = [
        "-p",
        &port,
        "-c",
        "-i",
        "tools-binary",
        "-q",
        "1",
        "-t",
        "bin",
    ];
    let out = run("culex_sub", &[&session[..], &["-E"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    publish(
        broker.port,
        &["-q", "1", "-t", "bin", "-f", file.to_str().unwrap()],
    );
    let out = run_with(
        command("culex_pub", &["-p", &port, "-q", "1", "-t", "bin", "-s"]),
        &payload,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run("culex_sub", &[&session[..], &["-C", "2", "-N"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), payload.len() * 2);
    assert!(out.stdout == [payload.clone(), payload].concat());
    let _ = std::fs::remove_file(file);
    // Leave no session behind.
    run(
        "culex_sub",
        &["-p", &port, "-i", "tools-binary", "-t", "bin", "-E"],
    );
}

/// -l: one message per line, an empty line included, in order.
#[test]
fn stdin_lines_become_messages() {
    let broker = Broker::start("");
    let port = broker.port.to_string();
    let sub = Sub::start(
        broker.port,
        &["-t", "lines", "-q", "1", "-C", "4", "-F", "[%p]"],
    );
    let out = run_with(
        command("culex_pub", &["-p", &port, "-q", "1", "-t", "lines", "-l"]),
        "one\n\nthree  \nfour".as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sub.finish().1, "[one]\n[]\n[three  ]\n[four]\n");
}

#[test]
fn repeat_publishes_n_times() {
    let broker = Broker::start("");
    let sub = Sub::start(broker.port, &["-t", "rep", "-C", "3", "-F", "%p"]);
    publish(
        broker.port,
        &[
            "-t",
            "rep",
            "-m",
            "again",
            "--repeat",
            "3",
            "--repeat-delay",
            "0.05",
        ],
    );
    assert_eq!(sub.finish().1, "again\nagain\nagain\n");
}

/// --retained-only prints the retained messages and stops at the first live one;
/// --remove-retained clears what it receives.
#[test]
fn retained_only_and_remove_retained() {
    let broker = Broker::start("");
    let port = broker.port.to_string();
    publish(broker.port, &["-t", "ret/1", "-m", "one", "-r", "-q", "1"]);
    publish(broker.port, &["-t", "ret/2", "-m", "two", "-r", "-q", "1"]);
    let sub = Sub::start(
        broker.port,
        &["-t", "ret/#", "--retained-only", "-v", "-W", "8"],
    );
    publish(broker.port, &["-t", "ret/3", "-m", "live"]);
    let (out, text) = sub.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(text, "ret/1 one\nret/2 two\n");
    // -R hides retained messages.
    let sub = Sub::start(broker.port, &["-t", "ret/#", "-R", "-v", "-C", "1"]);
    publish(broker.port, &["-t", "ret/4", "-m", "fresh"]);
    assert_eq!(sub.finish().1, "ret/4 fresh\n");
    // Clear them; -T keeps ret/2. The first cleared message comes back live and ends
    // --retained-only (exit 0), as with Mosquitto; -W bounds it otherwise (27).
    let out = run(
        "culex_sub",
        &[
            "-p",
            &port,
            "-t",
            "ret/#",
            "-T",
            "ret/2",
            "--remove-retained",
            "--retained-only",
            "-W",
            "1",
        ],
    );
    assert!(
        matches!(out.status.code(), Some(0 | 27)),
        "{:?} {}",
        out.status,
        stderr(&out)
    );
    let out = run("culex_sub", &["-p", &port, "-t", "ret/#", "-v", "-W", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ret/2 two\n");
    assert_eq!(out.status.code(), Some(27));
    assert_eq!(stderr(&out), "Timed out\n");
}

/// A subscriber killed without DISCONNECT has its will published.
#[test]
fn will_is_published_when_the_tool_is_killed() {
    let broker = Broker::start("");
    let watcher = Sub::start(
        broker.port,
        &["-t", "will/t", "-q", "1", "-C", "1", "-F", "%q %r %p"],
    );
    let mut doomed = Sub::start(
        broker.port,
        &[
            "-t",
            "will/other",
            "--will-topic",
            "will/t",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    );
    doomed.child.kill().unwrap();
    let _ = doomed.child.wait();
    assert_eq!(watcher.finish().1, "1 0 gone\n");
}

#[test]
fn filter_out_hides_matching_topics() {
    let broker = Broker::start("");
    let sub = Sub::start(
        broker.port,
        &["-t", "f/#", "-T", "f/skip/#", "-C", "1", "-v"],
    );
    publish(broker.port, &["-t", "f/skip/x", "-m", "no"]);
    publish(broker.port, &["-t", "f/keep", "-m", "yes"]);
    assert_eq!(sub.finish().1, "f/keep yes\n");
}

/// -L gives host, port and topic; -E exits once subscribed.
#[test]
fn url_and_exit_after_subscribe() {
    let broker = Broker::start("");
    let url = format!("mqtt://127.0.0.1:{}/url/topic", broker.port);
    let out = run("culex_sub", &["-L", &url, "-E"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sub = Sub::start(broker.port, &["-t", "url/topic", "-C", "1", "-F", "%t %p"]);
    let out = run("culex_pub", &["-L", &url, "-m", "via url"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sub.finish().1, "url/topic via url\n");
}

/// Options in $XDG_CONFIG_HOME/culex_pub apply; the command line wins over them.
#[test]
fn defaults_file_is_read() {
    let broker = Broker::start("");
    let dir = std::env::temp_dir().join(format!("culex-tools-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("culex_pub"),
        format!("# defaults\n-p {}\n-t conf/topic\n-q 1\n", broker.port),
    )
    .unwrap();
    let sub = Sub::start(broker.port, &["-t", "conf/#", "-C", "1", "-F", "%q %t %p"]);
    let out = command("culex_pub", &["-m", "from defaults", "-q", "0"])
        .env("XDG_CONFIG_HOME", &dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sub.finish().1, "0 conf/topic from defaults\n");
    let _ = std::fs::remove_dir_all(dir);
}

/// Bad arguments: Mosquitto's message, the usage hint, exit 1.
#[test]
fn bad_arguments_print_usage_and_exit_1() {
    let out = run("culex_pub", &["-t", "a", "-m", "x", "-q", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: Invalid QoS given: 3\n\nUse 'culex_pub --help' to see usage.\n"
    );
    let out = run("culex_sub", &["-t", "a", "--bogus"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: Unknown option '--bogus'.\n\nUse 'culex_sub --help' to see usage.\n"
    );
    let out = run("culex_pub", &["-t", "a"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: Both topic and message must be supplied.\n"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: culex_pub"));
    let out = run("culex_sub", &["--help"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: culex_sub"));
}

/// Nothing listening: "Error: Connection refused", exit 1, as mosquitto_pub/sub.
#[test]
fn connection_refused_is_reported() {
    // A port freed here can be taken by a broker another test starts at the same time:
    // a run against a port that turns out to be listening says nothing and is retried.
    let free_port = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    for name in ["culex_pub", "culex_sub"] {
        let mut tries = 0;
        let out = loop {
            let port = free_port();
            let last = match name {
                "culex_pub" => ["-m", "x"],
                _ => ["-W", "2"],
            };
            let mut args = vec!["-h", "127.0.0.1", "-p", &port, "-t", "a"];
            args.extend(last);
            let out = run(name, &args);
            let taken = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
            tries += 1;
            if !taken || tries == 5 {
                break out;
            }
        };
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(stderr(&out), "Error: Connection refused\n", "{name}");
    }
}

/// A broker that goes away mid-stream is reported; the subscriber does not hang.
#[test]
fn broker_going_away_ends_the_subscriber_with_an_error() {
    let broker = Broker::start("");
    let sub = Sub::start(broker.port, &["-t", "gone/#", "-v"]);
    drop(broker);
    let (out, _) = sub.finish();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: The connection was lost.\n");
}

/// -W: "Timed out" and Mosquitto's exit code 27 when nothing arrives.
#[test]
fn timeout_exits_27() {
    let broker = Broker::start("");
    let port = broker.port.to_string();
    let started = Instant::now();
    let out = run("culex_sub", &["-p", &port, "-t", "quiet", "-W", "1"]);
    assert_eq!(out.status.code(), Some(27));
    assert_eq!(stderr(&out), "Timed out\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// culex_rr in MQTT 3.1.1 (no Response Topic property): subscribe to -e, publish the
/// request, print the first response, exit 0. The MQTT 5 form is in the interop script.
#[test]
fn request_response_in_v311() {
    let broker = Broker::start("");
    let port = broker.port.to_string();
    let responder = Sub::start(broker.port, &["-t", "rr/req", "-C", "1", "-F", "%p"]);
    let mut rr = command(
        "culex_rr",
        &[
            "-p", &port, "-V", "311", "-t", "rr/req", "-e", "rr/resp", "-m", "ping", "-W", "8",
            "-v",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (_, request) = responder.finish();
    assert_eq!(request, "ping\n");
    // The request was published after rr's SUBACK, so its subscription exists.
    publish(broker.port, &["-t", "rr/resp", "-m", "pong"]);
    rr.stdin.take();
    let out = wait_output(rr);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rr/resp pong\n");
}

/// A server that accepts TCP and never answers CONNECT: -W still ends the wait.
#[test]
fn timeout_covers_a_server_that_never_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accepted = thread::spawn(move || listener.accept().map(|(s, _)| s));
    let out = run("culex_sub", &["-p", &port, "-t", "a", "-W", "1"]);
    assert_eq!(out.status.code(), Some(27));
    assert_eq!(stderr(&out), "Timed out\n");
    drop(accepted.join());
}
