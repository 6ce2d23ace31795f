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
