//! The load engine: every benchmark client of a run on one mio poll loop, in one thread,
//! so the tool costs little CPU and needs no locks.
//!
//! Publishers encode PUBLISH packets into a write buffer of up to `FILL` bytes and hand
//! the whole buffer to the socket in one system call; they stop only when the socket
//! pushes back (`WouldBlock`), when their QoS 1/2 window is full, or at the end of the
//! run. Subscribers read up to `READ_CHUNK` bytes per system call and decode every whole
//! frame in place with culex's own codec; their acknowledgements are batched the same way.

use crate::hist::Histogram;
use crate::payload::{self, SeqSet};
use culex::protocol::{
    encode_publish, frame, Ack, Connect, Packet, PacketId, ProtocolVersion, QoS, Subscribe,
    SubscriptionOptions,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of PUBLISH packets a publisher encodes before writing them in one system call.
const FILL: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 256 * 1024;
/// Largest packet the tool accepts from the broker.
const MAX_PACKET: usize = 16 * 1024 * 1024;
/// Fills of one publisher per loop iteration before the others (and the readers) get a turn.
const FILLS_PER_TURN: usize = 4;
/// For QoS 0, how long the tool waits for more deliveries after the last one, once
/// publishing has ended, before it counts the rest as lost. Longer than the pause a
/// broker with backpressure makes for a subscriber that stopped reading before it
/// counts it as stalled (culex's `subscriber_stall_timeout`, 2 s), so that pause is
/// not taken for the end of the run.
const QOS0_QUIET: Duration = Duration::from_secs(3);

const V311: ProtocolVersion = ProtocolVersion::V311;

pub struct PubPlan {
    pub topic: String,
    /// Messages to send at most (the count bound).
    pub count: u64,
    /// The subscribers (indices into `Plan::subscribers`) that receive its messages.
    pub receivers: Vec<usize>,
}

pub struct SubPlan {
    pub filters: Vec<String>,
    /// Subscribes, then never reads again (a client that hung): no publisher counts it as
    /// a receiver; it shows what one stalled client costs the others.
    pub stalled: bool,
}

/// A publisher running outside the loop (the latency scenario's paced one): the loop only
/// needs to know how much it sent and when it is done.
#[derive(Default)]
pub struct External {
    /// Set by the loop once every subscriber is ready: the publisher may start.
    pub go: AtomicBool,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub done: AtomicBool,
    pub receivers: u64,
    pub error: Mutex<Option<String>>,
}

pub struct Plan {
    pub addr: SocketAddr,
    pub client_prefix: String,
    pub qos: QoS,
    pub window: usize,
    pub payload: usize,
    pub publishers: Vec<PubPlan>,
    pub subscribers: Vec<SubPlan>,
    pub external: Option<Arc<External>>,
    pub duration: Duration,
    /// No progress for this long is a stuck broker.
    pub timeout: Duration,
    /// End-to-end flow control: messages a publisher may be ahead of its slowest receiver
    /// (by sequence number); 0 for none (an open-loop flood).
    pub backlog: u64,
    /// Record end-to-end latency from the payload's send time.
    pub latency: bool,
    /// The time base of payload timestamps.
    pub clock: Instant,
}

#[derive(Default)]
pub struct Outcome {
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub delivered: u64,
    pub dup: u64,
    pub foreign: u64,
    pub seconds: f64,
    pub connect_seconds: f64,
    pub latency: Option<Histogram>,
    /// Why the run could not complete (stuck broker, closed connection, protocol error).
    pub failure: Option<String>,
}

impl Outcome {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    AwaitPuback,
    AwaitPubrec,
    AwaitPubcomp,
}

struct Publisher {
    id: u32,
    topic: String,
    limit: u64,
    next_seq: u64,
    acked: u64,
    inflight: usize,
    slots: Vec<Slot>,
    next_pid: u16,
    payload: Vec<u8>,
    /// Waiting for deliveries to catch up (see `Plan::backlog`).
    waits_for_credit: bool,
    /// Sequence numbers below this are given up on (lost at QoS 0) for flow control.
    forgiven: u64,
}

struct Subscriber {
    index: usize,
    seen: Vec<SeqSet>,
    foreign: u64,
    /// See `SubPlan::stalled`.
    stalled: bool,
}

enum Role {
    Pub(Publisher),
    Sub(Subscriber),
}

struct Conn {
    stream: crate::ws::Stream<TcpStream>,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// CONNACK (publishers) or SUBACK (subscribers) received.
    ready: bool,
    role: Role,
}

struct Shared<'a> {
    plan: &'a Plan,
    delivered: u64,
    acked: u64,
    last_progress: Instant,
    last_delivery: Instant,
    hist: Option<Histogram>,
    /// `progress[p][s]`: one past the highest sequence number subscriber `s` has had from
    /// publisher `p`; `u64::MAX` where `s` does not receive `p`.
    progress: Vec<Vec<u64>>,
}

