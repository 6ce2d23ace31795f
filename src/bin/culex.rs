//! `culex`: the broker. `culex [-c FILE] [-p PORT] [-v] [-t]`, as `mosquitto`.

use culex::broker::Settings;
use culex::config::{Config, LogTypes};
use culex::net::{Reload, Reloader, Server};
use culex::notify;
use getopts::Options;
use log::{error, info, warn, LevelFilter};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage(opts: &Options) -> String {
    opts.usage(&format!(
        "culex version {}\n\nculex is an MQTT 3.1/3.1.1 broker for edge gateways.\n\n\
         Usage: culex [-c config_file] [-p port] [-v] [-t]",
        env!("CARGO_PKG_VERSION")
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Options::new();
    opts.optopt(
        "c",
        "config-file",
        "read the configuration from this file",
        "FILE",
    );
    opts.optmulti("p", "port", "listen on this port on the loopback addresses (ignored if the configuration has listeners)", "PORT");
    opts.optflag("v", "verbose", "log everything (log_type all)");
    opts.optflag("t", "test-config", "check the configuration and exit");
    opts.optflag(
        "d",
        "daemon",
        "run in the background (not supported: use systemd)",
    );
    opts.optflag("h", "help", "print this help");
    opts.optflag("", "version", "print the version");
    let matches = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", usage(&opts));
            return ExitCode::FAILURE;
        }
    };
    if matches.opt_present("h") {
        println!("{}", usage(&opts));
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("version") {
        println!("culex version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("d") {
        eprintln!("Error: culex does not daemonize; run it under systemd (packaging/culex.service) or with '&'.");
        return ExitCode::FAILURE;
    }

    let mut config = match matches.opt_str("c") {
        Some(file) => match Config::load(Path::new(&file)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    // Mosquitto 2: each -p opens a listener on the loopback addresses only, with
    // anonymous access as in local-only mode; ignored if the config has listeners (or
    // `port`/`bind_address`). The -p listeners replace the implicit loopback pair and
    // take its options.
    if config.is_local_only() {
        let template = config.default_listener.clone();
        let max_connections = config.max_connections;
        for port in matches.opt_strs("p") {
            let Ok(port) = port.parse::<u16>() else {
                eprintln!("Error: invalid port '{port}'.");
                return ExitCode::FAILURE;
            };
            for address in ["127.0.0.1", "::1"] {
                config.listeners.push(culex::config::Listener {
                    port,
                    bind_address: Some(address.into()),
                    max_connections,
                    ..template.clone()
                });
            }
            config.allow_anonymous.get_or_insert(true);
            config.max_connections = None;
            config.default_listener = culex::config::Listener::default();
        }
    }
    // Every option culex does not implement yet is refused by name; harmless ones are
    // warnings. The same check runs for --test-config and for a normal start.
    for warning in config.warnings() {
        eprintln!("Warning: {warning}");
    }
    let unsupported = config.unsupported();
    for e in &unsupported {
        eprintln!("Error: {e}");
    }
    if matches.opt_present("t") {
        if let Err(e) = culex::net::load_auth(&config) {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
        if unsupported.is_empty() {
            println!("Configuration OK.");
            return ExitCode::SUCCESS;
        }
        return ExitCode::FAILURE;
    }
    if !unsupported.is_empty() {
        return ExitCode::FAILURE;
    }
    if matches.opt_present("v") {
        config.log_type = LogTypes::all();
    }
    init_logging(&config.log_type);

    info!("culex version {} starting", env!("CARGO_PKG_VERSION"));
    if config.is_local_only() {
        info!("Starting in local only mode. Connections will only be possible from clients running on this machine.");
    }
    let mut server = match Server::bind(&config) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config_file = matches.opt_str("c").map(PathBuf::from);
    let reloader: Reloader = Box::new(move || {
        let Some(path) = &config_file else {
            return Err("culex was started without a configuration file".into());
        };
        let config = Config::load(path).map_err(|e| e.to_string())?;
        if let Some(e) = config.unsupported().first() {
            return Err(e.to_string());
        }
        let (passwords, acl) = culex::net::load_auth(&config)?;
        Ok(Reload {
            settings: Settings::from_config(&config),
            passwords,
            acl,
        })
    });
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    server.release_memory_with(release_memory);
    if let Err(e) = server
        .stop_on_signals()
        .and_then(|()| server.reload_on_sighup(reloader))
    {
        error!("Cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(interval) = notify::watchdog_interval() {
        server.heartbeat_every(interval, || {
            let _ = notify::notify(notify::WATCHDOG);
        });
    }
    // Listeners are bound: a Type=notify unit counts as started from here.
    if let Err(e) = notify::notify(notify::READY) {
        warn!("Cannot notify systemd: {e}");
    }
    let result = server.run();
    let _ = notify::notify(notify::STOPPING);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// log_type -> levels and targets: warning -> warn, notice/information -> info,
/// subscribe/unsubscribe -> the info lines of those targets, debug -> debug. RUST_LOG,
/// when set, wins.
fn init_logging(types: &LogTypes) {
    let level = if types.debug {
        LevelFilter::Debug
    } else if types.information || types.notice {
        LevelFilter::Info
    } else if types.warning {
        LevelFilter::Warn
    } else if types.error {
        LevelFilter::Error
    } else {
        LevelFilter::Off
    };
    let topic_level = |on: bool| {
        if on {
            LevelFilter::Info
        } else {
            LevelFilter::Off
        }
    };
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        .filter_module("subscribe", topic_level(types.subscribe))
        .filter_module("unsubscribe", topic_level(types.unsubscribe))
        .format(|buf, record| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            writeln!(buf, "{secs}: {}", record.args())
        });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.init();
}

/// glibc keeps freed small allocations in its heap; after thousands of clients leave,
/// that is megabytes the gateway cannot use. `malloc_trim` returns free pages to the
/// system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_memory() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim(3) takes a plain integer and no pointers; it only releases
    // pages that glibc's allocator itself holds free, and it takes the allocator's own
    // locks, so it cannot invalidate any live allocation. glibc has provided it since 2.0.
    #[allow(unsafe_code)]
    unsafe {
        malloc_trim(0);
    }
}
