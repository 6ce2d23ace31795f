//! `$SYS` names of Mosquitto 2.0 and 2.1 seen by a subscriber to `$SYS/broker/#`.
//!
//! Debian's Mosquitto 2.0.11 (`CULEX_TEST_BROKER=mosquitto`) publishes the 2.0 names
//! only, so the 2.1 names are asserted for culex alone. Mosquitto 2.1.2 itself documents
//! the per-packet `mqtt/...` counters in mosquitto(8) but does not publish them yet
//! (eclipse-mosquitto/mosquitto#3726); culex publishes them under the documented names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::QoS;

use crate::common::{Broker, Peer};

/// Long enough for two `$SYS` intervals of 1 s.
const LIMIT: Duration = Duration::from_millis(4_000);

/// The names both Mosquitto 2.0 and culex publish (heap/* left aside: culex has no
/// allocator hook to measure it, and Mosquitto only has it with memory tracking).
const NAMES_2_0: &[&str] = &[
    "version",
    "uptime",
    "clients/connected",
    "clients/active",
    "clients/disconnected",
    "clients/inactive",
    "clients/total",
    "clients/maximum",
    "clients/expired",
    "messages/received",
    "messages/sent",
    "messages/stored",
    "store/messages/count",
    "store/messages/bytes",
    "bytes/received",
    "bytes/sent",
    "publish/messages/received",
    "publish/messages/sent",
    "publish/messages/dropped",
    "publish/bytes/received",
    "publish/bytes/sent",
    "subscriptions/count",
    "shared_subscriptions/count",
    "retained messages/count",
];

/// The load averages, `load/{name}/{1min,5min,15min}`, in 2.0 and 2.1.
const LOADS: &[&str] = &[
    "connections",
    "bytes/received",
    "bytes/sent",
    "messages/received",
    "messages/sent",
    "publish/dropped",
    "publish/received",
    "publish/sent",
    "sockets",
];

/// Names of Mosquitto 2.1's mosquitto(8) that 2.0.11 does not publish.
const NAMES_2_1: &[&str] = &[
    "mqtt/connect/received",
    "mqtt/connack/sent",
    "mqtt/publish/received",
    "mqtt/publish/sent",
    "mqtt/publish/dropped",
    "mqtt/puback/received",
    "mqtt/puback/sent",
    "mqtt/pubrec/received",
    "mqtt/pubrec/sent",
    "mqtt/pubrel/received",
    "mqtt/pubrel/sent",
    "mqtt/pubcomp/received",
    "mqtt/pubcomp/sent",
    "mqtt/subscribe/received",
    "mqtt/suback/sent",
    "mqtt/unsubscribe/received",
    "mqtt/unsuback/sent",
    "mqtt/pingreq/received",
    "mqtt/pingresp/sent",
    "mqtt/disconnect/received",
    "mqtt/disconnect/sent",
    "mqtt/auth/received",
    "mqtt/auth/sent",
    "packet/out/count",
    "packet/out/bytes",
    "connections/socket/count",
];

/// Reads `$SYS/broker/...` publications (the latest value of each, by the name after
/// `$SYS/broker/`) until `done` says so or `LIMIT` passes.
fn collect(
    sub: &mut Peer,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + LIMIT;
    let mut values = HashMap::new();
    while Instant::now() < deadline && !done(&values) {
        let Some(got) = sub.next_publish(deadline - Instant::now()) else {
            break;
        };
        let name = got
            .topic
            .strip_prefix("$SYS/broker/")
            .unwrap_or_else(|| panic!("topic {} outside $SYS/broker/#", got.topic))
            .to_string();
        values.insert(name, String::from_utf8_lossy(&got.payload).into_owned());
    }
    values
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = NAMES_2_0.iter().map(|n| n.to_string()).collect();
    for load in LOADS {
        for period in ["1min", "5min", "15min"] {
            names.push(format!("load/{load}/{period}"));
        }
    }
    if !Broker::is_mosquitto() {
        names.extend(NAMES_2_1.iter().map(|n| n.to_string()));
    }
    names
}

/// A subscriber to `$SYS/broker/#` sees every 2.0 name (and for culex the 2.1 names):
/// counters as whole numbers, load averages with two decimals.
#[test]
fn sys_tree_has_the_mosquitto_2_0_and_2_1_names() {
    let broker = Broker::start("sys_interval 1");
    let mut sub = broker.subscriber("sys21", "$SYS/broker/#", QoS::AtMostOnce);
    let names = names();
    let values = collect(&mut sub, |v| names.iter().all(|n| v.contains_key(n)));
    let missing: Vec<&String> = names.iter().filter(|n| !values.contains_key(*n)).collect();
    assert!(missing.is_empty(), "not published: {missing:?}");
    for (name, value) in &values {
        if name.starts_with("load/") {
            let (_, decimals) = value
                .split_once('.')
                .unwrap_or_else(|| panic!("{name}: {value:?}"));
            assert_eq!(decimals.len(), 2, "{name}: {value:?}");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{name}: {value:?}"));
        } else if !matches!(name.as_str(), "version" | "uptime") && !name.starts_with("connection/")
        {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}: {value:?} is not a count"));
        }
    }
}

/// Three PUBLISH of 3 bytes each are counted within two intervals: publish/messages
/// and publish/bytes (both brokers), mqtt/publish/received and mqtt/connect/received
/// (culex, 2.1 names).
#[test]
fn sys_counts_publish_messages_and_payload_bytes() {
    let broker = Broker::start("sys_interval 1");
    let mut sub = broker.subscriber("sys21", "$SYS/broker/#", QoS::AtMostOnce);
    let mut publisher = broker.client("pub");
    for _ in 0..3 {
        publisher.publish("t", QoS::AtLeastOnce, false, b"abc");
    }
    let mut wanted = vec![
        ("publish/messages/received", "3"),
        ("publish/bytes/received", "9"),
    ];
    if !Broker::is_mosquitto() {
        wanted.extend([
            ("mqtt/publish/received", "3"),
            ("mqtt/puback/sent", "3"),
            ("mqtt/connect/received", "2"),
            ("mqtt/connack/sent", "2"),
            ("mqtt/subscribe/received", "1"),
            ("mqtt/suback/sent", "1"),
            ("connections/socket/count", "2"),
        ]);
    }
    let values = collect(&mut sub, |v| {
        wanted
            .iter()
            .all(|(name, value)| v.get(*name).map(String::as_str) == Some(*value))
    });
    for (name, value) in wanted {
        assert_eq!(values.get(name).map(String::as_str), Some(value), "{name}");
    }
}
