//! `culex`: the broker. `culex [-c FILE] [-p PORT] [-v|-q] [-t]`, as `mosquitto`.

use culex::broker::Settings;
use culex::config::{Config, LogTypes};
use culex::log_dest::{self, LogOptions};
use culex::net::{Reload, Reloader, Server};
use culex::notify;
use getopts::Options;
use log::{error, info, warn};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage(opts: &Options) -> String {
    opts.usage(&format!(
        "culex version {}\n\nculex is an MQTT 3.1/3.1.1 broker for edge gateways.\n\n\
         Usage: culex [-c config_file] [-p port] [-v | -q] [-t]",
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
    opts.optflag(
        "q",
        "quiet",
        "log nothing, whatever the configuration says (Mosquitto 2.1)",
    );
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
    let is_quiet = matches.opt_present("q");
    let is_verbose = matches.opt_present("v");
    if !is_quiet {
        for warning in config.warnings() {
            eprintln!("Warning: {warning}");
        }
    }
    let unsupported = config.unsupported();
    for e in &unsupported {
        eprintln!("Error: {e}");
    }
    if matches.opt_present("t") {
        if let Err(e) =
            culex::net::load_auth(&config).and_then(|_| culex::net::load_listener_auth(&config))
        {
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
    if let Err(e) = init_logging(log_options(&config, is_verbose, is_quiet)) {
        eprintln!("Error: {e}");
        return ExitCode::FAILURE;
    }

    info!("culex version {} starting", env!("CARGO_PKG_VERSION"));
    if config.is_local_only() {
        info!("Starting in local only mode. Connections will only be possible from clients running on this machine.");
    }
    // Signals are caught from before the listeners exist: a client (or a test, or
    // systemd) that sees the port open may signal at once, and the default action of
    // SIGHUP, SIGUSR1, SIGUSR2 and SIGRTMIN is to end the process. Until the loop's own
    // handlers are installed, a stop request is remembered and anything else dropped.
    let early_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, early_stop.clone()) {
            eprintln!("Error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    }
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGHUP, SIGUSR1, SIGUSR2, SIGRTMIN] {
        if let Err(e) = signal_hook::flag::register(signal, ignored.clone()) {
            eprintln!("Error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut server = match Server::bind(&config) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config_file = matches.opt_str("c").map(PathBuf::from);
    // SIGHUP also reopens the log file, as Mosquitto's reload does (logrotate's
    // postrotate), and applies the reloaded log options.
    let reloader: Reloader = Box::new(move || {
        let loaded = match &config_file {
            Some(path) => Config::load(path).map_err(|e| e.to_string()).and_then(|c| {
                match c.unsupported().first() {
                    Some(e) => Err(e.to_string()),
                    None => Ok(c),
                }
            }),
            None => Err("culex was started without a configuration file".into()),
        };
        let config = match loaded {
            Ok(config) => config,
            Err(e) => {
                reopen_log_file();
                return Err(e);
            }
        };
        if let Err(e) = log_dest::reconfigure(log_options(&config, is_verbose, is_quiet)) {
            error!("{e} Keeping the previous log settings.");
            reopen_log_file();
        }
        let (passwords, acl) = culex::net::load_auth(&config)?;
        let listener_tls = culex::net::load_listener_tls(&config)?;
        let listener_auth = culex::net::load_listener_auth(&config)?;
        Ok(Reload {
            settings: Settings::from_config(&config),
            passwords,
            acl,
            listener_tls,
            listener_auth,
            bridges: config.bridges,
        })
    });
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    server.release_memory_with(release_memory);
    if let Err(e) = server
        .stop_on_signals()
        .and_then(|()| server.reload_on_sighup(reloader))
        .and_then(|()| server.on_signals(&[SIGUSR1, SIGUSR2, SIGRTMIN], Box::new(on_signal)))
    {
        error!("Cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    if early_stop.load(std::sync::atomic::Ordering::SeqCst) {
        info!("Signal received during start-up, stopping.");
        return ExitCode::SUCCESS;
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

/// SIGRTMIN is not a constant in C: glibc keeps the first two real-time signals for its
/// threads (34 is its SIGRTMIN), musl three (35). `kill -s RTMIN` asks the same libc.
#[cfg(not(target_env = "musl"))]
const SIGRTMIN: i32 = 34;
#[cfg(target_env = "musl")]
const SIGRTMIN: i32 = 35;
const SIGUSR1: i32 = signal_hook::consts::SIGUSR1;
const SIGUSR2: i32 = signal_hook::consts::SIGUSR2;
const SIGHUP: i32 = signal_hook::consts::SIGHUP;
const SIGTERM: i32 = signal_hook::consts::SIGTERM;
const SIGINT: i32 = signal_hook::consts::SIGINT;

/// Mosquitto's SIGUSR1 (write the persistence file now), SIGUSR2 (print the subscription
/// tree) and 2.1's SIGRTMIN (reopen the log file).
fn on_signal(signal: i32) {
    match signal {
        SIGUSR1 => info!("culex has no persistence (persistence false): nothing to save."),
        SIGUSR2 => info!("culex does not print the subscription tree on SIGUSR2."),
        SIGRTMIN => reopen_log_file(),
        _ => {}
    }
}

fn reopen_log_file() {
    if let Err(e) = log_dest::reopen() {
        // The file is gone from the destinations: say so wherever else lines go, and on
        // stderr, which a service manager keeps.
        eprintln!("Error: {e}");
        error!("{e}");
    }
}

/// The log options of `config` with the command line's -v (log_type all) and -q
/// (nothing at all) applied, as Mosquitto applies them on every (re)load.
fn log_options(config: &Config, is_verbose: bool, is_quiet: bool) -> LogOptions {
    if is_quiet {
        return LogOptions::quiet();
    }
    let mut options = LogOptions::from_config(config);
    if is_verbose {
        options.types = LogTypes::all();
    }
    options
}

/// Installs culex's logger (`log_dest.rs`). RUST_LOG, when set, chooses the lines
/// instead of log_type (module filters for debugging culex itself).
fn init_logging(options: LogOptions) -> std::io::Result<()> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .map(|spec| env_filter::Builder::new().parse(&spec).build());
    log_dest::init(options, filter)
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
