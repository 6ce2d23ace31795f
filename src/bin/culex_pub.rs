//! culex_pub: publish one message (or one per line of standard input) and exit, with
//! `mosquitto_pub`'s flags, defaults file (`~/.config/culex_pub`), messages and exit
//! codes. Works against any MQTT 3.1, 3.1.1 or 5.0 broker.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, BufRead, Read};
use std::process;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{err, Client, Failure};
use culex::client::cli::{Config, PayloadSource, Tool};
use culex::client::Event;
use culex::protocol::ProtocolVersion;

const USAGE: &str = "\
culex_pub is a simple mqtt client that will publish a message on a single topic and exit.
culex_pub version 0.1.0, compatible with mosquitto_pub.

Usage: culex_pub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}
                 {-f file | -l | -n | -m message | -s}
                 [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-x session-expiry]
                 [--nodelay] [-i id] [-I id_prefix] [-d] [--quiet] [-M max_inflight]
                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
                 [{--cafile file | --capath dir} [--cert file] [--key file] [--insecure]
                   [--tls-version version] [--tls-alpn protocol] [--tls-use-os-certs]]
                 [-D command identifier value]
       culex_pub --help

 -c : disable clean session/enable persistent client mode.
 -d : enable debug messages.
 -D : define MQTT v5 properties, e.g. -D publish user-property name value.
 -f : send the contents of a file as the message.
 -h : mqtt host to connect to. Defaults to localhost.
 -i : id to use for this client. Defaults to one the broker assigns.
 -I : define the client id as id_prefix appended with the process id.
 -k : keep alive in seconds for this client. Defaults to 60.
 -L : specify user, password, hostname, port and topic as a URL in the form:
      mqtt(s)://[username[:password]@]host[:port]/topic
 -l : read messages from stdin, sending a separate message for each line.
 -m : message payload to send.
 -M : the maximum inflight messages for QoS 1/2.
 -n : send a null (zero length) message.
 -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT over TLS.
 -P : provide a password
 -q : quality of service level to use for all messages. Defaults to 0.
 -r : message should be retained.
 -s : read message from stdin, sending the entire input as a message.
 -t : mqtt topic to publish to.
 -u : provide a username
 -V : specify the version of the MQTT protocol to use when connecting.
      Can be mqttv5, mqttv311 or mqttv31. Defaults to mqttv311.
 -x : set the session-expiry-interval property on the CONNECT packet (MQTT v5).
 --help : display this message.
 --nodelay : disable Nagle's algorithm.
 --quiet : don't print error messages.
 --repeat : if publish mode is -f, -m, or -s, then repeat the publish N times.
 --repeat-delay : if using --repeat, wait time seconds between publishes. Defaults to 0.
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

fn main() {
    let config = common::load_config(Tool::Pub, USAGE);
    process::exit(run(&config));
}

fn run(config: &Config) -> i32 {
    // Payloads that do not stream are read before connecting, as Mosquitto does.
    let payload = match &config.payload {
        PayloadSource::Message(m) => Some(m.clone()),
        PayloadSource::Null => Some(Vec::new()),
        PayloadSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                err(config, &format!("Error loading input file \"{path}\".\n"));
                return 1;
            }
        },
        PayloadSource::Stdin => {
            let mut bytes = Vec::new();
            if io::stdin().lock().read_to_end(&mut bytes).is_err() {
                err(config, "Error loading input from stdin.\n");
                return 1;
            }
            Some(bytes)
        }
        PayloadSource::StdinLines | PayloadSource::None => None,
    };
    let mut client = match Client::connect(config) {
        Ok(client) => client,
        Err(message) => {
            err(config, &message);
            return 1;
        }
    };
    if let Err((message, code)) = common::wait_for_connack(&mut client, config, None) {
        err(config, &message);
        if message.starts_with("Connection error") {
            // mosquitto_pub also reports the error its network loop ended with.
            err(
                config,
                if config.version == ProtocolVersion::V5 {
                    "Error: A network protocol error occurred when communicating with the broker.\n"
                } else {
                    "Error: The connection was refused.\n"
                },
            );
        }
        return code;
    }
    let result = match payload {
        Some(payload) => publish_repeated(&mut client, config, &payload),
        None => publish_lines(&mut client, config),
    };
    match result {
        Ok(()) => {
            client.disconnect(&config.disconnect_properties);
            0
        }
        Err(failure) => {
            err(config, &failure.message());
            1
        }
    }
}

fn topic(config: &Config) -> &str {
    config.topics.last().map_or("", String::as_str)
}

/// `-m`/`-f`/`-s`/`-n`, `--repeat` times: each message is published once the previous
/// one is acknowledged and `--repeat-delay` has passed.
fn publish_repeated(client: &mut Client, config: &Config, payload: &[u8]) -> Result<(), Failure> {
    for n in 0..config.repeat_count {
        if n > 0 && !config.repeat_delay.is_zero() {
            let until = Instant::now() + config.repeat_delay;
            while Instant::now() < until {
                client.poll(Some(until))?;
                drain_events(client, config);
            }
        }
        let token = client
            .session
            .publish(
                topic(config),
                payload,
                config.qos,
                config.retain,
                &config.publish_properties,
                Instant::now(),
            )
            .map_err(Failure::Session)?;
        client.flush()?;
        loop {
            if drain_events(client, config).contains(&token) {
                break;
            }
            client.poll(None)?;
        }
    }
    Ok(())
}

/// Handles queued events; returns the tokens of messages now published.
fn drain_events(client: &mut Client, config: &Config) -> Vec<u64> {
    let mut done = Vec::new();
    while let Some(event) = client.session.poll_event() {
        if let Event::Published {
            token,
            packet_id,
            reason,
        } = event
        {
            if reason.is_error() {
                err(
                    config,
                    &format!(
                        "Warning: Publish {} failed: {}.\n",
                        packet_id.map_or(0, |id| id.get()),
                        reason.name()
                    ),
                );
            }
            done.push(token);
        }
    }
    done
}

/// `-l`: a message per line of standard input (its `\n` removed), read by a thread so
/// that keep alive goes on while standard input is quiet.
fn publish_lines(client: &mut Client, config: &Config) -> Result<(), Failure> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = Vec::new();
            match lock.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut eof = false;
    loop {
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    client
                        .session
                        .publish(
                            topic(config),
                            &line,
                            config.qos,
                            config.retain,
                            &config.publish_properties,
                            Instant::now(),
                        )
                        .map_err(Failure::Session)?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    eof = true;
                    break;
                }
            }
        }
        drain_events(client, config);
        if eof && client.session.unacknowledged() == 0 {
            client.flush()?;
            return Ok(());
        }
        // Standard input is polled between short waits on the socket.
        client.poll(Some(Instant::now() + Duration::from_millis(10)))?;
    }
}
