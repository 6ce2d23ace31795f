//! The few fields of an X.509 certificate that a TLS listener needs before any handshake,
//! read from its DER without rustls-webpki (which refuses version 1 certificates
//! outright), and the server's certificate chain completed from `cafile`.
//!
//! - **Chain**: Mosquitto gives OpenSSL the listener's `certfile` with
//!   `SSL_CTX_use_certificate_chain_file` and `cafile` as the verify store. When the
//!   certfile holds the leaf alone, OpenSSL builds the chain it sends from that store
//!   (`ssl_add_cert_chain`), so a leaf signed by an intermediate that is only in
//!   `cafile` works with clients that trust the root alone. [`complete_chain`] does the
//!   same: from the leaf, each issuer is looked up in the CA certificates by subject
//!   (and by key identifier, RFC 5280 4.2.1.1, when both certificates carry one), and
//!   taken only if its key verifies the certificate's signature, when the algorithm is
//!   one of the provider's. The self-signed root that ends the chain is not sent (RFC
//!   8446 4.4.2: the client must already have it).
//! - **Version 1** (RFC 5280 4.1.2.1: no version field, no extensions): what
//!   `openssl x509 -req` without `-extfile` makes, as `man mosquitto-tls` tells users
//!   to. The server's own certificate is not verified by the server, so a v1 leaf is
//!   served; its key is matched against `keyfile` here (rustls's own check parses the
//!   certificate with webpki and fails on v1).
//!
//! Nothing here decides trust: the client verifies the chain, and client certificates
//! are verified by rustls-webpki. Parsing never panics; a certificate this cannot read
//! is simply not used to extend a chain.

use super::cert_name::tlv;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

/// DER tags used below.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
/// `[0] EXPLICIT Version`, `[3] EXPLICIT Extensions` (TBSCertificate); `[0] IMPLICIT
/// KeyIdentifier` (AuthorityKeyIdentifier).
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_3: u8 = 0xa3;
const KEY_ID_0: u8 = 0x80;

/// id-ce-subjectKeyIdentifier, id-ce-authorityKeyIdentifier, id-ce-basicConstraints.
const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// Longest chain built: more intermediates than any real PKI uses, and a bound on a
/// loop of certificates that name each other.
const MAX_CHAIN: usize = 10;

/// The fields of one certificate, borrowed from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// RFC 5280's value: 0 is v1, 2 is v3.
    pub version: u8,
    /// The whole TBSCertificate TLV: what the issuer signed.
    tbs: &'a [u8],
    /// Contents of the outer signatureAlgorithm AlgorithmIdentifier.
    signature_algorithm: &'a [u8],
    /// The signature's bits (BIT STRING contents without the unused-bits byte).
    signature: &'a [u8],
    /// The issuer and subject Name TLVs.
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// The whole SubjectPublicKeyInfo TLV.
    pub spki: &'a [u8],
    /// Contents of the SPKI's AlgorithmIdentifier, and the key's bits.
    key_algorithm: &'a [u8],
    public_key: &'a [u8],
    subject_key_id: Option<&'a [u8]>,
    authority_key_id: Option<&'a [u8]>,
    /// basicConstraints cA; `None` without the extension (every v1 certificate).
    pub is_ca: Option<bool>,
}

