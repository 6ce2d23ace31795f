//! TLS listeners with rustls: building a `ServerConfig` from Mosquitto's listener options
//! (certfile, keyfile, cafile/capath, require_certificate, tls_version, crlfile), and
//! the byte pumping between a socket, a `ServerConnection` and the broker.
//!
//! The crypto provider is *ring*, named explicitly (never the process default): it
//! cross-compiles for 32- and 64-bit ARM with a plain C compiler, where aws-lc-rs needs
//! cmake and a larger toolchain, and it keeps the binary smaller.

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
    let key = PrivateKeyDer::from_pem_file(&options.keyfile).map_err(|e| {
        TlsError(format!(
            "keyfile {}: no usable private key ({e})",
            options.keyfile.display()
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

    let builder = match trust_anchors(options)? {
        Some(roots) => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            if let Some(crlfile) = &options.crlfile {
                let crls = CertificateRevocationListDer::pem_file_iter(crlfile)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| TlsError(format!("crlfile {}: {e}", crlfile.display())))?;
                verifier = verifier.with_crls(crls);
            }
            if !options.require_certificate {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError(format!("client certificate verification: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if options.require_certificate => {
            return Err(TlsError(
                "require_certificate true needs cafile or capath to verify client certificates"
                    .into(),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError(format!(
            "certfile {} and keyfile {} do not work together: {e}",
            options.certfile.display(),
            options.keyfile.display()
        ))
    })?;
    Ok(Arc::new(config))
}

fn load_certs(path: &Path, option: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{option} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{option} {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The CA certificates of `cafile` and every `*.pem`/`*.crt` file of `capath`.
fn trust_anchors(options: &TlsOptions) -> Result<Option<RootCertStore>, TlsError> {
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
    let mut roots = RootCertStore::empty();
    for (path, option) in files {
        for cert in load_certs(&path, option)? {
            roots
                .add(cert)
                .map_err(|e| TlsError(format!("{option} {}: {e}", path.display())))?;
        }
    }
    Ok(Some(roots))
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
            let certs = load_certs(certfile, "bridge_certfile")?;
            let key = PrivateKeyDer::from_pem_file(keyfile).map_err(|e| {
                TlsError(format!(
                    "bridge_keyfile {}: no usable private key ({e})",
                    keyfile.display()
                ))
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsError(format!(
                    "bridge_certfile {} and bridge_keyfile {} do not work together: {e}",
                    certfile.display(),
                    keyfile.display()
                ))
            })?
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
