//! From configuration to a bound [`Server`]: each `listener` resolved and bound (with
//! `socket_domain`, `bind_interface`, Unix sockets and the optional default listeners),
//! its TLS and WebSocket settings, the password, ACL and per-listener auth files, the
//! persistence options and the bridges. Also what a reload reads again
//! ([`load_listener_tls`], [`load_auth`], [`load_listener_auth`]).

use super::socket::Listening;
use super::{
    cert_name, listener_token, rate, tls, websocket, ListenerSocket, Server, ShutdownHandle,
    SCRATCH_SIZE, WAKER_TOKEN,
};
use crate::auth::{Acl, PasswordFile};
use crate::broker::{Broker, ListenerAuth, Settings};
use crate::config::Config;
use crate::persist::{StoreOptions, SyncMode};
use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// The TLS configuration of a listener, or `None` for plain TCP.
fn listener_tls(l: &crate::config::Listener) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&l.tls.certfile, &l.tls.keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let options = tls::TlsOptions {
                certfile: certfile.clone(),
                keyfile: keyfile.clone(),
                cafile: l.tls.cafile.clone(),
                capath: l.tls.capath.clone(),
                require_certificate: l.tls.require_certificate,
                tls_version: l.tls.tls_version.map(|v| match v {
                    crate::config::TlsVersion::V1_3 => "tlsv1.3".to_string(),
                    _ => "tlsv1.2".to_string(),
                }),
                crlfile: l.tls.crlfile.clone(),
            };
            let config = tls::server_config(&options)
                .map_err(|e| io::Error::other(format!("listener {}: {e}", l.port)))?;
            Ok(Some(config))
        }
        (None, None) => Ok(None),
        _ => Err(io::Error::other(format!(
            "listener {}: certfile and keyfile must both be given for TLS",
            l.port
        ))),
    }
}

/// The TLS configurations of a configuration's listeners, in listener order: what a
/// reload hands to [`Server`] so renewed certificates apply to new connections.
pub fn load_listener_tls(
    config: &Config,
) -> Result<Vec<Option<Arc<rustls::ServerConfig>>>, String> {
    config
        .effective_listeners()
        .iter()
        .map(|l| listener_tls(l).map_err(|e| e.to_string()))
        .collect()
}

/// With `per_listener_settings true`: each listener's own `password_file` and `acl_file`,
/// in listener order; empty otherwise.
pub fn load_listener_auth(config: &Config) -> Result<Vec<ListenerAuth>, String> {
    if !config.per_listener_settings {
        return Ok(Vec::new());
    }
    config
        .effective_listeners()
        .iter()
        .map(|l| {
            Ok(ListenerAuth {
                passwords: match &l.security.password_file {
                    Some(path) => Some(PasswordFile::load(path).map_err(|e| e.to_string())?),
                    None => None,
                },
                acl: match &l.security.acl_file {
                    Some(path) => Some(Acl::load(path).map_err(|e| e.to_string())?),
                    None => None,
                },
            })
        })
        .collect()
}

