//! TLS listeners (rustls): a real certificate chain generated per test run with rcgen,
//! real TLS handshakes from rumqttc (rustls client) and a raw TCP client. The options are
//! Mosquitto's listener options, so these tests also run against Mosquitto.

use crate::common::{Broker, WAIT};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A CA, a server certificate for 127.0.0.1/localhost and client certificates, as PEM
/// files in a directory.
pub struct Pki {
    dir: PathBuf,
}

fn new_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, Issuer::new(params, key))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, String) {
    let mut params = CertificateParams::new(names).expect("leaf params");
    // "O=Acme/CN=x" style: organisation first, as openssl -subj writes it.
    let mut parts: Vec<&str> = common_name.split('/').collect();
    let common_name = parts.pop().unwrap_or_default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for part in parts {
        if let Some(org) = part.strip_prefix("O=") {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages.push(usage);
    params.use_authority_key_identifier_extension = true;
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("culex-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("PKI directory");
        let (ca_cert, ca) = new_ca("culex test CA");
        let (_, rogue) = new_ca("someone else's CA");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let files = [
            (
                "server",
                leaf(
                    &ca,
                    "localhost",
                    vec!["localhost".into(), "127.0.0.1".into()],
                    ExtendedKeyUsagePurpose::ServerAuth,
                    false,
                ),
            ),
            (
                "client",
                leaf(
                    &ca,
                    "sensor-7",
                    vec![],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    false,
                ),
            ),
            (
                "acme",
                leaf(
                    &ca,
                    "O=Acme, Inc./sensor-8",
                    vec![],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    false,
                ),
            ),
            (
                "expired",
                leaf(
                    &ca,
                    "old-sensor",
                    vec![],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    true,
                ),
            ),
            (
                "rogue",
                leaf(
                    &rogue,
                    "intruder",
                    vec![],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    false,
                ),
            ),
        ];
        for (name, (cert, key)) in files {
            std::fs::write(dir.join(format!("{name}.pem")), cert).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
        }
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn listener_conf(&self, extra: &str) -> String {
        format!(
            "certfile {}\nkeyfile {}\n{extra}",
            self.path("server.pem"),
            self.path("server.key")
        )
    }

    /// A rustls client configuration (ring provider, named explicitly) trusting our CA,
    /// optionally presenting the client certificate `client` (e.g. "client", "rogue").
    pub fn client_config(
        &self,
        client: Option<&str>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            Some(name) => {
                let certs = CertificateDer::pem_file_iter(self.dir.join(format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key =
                    PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn tls_options(
    broker: &Broker,
    id: &str,
    config: Arc<rustls::ClientConfig>,
) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    options
}

/// Connects and returns the client if the broker accepted it, or the error text.
fn try_connect(options: MqttOptions) -> Result<(Client, rumqttc::Connection), String> {
    let (client, mut conn) = Client::new(options, 16);
    loop {
        match conn.recv_timeout(WAIT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack))))
                if ack.code == rumqttc::ConnectReturnCode::Success =>
            {
                return Ok((client, conn))
            }
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return Err(format!("refused: {:?}", ack.code))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("timeout: {e:?}")),
        }
    }
}

fn round_trip(
    client: &Client,
    conn: &mut rumqttc::Connection,
    topic: &str,
    payload: &[u8],
) -> Vec<u8> {
    client.subscribe(topic, QoS::AtLeastOnce).unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) = conn.recv_timeout(WAIT) {
            return p.payload.to_vec();
        }
    }
    panic!("no PUBLISH came back over TLS within {WAIT:?}");
}

/// A listener with certfile/keyfile speaks MQTT over TLS, with TLS 1.3 and with TLS 1.2.
#[test]
fn tls_listener_carries_mqtt() {
    let pki = Pki::new("carries");
    let broker = Broker::start(&pki.listener_conf(""));
    for (id, version) in [
        ("tls13", &rustls::version::TLS13),
        ("tls12", &rustls::version::TLS12),
    ] {
        let config = pki.client_config(None, &[version]);
        let (client, mut conn) =
            try_connect(tls_options(&broker, id, config)).expect("TLS client accepted");
        let payload = format!("over {id}").into_bytes();
        assert_eq!(
            round_trip(&client, &mut conn, &format!("tls/{id}"), &payload),
            payload
        );
    }
}

