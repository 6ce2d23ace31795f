//! MQTT 5 end to end with rumqttc's v5 client (independent of culex's codec). Statement
//! numbers are MQTT 5.0's (OASIS Standard, 7 March 2019). Also run against Mosquitto.

use crate::common::{Broker, WAIT};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, Packet, Publish, PublishProperties, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Connection, Event, MqttOptions};
use std::time::{Duration, Instant};

pub(crate) struct Peer5 {
    pub(crate) client: Client,
    pub(crate) conn: Connection,
}

impl Peer5 {
    pub(crate) fn connect(
        broker: &Broker,
        id: &str,
        configure: impl FnOnce(&mut MqttOptions),
    ) -> (Peer5, ConnAck) {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (client, mut conn) = Client::new(options, 64);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match conn.recv_timeout(WAIT) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    return (Peer5 { client, conn }, ack)
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("{id}: connection error {e:?}"),
                Err(_) => break,
            }
        }
        panic!("{id}: no CONNACK");
    }

    /// Waits for the SUBACK of the subscription just sent.
    pub(crate) fn subscribed(&mut self) {
        self.wait(|p| matches!(p, Packet::SubAck(_)));
    }

    pub(crate) fn wait(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Ok(Event::Incoming(p))) = self.conn.recv_timeout(WAIT) {
                if wanted(&p) {
                    return p;
                }
            }
        }
        panic!("expected packet did not arrive within {WAIT:?}");
    }

    /// Publishes and drives the connection until the broker acknowledged (QoS 1) or the
    /// packet went out (QoS 0): the sync client only sends while its connection is polled.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: &[u8],
        properties: PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, false, payload.to_vec(), properties)
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match self.conn.recv_timeout(WAIT) {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))))
                    if qos == QoS::AtMostOnce =>
                {
                    return
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return,
                Ok(Ok(_)) => {}
                other => panic!("publishing: {other:?}"),
            }
        }
        panic!("publish to {topic} did not complete");
    }

    pub(crate) fn expect_publish(&mut self) -> Publish {
        match self.wait(|p| matches!(p, Packet::Publish(_))) {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    fn expect_no_publish(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) = self.conn.recv_timeout(left) {
                panic!("unexpected PUBLISH {p:?}");
            }
        }
    }
}

/// User properties, content type, response topic and correlation data reach the
/// subscriber unchanged [MQTT-3.3.2-17] [MQTT-3.3.2-20], with the Subscription Identifier
/// of the matching subscription [MQTT-3.3.4-3].
#[test]
fn mqtt5_properties_and_subscription_identifier_reach_the_subscriber() {
    let broker = Broker::start("");
    let (mut sub, _) = Peer5::connect(&broker, "sub5", |_| {});
    let properties = SubscribeProperties {
        id: Some(42),
        user_properties: vec![],
    };
    sub.client
        .subscribe_with_properties("req/#", QoS::AtLeastOnce, properties)
        .unwrap();
    sub.subscribed();
    let (mut publisher, _) = Peer5::connect(&broker, "pub5", |_| {});
    let properties = PublishProperties {
        content_type: Some("application/json".into()),
        response_topic: Some("resp/pub5".into()),
        correlation_data: Some(b"corr-1".to_vec().into()),
        user_properties: vec![("site".into(), "north".into())],
        ..Default::default()
    };
    publisher.publish("req/a", QoS::AtLeastOnce, b"{}", properties);
    let got = sub.expect_publish();
    assert_eq!(&got.topic[..], b"req/a");
    let p = got.properties.expect("properties");
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.response_topic.as_deref(), Some("resp/pub5"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"corr-1"[..]));
    assert_eq!(
        p.user_properties,
        vec![("site".to_string(), "north".to_string())]
    );
    assert_eq!(p.subscription_identifiers, vec![42]);
}

/// Session Expiry Interval: with 60 s, the session and its queued QoS 1 message survive a
/// disconnect; CONNACK says session present [MQTT-3.2.2-2].
#[test]
fn mqtt5_session_expiry_keeps_the_session() {
    let broker = Broker::start("");
    let persistent = |o: &mut MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    };
    let (mut sub, _) = Peer5::connect(&broker, "keeper", persistent);
    sub.client.subscribe("jobs", QoS::AtLeastOnce).unwrap();
    sub.subscribed();
    sub.client.disconnect().unwrap();
    let _ = sub.conn.recv_timeout(Duration::from_millis(300));
    drop(sub);
    let (mut publisher, _) = Peer5::connect(&broker, "boss", |_| {});
    publisher.publish("jobs", QoS::AtLeastOnce, b"job-1", Default::default());
    let (mut sub, ack) = Peer5::connect(&broker, "keeper", persistent);
    assert!(ack.session_present);
    assert_eq!(&sub.expect_publish().payload[..], b"job-1");
}

/// No Local: a subscriber is not sent its own messages [MQTT-3.8.3-3]; others are.
#[test]
fn mqtt5_no_local_suppresses_own_messages() {
    let broker = Broker::start("");
    let (mut me, _) = Peer5::connect(&broker, "me", |_| {});
    let filter = Filter {
        nolocal: true,
        ..Filter::new("chat", QoS::AtMostOnce)
    };
    me.client.subscribe_many([filter]).unwrap();
    me.subscribed();
    me.client
        .publish("chat", QoS::AtMostOnce, false, b"mine".to_vec())
        .unwrap();
    // (me's own loop sends it while waiting below.)
    me.expect_no_publish(Duration::from_millis(500));
    let (mut other, _) = Peer5::connect(&broker, "other", |_| {});
    other.publish("chat", QoS::AtMostOnce, b"theirs", Default::default());
    assert_eq!(&me.expect_publish().payload[..], b"theirs");
}

/// Message Expiry Interval: a message queued for an offline session longer than its
/// interval is not delivered [MQTT-3.3.2-5].
#[test]
fn mqtt5_expired_message_is_not_delivered() {
    let broker = Broker::start("");
    let persistent = |o: &mut MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    };
    let (mut sub, _) = Peer5::connect(&broker, "late", persistent);
    sub.client.subscribe("news", QoS::AtLeastOnce).unwrap();
    sub.subscribed();
    sub.client.disconnect().unwrap();
    let _ = sub.conn.recv_timeout(Duration::from_millis(300));
    drop(sub);
    let (mut publisher, _) = Peer5::connect(&broker, "press", |_| {});
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    };
    publisher.publish("news", QoS::AtLeastOnce, b"stale", expiring(1));
    publisher.publish("news", QoS::AtLeastOnce, b"fresh", expiring(60));
    std::thread::sleep(Duration::from_millis(2_200));
    let (mut sub, _) = Peer5::connect(&broker, "late", persistent);
    let got = sub.expect_publish();
    assert_eq!(&got.payload[..], b"fresh");
    let left = got
        .properties
        .and_then(|p| p.message_expiry_interval)
        .expect("expiry sent");
    assert!(left <= 58, "the interval counts down while queued: {left}");
    sub.expect_no_publish(Duration::from_millis(300));
}
