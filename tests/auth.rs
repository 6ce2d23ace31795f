//! password_file and acl_file, in Mosquitto's formats, end to end; and SIGHUP reloading
//! them. The files are written by culex's own hash function (checked against
//! mosquitto_passwd's output in src/auth) and the tests also pass against Mosquitto.

use crate::common::{Broker, Peer, WAIT};
use culex::auth::{hash_password, HashFormat};
use rumqttc::{ConnectReturnCode, Event, Packet, QoS};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A file outside the broker's directory, readable by a broker that dropped root
/// (Mosquitto switches to its own user).
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "culex-auth-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = TempFile(path);
        file.write(contents);
        file
    }

    fn write(&self, contents: &str) {
        std::fs::write(&self.0, contents).expect("write the test file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn password_line(user: &str, password: &str) -> String {
    let format = HashFormat::Sha512Pbkdf2 {
        iterations: NonZeroU32::new(101).unwrap(),
    };
    format!(
        "{user}:{}\n",
        hash_password(password.as_bytes(), format, b"twelve bytes")
    )
}

/// Connects with credentials and returns the CONNACK code rumqttc saw.
pub fn connect_code(
    broker: &Broker,
    id: &str,
    credentials: Option<(&str, &str)>,
) -> ConnectReturnCode {
    let mut options = broker.options(id);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (_client, mut conn) = rumqttc::Client::new(options, 8);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match conn.recv_timeout(WAIT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => return ack.code,
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => return code,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no CONNACK for {id}");
}

fn peer(broker: &Broker, id: &str, user: &str, password: &str) -> Peer {
    let mut options = broker.options(id);
    options.set_credentials(user, password);
    Peer::connect(options).0
}

/// password_file: the right password connects; a wrong one, an unknown user, or no
/// username with allow_anonymous false gets "not authorised" (0x05), as Mosquitto answers
/// 3.1.1 clients (0x04 is for a malformed user name or password, 3.2.2.3).
#[test]
fn password_file_decides_who_connects() {
    let passwords = TempFile::new("passwd", &password_line("alice", "wonderland"));
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.path()
    ));
    assert_eq!(
        connect_code(&broker, "a1", Some(("alice", "wonderland"))),
        ConnectReturnCode::Success
    );
    assert_eq!(
        connect_code(&broker, "a2", Some(("alice", "looking-glass"))),
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        connect_code(&broker, "a3", Some(("mallory", "wonderland"))),
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        connect_code(&broker, "a4", None),
        ConnectReturnCode::NotAuthorized
    );
}

/// Issue #19, Mosquitto's `09-pwfile-parse-invalid`: a line that cannot be used is
/// skipped with a warning (culex refused to start); the other users log in; a user whose
/// hash is that of the empty password cannot log in with an empty password (Mosquitto
/// reads a zero-length Password field as none).
#[test]
fn a_bad_password_line_is_skipped_and_the_other_users_log_in() {
    let text = format!(
        "bad:$6$njER{{ZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==\n\
         {}{}nocolon\n",
        password_line("alice", "wonderland"),
        password_line("empty", ""),
    );
    let passwords = TempFile::new("passwd-bad-line", &text);
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.path()
    ));
    assert_eq!(
        connect_code(&broker, "p1", Some(("alice", "wonderland"))),
        ConnectReturnCode::Success
    );
    assert_eq!(
        connect_code(&broker, "p2", Some(("bad", "test"))),
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        connect_code(&broker, "p3", Some(("empty", ""))),
        ConnectReturnCode::NotAuthorized
    );
    if !Broker::is_mosquitto() {
        let log = broker.log_text();
        for line in [1, 4] {
            let expected = format!(
                "Invalid line in password file {}:{line}: ",
                passwords.path()
            );
            assert!(log.contains(&expected), "no warning for line {line}: {log}");
        }
    }
}

/// acl_file: `write` is checked when a client publishes (denied messages are dropped),
/// `read` when a message is delivered; `pattern` rules substitute %u.
#[test]
fn acl_file_controls_publish_and_delivery() {
    let passwords = TempFile::new(
        "passwd",
        &(password_line("alice", "a") + &password_line("bob", "b")),
    );
    let acl = TempFile::new(
        "acl",
        "user alice\ntopic readwrite sensors/#\n\nuser bob\ntopic read sensors/#\n\npattern readwrite home/%u/#\n",
    );
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        passwords.path(),
        acl.path()
    ));
    let mut bob = peer(&broker, "bob-sub", "bob", "b");
    bob.subscribe("sensors/#", QoS::AtLeastOnce);
    bob.subscribe("home/#", QoS::AtLeastOnce);
    let mut alice = peer(&broker, "alice-pub", "alice", "a");
    alice.subscribe("sensors/#", QoS::AtLeastOnce);

    alice.publish("sensors/t1", QoS::AtLeastOnce, false, b"from alice");
    assert_eq!(&bob.expect_publish().payload[..], b"from alice");
    assert_eq!(&alice.expect_publish().payload[..], b"from alice");

    // bob may read sensors/# but not write it: his message is dropped for everyone.
    bob.publish("sensors/t1", QoS::AtLeastOnce, false, b"from bob");
    alice.expect_no_publish();

    // home/alice/# is alice's through the pattern; bob may not read it.
    alice.subscribe("home/alice/#", QoS::AtLeastOnce);
    alice.publish("home/alice/lamp", QoS::AtLeastOnce, false, b"on");
    assert_eq!(&alice.expect_publish().payload[..], b"on");
    bob.expect_no_publish();
}

/// SIGHUP reloads the password file ("Reloading config." in Mosquitto): a password
/// changed on disk works for the next connection, and a client connected with the old
/// one is disconnected, as Mosquitto re-checks connected clients on reload.
#[test]
fn sighup_reloads_the_password_file() {
    let passwords = TempFile::new(
        "passwd",
        &(password_line("carol", "old") + &password_line("dave", "same")),
    );
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.path()
    ));
    let mut carol = peer(&broker, "carol-1", "carol", "old");
    carol.subscribe("x", QoS::AtMostOnce);
    let mut dave = peer(&broker, "dave-1", "dave", "same");
    dave.subscribe("x", QoS::AtMostOnce);
    passwords.write(&(password_line("carol", "new") + &password_line("dave", "same")));
    broker.signal("HUP");
    assert!(
        carol.closed_within(WAIT),
        "carol's revoked password still connected"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        if connect_code(&broker, "carol-2", Some(("carol", "new"))) == ConnectReturnCode::Success {
            break;
        }
        assert!(Instant::now() < deadline, "the new password never worked");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        connect_code(&broker, "carol-3", Some(("carol", "old"))),
        ConnectReturnCode::NotAuthorized
    );
    dave.publish("x", QoS::AtMostOnce, false, b"still here");
    assert_eq!(&dave.expect_publish().payload[..], b"still here");
}
