//! culex: an MQTT broker for edge gateways.
#![forbid(unsafe_code)]

pub mod broker;
pub mod config;
pub mod net;
pub mod protocol;
pub mod timer;
pub mod topic;