/// A plain MQTT CONNECT sent to a TLS listener is not answered with a CONNACK.
#[test]
fn plain_mqtt_to_a_tls_listener_gets_no_connack() {
    let pki = Pki::new("plain");
    let broker = Broker::start(&pki.listener_conf(""));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", broker.port)).expect("TCP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = stream.write_all(&crate::common::connect_packet("plain", true, 30));
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        // Closed, reset or silent: no CONNACK.
        Ok(0) | Err(_) => {}
        // A TLS alert record (content type 21) is fine; a CONNACK (0x20) is not.
        Ok(n) => assert_ne!(
            reply[0],
            0x20,
            "a CONNACK came back over plain TCP: {:?}",
            &reply[..n]
        ),
    }
}

/// require_certificate: a client certificate signed by cafile is accepted; no certificate,
/// one from another CA, or an expired one is refused in the handshake.
#[test]
fn require_certificate_accepts_only_valid_client_certificates() {
    let pki = Pki::new("mtls");
    let conf = pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\n",
        pki.path("ca.pem")
    ));
    let broker = Broker::start(&conf);
    let tls13 = [&rustls::version::TLS13];

    let (client, mut conn) = try_connect(tls_options(
        &broker,
        "good",
        pki.client_config(Some("client"), &tls13),
    ))
    .expect("valid client certificate accepted");
    assert_eq!(round_trip(&client, &mut conn, "mtls/ok", b"hi"), b"hi");

    for (id, cert) in [
        ("none", None),
        ("rogue", Some("rogue")),
        ("expired", Some("expired")),
    ] {
        let result = try_connect(tls_options(&broker, id, pki.client_config(cert, &tls13)));
        assert!(
            result.is_err(),
            "client with certificate {cert:?} was accepted"
        );
    }
}

/// tls_version tlsv1.3 refuses a client that only speaks TLS 1.2.
#[test]
fn tls_version_sets_the_minimum() {
    let pki = Pki::new("version");
    let broker = Broker::start(&pki.listener_conf("tls_version tlsv1.3\n"));
    let result = try_connect(tls_options(
        &broker,
        "old",
        pki.client_config(None, &[&rustls::version::TLS12]),
    ));
    assert!(
        result.is_err(),
        "a TLS 1.2 client was accepted by a tlsv1.3 listener"
    );
    let accepted = try_connect(tls_options(
        &broker,
        "new",
        pki.client_config(None, &[&rustls::version::TLS13]),
    ));
    assert!(
        accepted.is_ok(),
        "TLS 1.3 client refused: {:?}",
        accepted.err()
    );
}

/// Publishes on `topic` after subscribing to `filter`; returns whether it came back.
fn comes_back(client: &Client, conn: &mut rumqttc::Connection, filter: &str, topic: &str) -> bool {
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, b"x".to_vec())
        .unwrap();
    let deadline = std::time::Instant::now() + crate::common::QUIET * 2;
    while std::time::Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) = conn.recv_timeout(crate::common::QUIET)
        {
            if p.topic == topic {
                return true;
            }
        }
    }
    false
}

fn write_file(pki: &Pki, name: &str, contents: &str) -> String {
    std::fs::write(pki.dir.join(name), contents).unwrap();
    pki.path(name)
}

