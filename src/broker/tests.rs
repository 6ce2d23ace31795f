//! The core without sockets: scripted clients against a `Broker` on a virtual clock.