/// Loads `password_file` and `acl_file` of a configuration.
pub fn load_auth(config: &Config) -> Result<(Option<PasswordFile>, Option<Acl>), String> {
    let passwords = match &config.password_file {
        Some(path) => Some(PasswordFile::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let acl = match &config.acl_file {
        Some(path) => Some(Acl::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((passwords, acl))
}

/// The dynamic-security file of `plugin .../mosquitto_dynamic_security.so`, if one is
/// configured: a missing or malformed file is an error naming it (and the line and column
/// of a JSON error), so the broker does not start without its users.
pub fn load_dynsec(
    config: &Config,
) -> Result<Option<(crate::auth::dynsec::DynSec, PathBuf)>, String> {
    let Some(path) = &config.dynsec_file else {
        return Ok(None);
    };
    let ds = crate::auth::dynsec::DynSec::load(path).map_err(|e| e.to_string())?;
    info!(
        "Dynamic security: {} clients, {} groups, {} roles from {}.",
        ds.clients.len(),
        ds.groups.len(),
        ds.roles.len(),
        path.display()
    );
    Ok(Some((ds, path.clone())))
}

/// `persistence_location` (default: the working directory, as Mosquitto),
/// `persistence_file` (default `culex.db`) and the sync and autosave options.
pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        dir: config
            .persistence_location
            .clone()
            .unwrap_or_else(|| PathBuf::from(".")),
        file: config
            .persistence_file
            .clone()
            .unwrap_or_else(|| "culex.db".to_string()),
        sync: if config.persistence_sync_ack {
            SyncMode::Ack
        } else {
            SyncMode::Periodic
        },
        sync_interval: config.persistence_sync_interval,
        autosave_interval: config.autosave_interval,
        autosave_on_changes: config.autosave_on_changes,
    }
}

/// What the loop needs to open one listener: built from the configuration by
/// [`Server::bind`], or directly (tests).
#[derive(Clone)]
pub struct ListenerSpec {
    pub port: u16,
    /// `listener 0 PATH`: a Unix socket at PATH (port and address are not used).
    pub unix_socket_path: Option<PathBuf>,
    /// `None`: every address.
    pub bind_address: Option<String>,
    /// `socket_domain ipv4`: IPv4 addresses only (the wildcard is 0.0.0.0).
    pub is_ipv4_only: bool,
    /// `socket_domain ipv6`: IPv6 addresses only, and IPV6_V6ONLY on the socket.
    pub is_ipv6_only: bool,
    /// `bind_interface`: SO_BINDTODEVICE.
    pub bind_interface: Option<String>,
    pub max_connections: Option<usize>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `use_identity_as_username` / `use_subject_as_username` (TLS listeners only).
    pub cert_username: Option<cert_name::CertUsername>,
    /// A loopback listener culex adds by default: failing to bind it is a warning.
    pub is_optional: bool,
    /// `protocol websockets`: MQTT over WebSockets with this policy (origins, http_dir);
    /// `protocol http_api`: the HTTP API, whose policy says so.
    pub websocket: Option<websocket::Policy>,
    /// `require_certificate`.
    pub is_mtls: bool,
}

impl Server {
    /// Binds every listener of the configuration.
    pub fn bind(config: &Config) -> io::Result<Server> {
        let implicit = config.is_local_only();
        let mut specs = Vec::new();
        for l in config.effective_listeners() {
            let tls = listener_tls(&l)?;
            let websocket = match l.protocol {
                crate::config::Protocol::Websockets | crate::config::Protocol::HttpApi => {
                    Some(websocket::Policy {
                        origins: l.websockets_origin.clone(),
                        http_dir: match &l.http_dir {
                            Some(dir) => Some(dir.canonicalize().map_err(|e| {
                                io::Error::new(
                                    e.kind(),
                                    format!("listener {}: http_dir {}: {e}", l.port, dir.display()),
                                )
                            })?),
                            None => None,
                        },
                        max_headers: usize::from(config.websockets_headers_size.unwrap_or(0)),
                        is_http_api: l.protocol == crate::config::Protocol::HttpApi,
                    })
                }
                _ => {
                    if l.http_dir.is_some() || !l.websockets_origin.is_empty() {
                        warn!(
                            "Listener {}: http_dir and websockets_origin apply to \
                             'protocol websockets' and 'http_api' listeners only; ignored here.",
                            l.port
                        );
                    }
                    None
                }
            };
            specs.push(ListenerSpec {
                websocket,
                is_mtls: tls.is_some() && l.tls.require_certificate,
                is_optional: implicit || l.bind_address.as_deref() == Some("::1"),
                port: l.port,
                unix_socket_path: l.unix_socket_path,
                is_ipv4_only: l.socket_domain == Some(crate::config::SocketDomain::Ipv4),
                is_ipv6_only: l.socket_domain == Some(crate::config::SocketDomain::Ipv6),
                bind_interface: l.bind_interface.clone(),
                bind_address: l.bind_address,
                max_connections: l.max_connections,
                cert_username: if tls.is_none() {
                    None
                } else if l.tls.use_identity_as_username {
                    Some(cert_name::CertUsername::Identity)
                } else if l.tls.use_subject_as_username {
                    Some(cert_name::CertUsername::Subject)
                } else {
                    None
                },
                tls,
            });
        }
        let (passwords, acl) = load_auth(config).map_err(io::Error::other)?;
        let mut server = Server::bind_listeners(specs, Settings::from_config(config))?;
        server.global_max_connections = config
            .global_max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        server.connection_rate = config.max_connection_rate.map(rate::ConnectionRate::new);
        server.set_auth(passwords, acl);
        server
            .broker
            .set_dynsec(load_dynsec(config).map_err(io::Error::other)?);
        server
            .broker
            .set_listener_auth(load_listener_auth(config).map_err(io::Error::other)?);
        if config.persistence {
            server.enable_persistence(store_options(config))?;
        }
        // After the store is loaded: a bridge resumes its restored local session and the
        // messages that waited in it.
        server.add_bridges(config)?;
        Ok(server)
    }

    /// Binds the given listeners. A listener that cannot be bound is an error unless it
    /// is optional (a host without IPv6 still gets its 127.0.0.1 listener).
    pub fn bind_listeners(specs: Vec<ListenerSpec>, settings: Settings) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        let mut last_error = None;
        for (spec_index, spec) in specs.into_iter().enumerate() {
            if let Some(path) = &spec.unix_socket_path {
                let socket = Listening::bind_unix(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot listen on {}: {e}", path.display()),
                    )
                })?;
                info!(
                    "Opening {} listen socket on path {}{}.",
                    match &spec.websocket {
                        Some(p) if p.is_http_api => "http api",
                        Some(_) => "websockets",
                        None => "unix",
                    },
                    path.display(),
                    if spec.tls.is_some() { " (TLS)" } else { "" }
                );
                listeners.push(ListenerSocket {
                    index: spec_index,
                    socket,
                    max_connections: spec.max_connections,
                    connections: 0,
                    tls: spec.tls.clone(),
                    cert_username: spec.cert_username,
                    websocket: spec.websocket.clone().map(Rc::new),
                    is_mtls: spec.is_mtls,
                });
                continue;
            }
            let addresses = match resolve(
                spec.bind_address.as_deref(),
                spec.port,
                spec.is_ipv4_only,
                spec.is_ipv6_only,
            ) {
                Ok(a) => a,
                Err(e) => {
                    let e = io::Error::new(e.kind(), format!("listener {}: {e}", spec.port));
                    if spec.is_optional {
                        last_error = Some(e);
                        continue;
                    }
                    return Err(e);
                }
            };
            for address in addresses {
                match bind_one(address, spec.is_ipv6_only, spec.bind_interface.as_deref()) {
                    Ok(socket) => {
                        let address = socket.local_addr()?;
                        // Mosquitto: "Opening websockets listen socket on port 8080.",
                        // "Opening http api listen socket on port 9883."
                        info!(
                            "Opening {} listen socket on port {}{}.",
                            match &spec.websocket {
                                Some(p) if p.is_http_api => "http api",
                                Some(_) => "websockets",
                                None => family(&address),
                            },
                            address.port(),
                            if spec.tls.is_some() { " (TLS)" } else { "" }
                        );
                        listeners.push(ListenerSocket {
                            index: spec_index,
                            socket: Listening::Tcp(socket),
                            max_connections: spec.max_connections,
                            connections: 0,
                            tls: spec.tls.clone(),
                            cert_username: spec.cert_username,
                            websocket: spec.websocket.clone().map(Rc::new),
                            is_mtls: spec.is_mtls,
                        });
                    }
                    Err(e) => {
                        let e =
                            io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"));
                        if spec.is_optional {
                            warn!("{e}");
                            last_error = Some(e);
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
        }
        if listeners.is_empty() {
            return Err(last_error.unwrap_or_else(|| io::Error::other("no listener configured")));
        }
        for (index, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(&mut l.socket, listener_token(index), Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let broker = Broker::new(settings, Instant::now());
        Ok(Server {
            poll,
            listeners,
            conns: Vec::new(),
            free: BinaryHeap::new(),
            freed: Vec::new(),
            unread: Vec::new(),
            max_packet_size: broker.max_packet_size(),
            broker,
            scratch: vec![0; SCRATCH_SIZE].into_boxed_slice(),
            shutdown: ShutdownHandle {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
            signal_pipe: None,
            reload_pipe: None,
            reloader: None,
            hooks: None,
            release_memory: None,
            connections_peak: 0,
            open_connections: 0,
            global_max_connections: None,
            connection_rate: None,
            heartbeat: None,
            notices: None,
            bridges: Vec::new(),
            store: None,
            writable: Vec::new(),
            relief: Vec::new(),
        })
    }
}

fn resolve(
    address: Option<&str>,
    port: u16,
    is_ipv4_only: bool,
    is_ipv6_only: bool,
) -> io::Result<Vec<SocketAddr>> {
    if is_ipv6_only {
        // socket_domain ipv6, as Mosquitto's getaddrinfo hint AF_INET6.
        let all: Vec<SocketAddr> = match address {
            None => vec![SocketAddr::from(([0u16; 8], port))],
            Some(host) => (host, port)
                .to_socket_addrs()?
                .filter(|a| a.is_ipv6())
                .collect(),
        };
        if all.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no IPv6 address (socket_domain ipv6)",
            ));
        }
        return Ok(all);
    }
    if is_ipv4_only {
        // socket_domain ipv4, as Mosquitto's getaddrinfo hint AF_INET.
        let all: Vec<SocketAddr> = match address {
            None => vec![SocketAddr::from(([0, 0, 0, 0], port))],
            Some(host) => (host, port)
                .to_socket_addrs()?
                .filter(|a| a.is_ipv4())
                .collect(),
        };
        if all.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no IPv4 address (socket_domain ipv4)",
            ));
        }
        return Ok(all);
    }
    match address {
        // Every address: IPv6 wildcard, which on Linux also accepts IPv4 unless the host
        // disabled it; then the IPv4 wildcard.
        None => Ok(vec![SocketAddr::from(([0u16; 8], port))]),
        Some(host) => {
            let mut all: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
            all.dedup();
            Ok(all)
        }
    }
}

