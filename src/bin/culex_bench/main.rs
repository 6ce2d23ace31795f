//! `culex_bench`: a load generator for MQTT 3.1.1 brokers, in the spirit of
//! redis-benchmark. Every message carries its publisher's id and sequence number, so lost
//! and duplicated messages are counted and a fast but wrong broker cannot look good.
//! See docs/PERFORMANCE.md for the scenarios' definitions and how the numbers are read.

mod blocking;
mod engine;
mod hist;
mod payload;
mod scenario;
mod ws;

use getopts::Options;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use culex::protocol::QoS;
use scenario::{Report, Settings};

pub const SCENARIOS: [&str; 6] = [
    "fan-through",
    "fan-out",
    "fan-in",
    "latency",
    "connections",
    "retained",
];

fn usage(opts: &Options) -> String {
    opts.usage(&format!(
        "culex_bench version {}\n\n\
         Load generator for MQTT 3.1.1 brokers: measures throughput, latency, connection\n\
         rate and retained delivery, and counts lost and duplicated messages.\n\n\
         Usage: culex_bench [options] [SCENARIO...]\n\n\
         Scenarios (default: all, in this order):\n  \
         fan-through  P publishers -> S subscribers, each message to exactly one subscriber\n  \
         fan-out      1 publisher -> N subscribers of one topic (deliveries counted)\n  \
         fan-in       N publishers -> 1 subscriber of a '+' wildcard filter\n  \
         latency      1 -> 1 at a fixed rate; percentiles of delivery time minus the time\n               each message was due in the schedule (a publisher held back counts\n               its wait: no coordinated omission)\n  \
         connections  N idle clients with one subscription each; connect rate\n  \
         retained     store M retained messages; time a new '#' subscriber to get them all\n\n\
         Every run is bounded by time (-d) and count (-n); a broker that makes no progress\n\
         for -t seconds ends the run with an error. Exit status: 0 ok, 1 usage,\n\
         2 a run failed (stuck broker, QoS 1/2 or retained loss, any duplicate).\n\n\
         How loss is counted: every payload carries its publisher's id and sequence\n\
         number. A run expects each message sent to reach each of its subscribers once;\n\
         'lost' is expected minus delivered (distinct sequence numbers per publisher and\n\
         subscriber), counted when publishing has ended and either every message was\n\
         acknowledged and delivered, or nothing arrived for 3 s. QoS 0 loss is reported;\n\
         QoS 1/2 loss (acknowledged to its publisher, never delivered) fails the run.\n\
         With the default backlog (-b) publishers wait for their subscribers, so loss\n\
         means the broker dropped messages it had room to keep; with -b 0 (open loop)\n\
         they write as fast as their sockets take, and loss is what the broker drops\n\
         rather than slow them down. --stalled subscribers are not counted.",
        env!("CARGO_PKG_VERSION")
    ))
}