pub fn run(plan: &Plan) -> Outcome {
    let mut out = Outcome::default();
    match drive(plan, &mut out) {
        Ok(()) => {}
        Err(e) => out.failure = Some(e),
    }
    out
}

fn drive(plan: &Plan, out: &mut Outcome) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
    let mut events = Events::with_capacity(1024);
    let window = plan.window.clamp(1, usize::from(u16::MAX));
    let connect_start = Instant::now();
    let mut conns = open_clients(plan, &poll)?;
    let mut shared = Shared::new(plan);
    // Setup: wait for every CONNACK and SUBACK before the clock starts.
    let mut started = false;
    let mut start = Instant::now();
    let mut runnable: Vec<usize> = Vec::new();
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if !started {
            if conns.iter().all(|c| c.ready) {
                started = true;
                out.connect_seconds = connect_start.elapsed().as_secs_f64();
                start = Instant::now();
                shared.last_progress = start;
                shared.last_delivery = start;
                if let Some(e) = &plan.external {
                    e.go.store(true, Ordering::Release);
                }
                runnable = (0..conns.len())
                    .filter(|&i| matches!(conns[i].role, Role::Pub(_)))
                    .collect();
            } else if now.duration_since(connect_start) > plan.timeout {
                let missing = conns.iter().filter(|c| !c.ready).count();
                return Err(format!(
                    "{missing} of {} clients got no CONNACK/SUBACK within {:?}",
                    conns.len(),
                    plan.timeout
                ));
            }
        }
        if started {
            if !stopping && now.duration_since(start) >= plan.duration {
                stopping = true;
                for c in conns.iter_mut() {
                    if let Role::Pub(p) = &mut c.role {
                        p.limit = p.next_seq;
                    }
                }
            }
            let (sent, expected) = totals(plan, &conns);
            let ext_done = plan
                .external
                .as_ref()
                .is_none_or(|e| e.done.load(Ordering::Acquire));
            let producing_done = ext_done
                && conns.iter().all(|c| match &c.role {
                    Role::Pub(p) => p.next_seq >= p.limit,
                    Role::Sub(_) => true,
                });
            if ext_done && plan.external.is_some() {
                stopping = true;
            }
            if producing_done {
                stopping = true;
                let ext_acked = plan
                    .external
                    .as_ref()
                    .map_or(0, |e| e.acked.load(Ordering::Acquire));
                let acked_all = plan.qos == QoS::AtMostOnce || shared.acked + ext_acked >= sent;
                let all_in = shared.delivered >= expected;
                // Acknowledged but never delivered (QoS 1/2) is as lost as QoS 0 is.
                let quiet = (plan.qos == QoS::AtMostOnce || acked_all)
                    && now.duration_since(shared.last_progress) >= QOS0_QUIET;
                if (acked_all && all_in) || quiet {
                    break;
                }
            }
            if now.duration_since(shared.last_progress) >= plan.timeout {
                finish(out, &mut shared, &conns, start);
                return Err(format!(
                    "no progress for {:?}: broker stuck? (sent {sent}, acked {}, delivered {} of {expected})",
                    plan.timeout, shared.acked, shared.delivered
                ));
            }
            if stopping && now.duration_since(start) >= plan.duration + plan.timeout {
                finish(out, &mut shared, &conns, start);
                return Err(format!(
                    "run did not finish within duration + timeout (sent {sent}, acked {}, delivered {} of {expected})",
                    shared.acked, shared.delivered
                ));
            }
        }

        let timeout = if !runnable.is_empty() {
            Duration::ZERO
        } else {
            Duration::from_millis(10)
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        let delivered_before = shared.delivered;
        for event in events.iter() {
            let i = event.token().0;
            let c = &mut conns[i];
            let is_stalled = c.ready && matches!(&c.role, Role::Sub(s) if s.stalled);
            if is_stalled {
                continue;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                let was_full = matches!(&c.role, Role::Pub(p) if p.inflight >= window);
                read_conn(c, &mut shared).map_err(|e| format!("client {i}: {e}"))?;
                let has_room = matches!(&c.role, Role::Pub(p) if p.inflight < window);
                if was_full && has_room && started {
                    runnable.push(i);
                }
            }
            if (event.is_writable() || c.wpos < c.wbuf.len())
                && flush(c).map_err(|e| format!("client {i}: {e}"))?
                && started
                && matches!(c.role, Role::Pub(_))
            {
                runnable.push(i);
            }
        }
        if started {
            let moved = shared.delivered != delivered_before;
            runnable = pump_publishers(&mut conns, &shared, runnable, moved, window)?;
        }
    }
    finish(out, &mut shared, &conns, start);
    Ok(())
}

