//! TLS listeners with rustls: building a `ServerConfig` from Mosquitto's listener options
//! (certfile, keyfile, cafile/capath, require_certificate, tls_version, crlfile), and
//! the byte pumping between a socket, a `ServerConnection` and the broker.
//!
//! The crypto provider is *ring*, named explicitly (never the process default): it
//! cross-compiles for 32- and 64-bit ARM with a plain C compiler, where aws-lc-rs needs
//! cmake and a larger toolchain, and it keeps the binary smaller.

use super::cert_chain;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS options of one listener, as mosquitto.conf names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub require_certificate: bool,
    /// `tlsv1.2` or `tlsv1.3`: the minimum version. `None`: TLS 1.2 and 1.3.
    pub tls_version: Option<String>,
    pub crlfile: Option<PathBuf>,
}

/// Why a TLS listener cannot be set up; says which file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration of a TLS listener.
pub fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&options.certfile, "certfile")?;
    let key_der = PrivateKeyDer::from_pem_file(&options.keyfile).map_err(|e| {
        TlsError(format!(
            "keyfile {}: no usable private key: {}",
            options.keyfile.display(),
            describe_pem_error(&e)
        ))
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match options.tls_version.as_deref() {
        None => rustls::ALL_VERSIONS,
        Some("tlsv1.2") => rustls::ALL_VERSIONS,
        Some("tlsv1.3") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(TlsError(format!(
                "tls_version {other}: rustls supports tlsv1.2 and tlsv1.3 only"
            )))
        }
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;

    let ca_certs = ca_certificates(options)?;
    let builder = match &ca_certs {
        Some(cas) => {
            let roots = root_store(cas)?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            if let Some(crlfile) = &options.crlfile {
                let crls = CertificateRevocationListDer::pem_file_iter(crlfile)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        TlsError(format!(
                            "crlfile {}: {}",
                            crlfile.display(),
                            describe_pem_error(&e)
                        ))
                    })?;
                verifier = verifier.with_crls(crls);
            }
            if !options.require_certificate {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| {
                TlsError(format!(
                    "client certificate verification cannot be set up: {e}"
                ))
            })?;
            builder.with_client_cert_verifier(Arc::new(V1ClientCertRefusal(verifier)))
        }
        None if options.require_certificate => {
            return Err(TlsError(
                "require_certificate true needs cafile or capath to verify client certificates"
                    .into(),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let chain =
        cert_chain::complete_chain(certs, ca_certs.as_deref().unwrap_or_default(), &provider());
    let key = certified_key(chain, key_der, options, "")?;
    Ok(Arc::new(builder.with_cert_resolver(Arc::new(
        rustls::sign::SingleCertAndKey::from(key),
    ))))
}

/// The certificate chain with its private key, checked to belong together. rustls's own
/// check (`with_single_cert`) parses the certificate with webpki, which refuses X.509 v1
/// certificates (`UnsupportedCertVersion`); the server never verifies its own
/// certificate, so a v1 one is served, as OpenSSL does.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    options: &TlsOptions,
    prefix: &str,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let (certfile, keyfile) = (options.certfile.display(), options.keyfile.display());
    let key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| {
            TlsError(format!(
                "{prefix}keyfile {keyfile}: the key is not an RSA, ECDSA or Ed25519 private key culex can use"
            ))
        })?;
    let leaf = chain
        .first()
        .and_then(|c| cert_chain::Certificate::parse(c));
    let Some(leaf) = leaf else {
        return Err(TlsError(format!(
            "{prefix}certfile {certfile}: the first certificate cannot be read as an X.509 certificate"
        )));
    };
    if let Some(public_key) = key.public_key() {
        if public_key.as_ref() != leaf.spki {
            return Err(TlsError(format!(
                "{prefix}certfile {certfile} and {prefix}keyfile {keyfile} do not belong together: the private \
                 key is not the key of the certificate"
            )));
        }
    }
    Ok(rustls::sign::CertifiedKey::new(chain, key))
}

fn load_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError(format!(
                "{option} {}: {}",
                path.display(),
                describe_pem_error(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{option} {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// A PEM reading error in words (pki-types' own text prints bytes as Rust lists).
fn describe_pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        Error::NoItemsFound => "nothing usable in the file".into(),
        _ => "the file is not valid PEM".into(),
    }
}

/// The certificates of `cafile` and of every `*.pem`/`*.crt` file of `capath`.
fn ca_certificates(options: &TlsOptions) -> Result<Option<Vec<CertificateDer<'static>>>, TlsError> {
    let mut files = Vec::new();
    if let Some(cafile) = &options.cafile {
        files.push((cafile.clone(), "cafile"));
    }
    if let Some(capath) = &options.capath {
        let entries = std::fs::read_dir(capath)
            .map_err(|e| TlsError(format!("capath {}: {e}", capath.display())))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem" || x == "crt"))
            .collect();
        paths.sort();
        files.extend(paths.into_iter().map(|p| (p, "capath")));
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut certs = Vec::new();
    for (path, option) in files {
        certs.extend(load_certs(&path, option)?);
    }
    Ok(Some(certs))
}

/// Every CA certificate as a trust anchor. webpki takes X.509 v1 CA certificates as
/// anchors (it reads only their subject and key).
fn root_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            TlsError(format!(
                "CA certificate {} of cafile/capath cannot be used as a trust anchor: {}",
                index + 1,
                describe_error(&e)
            ))
        })?;
    }
    Ok(roots)
}

