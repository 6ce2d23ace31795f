//! The deterministic performance guard (not a timed test): heap allocations per routed
//! message, counted by a global allocator, against a documented budget. A change that
//! adds an allocation to the hot path fails here on any machine, however noisy.
//!
//! Budgets, per PUBLISH routed to 10 subscribers, at steady state:
//! - QoS 0: 0 allocations. The frame is decoded in place, the topic tree walk and the
//!   routing scratch reuse their memory, outboxes come from the broker's pool.
//! - QoS 1: 2 allocations. The message is stored once (its bytes and its `Rc`), shared by
//!   all ten inflight windows.
#![allow(unsafe_code)]

use culex::broker::{Broker, ConnId, Settings};
use culex::protocol::{
    frame, Ack, Connect, Packet, PacketId, Properties, ProtocolVersion, QoS, Subscribe,
    SubscriptionOptions,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    /// Per thread, so tests running in parallel do not count each other's allocations.
    /// A const-initialised `Cell<u64>` has no destructor: touching it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// GlobalAlloc contract; the counter is a thread-local integer and has no effect on the
// memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SUBSCRIBERS: u32 = 10;
const MESSAGES: u64 = 5_000;

fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    packet.encode(ProtocolVersion::V311, &mut out);
    out
}

fn connect(broker: &mut Broker, id: u32, client_id: &str, now: Instant) {
    let peer: SocketAddr = ([127, 0, 0, 1], 40_000 + id as u16).into();
    broker.handle_open(ConnId(id), peer, 0, now);
    let connect = encode(&Packet::Connect(Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 0,
        client_id,
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    broker.handle_frame(ConnId(id), &connect, now);
}

/// Drains every outbox like the loop's flush, answering QoS 1 deliveries with PUBACK.
fn drain(broker: &mut Broker, now: Instant, acks: &mut Vec<u8>) -> u64 {
    let mut delivered = 0;
    while let Some(id) = broker.poll_dirty() {
        acks.clear();
        let out = broker.output(id);
        let mut pos = 0;
        while let Ok(Some(len)) = frame::check(&out[pos..], usize::MAX) {
            if let Ok(Packet::Publish(p)) =
                Packet::decode(&out[pos..pos + len], ProtocolVersion::V311)
            {
                delivered += 1;
                if let Some(pid) = p.packet_id {
                    Packet::Puback(Ack::new(pid)).encode(ProtocolVersion::V311, acks);
                }
            }
            pos += len;
        }
        let n = out.len();
        broker.consume_output(id, n);
        let mut pos = 0;
        while let Ok(Some(len)) = frame::check(&acks[pos..], usize::MAX) {
            broker.handle_frame(id, &acks[pos..pos + len], now);
            pos += len;
        }
    }
    delivered
}

fn allocations_per_message(qos: QoS) -> f64 {
    let settings = Settings {
        sys_interval: Duration::ZERO,
        ..Settings::default()
    };
    let now = Instant::now();
    let mut broker = Broker::new(settings, now);
    let mut acks = Vec::with_capacity(1024);
    connect(&mut broker, 0, "publisher", now);
    for s in 1..=SUBSCRIBERS {
        connect(&mut broker, s, &format!("subscriber-{s}"), now);
        let subscribe = encode(&Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            filters: vec![(
                "sensors/+/temperature",
                SubscriptionOptions::new(QoS::ExactlyOnce),
            )],
            properties: Properties::default(),
        }));
        broker.handle_frame(ConnId(s), &subscribe, now);
    }
    drain(&mut broker, now, &mut acks);

    let frames: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            let mut out = Vec::new();
            let pid = PacketId::new((i % 60_000 + 1) as u16);
            let pid = if qos == QoS::AtMostOnce { None } else { pid };
            culex::protocol::encode_publish(
                &mut out,
                "sensors/gw-7/temperature",
                &[0x5a; 64],
                qos,
                false,
                false,
                pid,
            );
            out
        })
        .collect();
    // Warm up: pools, scratch vectors and windows reach their steady size.
    for frame in &frames[..500] {
        broker.handle_frame(ConnId(0), frame, now);
        drain(&mut broker, now, &mut acks);
    }
    let before = allocations();
    let mut delivered = 0;
    for frame in &frames[500..] {
        broker.handle_frame(ConnId(0), frame, now);
        delivered += drain(&mut broker, now, &mut acks);
    }
    let allocations = allocations() - before;
    let routed = MESSAGES - 500;
    assert_eq!(
        delivered,
        routed * u64::from(SUBSCRIBERS),
        "every message reaches every subscriber"
    );
    allocations as f64 / routed as f64
}

#[test]
fn qos0_routing_does_not_allocate() {
    let per_message = allocations_per_message(QoS::AtMostOnce);
    eprintln!(
        "QoS 0: {per_message:.3} allocations per message routed to {SUBSCRIBERS} subscribers"
    );
    assert!(per_message < 0.01, "budget 0, measured {per_message:.3}");
}

#[test]
fn qos1_routing_stores_the_message_once() {
    let per_message = allocations_per_message(QoS::AtLeastOnce);
    eprintln!(
        "QoS 1: {per_message:.3} allocations per message routed to {SUBSCRIBERS} subscribers"
    );
    assert!(per_message <= 2.01, "budget 2, measured {per_message:.3}");
}
