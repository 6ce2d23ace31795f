//! Signals, handled in the loop: SIGTERM and SIGINT stop it, SIGHUP reloads the
//! configuration ([`Reload`]), and the binary's own signals (SIGUSR1, SIGUSR2, SIGRTMIN)
//! call its handler, except SIGUSR1 with `persistence true`, which writes a snapshot
//! here ([`Server::save_on_signal`]). A signal handler only writes a byte into a socket pair
//! (signal-hook's pipe, async-signal-safe); the loop sees the other end become readable
//! and does the work, so no handler touches the broker.

use super::{Server, HOOK_TOKEN, RELOAD_TOKEN, SIGNAL_TOKEN};
use crate::auth::{Acl, PasswordFile};
use crate::broker::{ListenerAuth, Settings};
use log::{info, warn};
use mio::{Interest, Registry, Token};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a configuration reload (SIGHUP) produces: the settings, the password and ACL
/// files and the bridges, re-read. Listeners are not reopened, as in Mosquitto.
pub struct Reload {
    pub settings: Settings,
    pub passwords: Option<PasswordFile>,
    pub acl: Option<Acl>,
    /// Per configured listener, from [`super::load_listener_tls`]: certificates are re-read as
    /// Mosquitto does, for connections accepted from now on.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Per listener, from [`super::load_listener_auth`] (empty without per_listener_settings).
    pub listener_auth: Vec<ListenerAuth>,
    /// The `connection` blocks: changed bridges take their new configuration (see
    /// `Server::reload_bridges`).
    pub bridges: Vec<crate::config::Bridge>,
}

/// Re-reads the configuration; an error keeps the running configuration.
pub type Reloader = Box<dyn FnMut() -> Result<Reload, String>>;

/// Signals the binary handles itself, in the loop: the pipe their handlers write to, a
/// flag per signal (one pipe cannot say which arrived) and the handler.
pub(super) struct SignalHooks {
    pipe: SignalPipe,
    flags: Vec<(i32, Arc<AtomicBool>)>,
    handler: Box<dyn FnMut(i32)>,
}

/// The read end of a signal pipe, registered with the loop: the signals it was opened
/// for each write a byte into it from their handler.
pub(super) struct SignalPipe(mio::net::UnixStream);

impl SignalPipe {
    /// A non-blocking socket pair whose write end the handlers of `signals` write to;
    /// `before` runs for each signal before its pipe handler is installed (a flag that
    /// the byte must find set). The read end is registered under `token`.
    fn open(
        registry: &Registry,
        token: Token,
        signals: &[i32],
        mut before: impl FnMut(i32) -> io::Result<()>,
    ) -> io::Result<SignalPipe> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        for &signal in signals {
            before(signal)?;
            signal_hook::low_level::pipe::register(signal, writer.try_clone()?)?;
        }
        let mut reader = mio::net::UnixStream::from_std(reader);
        registry.register(&mut reader, token, Interest::READABLE)?;
        Ok(SignalPipe(reader))
    }

    /// Reads the bytes that arrived, so the next signal is an event again.
    fn drain(&mut self) {
        let mut bytes = [0u8; 64];
        while matches!(self.0.read(&mut bytes), Ok(n) if n > 0) {}
    }
}

impl Server {
    /// Stops the loop cleanly on SIGTERM and SIGINT. signal-hook writes a byte into a
    /// socket pair from the handler (async-signal-safe); the loop sees it as an event.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let signals = [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT];
        let pipe = SignalPipe::open(self.poll.registry(), SIGNAL_TOKEN, &signals, |_| Ok(()))?;
        self.signal_pipe = Some(pipe);
        Ok(())
    }

    /// On SIGHUP, calls `reloader` and applies what it returns (Mosquitto's "Reloading
    /// config."): limits, anonymous access, password file and ACL. A failed reload is
    /// logged and the running configuration kept.
    pub fn reload_on_sighup(&mut self, reloader: Reloader) -> io::Result<()> {
        let signals = [signal_hook::consts::SIGHUP];
        let pipe = SignalPipe::open(self.poll.registry(), RELOAD_TOKEN, &signals, |_| Ok(()))?;
        self.reload_pipe = Some(pipe);
        self.reloader = Some(reloader);
        Ok(())
    }

    /// Calls `handler` from the loop with the number of each of `signals` that arrived
    /// (the binary's SIGUSR1, SIGUSR2 and SIGRTMIN).
    pub fn on_signals(&mut self, signals: &[i32], handler: Box<dyn FnMut(i32)>) -> io::Result<()> {
        let mut flags = Vec::new();
        let pipe = SignalPipe::open(self.poll.registry(), HOOK_TOKEN, signals, |signal| {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first: the pipe's byte must find it set.
            signal_hook::flag::register(signal, flag.clone())?;
            flags.push((signal, flag));
            Ok(())
        })?;
        self.hooks = Some(SignalHooks {
            pipe,
            flags,
            handler,
        });
        Ok(())
    }

    pub(super) fn run_signal_hooks(&mut self) {
        let Some(hooks) = self.hooks.as_mut() else {
            return;
        };
        hooks.pipe.drain();
        let mut save = false;
        for (signal, flag) in &hooks.flags {
            if flag.swap(false, Ordering::SeqCst) {
                if *signal == signal_hook::consts::SIGUSR1 && self.store.is_some() {
                    save = true;
                } else {
                    (hooks.handler)(*signal);
                }
            }
        }
        if save {
            self.save_on_signal();
        }
    }

    /// SIGUSR1 with `persistence true`: the whole state goes to a new snapshot, as
    /// Mosquitto writes its database on SIGUSR1, with Mosquitto's log line. The snapshot
    /// starts now, or once a compaction already running has finished; the store's
    /// thread writes and syncs it while the loop goes on.
    pub(super) fn save_on_signal(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        info!("Saving in-memory database to {}.", store.path().display());
        store.snapshot_soon();
        self.persist(Instant::now());
    }

    /// SIGHUP: the configuration is read again and what may change while running is
    /// applied.
    pub(super) fn reload(&mut self) {
        if let Some(pipe) = self.reload_pipe.as_mut() {
            pipe.drain();
        }
        let Some(reloader) = self.reloader.as_mut() else {
            return;
        };
        info!("Reloading config.");
        if let Some((notice, _, _)) = self.notices.as_mut() {
            notice(super::Notice::Reloading);
        }
        let result = reloader();
        match result {
            Ok(reload) => {
                for listener in &mut self.listeners {
                    match reload.listener_tls.get(listener.index) {
                        // A listener that was TLS stays TLS (and plain stays plain): turning
                        // TLS on or off means reopening it, which needs a restart.
                        Some(Some(tls)) if listener.tls.is_some() => {
                            listener.tls = Some(tls.clone())
                        }
                        Some(new) if new.is_some() != listener.tls.is_some() => warn!(
                            "Listener {}: switching TLS on or off needs a restart.",
                            listener.index
                        ),
                        _ => {}
                    }
                }
                self.broker.set_settings(reload.settings);
                self.broker.set_auth(reload.passwords, reload.acl);
                self.broker.set_listener_auth(reload.listener_auth);
                let now = Instant::now();
                self.broker.reauthenticate(now);
                self.reload_bridges(&reload.bridges, now);
                self.flush_and_close(now);
            }
            Err(e) => warn!("Reload failed, keeping the running configuration: {e}"),
        }
        // A refused configuration still ends the reload: the old one serves on.
        let line = self.status_line();
        if let Some((notice, last, _)) = self.notices.as_mut() {
            notice(super::Notice::Reloaded(&line));
            *last = line;
        }
    }
}