/// The CA certificates of `cafile` and `capath` as trust anchors.
fn trust_anchors(options: &TlsOptions) -> Result<Option<RootCertStore>, TlsError> {
    match ca_certificates(options)? {
        Some(certs) => Ok(Some(root_store(&certs)?)),
        None => Ok(None),
    }
}

/// What to tell a user whose client certificate is X.509 version 1.
const V1_CLIENT_CERT_ADVICE: &str = "the client certificate is an X.509 version 1 certificate, \
     which culex cannot verify (its verifier, rustls-webpki, takes version 3 only); sign the \
     client's request again with an extension so it becomes version 3: \
     'printf \"basicConstraints=CA:FALSE\\n\" > v3.ext; openssl x509 -req -in client.csr -CA ca.crt \
     -CAkey ca.key -CAcreateserial -out client.crt -days 365 -extfile v3.ext'";

/// A client certificate refused because it is version 1; its `Display` is the advice,
/// and so is its `Debug`, which rustls's own `Display` of the error uses.
struct V1ClientCertificate;

impl fmt::Debug for V1ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(V1_CLIENT_CERT_ADVICE)
    }
}

impl fmt::Display for V1ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(V1_CLIENT_CERT_ADVICE)
    }
}

impl std::error::Error for V1ClientCertificate {}

/// webpki's client verifier, with a version 1 client certificate refused up front with
/// advice instead of webpki's bare `UnsupportedCertVersion`. Accepting one would need a
/// path validation of our own (signatures, validity, revocation, constraints): not
/// something to write beside a verifier that exists.
#[derive(Debug)]
struct V1ClientCertRefusal(Arc<dyn rustls::server::danger::ClientCertVerifier>);

impl rustls::server::danger::ClientCertVerifier for V1ClientCertRefusal {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if cert_chain::Certificate::parse(end_entity).is_some_and(|c| c.version == 0) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(V1ClientCertificate))),
            ));
        }
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }
}

/// A rustls error in plain words, for log lines about one connection (rustls's own
/// `Display` prints several of its enums with Rust's debug formatting:
/// `received corrupt message of type InvalidContentType`, `Other(OtherError(..))`).
/// Mosquitto logs OpenSSL's reason (`OpenSSL Error[0]: error:0A00010B:SSL
/// routines::wrong version number` for a plain client on a TLS port), then `Client
/// <unknown> disconnected: Protocol error.`
pub fn describe_error(e: &rustls::Error) -> String {
    use rustls::Error;
    match e {
        Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
        | Error::InappropriateMessage { .. } => {
            "not a TLS record (a client speaking plain MQTT to a TLS port?)".into()
        }
        Error::InvalidMessage(_) | Error::InappropriateHandshakeMessage { .. } => {
            "malformed TLS message".into()
        }
        Error::AlertReceived(alert) => format!(
            "the peer ended the handshake with a '{}' alert{}",
            alert_name(*alert),
            match alert {
                rustls::AlertDescription::UnknownCA => {
                    " (it does not trust the certificate chain it was sent)"
                }
                rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::CertificateUnknown => {
                    " (it refused the certificate it was sent)"
                }
                _ => "",
            }
        ),
        Error::InvalidCertificate(e) => {
            format!("certificate refused: {}", describe_certificate_error(e))
        }
        Error::NoCertificatesPresented => {
            "the client sent no certificate (require_certificate is true)".into()
        }
        Error::PeerIncompatible(_) => {
            "the peer has no TLS version, cipher suite or key exchange in common with culex".into()
        }
        Error::PeerMisbehaved(_) => "the peer broke the TLS protocol".into(),
        Error::DecryptError => "a TLS record could not be decrypted".into(),
        Error::PeerSentOversizedRecord => "the peer sent an oversized TLS record".into(),
        Error::InvalidCertRevocationList(_) => "a certificate revocation list is invalid".into(),
        Error::General(text) => text.clone(),
        Error::Other(e) => e.to_string(),
        _ => "TLS failure".into(),
    }
}