fn main() -> ExitCode {
    env_logger::Builder::new()
        .parse_env("RUST_LOG")
        .format_timestamp(None)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = options();
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", usage(&opts));
            return ExitCode::from(1);
        }
    };
    if m.opt_present("help") {
        println!("{}", usage(&opts));
        return ExitCode::SUCCESS;
    }
    let settings = match settings(&m) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    let scenarios: Vec<String> = if m.free.is_empty() {
        SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        m.free.clone()
    };
    for s in &scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            eprintln!(
                "Error: unknown scenario '{s}' (one of: {}).",
                SCENARIOS.join(", ")
            );
            return ExitCode::from(1);
        }
    }
    let json = m.opt_present("json");
    if m.opt_present("ws") {
        ws::enable();
    }
    if !json {
        println!("{}", Report::table_header());
    }
    let mut failed = false;
    for s in &scenarios {
        let report = scenario::run(s, &settings);
        if json {
            println!("{}", report.json());
        } else {
            println!("{}", report.table_row());
        }
        if let Some(why) = report.error() {
            eprintln!("culex_bench: {s}: {why}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// The command line's options: a table, one entry per flag.
fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt("h", "host", "broker host (default 127.0.0.1)", "HOST");
    opts.optopt("p", "port", "broker port (default 1883)", "PORT");
    opts.optopt(
        "q",
        "qos",
        "QoS of publishes and subscriptions: 0, 1 or 2",
        "QOS",
    );
    opts.optopt(
        "w",
        "window",
        "QoS 1/2 messages in flight per publisher (default 64)",
        "N",
    );
    opts.optopt(
        "s",
        "size",
        "payload bytes, at least 20 (default 64)",
        "BYTES",
    );
    opts.optopt(
        "d",
        "duration",
        "seconds of publishing per run (default 10)",
        "SECS",
    );
    opts.optopt(
        "n",
        "count",
        "messages per run at most, over all publishers (default 10000000)",
        "N",
    );
    opts.optopt(
        "t",
        "timeout",
        "seconds without progress before a run fails (default 10)",
        "SECS",
    );
    opts.optopt(
        "",
        "publishers",
        "publishers (fan-through 4, fan-in 20)",
        "N",
    );
    opts.optopt(
        "",
        "subscribers",
        "subscribers (fan-through 4, fan-out 100)",
        "N",
    );
    opts.optopt(
        "r",
        "rate",
        "latency: messages per second (default 5000)",
        "N",
    );
    opts.optopt(
        "c",
        "clients",
        "connections: idle clients (default 10000)",
        "N",
    );
    opts.optopt(
        "",
        "retained",
        "retained: messages stored (default 100000)",
        "N",
    );
    opts.optopt(
        "",
        "hold",
        "connections/retained: seconds to hold the clients or messages before cleaning up, \
         after printing 'culex_bench: holding' to stderr (default 0)",
        "SECS",
    );
    opts.optopt(
        "b",
        "backlog",
        "messages a publisher may be ahead of its slowest subscriber; 0 for an open-loop \
         flood (default 8192 per subscriber, shared by the publishers feeding it)",
        "N",
    );
    opts.optopt(
        "",
        "stalled",
        "fan-through/fan-in: N more subscribers of every topic that never read after \
         their SUBACK (default 0); the figures are those of the others",
        "N",
    );
    opts.optopt(
        "",
        "prefix",
        "topic prefix (default culex-bench/<pid>)",
        "TOPIC",
    );
    opts.optflag(
        "",
        "json",
        "print one JSON object per run instead of a table",
    );
    opts.optflag(
        "",
        "ws",
        "connect over WebSockets (-p must be a 'protocol websockets' listener)",
    );
    opts.optflag("", "help", "print this help");
    opts
}

fn settings(m: &getopts::Matches) -> Result<Settings, String> {
    fn num<T: std::str::FromStr>(m: &getopts::Matches, name: &str) -> Result<Option<T>, String> {
        match m.opt_str(name) {
            None => Ok(None),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map(Some)
                .map_err(|_| format!("invalid value '{v}' for --{name}.")),
        }
    }
    let host = m.opt_str("h").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = num(m, "port")?.unwrap_or(1883);
    let addr: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' has no address."))?;
    let qos = match num::<u8>(m, "qos")?.unwrap_or(0) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        q => return Err(format!("QoS must be 0, 1 or 2, not {q}.")),
    };
    let payload: usize = num(m, "size")?.unwrap_or(64);
    if payload < payload::MIN_PAYLOAD {
        return Err(format!(
            "the payload must be at least {} bytes (publisher id, sequence number, time).",
            payload::MIN_PAYLOAD
        ));
    }
    let window: usize = num(m, "window")?.unwrap_or(64);
    if !(1..=65_535).contains(&window) {
        return Err("the window must be between 1 and 65535.".into());
    }
    let secs = |name: &str, default: f64| -> Result<Duration, String> {
        let v: f64 = num(m, name)?.unwrap_or(default);
        Duration::try_from_secs_f64(v).map_err(|_| format!("invalid duration for --{name}."))
    };
    Ok(Settings {
        addr,
        qos,
        window,
        payload,
        duration: secs("duration", 10.0)?,
        count: num(m, "count")?.unwrap_or(10_000_000),
        timeout: secs("timeout", 10.0)?,
        publishers: num(m, "publishers")?,
        subscribers: num(m, "subscribers")?,
        rate: num(m, "rate")?.unwrap_or(5000),
        clients: num(m, "clients")?.unwrap_or(10_000),
        retained: num(m, "retained")?.unwrap_or(100_000),
        hold: secs("hold", 0.0)?,
        backlog: num(m, "backlog")?,
        stalled: num(m, "stalled")?.unwrap_or(0),
        prefix: m
            .opt_str("prefix")
            .unwrap_or_else(|| format!("culex-bench/{}", std::process::id())),
    })
}
