//! The scenarios and their report: what each one sets up, what it counts, and how a run
//! is judged (a failure, a QoS 1/2 loss or any duplicate makes the tool exit 2).

use crate::blocking::Client;
use crate::engine::{self, External, Plan, PubPlan, SubPlan};
use crate::payload::{self, SeqSet};
use culex::protocol::{
    encode_publish, Ack, Disconnect, Packet, PacketId, ProtocolVersion, QoS, Subscribe,
    SubscriptionOptions,
};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const V311: ProtocolVersion = ProtocolVersion::V311;
/// Bytes of PUBLISH packets buffered before one write, where a blocking client publishes.
const FILL: usize = 64 * 1024;
/// Default end-to-end backlog per subscriber, in messages, shared by the publishers that
/// feed it: about 700 KB of 64-byte messages, under culex's 1 MiB QoS 0 outbox limit.
const BACKLOG_PER_SUBSCRIBER: u64 = 8192;
/// Clients of the connections scenario that connect before their CONNACKs are read.
const CONNECT_BATCH: usize = 250;

pub struct Settings {
    pub addr: SocketAddr,
    pub qos: QoS,
    pub window: usize,
    pub payload: usize,
    pub duration: Duration,
    pub count: u64,
    pub timeout: Duration,
    pub publishers: Option<usize>,
    pub subscribers: Option<usize>,
    pub rate: u64,
    pub clients: usize,
    pub retained: u64,
    pub hold: Duration,
    pub backlog: Option<u64>,
    /// Subscribers to every topic of fan-through/fan-in that never read.
    pub stalled: usize,
    pub prefix: String,
}

#[derive(Default)]
pub struct Report {
    scenario: String,
    qos: u8,
    publishers: usize,
    subscribers: usize,
    payload: usize,
    sent: u64,
    expected: u64,
    msgs: u64,
    seconds: f64,
    lost: u64,
    dup: u64,
    /// Loss counts as a failure (QoS 1/2, retained); QoS 0 loss is only reported.
    loss_is_error: bool,
    /// Nanoseconds: p50, p90, p99, p99.9, max.
    latency: Option<[u64; 5]>,
    /// Scenario-specific figures, printed as they are.
    extra: Vec<(&'static str, f64)>,
    failure: Option<String>,
}

impl Report {
    fn new(scenario: &str, s: &Settings) -> Report {
        Report {
            scenario: scenario.into(),
            qos: s.qos as u8,
            payload: s.payload,
            loss_is_error: s.qos != QoS::AtMostOnce,
            ..Report::default()
        }
    }

    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.msgs as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn error(&self) -> Option<String> {
        if let Some(f) = &self.failure {
            return Some(f.clone());
        }
        if self.loss_is_error && self.lost > 0 {
            return Some(format!(
                "{} of {} messages lost at QoS {}",
                self.lost, self.expected, self.qos
            ));
        }
        if self.dup > 0 {
            // No client reconnects and no subscriptions overlap, so no duplicate is allowed.
            return Some(format!("{} duplicate deliveries", self.dup));
        }
        None
    }

    pub fn table_header() -> String {
        format!(
            "{:<12} {:>3} {:>9} {:>11} {:>7} {:>11} {:>9} {:>5} {:>8} {:>8} {:>8} {:>8}  notes",
            "scenario",
            "qos",
            "pub->sub",
            "msgs",
            "seconds",
            "msg/s",
            "lost",
            "dup",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "max us"
        )
    }

