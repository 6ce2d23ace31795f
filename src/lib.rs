//! culex: an MQTT broker for edge gateways.
#![forbid(unsafe_code)]

pub mod protocol;
pub mod topic;
pub mod broker;
pub mod config;
pub mod timer;