/// Every client of the plan, connected and registered: subscribers first (each with its
/// SUBSCRIBE queued), then publishers; tokens are their indexes.
fn open_clients(plan: &Plan, poll: &Poll) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::new();
    for (i, s) in plan.subscribers.iter().enumerate() {
        let mut c = open(plan, &format!("{}-s{i}", plan.client_prefix))?;
        let filters = s
            .filters
            .iter()
            .map(|f| (f.as_str(), SubscriptionOptions::new(plan.qos)))
            .collect();
        let pid = PacketId::new(1).expect("1 is not 0");
        Packet::Subscribe(Subscribe {
            packet_id: pid,
            filters,
            properties: Default::default(),
        })
        .encode(V311, &mut c.wbuf);
        c.role = Role::Sub(Subscriber {
            index: i,
            seen: (0..plan.publishers.len().max(1))
                .map(|_| SeqSet::default())
                .collect(),
            foreign: 0,
            stalled: s.stalled,
        });
        conns.push(c);
    }
    for (i, p) in plan.publishers.iter().enumerate() {
        let mut c = open(plan, &format!("{}-p{i}", plan.client_prefix))?;
        let mut body = vec![0u8; plan.payload];
        payload::write(&mut body, i as u32, 0, 0);
        c.role = Role::Pub(Publisher {
            id: i as u32,
            topic: p.topic.clone(),
            limit: p.count,
            next_seq: 0,
            acked: 0,
            inflight: 0,
            slots: if plan.qos == QoS::AtMostOnce {
                Vec::new()
            } else {
                vec![Slot::Free; 65_536]
            },
            next_pid: 1,
            payload: body,
            waits_for_credit: false,
            forgiven: 0,
        });
        conns.push(c);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut c.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("cannot register a socket: {e}"))?;
    }
    Ok(conns)
}

