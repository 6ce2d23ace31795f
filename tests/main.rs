//! End-to-end tests: a real broker process per test, real sockets, an independent client
//! (rumqttc) and raw bytes compared exactly for the spec's edge cases.
//!
//! The broker under test is culex (`CARGO_BIN_EXE_culex`) unless `CULEX_TEST_BROKER` says
//! otherwise: `CULEX_TEST_BROKER=mosquitto cargo test --test main` runs the same tests
//! against Mosquitto 2.0, the reference behaviour. Statement numbers ([MQTT-x.y.z-n]) are
//! those of MQTT 3.1.1 (OASIS Standard, 29 October 2014).

mod auth;
mod backpressure;
mod bridge;
mod common;
mod connect;
mod dynsec;
mod http_api;
mod keepalive;
mod limits;
mod listeners;
mod logging;
mod malformed;
mod mosquitto21;
mod mqtt5;
mod mqtt5_raw;
mod persistence;
mod qos;
mod retain;
mod session;
mod standalone;
mod subpub;
mod sys;
mod sys21;
mod systemd;
mod tls;
mod tools;
mod websockets;
mod will;
