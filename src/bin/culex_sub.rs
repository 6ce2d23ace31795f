//! culex_sub: subscribe and print what arrives, with `mosquitto_sub`'s flags, output
//! formats (`-F`), defaults file (`~/.config/culex_sub`), messages and exit codes.
//! Works against any MQTT 3.1, 3.1.1 or 5.0 broker.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::process;
use std::time::{Duration, Instant};

use common::{err, Client, Failure};

use culex::client::cli::{Config, Tool};
use culex::client::format::{self, OutputOptions};
use culex::client::{Event, Message, OwnedProperties};
use culex::protocol::{QoS, ReasonCode, SubscriptionOptions};
use culex::topic;

const USAGE: &str = "\
culex_sub is a simple mqtt client that will subscribe to a set of topics and print all messages it receives.
culex_sub version 0.1.0, compatible with mosquitto_sub.

Usage: culex_sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL [-t topic]}
                 [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]
                 [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained] [-T filter_out] [-U topic ...]
                 [-F format] [-W timeout_secs] [--nodelay]
                 [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v] [--pretty]
                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
                 [{--cafile file | --capath dir} [--cert file] [--key file] [--insecure]
                   [--tls-version version] [--tls-alpn protocol] [--tls-use-os-certs]]
                 [-D command identifier value]
       culex_sub --help

 -c : disable clean session/enable persistent client mode.
 -C : disconnect and exit after receiving the 'msg_count' messages.
 -d : enable debug messages.
 -D : define MQTT v5 properties, e.g. -D subscribe user-property name value.
 -E : exit once all subscriptions have been acknowledged by the broker.
 -F : output format (%t topic, %p payload, %q qos, %r retain, %l length, %m mid,
      %x/%X hex payload, %I ISO 8601 time, %U Unix time, %j/%J JSON, @Y-@m-@d time, ...).
 -h : mqtt host to connect to. Defaults to localhost.
 -i : id to use for this client. Defaults to one the broker assigns.
 -I : define the client id as id_prefix appended with the process id.
 -k : keep alive in seconds for this client. Defaults to 60.
 -L : specify user, password, hostname, port and topic as a URL in the form:
      mqtt(s)://[username[:password]@]host[:port]/topic
 -N : do not add an end of line character when printing the payload.
 -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT over TLS.
 -P : provide a password
 -q : quality of service level to use for the subscription. Defaults to 0.
 -R : do not print stale messages (those with retain set).
 -t : mqtt topic to subscribe to. May be repeated multiple times.
 -T : topic string to filter out of results. May be repeated.
 -u : provide a username
 -U : unsubscribe from a topic. May be repeated.
 -v : print published messages verbosely.
 -V : specify the version of the MQTT protocol to use when connecting.
      Can be mqttv5, mqttv311 or mqttv31. Defaults to mqttv311.
 -W : Specifies a timeout in seconds how long to process incoming MQTT messages.
 -x : set the session-expiry-interval property on the CONNECT packet (MQTT v5).
 --help : display this message.
 --pretty : print formatted output rather than minimised output with the JSON formats.
 --quiet : don't print error messages.
 --retained-only : only handle messages with the retained flag set, and exit when the
                   first non-retained message is received.
 --remove-retained : send a message to the server to clear any received retained messages.
                     Use -T to filter out messages you do not want to be cleared.
 --retain-as-published : MQTT v5 subscription option.
 --unix : connect to a broker through a unix domain socket instead of a TCP socket.
 --will-payload : payload for the client Will.
 --will-qos : QoS level for the client Will.
 --will-retain : if given, make the client Will retained.
 --will-topic : the topic on which to publish the client Will.
 --cafile : path to a file containing trusted CA certificates to enable encrypted communication.
 --capath : path to a directory containing trusted CA certificates.
 --cert : client certificate for authentication, if required by server.
 --key : client private key for authentication, if required by server.
 --tls-version : TLS protocol version, can be one of tlsv1.3 or tlsv1.2.
 --tls-alpn : TLS ALPN protocol.
 --tls-use-os-certs : load and trust the system's CA certificates.
 --insecure : do not check that the server certificate hostname matches the remote hostname.
";

/// Mosquitto's MOSQ_ERR_TIMEOUT, the exit code when -W ends the wait.
const EXIT_TIMED_OUT: i32 = 27;

fn main() {
    let config = common::load_config(Tool::Sub, USAGE);
    process::exit(run(&config));
}