fn bind_one(
    address: SocketAddr,
    is_ipv6_only: bool,
    interface: Option<&str>,
) -> io::Result<TcpListener> {
    match listen_socket(address, is_ipv6_only, interface) {
        Err(e) if address.ip().is_unspecified() && address.is_ipv6() && !is_ipv6_only => {
            debug!("IPv6 wildcard unavailable ({e}); listening on IPv4 only.");
            listen_socket(
                SocketAddr::from(([0, 0, 0, 0], address.port())),
                false,
                interface,
            )
        }
        other => other,
    }
}

/// A listening socket with the options that must be set before bind; otherwise as mio's
/// `TcpListener::bind` (SO_REUSEADDR, non-blocking, backlog 1024).
fn listen_socket(
    address: SocketAddr,
    is_ipv6_only: bool,
    interface: Option<&str>,
) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() && is_ipv6_only {
        socket.set_only_v6(true)?;
    }
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("bind_interface {interface}: {e}")))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn family(address: &SocketAddr) -> &'static str {
    if address.is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_domain_ipv4_restricts_the_wildcard_and_names() {
        assert_eq!(
            resolve(None, 1883, true, false).unwrap(),
            [SocketAddr::from(([0, 0, 0, 0], 1883))]
        );
        assert_eq!(
            resolve(None, 1883, false, false).unwrap(),
            [SocketAddr::from(([0u16; 8], 1883))]
        );
        assert!(resolve(Some("::1"), 1883, true, false).is_err());
        assert_eq!(
            resolve(Some("127.0.0.1"), 1883, true, false).unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 1883))]
        );
    }

    #[test]
    fn socket_domain_ipv6_restricts_to_ipv6_and_sets_v6only() {
        assert!(resolve(Some("127.0.0.1"), 1883, false, true).is_err());
        assert_eq!(
            resolve(Some("::1"), 1883, false, true).unwrap(),
            [SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 1883))]
        );
        // An IPv6-only wildcard does not take IPv4 connections.
        let Ok(listener) = listen_socket(SocketAddr::from(([0u16; 8], 0)), true, None) else {
            panic!("this host needs IPv6 for culex's tests");
        };
        let port = listener.local_addr().unwrap().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(std::net::TcpStream::connect(("::1", port)).is_ok());
    }

    #[test]
    fn bind_interface_binds_to_the_device() {
        // SO_BINDTODEVICE on the loopback device: connections over it still arrive.
        let listener = listen_socket(SocketAddr::from(([127, 0, 0, 1], 0)), false, Some("lo"))
            .expect("bind to lo (needs CAP_NET_RAW before Linux 5.7; CI runs as root)");
        let port = listener.local_addr().unwrap().port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let e = listen_socket(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            false,
            Some("no-such-if0"),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(e.to_string().contains("bind_interface no-such-if0"), "{e}");
    }

    #[test]
    fn socket_domain_and_bind_interface_are_supported_options() {
        let text = "listener 1883\nsocket_domain ipv6\nlistener 1884\nsocket_domain ipv4\nbind_interface eth0\n";
        let c = Config::parse_str(text, std::path::Path::new("t.conf")).unwrap();
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
    }
}