/// use_identity_as_username: the client certificate's common name is the username for
/// the ACL; the CONNECT's username and password are ignored and the password file is
/// not consulted (Mosquitto 2).
#[test]
fn use_identity_as_username_makes_the_common_name_the_username() {
    let pki = Pki::new("identity");
    let acl = write_file(
        &pki,
        "acl",
        "user sensor-7\ntopic readwrite sensors/sensor-7/#\n",
    );
    // A password file that does not know sensor-7, nor the CONNECT's "alice".
    let hash = culex::auth::hash_password(
        b"builder",
        culex::auth::HashFormat::Sha512Pbkdf2 {
            iterations: std::num::NonZeroU32::new(101).unwrap(),
        },
        b"twelve bytes",
    );
    let passwords = write_file(&pki, "passwd", &format!("bob:{hash}\n"));
    let conf = pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\nuse_identity_as_username true\n\
         allow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n",
        pki.path("ca.pem")
    ));
    let broker = Broker::start(&conf);
    let mut options = tls_options(
        &broker,
        "id-7",
        pki.client_config(Some("client"), &[&rustls::version::TLS13]),
    );
    options.set_credentials("alice", "not checked");
    let (client, mut conn) = try_connect(options).expect("certificate identity accepted");
    assert!(
        comes_back(&client, &mut conn, "sensors/#", "sensors/sensor-7/temp"),
        "sensor-7 could not use its own topics"
    );
    assert!(
        !comes_back(&client, &mut conn, "sensors/#", "sensors/sensor-9/temp"),
        "sensor-7 published on another sensor's topic"
    );
    if !Broker::is_mosquitto() {
        assert!(
            broker
                .log_text()
                .contains("as id-7 (p2, c1, k30, u'sensor-7')"),
            "log: {}",
            broker.log_text()
        );
    }
}

/// use_subject_as_username: the whole subject, in OpenSSL's RFC 2253 form, is the
/// username.
#[test]
fn use_subject_as_username_makes_the_subject_the_username() {
    let pki = Pki::new("subject");
    let acl = write_file(
        &pki,
        "acl",
        "user CN=sensor-8,O=Acme\\, Inc.\ntopic readwrite acme/#\n",
    );
    let conf = pki.listener_conf(&format!(
        "cafile {}\nrequire_certificate true\nuse_subject_as_username true\n\
         allow_anonymous false\nacl_file {acl}\n",
        pki.path("ca.pem")
    ));
    let broker = Broker::start(&conf);
    let tls13 = [&rustls::version::TLS13];
    let (client, mut conn) = try_connect(tls_options(
        &broker,
        "acme",
        pki.client_config(Some("acme"), &tls13),
    ))
    .expect("certificate subject accepted");
    assert!(comes_back(&client, &mut conn, "acme/#", "acme/line-1"));
    // Another certificate is another username, without the grant.
    let (client, mut conn) = try_connect(tls_options(
        &broker,
        "other",
        pki.client_config(Some("client"), &tls13),
    ))
    .expect("certificate subject accepted");
    assert!(!comes_back(&client, &mut conn, "acme/#", "acme/line-2"));
}

/// use_identity_as_username on a listener where the certificate is optional: a client
/// without one has no username and is refused as a bad username (0x04), as Mosquitto does.
#[test]
fn use_identity_as_username_refuses_a_client_without_certificate() {
    let pki = Pki::new("nocert");
    let conf = pki.listener_conf(&format!(
        "cafile {}\nuse_identity_as_username true\n",
        pki.path("ca.pem")
    ));
    let broker = Broker::start(&conf);
    let mut options = tls_options(
        &broker,
        "anon",
        pki.client_config(None, &[&rustls::version::TLS13]),
    );
    options.set_credentials("alice", "secret");
    let refusal = try_connect(options).err().unwrap_or_default();
    assert!(
        refusal.contains("BadUserNamePassword"),
        "expected a refusal with 0x04, got {refusal:?}"
    );
}

/// Issue #19: a `certfile` holding only the leaf, signed by an intermediate that is in
/// `cafile`. OpenSSL (Mosquitto) sends the chain it builds from cafile; so does culex,
/// and a client that trusts only the root completes the handshake.
#[test]
fn leaf_only_certfile_is_sent_with_its_intermediate_from_cafile() {
    let pki = Pki::new("chain");
    let (root_cert, root) = new_ca("chain root");
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "chain intermediate");
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let inter_cert = params.signed_by(&key, &root).unwrap();
    let inter = Issuer::new(params, key);
    let (leaf_pem, leaf_key) = leaf(
        &inter,
        "localhost",
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let certfile = write_file(&pki, "leaf.pem", &leaf_pem);
    let keyfile = write_file(&pki, "leaf.key", &leaf_key);
    let cafile = write_file(
        &pki,
        "cas.pem",
        &format!("{}{}", root_cert.pem(), inter_cert.pem()),
    );
    let broker = Broker::start(&format!(
        "certfile {certfile}\nkeyfile {keyfile}\ncafile {cafile}\n"
    ));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root_cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (client, mut conn) = try_connect(tls_options(&broker, "chain", Arc::new(config)))
        .expect("a client trusting only the root accepts the chain");
    assert_eq!(round_trip(&client, &mut conn, "chain/t", b"ok"), b"ok");
}