    pub fn table_row(&self) -> String {
        let us = |i: usize| {
            self.latency
                .map(|l| format!("{:.0}", l[i] as f64 / 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let mut notes = String::new();
        for (k, v) in &self.extra {
            let _ = write!(notes, "{k}={v:.3} ");
        }
        if let Some(e) = self.error() {
            let _ = write!(notes, "ERROR: {e}");
        }
        format!(
            "{:<12} {:>3} {:>9} {:>11} {:>7.2} {:>11.0} {:>9} {:>5} {:>8} {:>8} {:>8} {:>8}  {}",
            self.scenario,
            self.qos,
            format!("{}->{}", self.publishers, self.subscribers),
            self.msgs,
            self.seconds,
            self.rate(),
            self.lost,
            self.dup,
            us(0),
            us(2),
            us(3),
            us(4),
            notes.trim_end()
        )
    }

    pub fn json(&self) -> String {
        let mut o = String::from("{");
        let _ = write!(
            o,
            "\"scenario\":{},\"qos\":{},\"publishers\":{},\"subscribers\":{},\"payload\":{},\
             \"sent\":{},\"expected\":{},\"msgs\":{},\"seconds\":{:.6},\"rate\":{:.1},\
             \"lost\":{},\"dup\":{}",
            json_string(&self.scenario),
            self.qos,
            self.publishers,
            self.subscribers,
            self.payload,
            self.sent,
            self.expected,
            self.msgs,
            self.seconds,
            self.rate(),
            self.lost,
            self.dup
        );
        if let Some(l) = self.latency {
            let _ = write!(
                o,
                ",\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}",
                l[0] as f64 / 1000.0,
                l[1] as f64 / 1000.0,
                l[2] as f64 / 1000.0,
                l[3] as f64 / 1000.0,
                l[4] as f64 / 1000.0
            );
        }
        for (k, v) in &self.extra {
            let _ = write!(o, ",\"{k}\":{v:.6}");
        }
        let _ = write!(o, ",\"ok\":{}", self.error().is_none());
        if let Some(e) = self.error() {
            let _ = write!(o, ",\"error\":{}", json_string(&e));
        }
        o.push('}');
        o
    }
}

fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub fn run(scenario: &str, s: &Settings) -> Report {
    match scenario {
        "fan-through" => fan_through(s),
        "fan-out" => fan(s, "fan-out", "fo", 1, 100),
        "fan-in" => fan(s, "fan-in", "fi", 20, 1),
        "latency" => latency(s),
        "connections" => connections(s),
        "retained" => retained(s),
        _ => unreachable!("scenario names are checked in main"),
    }
}

fn plan(s: &Settings, name: &str, publishers_per_subscriber: usize) -> Plan {
    let backlog = s
        .backlog
        .unwrap_or((BACKLOG_PER_SUBSCRIBER / publishers_per_subscriber.max(1) as u64).max(64));
    Plan {
        addr: s.addr,
        client_prefix: format!("culex-bench-{}-{name}", std::process::id()),
        qos: s.qos,
        window: s.window,
        payload: s.payload,
        publishers: Vec::new(),
        subscribers: Vec::new(),
        external: None,
        duration: s.duration,
        timeout: s.timeout,
        latency: false,
        backlog,
        clock: Instant::now(),
    }
}

fn from_outcome(r: &mut Report, o: engine::Outcome) {
    r.sent = o.sent;
    r.expected = o.expected;
    r.msgs = o.delivered;
    r.seconds = o.seconds;
    r.lost = o.lost();
    r.dup = o.dup;
    if let Some(h) = &o.latency {
        r.extra.push(("samples", h.count() as f64));
    }
    r.latency = o.latency.map(|h| {
        [
            h.quantile(0.50),
            h.quantile(0.90),
            h.quantile(0.99),
            h.quantile(0.999),
            h.max(),
        ]
    });
    if o.foreign > 0 {
        r.extra.push(("foreign", o.foreign as f64));
    }
    r.failure = o.failure;
}

/// P publishers -> S subscribers (S <= P), each message delivered to exactly one
/// subscriber: publisher p publishes to `<prefix>/ft/<p>`, and subscriber p % S subscribes
/// to that exact topic. With the default 4 -> 4 each subscriber has one publisher.
fn fan_through(s: &Settings) -> Report {
    let p = s.publishers.unwrap_or(4).max(1);
    let n = s.subscribers.unwrap_or(4).max(1);
    let mut r = Report::new("fan-through", s);
    (r.publishers, r.subscribers) = (p, n);
    if n > p {
        r.failure = Some("fan-through needs at least as many publishers as subscribers".into());
        return r;
    }
    let mut plan = plan(s, "ft", p.div_ceil(n));
    let topic = |i: usize| format!("{}/ft/{i}", s.prefix);
    plan.publishers = (0..p)
        .map(|i| PubPlan {
            topic: topic(i),
            count: s.count / p as u64,
            receivers: vec![i % n],
        })
        .collect();
    plan.subscribers = (0..n)
        .map(|j| SubPlan {
            filters: (0..p).filter(|i| i % n == j).map(topic).collect(),
            stalled: false,
        })
        .collect();
    add_stalled(&mut r, &mut plan, s, &format!("{}/ft/+", s.prefix));
    from_outcome(&mut r, engine::run(&plan));
    r
}

/// P publishers -> S subscribers of the wildcard filter `<prefix>/<tag>/+`: every message
/// goes to every subscriber. fan-out is 1 -> 100 by default, fan-in 20 -> 1.
fn fan(s: &Settings, name: &str, tag: &str, p: usize, n: usize) -> Report {
    let p = s.publishers.unwrap_or(p).max(1);
    let n = s.subscribers.unwrap_or(n).max(1);
    let mut r = Report::new(name, s);
    (r.publishers, r.subscribers) = (p, n);
    let mut plan = plan(s, tag, p);
    plan.publishers = (0..p)
        .map(|i| PubPlan {
            topic: format!("{}/{tag}/{i}", s.prefix),
            count: s.count / p as u64,
            receivers: (0..n).collect(),
        })
        .collect();
    plan.subscribers = (0..n)
        .map(|_| SubPlan {
            filters: vec![format!("{}/{tag}/+", s.prefix)],
            stalled: false,
        })
        .collect();
    add_stalled(&mut r, &mut plan, s, &format!("{}/{tag}/+", s.prefix));
    from_outcome(&mut r, engine::run(&plan));
    r
}

/// `--stalled N`: N more subscribers of every topic of the run that read nothing after
/// their SUBACK. They are nobody's receivers: the figures are the healthy clients'.
fn add_stalled(r: &mut Report, plan: &mut Plan, s: &Settings, filter: &str) {
    if s.stalled == 0 {
        return;
    }
    for _ in 0..s.stalled {
        plan.subscribers.push(SubPlan {
            filters: vec![filter.to_string()],
            stalled: true,
        });
    }
    r.extra.push(("stalled", s.stalled as f64));
}

/// 1 -> 1 at a fixed rate. The publisher is a thread of its own that sleeps until each
/// message is due and stamps it with the time it was due (its slot in the schedule, not
/// the time it was written); the subscriber runs on the engine and records delivery time
/// minus that stamp in the histogram. So a publisher held back (a full QoS 1/2 window,
/// a socket the broker does not read) counts its wait in every message behind it, as
/// the clients of a real fixed-rate source would see it: no coordinated omission.
fn latency(s: &Settings) -> Report {
    let mut r = Report::new("latency", s);
    (r.publishers, r.subscribers) = (1, 1);
    let mut plan = plan(s, "lat", 1);
    let topic = format!("{}/lat/0", s.prefix);
    plan.subscribers = vec![SubPlan {
        filters: vec![topic.clone()],
        stalled: false,
    }];
    plan.latency = true;
    let ext = Arc::new(External {
        receivers: 1,
        ..External::default()
    });
    plan.external = Some(ext.clone());
    let rate = s.rate.max(1);
    let count = s
        .count
        .min((s.duration.as_secs_f64() * rate as f64).ceil() as u64);
    let paced = Paced {
        addr: s.addr,
        client_id: format!("{}-p0", plan.client_prefix),
        topic,
        qos: s.qos,
        window: s.window,
        payload: s.payload,
        interval: Duration::from_secs_f64(1.0 / rate as f64),
        count,
        timeout: s.timeout,
        clock: plan.clock,
    };
    let thread = std::thread::spawn({
        let ext = ext.clone();
        move || {
            if let Err(e) = paced.run(&ext) {
                if let Ok(mut slot) = ext.error.lock() {
                    *slot = Some(e);
                }
            }
            ext.done.store(true, Ordering::Release);
        }
    });
    let outcome = engine::run(&plan);
    // On a failed setup the publisher never gets `go`; it gives up after its timeout.
    ext.go.store(true, Ordering::Release);
    let _ = thread.join();
    from_outcome(&mut r, outcome);
    r.extra.push(("rate_target", rate as f64));
    if r.failure.is_none() {
        r.failure = ext.error.lock().ok().and_then(|e| e.clone());
    }
    r
}

struct Paced {
    addr: SocketAddr,
    client_id: String,
    topic: String,
    qos: QoS,
    window: usize,
    payload: usize,
    interval: Duration,
    count: u64,
    timeout: Duration,
    clock: Instant,
}

impl Paced {
    fn run(&self, ext: &External) -> Result<(), String> {
        let mut c = Client::connect(self.addr, &self.client_id, self.timeout)?;
        c.flush()?;
        c.expect_connack()?;
        let wait_start = Instant::now();
        while !ext.go.load(Ordering::Acquire) {
            if wait_start.elapsed() > self.timeout * 2 {
                return Err("the subscriber never became ready".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        c.stream
            .get_ref()
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
        let mut body = vec![0u8; self.payload];
        let mut inflight = 0usize;
        let mut next_pid: u16 = 1;
        let last_ack = std::cell::Cell::new(Instant::now());
        let on_ack = |p: Packet, w: &mut Vec<u8>, inflight: &mut usize| -> Result<(), String> {
            match p {
                Packet::Puback(_) | Packet::Pubcomp(_) => {
                    *inflight = inflight.saturating_sub(1);
                    ext.acked.fetch_add(1, Ordering::AcqRel);
                    last_ack.set(Instant::now());
                }
                Packet::Pubrec(a) => Packet::Pubrel(Ack::new(a.packet_id)).encode(V311, w),
                other => return Err(format!("unexpected {} from the broker", other.name())),
            }
            Ok(())
        };
        let start = Instant::now();
        for seq in 0..self.count {
            let due = start + self.interval.mul_f64(seq as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            c.poll_packets(&mut |p, w| on_ack(p, w, &mut inflight))?;
            let blocked = Instant::now();
            while self.qos != QoS::AtMostOnce && inflight >= self.window {
                if blocked.elapsed() > self.timeout {
                    return Err("window full and no acknowledgement: broker stuck?".into());
                }
                std::thread::sleep(Duration::from_micros(50));
                c.poll_packets(&mut |p, w| on_ack(p, w, &mut inflight))?;
            }
            let packet_id = if self.qos == QoS::AtMostOnce {
                None
            } else {
                inflight += 1;
                let id = PacketId::new(next_pid);
                next_pid = next_pid.checked_add(1).unwrap_or(1);
                id
            };
            let due_ns = due.saturating_duration_since(self.clock).as_nanos() as u64;
            payload::write(&mut body, 0, seq, due_ns);
            encode_publish(
                &mut c.wbuf,
                &self.topic,
                &body,
                self.qos,
                false,
                false,
                packet_id,
            );
            c.flush()?;
            ext.sent.fetch_add(1, Ordering::AcqRel);
        }
        while self.qos != QoS::AtMostOnce && inflight > 0 {
            if last_ack.get().elapsed() > self.timeout {
                return Err(format!(
                    "{inflight} messages never acknowledged: broker stuck?"
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
            c.poll_packets(&mut |p, w| on_ack(p, w, &mut inflight))?;
            c.flush()?;
        }
        Ok(())
    }
}

/// N clients connect (in pipelined batches), each subscribes to its own topic, and they
/// stay connected and idle for --hold seconds, so the broker's memory can be read.
fn connections(s: &Settings) -> Report {
    let mut r = Report::new("connections", s);
    r.subscribers = s.clients;
    r.loss_is_error = false;
    let start = Instant::now();
    let mut clients = Vec::with_capacity(s.clients);
    let pid = std::process::id();
    let id = PacketId::new(1).expect("1 is not 0");
    let result = (|| -> Result<(), String> {
        let mut i = 0;
        while i < s.clients {
            let batch = CONNECT_BATCH.min(s.clients - i);
            for j in i..i + batch {
                let mut c = Client::connect(s.addr, &format!("culex-bench-{pid}-c{j}"), s.timeout)
                    .map_err(|e| format!("client {j}: {e} (raise 'ulimit -n'?)"))?;
                let filter = format!("{}/c/{j}", s.prefix);
                Packet::Subscribe(Subscribe {
                    packet_id: id,
                    filters: vec![(filter.as_str(), SubscriptionOptions::new(s.qos))],
                    properties: Default::default(),
                })
                .encode(V311, &mut c.wbuf);
                c.flush()?;
                clients.push(c);
            }
            for c in &mut clients[i..i + batch] {
                c.expect_connack()?;
                c.read_until("SUBACK", &mut |p, _| match p {
                    Packet::Suback(a) if a.codes.iter().all(|c| !c.is_error()) => Ok(true),
                    other => Err(format!("expected a granted SUBACK, got {other:?}")),
                })?;
            }
            i += batch;
        }
        Ok(())
    })();
    r.seconds = start.elapsed().as_secs_f64();
    r.msgs = clients.len() as u64;
    r.extra.push(("connected", clients.len() as f64));
    if let Err(e) = result {
        r.failure = Some(format!("after {} clients: {e}", clients.len()));
    }
    hold(s, &format!("{} connections", clients.len()));
    for c in &mut clients {
        Packet::Disconnect(Disconnect::default()).encode(V311, &mut c.wbuf);
        let _ = c.flush();
    }
    drop(clients);
    r
}

/// A client stores M retained messages on distinct topics `<prefix>/r/<i>` (QoS 0, one
/// buffered write per 64 KiB, a PINGREQ round trip as the barrier); then a new client
/// subscribes to `<prefix>/r/#` and the time until it has all M is measured. Afterwards
/// the messages are cleared again (empty retained payloads).
fn retained(s: &Settings) -> Report {
    let mut r = Report::new("retained", s);
    r.qos = 0;
    (r.publishers, r.subscribers) = (1, 1);
    r.loss_is_error = true;
    let m = s.retained;
    r.expected = m;
    let pid = std::process::id();
    let topic = |i: u64| format!("{}/r/{i}", s.prefix);
    let result = (|| -> Result<(), String> {
        let mut p = Client::connect(s.addr, &format!("culex-bench-{pid}-rp"), s.timeout)?;
        p.flush()?;
        p.expect_connack()?;
        let store = Instant::now();
        let mut body = vec![0u8; s.payload];
        for i in 0..m {
            payload::write(&mut body, 0, i, 0);
            encode_publish(
                &mut p.wbuf,
                &topic(i),
                &body,
                QoS::AtMostOnce,
                true,
                false,
                None,
            );
            if p.wbuf.len() >= FILL {
                p.flush()?;
            }
        }
        r.sent = m;
        barrier(&mut p)?;
        r.extra
            .push(("store_seconds", store.elapsed().as_secs_f64()));

        let mut sub = Client::connect(s.addr, &format!("culex-bench-{pid}-rs"), s.timeout)?;
        sub.flush()?;
        sub.expect_connack()?;
        let filter = format!("{}/r/#", s.prefix);
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).expect("1 is not 0"),
            filters: vec![(filter.as_str(), SubscriptionOptions::new(QoS::AtMostOnce))],
            properties: Default::default(),
        })
        .encode(V311, &mut sub.wbuf);
        let start = Instant::now();
        sub.flush()?;
        let mut seen = SeqSet::default();
        let mut last = start;
        let got = sub.read_until("retained messages", &mut |packet, _| {
            match packet {
                Packet::Suback(_) => {}
                Packet::Publish(msg) => {
                    if let Some(stamp) = payload::read(msg.payload) {
                        seen.insert(stamp.seq);
                    }
                    last = Instant::now();
                }
                other => return Err(format!("unexpected {}", other.name())),
            }
            Ok(seen.unique >= m)
        });
        r.msgs = seen.unique;
        r.dup = seen.dup;
        r.lost = m.saturating_sub(seen.unique);
        r.seconds = last.duration_since(start).as_secs_f64();
        got?;
        hold(s, &format!("{m} retained messages"));
        Packet::Disconnect(Disconnect::default()).encode(V311, &mut sub.wbuf);
        sub.flush()?;

        for i in 0..m {
            encode_publish(
                &mut p.wbuf,
                &topic(i),
                &[],
                QoS::AtMostOnce,
                true,
                false,
                None,
            );
            if p.wbuf.len() >= FILL {
                p.flush()?;
            }
        }
        barrier(&mut p)?;
        Packet::Disconnect(Disconnect::default()).encode(V311, &mut p.wbuf);
        p.flush()
    })();
    if let Err(e) = result {
        r.failure = Some(e);
    }
    r
}

/// PINGREQ and wait for PINGRESP: a broker handles a connection's packets in order, so
/// after it everything sent before has been processed.
fn barrier(c: &mut Client) -> Result<(), String> {
    Packet::Pingreq.encode(V311, &mut c.wbuf);
    c.flush()?;
    c.read_until("PINGRESP", &mut |p, _| match p {
        Packet::Pingresp => Ok(true),
        other => Err(format!("expected PINGRESP, got {}", other.name())),
    })
}

fn hold(s: &Settings, what: &str) {
    if s.hold.is_zero() {
        return;
    }
    eprintln!(
        "culex_bench: holding {what} for {:.1} s",
        s.hold.as_secs_f64()
    );
    std::thread::sleep(s.hold);
}