impl<'a> Certificate<'a> {
    /// Reads a certificate's DER; `None` if it is not one this can read.
    pub fn parse(der: &'a [u8]) -> Option<Certificate<'a>> {
        let (tag, cert, rest) = tlv(der)?;
        if tag != SEQUENCE || !rest.is_empty() {
            return None;
        }
        let tbs_len = der_len(cert)?;
        let tbs = &cert[..tbs_len];
        let (_, tbs_body, after_tbs) = tlv(cert)?;
        let (tag, signature_algorithm, after_alg) = tlv(after_tbs)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, signature, trailing) = tlv(after_alg)?;
        if tag != BIT_STRING || !trailing.is_empty() {
            return None;
        }
        let signature = bits(signature)?;

        let mut body = tbs_body;
        let mut version = 0;
        let (tag, contents, rest) = tlv(body)?;
        if tag == CONTEXT_0 {
            let (tag, value, _) = tlv(contents)?;
            if tag != INTEGER || value.len() != 1 {
                return None;
            }
            version = value[0];
            body = rest;
        }
        let (tag, _serial, rest) = tlv(body)?;
        if tag != INTEGER {
            return None;
        }
        let (_signature_inner, rest) = split(rest)?;
        let (issuer, rest) = split(rest)?;
        let (_validity, rest) = split(rest)?;
        let (subject, rest) = split(rest)?;
        let (spki, mut rest) = split(rest)?;
        let (_, spki_body, _) = tlv(spki)?;
        let (tag, key_algorithm, spki_rest) = tlv(spki_body)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, key_bits, _) = tlv(spki_rest)?;
        if tag != BIT_STRING {
            return None;
        }
        let mut cert = Certificate {
            version,
            tbs,
            signature_algorithm,
            signature,
            issuer,
            subject,
            spki,
            key_algorithm,
            public_key: bits(key_bits)?,
            subject_key_id: None,
            authority_key_id: None,
            is_ca: None,
        };
        // issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
        while let Some((tag, contents, after)) = tlv(rest) {
            rest = after;
            if tag == CONTEXT_3 {
                cert.read_extensions(contents)?;
            }
        }
        Some(cert)
    }

    fn read_extensions(&mut self, explicit: &'a [u8]) -> Option<()> {
        let (tag, mut list, _) = tlv(explicit)?;
        if tag != SEQUENCE {
            return None;
        }
        while !list.is_empty() {
            let (_, extension, rest) = tlv(list)?;
            list = rest;
            let (tag, oid, mut fields) = tlv(extension)?;
            if tag != OID {
                return None;
            }
            let (mut tag, mut value, after) = tlv(fields)?;
            if tag == BOOLEAN {
                fields = after;
                (tag, value, _) = tlv(fields)?;
            }
            if tag != OCTET_STRING {
                return None;
            }
            match oid {
                SUBJECT_KEY_ID => {
                    let (tag, id, _) = tlv(value)?;
                    self.subject_key_id = (tag == OCTET_STRING).then_some(id);
                }
                AUTHORITY_KEY_ID => {
                    let (_, aki, _) = tlv(value)?;
                    if let Some((KEY_ID_0, id, _)) = tlv(aki) {
                        self.authority_key_id = Some(id);
                    }
                }
                BASIC_CONSTRAINTS => {
                    let (_, constraints, _) = tlv(value)?;
                    self.is_ca =
                        Some(matches!(tlv(constraints), Some((BOOLEAN, [b], _)) if *b != 0));
                }
                _ => {}
            }
        }
        Some(())
    }

    /// Self-signed by its subject (a root): issuer and subject are the same Name.
    pub fn is_self_issued(&self) -> bool {
        self.issuer == self.subject
    }

    /// Whether `issuer` may have signed this certificate: names (and key identifiers,
    /// where both have one) match, and `issuer`'s key verifies the signature when the
    /// provider knows the algorithm.
    fn is_issued_by(&self, issuer: &Certificate<'_>, provider: &CryptoProvider) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        if let (Some(aki), Some(ski)) = (self.authority_key_id, issuer.subject_key_id) {
            if aki != ski {
                return false;
            }
        }
        let algorithm = provider
            .signature_verification_algorithms
            .all
            .iter()
            .find(|a| {
                *a.signature_alg_id().as_ref() == *self.signature_algorithm
                    && *a.public_key_alg_id().as_ref() == *issuer.key_algorithm
            });
        match algorithm {
            Some(a) => a
                .verify_signature(issuer.public_key, self.tbs, self.signature)
                .is_ok(),
            // An algorithm ring lacks (RSA-PSS with parameters, say): the names match,
            // and the client, which verifies the chain, decides.
            None => true,
        }
    }
}