/// Runs `openssl` in `dir`; the X.509 v1 tests need certificates only its `x509 -req`
/// makes (rcgen writes v3 only).
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed by this test (apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// `man mosquitto-tls`'s recipe on Debian 12 (OpenSSL 3.0): a v3 CA from `req -x509`,
/// server and client certificates from `x509 -req` without `-extfile`, which are X.509
/// version 1. Returns the directory.
fn mosquitto_tls_recipe(pki: &Pki) -> PathBuf {
    let dir = pki.dir.join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "30",
            "-nodes",
            "-subj",
            "/CN=recipe CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    for (name, cn) in [("server", "localhost"), ("client", "sensor-v1")] {
        openssl(&dir, &["genrsa", "-out", &format!("{name}.key"), "2048"]);
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "30",
            ],
        );
    }
    let server = std::fs::read_to_string(dir.join("server.crt")).unwrap();
    let der = CertificateDer::from_pem_slice(server.as_bytes()).unwrap();
    // The recipe's premise: no [0] version field after the TBSCertificate's header.
    assert!(
        !der.windows(3).take(12).any(|w| w == [0xa0, 0x03, 0x02]),
        "openssl made a v3 server certificate; the test needs v1"
    );
    dir
}

/// A server verifier that accepts exactly one certificate: the X.509 v1 server
/// certificate rustls's webpki cannot verify, but which OpenSSL clients accept. The
/// handshake signature is checked against the key's public half (`SPKI`), since webpki
/// will not read the key out of a v1 certificate either. TLS 1.3 only.
#[derive(Debug)]
struct ExactlyThisCert {
    cert: CertificateDer<'static>,
    spki: rustls::pki_types::SubjectPublicKeyInfoDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for ExactlyThisCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("another certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("this test speaks TLS 1.3".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &self.spki,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Issue #19: culex starts with the recipe's X.509 v1 server certificate and proves it
/// holds its key in the handshake (it refused to start: `UnsupportedCertVersion`).
#[test]
fn x509_v1_server_certificate_from_the_mosquitto_tls_recipe_is_served() {
    let pki = Pki::new("v1server");
    let dir = mosquitto_tls_recipe(&pki);
    let broker = Broker::start(&format!(
        "certfile {0}/server.crt\nkeyfile {0}/server.key\n",
        dir.display()
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_file(dir.join("server.crt")).unwrap();
    let spki = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap())
        .unwrap()
        .public_key()
        .expect("an RSA key has a public half")
        .into_owned();
    let verifier = ExactlyThisCert {
        cert,
        spki,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let (client, mut conn) = try_connect(tls_options(&broker, "v1", Arc::new(config)))
        .expect("the v1 server certificate is served and its key signs the handshake");
    assert_eq!(round_trip(&client, &mut conn, "v1/t", b"v1"), b"v1");
}

/// Issue #19: an X.509 v1 client certificate cannot be verified by rustls-webpki; it is
/// refused in the handshake, and the log says how to make a v3 one (culex's text).
#[test]
fn x509_v1_client_certificate_is_refused_with_advice() {
    let pki = Pki::new("v1client");
    let dir = mosquitto_tls_recipe(&pki);
    let conf = pki.listener_conf(&format!(
        "cafile {}/ca.crt\nrequire_certificate true\n",
        dir.display()
    ));
    let broker = Broker::start_culex(&conf);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = vec![CertificateDer::from_pem_file(dir.join("client.crt")).unwrap()];
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap())
        .unwrap();
    // rustls's with_client_auth_cert would itself refuse the v1 certificate.
    let resolver =
        rustls::sign::SingleCertAndKey::from(rustls::sign::CertifiedKey::new(certs, key));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(resolver));
    let result = try_connect(tls_options(&broker, "v1client", Arc::new(config)));
    assert!(result.is_err(), "a v1 client certificate was accepted");
    assert!(
        crate::common::eventually(WAIT, || broker.log_text().contains("-extfile v3.ext")),
        "log: {}",
        broker.log_text()
    );
}