impl<'a> Shared<'a> {
    fn new(plan: &'a Plan) -> Shared<'a> {
        Shared {
            plan,
            delivered: 0,
            acked: 0,
            last_progress: Instant::now(),
            last_delivery: Instant::now(),
            hist: plan.latency.then(Histogram::new),
            progress: plan
                .publishers
                .iter()
                .map(|p| {
                    let mut v = vec![u64::MAX; plan.subscribers.len()];
                    for &s in &p.receivers {
                        v[s] = 0;
                    }
                    v
                })
                .collect(),
        }
    }
}

/// One turn of publishing: publishers waiting for credit are runnable again once
/// deliveries `moved` (or nothing moved for a quiet second), then each runnable publisher
/// publishes what its window allows. Returns the publishers that could do more.
fn pump_publishers(
    conns: &mut [Conn],
    shared: &Shared<'_>,
    mut runnable: Vec<usize>,
    moved: bool,
    window: usize,
) -> Result<Vec<usize>, String> {
    let plan = shared.plan;
    let stalled = Instant::now().duration_since(shared.last_progress) >= QOS0_QUIET;
    if moved || stalled {
        for (i, c) in conns.iter_mut().enumerate() {
            if let Role::Pub(p) = &mut c.role {
                if p.waits_for_credit {
                    if stalled {
                        // What is still outstanding after a quiet second was
                        // dropped; it is counted as lost at the end (an error
                        // at QoS 1/2), and publishing goes on.
                        p.forgiven = p.next_seq;
                    }
                    runnable.push(i);
                }
            }
        }
    }
    runnable.sort_unstable();
    runnable.dedup();
    let now_ns = plan.clock.elapsed().as_nanos() as u64;
    let mut again = Vec::new();
    for &i in &runnable {
        if pump(&mut conns[i], plan, &shared.progress, window, now_ns)
            .map_err(|e| format!("publisher {i}: {e}"))?
        {
            again.push(i);
        }
    }
    Ok(again)
}

fn totals(plan: &Plan, conns: &[Conn]) -> (u64, u64) {
    let mut sent = 0;
    let mut expected = 0;
    for c in conns {
        if let Role::Pub(p) = &c.role {
            sent += p.next_seq;
            expected += p.next_seq * plan.publishers[p.id as usize].receivers.len() as u64;
        }
    }
    if let Some(e) = &plan.external {
        let s = e.sent.load(Ordering::Acquire);
        sent += s;
        expected += s * e.receivers;
    }
    (sent, expected)
}

fn finish(out: &mut Outcome, shared: &mut Shared, conns: &[Conn], start: Instant) {
    let (sent, expected) = totals(shared.plan, conns);
    out.sent = sent;
    out.expected = expected;
    out.acked = shared.acked;
    out.delivered = 0;
    out.dup = 0;
    out.foreign = 0;
    for c in conns {
        if let Role::Sub(s) = &c.role {
            out.delivered += s.seen.iter().map(|x| x.unique).sum::<u64>();
            out.dup += s.seen.iter().map(|x| x.dup).sum::<u64>();
            out.foreign += s.foreign;
        }
    }
    if let Some(e) = &shared.plan.external {
        out.acked += e.acked.load(Ordering::Acquire);
    }
    out.seconds = shared
        .last_delivery
        .saturating_duration_since(start)
        .as_secs_f64();
    out.latency = shared.hist.take();
}

fn open(plan: &Plan, client_id: &str) -> Result<Conn, String> {
    let stream = if crate::ws::is_enabled() {
        crate::ws::connect_mio(plan.addr, plan.timeout)?
    } else {
        let stream = TcpStream::connect(plan.addr)
            .map_err(|e| format!("cannot connect to {}: {e}", plan.addr))?;
        let _ = stream.set_nodelay(true);
        crate::ws::Stream::Plain(stream)
    };
    let mut wbuf = Vec::with_capacity(FILL + 1024);
    Packet::Connect(Box::new(connect_packet(client_id))).encode(V311, &mut wbuf);
    Ok(Conn {
        stream,
        rbuf: vec![0; READ_CHUNK],
        rstart: 0,
        rend: 0,
        wbuf,
        wpos: 0,
        ready: false,
        role: Role::Sub(Subscriber {
            index: 0,
            seen: Vec::new(),
            foreign: 0,
            stalled: false,
        }),
    })
}

/// A clean-session CONNECT without keep alive: a run's clients must not be disconnected
/// by a keep alive the tool has no time to serve, and keep alive 0 is valid. [MQTT-3.1.2-23]
pub fn connect_packet(client_id: &str) -> Connect<'_> {
    Connect::minimal(V311, client_id)
}