fn describe_certificate_error(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::BadEncoding => "it is not a valid X.509 certificate".into(),
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
        C::Revoked => "it has been revoked (crlfile)".into(),
        C::UnknownIssuer => "it is not signed by a CA of cafile/capath".into(),
        C::UnknownRevocationStatus => "its revocation status is unknown".into(),
        C::BadSignature => "its signature does not verify".into(),
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm culex does not support".into()
        }
        C::UnhandledCriticalExtension => "it has a critical extension culex does not know".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "its extended key usage does not allow this use".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "it is not valid for the name connected to".into()
        }
        C::Other(other) => other.to_string(),
        _ => "it cannot be used".into(),
    }
}

/// TLS alert names as RFC 8446 6.2 writes them.
fn alert_name(alert: rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::RecordOverflow => "record_overflow",
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::UserCanceled => "user_canceled",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::UnrecognisedName => "unrecognized_name",
        A::NoApplicationProtocol => "no_application_protocol",
        A::CertificateRequired => "certificate_required",
        _ => "other",
    }
}

/// Where Linux distributions keep the system's CA bundle (OpenSSL's and Go's lists), for
/// a bridge with TLS and neither `bridge_cafile` nor `bridge_capath`. Reading the file
/// directly costs no dependency (rustls-native-certs would add openssl-probe and its own
/// copy of this list); `SSL_CERT_FILE` wins, as for OpenSSL.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// Whether a bridge speaks TLS: Mosquitto turns it on with `bridge_cafile`,
/// `bridge_capath` or 2.1's `bridge_tls_use_os_certs`.
pub fn is_bridge_tls(tls: &crate::config::BridgeTls) -> bool {
    tls.cafile.is_some()
        || tls.capath.is_some()
        || tls.tls_use_os_certs
        || tls.certfile.is_some()
        || tls.alpn.is_some()
}

/// Builds the client configuration of a TLS bridge: trust anchors (`bridge_cafile`,
/// `bridge_capath`, or the system's bundle), a client certificate (`bridge_certfile`,
/// `bridge_keyfile`: mutual TLS as AWS IoT Core wants), `bridge_tls_version`,
/// `bridge_alpn` and `bridge_insecure` (no host name check; the chain is still verified).
pub fn client_config(
    tls: &crate::config::BridgeTls,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let options = TlsOptions {
        cafile: tls.cafile.clone(),
        capath: tls.capath.clone(),
        ..TlsOptions::default()
    };
    let roots = match trust_anchors(&options)? {
        Some(roots) if !tls.tls_use_os_certs => roots,
        found => {
            let mut roots = found.unwrap_or_else(RootCertStore::empty);
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let file = from_env
                .into_iter()
                .chain(SYSTEM_CA_FILES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    TlsError(
                        "no system CA bundle found (install ca-certificates, or set bridge_cafile)"
                            .into(),
                    )
                })?;
            let (added, _) =
                roots.add_parsable_certificates(load_certs(&file, "system CA bundle")?);
            if added == 0 {
                return Err(TlsError(format!(
                    "system CA bundle {}: no usable certificate",
                    file.display()
                )));
            }
            roots
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.tls_version {
        Some(crate::config::TlsVersion::V1_3) => &[&rustls::version::TLS13],
        _ => rustls::ALL_VERSIONS,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
    let roots = Arc::new(roots);
    let builder = if tls.insecure {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError(format!("server certificate verification: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostnameCheck(inner)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.certfile, &tls.keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let options = TlsOptions {
                certfile: certfile.clone(),
                keyfile: keyfile.clone(),
                ..TlsOptions::default()
            };
            let certs = load_certs(certfile, "bridge_certfile")?;
            let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
                TlsError(format!(
                    "bridge_keyfile {}: no usable private key: {}",
                    keyfile.display(),
                    describe_pem_error(&e)
                ))
            })?;
            let key = certified_key(certs, key, &options, "bridge_")?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)))
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError(
                "bridge_certfile and bridge_keyfile must both be given".into(),
            ))
        }
    };
    if let Some(alpn) = &tls.alpn {
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(Arc::new(config))
}

/// `bridge_insecure true` (and the tools' `--insecure`, Mosquitto's meaning of both):
/// the chain must still lead to a trusted root, but the name in the certificate need not
/// be the address connected to.
#[derive(Debug)]
pub struct NoHostnameCheck(pub Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
