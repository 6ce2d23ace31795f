//! culex_rr: MQTT 5 request/response, as `mosquitto_rr`: subscribe to the response
//! topic (`-e`), publish the request (`-t`, `-m`/`-f`/`-s`/`-n`) with that Response
//! Topic (and the Correlation Data given with `-D publish correlation-data ...`), print
//! the first response and exit. `-W` bounds the wait ("Timed out", exit 27).
//!
//! One addition to mosquitto_rr: when the request carries Correlation Data, a response
//! with different Correlation Data is not taken for ours (several requesters may share
//! a response topic); a response without any is accepted, as before.

#[path = "common/mod.rs"]
mod common;

use std::io::{self, Read, Write};
use std::process;
use std::time::{Duration, Instant};

use common::{err, Client, Failure};
use culex::client::cli::{Config, PayloadSource, Tool};
use culex::client::format::{self, OutputOptions};
use culex::client::{Event, Message};
use culex::protocol::{ProtocolVersion, SubscriptionOptions};

const USAGE: &str = "\
culex_rr is an mqtt client that can be used to publish a request message and wait for a response.
         Defaults to MQTT v5, where the Request-Response feature will be used, but v3.1.1 can also be used
         with v3.1.1 brokers.
culex_rr version 0.1.0, compatible with mosquitto_rr.

Usage: culex_rr {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL} -e response-topic
                {-f file | -n | -m message | -s}
                [-c] [-k keepalive] [-q qos] [-R] [-x session-expiry-interval]
                [-F format] [-W timeout_secs] [--nodelay]
                [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v] [--pretty]
                [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]
                [{--cafile file | --capath dir} [--cert file] [--key file] [--insecure]
                  [--tls-version version] [--tls-alpn protocol] [--tls-use-os-certs]]
                [-D command identifier value]
       culex_rr --help

 -e : Response topic. The client will subscribe to this topic to wait for a response.
 -F : output format (as culex_sub).
 -h : mqtt host to connect to. Defaults to localhost.
 -i : id to use for this client. Defaults to one the broker assigns.
 -m : message payload to send.
 -f : send the contents of a file as the message.
 -s : read message from stdin, sending the entire input as a message.
 -n : send a null (zero length) message.
 -N : do not add an end of line character when printing the payload.
 -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT over TLS.
 -q : quality of service level to use for communications. Defaults to 0.
 -R : do not print stale messages (those with retain set).
 -t : topic where the request message will be sent.
 -v : print received messages verbosely.
 -V : specify the version of the MQTT protocol to use when connecting.
      Defaults to 5.
 -W : Specifies a timeout in seconds how long to wait for a response.
 -D : define MQTT v5 properties, e.g. -D publish correlation-data 1234.
 --help : display this message.
 --quiet : don't print error messages.
 (The connection, will and TLS options are those of culex_pub and culex_sub.)
";

const EXIT_TIMED_OUT: i32 = 27;

fn main() {
    let config = common::load_config(Tool::Rr, USAGE);
    process::exit(run(&config));
}

fn run(config: &Config) -> i32 {
    let payload = match &config.payload {
        PayloadSource::Message(m) => m.clone(),
        PayloadSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
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
            bytes
        }
        _ => Vec::new(),
    };
    let response_topic = config.response_topic.clone().unwrap_or_default();
    let mut request_properties = config.publish_properties.clone();
    if config.version == ProtocolVersion::V5 {
        request_properties.response_topic = Some(response_topic.clone());
    }
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
    let options = SubscriptionOptions {
        qos: config.qos,
        no_local: false,
        retain_as_published: config.retain_as_published,
        retain_handling: if config.no_retain { 2 } else { 0 },
    };
    let now = Instant::now();
    if let Err(e) = client.session.subscribe(
        &[(response_topic.as_str(), options)],
        &config.subscribe_properties,
        now,
    ) {
        err(config, &Failure::Session(e).message());
        return 1;
    }
    let output = OutputOptions {
        format: config.format.clone(),
        verbose: config.verbose,
        eol: config.eol,
        pretty: config.pretty,
    };
    let mut responded = false;
    loop {
        while let Some(event) = client.session.poll_event() {
            match event {
                Event::Subscribed { codes, .. } => {
                    if codes.iter().all(|c| c.is_error()) {
                        err(config, "All subscription requests were denied.\n");
                        client.disconnect(&config.disconnect_properties);
                        return 1;
                    }
                    // Subscribed first, so that a fast responder's answer is not missed.
                    let topic = config.topics.last().map_or("", String::as_str);
                    if let Err(e) = client.session.publish(
                        topic,
                        &payload,
                        config.qos,
                        config.retain,
                        &request_properties,
                        Instant::now(),
                    ) {
                        err(config, &Failure::Session(e).message());
                        return 1;
                    }
                }
                Event::Message(message)
                    if !responded && is_response(config, &request_properties, &message) =>
                {
                    print(config, &output, &message);
                    responded = true;
                }
                Event::Disconnected { reason, .. } => {
                    err(
                        config,
                        &format!("Error: The broker disconnected us: {}.\n", reason.name()),
                    );
                    return 1;
                }
                _ => {}
            }
        }
        if responded && client.session.unacknowledged() == 0 {
            client.disconnect(&config.disconnect_properties);
            return 0;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            err(config, "Timed out\n");
            client.disconnect(&config.disconnect_properties);
            return EXIT_TIMED_OUT;
        }
        if let Err(failure) = client.poll(deadline) {
            err(config, &failure.message());
            return 1;
        }
    }
}

fn is_response(
    config: &Config,
    request: &culex::client::OwnedProperties,
    message: &Message,
) -> bool {
    if message.retain && config.no_retain {
        return false;
    }
    match (
        &request.correlation_data,
        &message.properties.correlation_data,
    ) {
        (Some(ours), Some(theirs)) => ours == theirs,
        _ => true,
    }
}

fn print(config: &Config, output: &OutputOptions, message: &Message) {
    let mut out = Vec::new();
    for e in format::render(&mut out, output, message, &culex::localtime::now()) {
        err(config, &e);
    }
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
}