/// Writes what is buffered. Ok(true) if everything went out (the socket can take more).
fn flush(c: &mut Conn) -> Result<bool, String> {
    match c.stream.flush_pending() {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
        Err(e) => return Err(format!("write failed: {e}")),
    }
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            // A non-blocking connect still in progress.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
    Ok(true)
}

/// Encodes and writes PUBLISH packets until the socket, the window or the count stops
/// it, or its turn ends. Ok(true): it could go on (come back next iteration).
fn pump(
    c: &mut Conn,
    plan: &Plan,
    progress: &[Vec<u64>],
    window: usize,
    now_ns: u64,
) -> Result<bool, String> {
    let qos = plan.qos;
    for _ in 0..FILLS_PER_TURN {
        let Role::Pub(p) = &mut c.role else {
            return Ok(false);
        };
        let mut credit_limit = p.limit;
        if plan.backlog > 0 {
            let slowest = progress[p.id as usize].iter().copied().min().unwrap_or(0);
            let base = if slowest == u64::MAX {
                p.next_seq
            } else {
                slowest
            };
            credit_limit = credit_limit.min(base.max(p.forgiven) + plan.backlog);
        }
        // Hysteresis: a publisher that waited for credit resumes only when a quarter of
        // the backlog is free, so it writes batches rather than one message per delivery
        // (against a broker that writes one packet per system call, the tool would
        // otherwise match the broker's system calls one for one).
        let available = credit_limit.saturating_sub(p.next_seq);
        let worth_it = (plan.backlog / 4)
            .min(p.limit.saturating_sub(p.next_seq))
            .max(1);
        if p.waits_for_credit && available < worth_it && c.wbuf.is_empty() {
            return Ok(false);
        }
        p.waits_for_credit = p.next_seq >= credit_limit && p.next_seq < p.limit;
        while c.wbuf.len() < FILL && p.next_seq < credit_limit {
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                if p.inflight >= window {
                    break;
                }
                let pid = take_packet_id(p, qos);
                p.inflight += 1;
                Some(pid)
            };
            payload::write(&mut p.payload, p.id, p.next_seq, now_ns);
            encode_publish(
                &mut c.wbuf,
                &p.topic,
                &p.payload,
                qos,
                false,
                false,
                packet_id,
            );
            p.next_seq += 1;
        }
        let more = p.next_seq < credit_limit && (qos == QoS::AtMostOnce || p.inflight < window);
        if p.next_seq >= credit_limit && p.next_seq < p.limit {
            p.waits_for_credit = true;
        }
        if c.wbuf.is_empty() {
            return Ok(false);
        }
        if !flush(c)? {
            return Ok(false);
        }
        if !more {
            return Ok(false);
        }
    }
    Ok(true)
}

fn take_packet_id(p: &mut Publisher, qos: QoS) -> PacketId {
    // The window is at most 65,535, so a free id exists.
    loop {
        let id = p.next_pid;
        p.next_pid = p.next_pid.checked_add(1).unwrap_or(1);
        if p.slots[usize::from(id)] == Slot::Free {
            p.slots[usize::from(id)] = if qos == QoS::AtLeastOnce {
                Slot::AwaitPuback
            } else {
                Slot::AwaitPubrec
            };
            return PacketId::new(id).expect("ids start at 1 and skip 0");
        }
    }
}