fn run(config: &Config) -> i32 {
    let deadline = config
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
    let mut client = match Client::connect(config) {
        Ok(client) => client,
        Err(message) => {
            err(config, &message);
            return 1;
        }
    };
    if let Err((message, code)) = common::wait_for_connack(&mut client, config, deadline) {
        err(config, &message);
        return code;
    }
    let mut sub = Subscriber::new(config);
    if let Err(failure) = sub.start(&mut client) {
        err(config, &failure.message());
        return 1;
    }
    loop {
        if let Some(code) = sub.handle_events(&mut client) {
            client.disconnect(&config.disconnect_properties);
            return code;
        }
        if sub.is_done(&client) {
            client.disconnect(&config.disconnect_properties);
            return 0;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            err(config, "Timed out\n");
            client.disconnect(&config.disconnect_properties);
            return EXIT_TIMED_OUT;
        }
        if let Err(failure) = client.poll(deadline) {
            // Messages that arrived with the failure are still printed.
            if let Some(code) = sub.handle_events(&mut client) {
                return code;
            }
            err(config, &failure.message());
            return 1;
        }
    }
}

struct Subscriber<'a> {
    config: &'a Config,
    output: OutputOptions,
    /// False once -C messages were printed or --retained-only saw a live message.
    processing: bool,
    received: u32,
    /// Set once the SUBACK arrived and -E asked to stop then.
    exit_after_subscribe: bool,
}

impl<'a> Subscriber<'a> {
    fn new(config: &'a Config) -> Subscriber<'a> {
        Subscriber {
            config,
            output: OutputOptions {
                format: config.format.clone(),
                verbose: config.verbose,
                eol: config.eol,
                pretty: config.pretty,
            },
            processing: true,
            received: 0,
            exit_after_subscribe: false,
        }
    }

    fn start(&mut self, client: &mut Client) -> Result<(), Failure> {
        let c = self.config;
        let now = Instant::now();
        if !c.topics.is_empty() {
            let options = SubscriptionOptions {
                qos: c.qos,
                no_local: false,
                retain_as_published: c.retain_as_published,
                // -R: MQTT 5 brokers need not send retained messages at all.
                retain_handling: if c.no_retain { 2 } else { 0 },
            };
            let filters: Vec<(&str, SubscriptionOptions)> =
                c.topics.iter().map(|t| (t.as_str(), options)).collect();
            client
                .session
                .subscribe(&filters, &c.subscribe_properties, now)
                .map_err(Failure::Session)?;
        }
        if !c.unsubscribe_topics.is_empty() {
            let filters: Vec<&str> = c.unsubscribe_topics.iter().map(String::as_str).collect();
            client
                .session
                .unsubscribe(&filters, &c.unsubscribe_properties, now)
                .map_err(Failure::Session)?;
        }
        client.flush()
    }

    /// Whether the tool has finished: nothing more to print and nothing in flight.
    fn is_done(&self, client: &Client) -> bool {
        let idle = client.session.unacknowledged() == 0;
        (!self.processing && idle)
            || (self.exit_after_subscribe && idle && client.session.open_requests() == 0)
            || (self.config.topics.is_empty() && client.session.open_requests() == 0)
    }

    /// Handles queued events; `Some(exit code)` when the tool must stop now.
    fn handle_events(&mut self, client: &mut Client) -> Option<i32> {
        while let Some(event) = client.session.poll_event() {
            match event {
                Event::Message(message) => self.on_message(client, message),
                Event::Subscribed { packet_id, codes } => {
                    if self.config.debug {
                        let codes: Vec<String> = codes.iter().map(|c| c.0.to_string()).collect();
                        println!(
                            "Subscribed (mid: {}): {}",
                            packet_id.get(),
                            codes.join(", ")
                        );
                    }
                    if codes.iter().all(|c| c.is_error()) {
                        err(self.config, "All subscription requests were denied.\n");
                        return Some(1);
                    }
                    if self.config.exit_after_subscribe {
                        self.exit_after_subscribe = true;
                    }
                }
                Event::Disconnected { reason, .. } => {
                    if reason != ReasonCode::NORMAL_DISCONNECTION {
                        err(
                            self.config,
                            &format!("Error: The broker disconnected us: {}.\n", reason.name()),
                        );
                    }
                    return Some(if reason.is_error() {
                        i32::from(reason.0)
                    } else {
                        1
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// Mosquitto's `my_message_callback`, in its order.
    fn on_message(&mut self, client: &mut Client, message: Message) {
        let c = self.config;
        if !self.processing {
            return;
        }
        if c.filter_outs
            .iter()
            .any(|f| topic::matches(f, &message.topic))
        {
            return;
        }
        if c.remove_retained && message.retain {
            let _ = client.session.publish(
                &message.topic,
                b"",
                QoS::AtLeastOnce,
                true,
                &OwnedProperties::default(),
                Instant::now(),
            );
        }
        if c.retained_only && !message.retain {
            self.processing = false;
            return;
        }
        if message.retain && c.no_retain {
            return;
        }
        let mut out = Vec::new();
        let errors = format::render(&mut out, &self.output, &message, &culex::localtime::now());
        for e in errors {
            err(c, &e);
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&out);
        let _ = stdout.flush();
        if let Some(count) = c.msg_count {
            self.received += 1;
            if self.received >= count {
                self.processing = false;
            }
        }
    }
}
