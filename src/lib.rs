//! culex: an MQTT broker for edge gateways.
#![forbid(unsafe_code)]

pub mod protocol;
pub mod topic;