fn read_conn(c: &mut Conn, shared: &mut Shared) -> Result<(), String> {
    loop {
        if c.rstart == c.rend {
            c.rstart = 0;
            c.rend = 0;
        } else if c.rend == c.rbuf.len() {
            if c.rstart > 0 {
                c.rbuf.copy_within(c.rstart..c.rend, 0);
                c.rend -= c.rstart;
                c.rstart = 0;
            } else {
                let len = c.rbuf.len() * 2;
                c.rbuf.resize(len, 0);
            }
        }
        match c.stream.read(&mut c.rbuf[c.rend..]) {
            Ok(0) => return Err("the broker closed the connection".into()),
            Ok(n) => {
                c.rend += n;
                process(c, shared)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    if c.wpos < c.wbuf.len() {
        flush(c)?;
    }
    Ok(())
}

fn process(c: &mut Conn, shared: &mut Shared) -> Result<(), String> {
    let now = Instant::now();
    let now_ns = shared.plan.clock.elapsed().as_nanos() as u64;
    let Conn {
        rbuf,
        rstart,
        rend,
        wbuf,
        ready,
        role,
        ..
    } = c;
    while let Some(len) = frame::check(&rbuf[*rstart..*rend], MAX_PACKET)
        .map_err(|e| format!("malformed packet from the broker: {e}"))?
    {
        let bytes = &rbuf[*rstart..*rstart + len];
        *rstart += len;
        let packet = Packet::decode(bytes, V311)
            .map_err(|e| format!("malformed packet from the broker: {e}"))?;
        match (packet, &mut *role) {
            (Packet::Connack(ack), Role::Pub(_)) => {
                if ack.reason.is_error() {
                    return Err(format!("connection refused: {:?}", ack.reason));
                }
                *ready = true;
            }
            (Packet::Connack(ack), Role::Sub(_)) => {
                if ack.reason.is_error() {
                    return Err(format!("connection refused: {:?}", ack.reason));
                }
            }
            (Packet::Suback(ack), Role::Sub(_)) => {
                if ack.codes.iter().any(|c| c.is_error()) {
                    return Err("subscription refused (SUBACK 0x80)".into());
                }
                *ready = true;
            }
            (Packet::Publish(p), Role::Sub(s)) => {
                match payload::read(p.payload) {
                    Some(stamp) if (stamp.publisher as usize) < s.seen.len() => {
                        if s.seen[stamp.publisher as usize].insert(stamp.seq) {
                            shared.delivered += 1;
                        }
                        if let Some(row) = shared.progress.get_mut(stamp.publisher as usize) {
                            let mark = &mut row[s.index];
                            *mark = (*mark).max(stamp.seq + 1);
                        }
                        if let Some(h) = &mut shared.hist {
                            h.record(now_ns.saturating_sub(stamp.sent_ns));
                        }
                    }
                    _ => s.foreign += 1,
                }
                shared.last_progress = now;
                shared.last_delivery = now;
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => Packet::Puback(Ack::new(id)).encode(V311, wbuf),
                    (QoS::ExactlyOnce, Some(id)) => Packet::Pubrec(Ack::new(id)).encode(V311, wbuf),
                    _ => {}
                }
            }
            (Packet::Pubrel(a), Role::Sub(_)) => {
                Packet::Pubcomp(Ack::new(a.packet_id)).encode(V311, wbuf)
            }
            (Packet::Puback(a), Role::Pub(p)) => {
                ack(p, a.packet_id, Slot::AwaitPuback, "PUBACK")?;
                shared.acked += 1;
                shared.last_progress = now;
            }
            (Packet::Pubrec(a), Role::Pub(p)) => {
                let id = a.packet_id;
                let slot = &mut p.slots[usize::from(id.get())];
                if *slot != Slot::AwaitPubrec {
                    return Err(format!("unexpected PUBREC for packet id {}", id.get()));
                }
                *slot = Slot::AwaitPubcomp;
                Packet::Pubrel(Ack::new(id)).encode(V311, wbuf);
                shared.last_progress = now;
            }
            (Packet::Pubcomp(a), Role::Pub(p)) => {
                ack(p, a.packet_id, Slot::AwaitPubcomp, "PUBCOMP")?;
                shared.acked += 1;
                shared.last_progress = now;
            }
            (Packet::Pingresp, _) => {}
            (other, _) => {
                return Err(format!("unexpected {} from the broker", other.name()));
            }
        }
    }
    Ok(())
}

fn ack(p: &mut Publisher, id: PacketId, expect: Slot, name: &str) -> Result<(), String> {
    let slot = p
        .slots
        .get_mut(usize::from(id.get()))
        .ok_or_else(|| format!("{name} for an unknown packet id"))?;
    if *slot != expect {
        return Err(format!("unexpected {name} for packet id {}", id.get()));
    }
    *slot = Slot::Free;
    p.inflight -= 1;
    p.acked += 1;
    Ok(())
}
