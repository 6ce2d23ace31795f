//! `culex`: the broker. `culex [-c FILE] [-d] [-p PORT] [-v|-q] [-t]`, as `mosquitto`.

use culex::broker::Settings;
use culex::config::{Config, LogDest, LogTypes};
use culex::log_dest::{self, LogOptions};
use culex::net::{Notice, Reload, Reloader, Server};
use culex::notify;
use getopts::Options;
use log::{error, info, warn};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage(opts: &Options) -> String {
    opts.usage(&format!(
        "culex version {}\n\nculex is an MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways.\n\n\
         Usage: culex [-c config_file] [-d] [-p port] [-v | -q] [-t]",
        env!("CARGO_PKG_VERSION")
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = options();
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
    if let Err(e) = apply_port_flags(&mut config, &matches.opt_strs("p")) {
        eprintln!("Error: {e}");
        return ExitCode::FAILURE;
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
        return test_config(&config, unsupported.is_empty());
    }
    if !unsupported.is_empty() {
        return ExitCode::FAILURE;
    }
    let _pid_file = match detach(&config, matches.opt_present("d")) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(e) = init_logging(log_options(&config, is_verbose, is_quiet)) {
        eprintln!("Error: {e}");
        return ExitCode::FAILURE;
    }

    // Mosquitto 2.0's start-up lines, information level, with culex's name.
    serve(
        &config,
        matches.opt_str("c").map(PathBuf::from),
        is_verbose,
        is_quiet,
    )
}

/// The command line, as `mosquitto`'s. A table: one entry per flag.
fn options() -> Options {
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
        "run in the background (fork, new session, standard streams to /dev/null)",
    );
    opts.optflag("h", "help", "print this help");
    opts.optflag("", "version", "print the version");
    opts
}

/// `-p PORT`, as Mosquitto 2 takes it.
fn apply_port_flags(config: &mut Config, ports: &[String]) -> Result<(), String> {
    // Mosquitto 2: each -p opens a listener on the loopback addresses only, with
    // anonymous access as in local-only mode; ignored if the config has listeners (or
    // `port`/`bind_address`). The -p listeners replace the implicit loopback pair and
    // take its options.
    if config.is_local_only() {
        let template = config.default_listener.clone();
        let max_connections = config.max_connections;
        for port in ports {
            let Ok(port) = port.parse::<u16>() else {
                return Err(format!("invalid port '{port}'."));
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
    Ok(())
}

/// `culex -t`: every file start-up loads is loaded; nothing is bound or started.
fn test_config(config: &Config, is_supported: bool) -> ExitCode {
    // Warnings of the loaders (skipped password lines) go to stderr.
    let _ = init_logging(LogOptions {
        dest: LogDest {
            stderr: true,
            ..LogDest::none()
        },
        types: LogTypes::default(),
        ..LogOptions::quiet()
    });
    let problems = check_files(config);
    for problem in &problems {
        eprintln!("Error: {problem}");
    }
    if is_supported && problems.is_empty() {
        println!("Configuration OK.");
        return ExitCode::SUCCESS;
    }
    ExitCode::FAILURE
}

/// `-d` and `pid_file`: the files are checked and the pid file opened while the
/// terminal can still show what is wrong, then the process leaves it.
fn detach(config: &Config, is_daemon: bool) -> Result<Option<PidFile>, ExitCode> {
    if is_daemon {
        // Files are checked while the terminal can still show what is wrong with them;
        // after the fork, standard error is /dev/null (Mosquitto reports them there).
        let problems = check_files(config);
        for problem in &problems {
            eprintln!("Error: {problem}");
        }
        if !problems.is_empty() {
            return Err(ExitCode::FAILURE);
        }
    }
    // Opened before the fork, so a file that cannot be written is reported on the
    // terminal; the daemon's pid is written into it after.
    let pid_file = match config.pid_file.as_deref().map(PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: Unable to write pid file: {e}.");
            return Err(ExitCode::FAILURE);
        }
    };
    if is_daemon {
        if let Err(e) = daemonize() {
            eprintln!("Error in daemonizing: {e}");
            return Err(ExitCode::FAILURE);
        }
    }
    let pid_file = match pid_file.map(PidFile::write_pid).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: Unable to write pid file: {e}.");
            return Err(ExitCode::FAILURE);
        }
    };
    Ok(pid_file)
}

/// Logging is set up: binds, installs the signal handlers and runs the loop.
fn serve(
    config: &Config,
    config_file: Option<PathBuf>,
    is_verbose: bool,
    is_quiet: bool,
) -> ExitCode {
    info!(target: "information", "culex version {} starting", env!("CARGO_PKG_VERSION"));
    match &config_file {
        Some(path) => info!(target: "information", "Config loaded from {}.", path.display()),
        None => info!(target: "information", "Using default config."),
    }
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
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
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
    // `systemctl status` shows the one-line status; a Type=notify-reload unit's reload
    // waits for RELOADING=1 and READY=1 (sd_notify(3)). Without NOTIFY_SOCKET, nothing.
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        server.notify_with(Box::new(|notice| {
            let state = match notice {
                Notice::Reloading => notify::reloading(),
                Notice::Reloaded(status) => {
                    format!("{}\n{}", notify::READY, notify::status(status))
                }
                Notice::Status(status) => notify::status(status),
            };
            if let Err(e) = notify::notify(&state) {
                warn!("Cannot notify systemd: {e}");
            }
        }));
    }
    // Listeners are bound: a Type=notify unit counts as started from here.
    if let Err(e) = notify::notify(notify::READY) {
        warn!("Cannot notify systemd: {e}");
    }
    info!(target: "information", "culex version {} running", env!("CARGO_PKG_VERSION"));
    let result = server.run();
    info!(target: "information", "culex version {} terminating", env!("CARGO_PKG_VERSION"));
    let _ = notify::notify(notify::STOPPING);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads every file start-up loads, with the loaders start-up uses (the listeners' TLS
/// contexts, password and ACL files, the bridges' TLS contexts, the log file), without
/// binding a socket, opening the persistence store or starting a thread: `culex -t`,
/// and `culex -d` before it leaves the terminal. One line per problem.
fn check_files(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = culex::net::load_listener_tls(config) {
        problems.push(e);
    }
    if let Err(e) = culex::net::load_auth(config) {
        problems.push(e);
    }
    if let Err(e) = culex::net::load_dynsec(config) {
        problems.push(e);
    }
    if let Err(e) = culex::net::load_listener_auth(config) {
        problems.push(e);
    }
    for bridge in &config.bridges {
        if culex::net::tls::is_bridge_tls(&bridge.tls) {
            if let Err(e) = culex::net::tls::client_config(&bridge.tls) {
                problems.push(format!("bridge {}: {e}", bridge.name));
            }
        }
    }
    if let Some(file) = &config.log_dest.file {
        if let Err(e) = log_dest::check_log_file(file) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// `-d`: Mosquitto's `mosquitto__daemonise`: fork (the parent exits 0), a new session,
/// standard input, output and error on /dev/null. glibc's daemon(3) forks once, as
/// Mosquitto does, so the daemon leads its session; musl's (the static .deb builds) forks
/// a second time after setsid(2), so the daemon can never reopen a controlling terminal
/// and is not the session leader. Either way it is out of the caller's session. The working directory is kept, as
/// Mosquitto keeps it: relative paths in the configuration (persistence_location's
/// default, the working directory) mean what they meant.
///
/// Called before any thread exists: the persistence syncer, the bridges' probes and the
/// logger's are all started later; a fork copies only the calling thread.
fn daemonize() -> nix::Result<()> {
    nix::unistd::daemon(true, false)
}

/// `pid_file`: Mosquitto's `pid__write` writes the pid (decimal, no newline) after
/// daemonizing and removes the file at a clean exit; a file that cannot be written stops
/// start-up ("Error: Unable to write pid file.").
struct PidFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl PidFile {
    /// Opens (creates or truncates) the file, before the fork.
    fn create(path: &Path) -> std::io::Result<PidFile> {
        let file = std::fs::File::create(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// Writes this process's pid (the daemon's, after the fork).
    fn write_pid(mut self) -> std::io::Result<PidFile> {
        use std::io::Write;
        if let Some(mut file) = self.file.take() {
            write!(file, "{}", std::process::id()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
            })?;
        }
        Ok(self)
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