/// The chain to send for `certfile`'s certificates: unchanged if the file holds more than
/// the leaf (OpenSSL then sends the file's chain as it is), else the leaf followed by the
/// issuers found in `cas`, up to (not including) a self-signed root.
pub fn complete_chain(
    certs: Vec<CertificateDer<'static>>,
    cas: &[CertificateDer<'static>],
    provider: &CryptoProvider,
) -> Vec<CertificateDer<'static>> {
    if certs.len() != 1 {
        return certs;
    }
    let parsed_cas: Vec<(usize, Certificate<'_>)> = cas
        .iter()
        .enumerate()
        .filter_map(|(i, der)| Certificate::parse(der).map(|c| (i, c)))
        .collect();
    let mut chain_indexes: Vec<usize> = Vec::new();
    {
        let Some(mut current) = Certificate::parse(&certs[0]) else {
            return certs;
        };
        while !current.is_self_issued() && chain_indexes.len() < MAX_CHAIN {
            let next = parsed_cas
                .iter()
                .find(|(i, ca)| !chain_indexes.contains(i) && current.is_issued_by(ca, provider));
            let Some((i, ca)) = next else { break };
            if ca.is_self_issued() {
                break;
            }
            chain_indexes.push(*i);
            current = ca.clone();
        }
    }
    let mut chain = certs;
    chain.extend(chain_indexes.into_iter().map(|i| cas[i].clone()));
    chain
}

/// Length of the first TLV of `input`, header included.
fn der_len(input: &[u8]) -> Option<usize> {
    let (_, _, rest) = tlv(input)?;
    Some(input.len() - rest.len())
}

/// Splits the first whole TLV (header included) off `input`.
fn split(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = der_len(input)?;
    Some(input.split_at(len))
}

/// A BIT STRING's bits, which for keys and signatures are whole bytes.
fn bits(contents: &[u8]) -> Option<&[u8]> {
    match contents.split_first() {
        Some((0, bits)) => Some(bits),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca(
        name: &str,
        issuer: Option<&Issuer<'static, KeyPair>>,
    ) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.der().to_vec(), Issuer::new(params, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn der(bytes: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(bytes.to_vec())
    }

    #[test]
    fn fields_of_a_v3_certificate() {
        let (root, root_issuer) = ca("root", None);
        let (inter, _) = ca("inter", Some(&root_issuer));
        let root = Certificate::parse(&root).unwrap();
        let inter = Certificate::parse(&inter).unwrap();
        assert_eq!(inter.version, 2);
        assert_eq!(inter.is_ca, Some(true));
        assert!(root.is_self_issued());
        assert!(!inter.is_self_issued());
        assert_eq!(inter.issuer, root.subject);
        assert!(inter.is_issued_by(&root, &provider()));
        assert!(!root.is_issued_by(&inter, &provider()));
    }

    #[test]
    fn leaf_alone_gets_its_intermediates_but_not_the_root() {
        let (root, root_issuer) = ca("root", None);
        let (inter1, inter1_issuer) = ca("inter 1", Some(&root_issuer));
        let (inter2, inter2_issuer) = ca("inter 2", Some(&inter1_issuer));
        let leaf = leaf(&inter2_issuer);
        // cafile order does not matter; an unrelated CA is left out.
        let (other, _) = ca("other", None);
        let cas = [der(&root), der(&other), der(&inter2), der(&inter1)];
        let chain = complete_chain(vec![der(&leaf)], &cas, &provider());
        assert_eq!(chain, vec![der(&leaf), der(&inter2), der(&inter1)]);
    }

    #[test]
    fn a_ca_with_the_issuers_name_but_another_key_is_not_taken() {
        let (root, root_issuer) = ca("root", None);
        let (_, inter_issuer) = ca("inter", Some(&root_issuer));
        // Same name "inter", different key: the impostor's signature does not verify.
        let (impostor, _) = ca("inter", Some(&root_issuer));
        let leaf = leaf(&inter_issuer);
        let chain = complete_chain(vec![der(&leaf)], &[der(&root), der(&impostor)], &provider());
        assert_eq!(chain, vec![der(&leaf)]);
    }

    #[test]
    fn a_certfile_with_a_chain_is_sent_as_it_is() {
        let (root, root_issuer) = ca("root", None);
        let (inter, inter_issuer) = ca("inter", Some(&root_issuer));
        let leaf = leaf(&inter_issuer);
        let certs = vec![der(&leaf), der(&inter)];
        assert_eq!(
            complete_chain(certs.clone(), &[der(&root)], &provider()),
            certs
        );
    }

    #[test]
    fn garbage_parses_to_none_without_panicking() {
        let (root, _) = ca("root", None);
        for len in 0..root.len() {
            assert!(
                Certificate::parse(&root[..len]).is_none(),
                "prefix of {len} bytes"
            );
        }
        let mut extra = root.clone();
        extra.push(0);
        assert!(Certificate::parse(&extra).is_none());
        assert!(Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        // Every single-byte change reads as something or nothing, never a panic.
        for i in 0..root.len() {
            let mut bytes = root.clone();
            bytes[i] ^= 0xff;
            let _ = Certificate::parse(&bytes);
        }
    }
}
