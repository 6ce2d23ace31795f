//! The username a client certificate stands for, as Mosquitto derives it for
//! `use_identity_as_username` and `use_subject_as_username`.
//!
//! - Identity: the value of the subject's first commonName attribute, in DER order
//!   (Mosquitto takes `X509_NAME_get_index_by_NID(NID_commonName, -1)`). No CN: no username.
//! - Subject: the whole subject in OpenSSL's `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`
//!   form, which is what Mosquitto logs and checks ACLs against: RDNs last first, joined
//!   by `,` (attributes of one multi-valued RDN by `+`), OpenSSL's short names (`CN`, `O`,
//!   `emailAddress`...), the RFC 2253 special characters escaped with `\`, and every byte
//!   of 0x80 and above (and control characters) as `\XX` in upper-case hex. An attribute
//!   OpenSSL has no name for is written as its dotted OID and `#` + the hex of its DER.
//!   Checked against Mosquitto 2.0.11: `C=GB/O=Acme, Inc./OU=Sensörs/CN=sensor-7/CN=second/
//!   emailAddress=a@b.c` is logged as `emailAddress=a@b.c,CN=second,CN=sensor-7,
//!   OU=Sens\C3\B6rs,O=Acme\, Inc.,C=GB`, and its identity is `sensor-7`.
//!
//! The certificate itself is parsed by rustls-webpki (which verified it during the
//! handshake); this module decodes only the subject Name's DER.

use std::fmt::Write;

/// Which of Mosquitto's two options a listener has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUsername {
    /// `use_identity_as_username`: the common name.
    Identity,
    /// `use_subject_as_username`: the subject in RFC 2253 form.
    Subject,
}

/// The username `certificate` (DER) stands for, or `None` if it has none (no CN, a CN
/// that is not a UTF-8 string without NUL) or cannot be parsed.
pub fn username(certificate: &[u8], kind: CertUsername) -> Option<String> {
    let der = rustls::pki_types::CertificateDer::from(certificate);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let attributes = name_attributes(cert.subject())?;
    match kind {
        CertUsername::Identity => attributes
            .iter()
            .find(|a| a.oid == COMMON_NAME)
            .and_then(|a| text(a.tag, a.value))
            .filter(|s| !s.contains('\0')),
        CertUsername::Subject => Some(rfc2253(&attributes)),
    }
}

/// 2.5.4.3, as its DER contents.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One AttributeTypeAndValue of a Name, borrowed from the certificate.
struct Attribute<'a> {
    /// Index of its RelativeDistinguishedName (attributes of one RDN share it).
    rdn: usize,
    /// The OID's DER contents.
    oid: &'a [u8],
    tag: u8,
    value: &'a [u8],
    /// The whole value TLV, for attributes printed as `#hex`.
    value_der: &'a [u8],
}

/// The attributes of a Name, given the contents of its outer SEQUENCE, in DER order.
fn name_attributes(mut name: &[u8]) -> Option<Vec<Attribute<'_>>> {
    let mut attributes = Vec::new();
    let mut rdn = 0;
    while !name.is_empty() {
        let (tag, mut set, rest) = tlv(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, mut pair, rest) = tlv(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (tag, oid, rest) = tlv(pair)?;
            if tag != 0x06 {
                return None;
            }
            pair = rest;
            let (tag, value, rest) = tlv(pair)?;
            if !rest.is_empty() {
                return None;
            }
            attributes.push(Attribute {
                rdn,
                oid,
                tag,
                value,
                value_der: pair,
            });
        }
        rdn += 1;
    }
    Some(attributes)
}

/// Splits one DER TLV off `input`: (tag, contents, rest). Low tag numbers only (all a
/// Name uses); lengths up to four bytes.
pub(super) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// The text of a directory string, converted to UTF-8 as OpenSSL's
/// `ASN1_STRFLGS_UTF8_CONVERT` does; `None` for a type that is not a string.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String; NumericString, PrintableString, T61String, IA5String,
        // VisibleString: OpenSSL takes T61String as Latin-1 and the others are ASCII.
        0x0c => String::from_utf8(value.to_vec()).ok(),
        0x12 | 0x13 | 0x16 | 0x1a => std::str::from_utf8(value)
            .ok()
            .filter(|s| s.is_ascii())
            .map(String::from),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString (UCS-2) and UniversalString (UCS-4), big-endian.
        0x1e if value.len().is_multiple_of(2) => char::decode_utf16(
            value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        0x1c if value.len().is_multiple_of(4) => value
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// OpenSSL's short name of an attribute type (its `OBJ_nid2sn`), for the attributes
/// certificates carry.
fn short_name(oid: &[u8]) -> Option<&'static str> {
    const X520: &[(u8, &str)] = &[
        (3, "CN"),
        (4, "SN"),
        (5, "serialNumber"),
        (6, "C"),
        (7, "L"),
        (8, "ST"),
        (9, "street"),
        (10, "O"),
        (11, "OU"),
        (12, "title"),
        (13, "description"),
        (15, "businessCategory"),
        (17, "postalCode"),
        (41, "name"),
        (42, "GN"),
        (43, "initials"),
        (44, "generationQualifier"),
        (45, "x500UniqueIdentifier"),
        (46, "dnQualifier"),
        (65, "pseudonym"),
        (97, "organizationIdentifier"),
    ];
    match oid {
        [0x55, 0x04, n] => X520.iter().find(|(k, _)| k == n).map(|(_, name)| *name),
        // 1.2.840.113549.1.9.1
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => Some("emailAddress"),
        // 0.9.2342.19200300.100.1.25 and .1
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    }
}

/// An OID's dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut arc: u64 = 0;
    let mut first = true;
    for &b in oid {
        arc = (arc << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if first {
            let (x, y) = match arc {
                0..=39 => (0, arc),
                40..=79 => (1, arc - 40),
                _ => (2, arc - 80),
            };
            let _ = write!(out, "{x}.{y}");
            first = false;
        } else {
            let _ = write!(out, ".{arc}");
        }
        arc = 0;
    }
    out
}

/// The subject as `X509_NAME_print_ex(.., XN_FLAG_RFC2253)` prints it.
fn rfc2253(attributes: &[Attribute<'_>]) -> String {
    let mut out = String::new();
    let mut previous_rdn = None;
    // XN_FLAG_DN_REV reverses the flattened attribute list.
    for a in attributes.iter().rev() {
        if let Some(previous) = previous_rdn {
            out.push(if previous == a.rdn { '+' } else { ',' });
        }
        previous_rdn = Some(a.rdn);
        let name = short_name(a.oid);
        match name {
            Some(name) => out.push_str(name),
            None => out.push_str(&dotted(a.oid)),
        }
        out.push('=');
        // XN_FLAG_DUMP_UNKNOWN_FIELDS and ASN1_STRFLGS_DUMP_UNKNOWN: an unknown attribute
        // or a value that is not a string is its DER in hex.
        match text(a.tag, a.value).filter(|_| name.is_some()) {
            Some(value) => escape_into(&mut out, &value),
            None => {
                out.push('#');
                for b in a.value_der {
                    let _ = write!(out, "{b:02X}");
                }
            }
        }
    }
    out
}

/// OpenSSL's `do_esc_char` with ESC_2253, ESC_CTRL and ESC_MSB, over the UTF-8 bytes.
fn escape_into(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let is_first = i == 0;
        let is_last = i + 1 == bytes.len();
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if is_first => out.push_str("\\#"),
            b' ' if is_first || is_last => out.push_str("\\ "),
            0x00..=0x1f | 0x7f..=0xff => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of one attribute (OID contents, string tag, value) as a SET of one SEQUENCE.
    fn rdn(attributes: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut set = Vec::new();
        for (oid, tag, value) in attributes {
            let mut pair = vec![0x06, oid.len() as u8];
            pair.extend_from_slice(oid);
            pair.extend_from_slice(&[*tag, value.len() as u8]);
            pair.extend_from_slice(value);
            set.extend_from_slice(&[0x30, pair.len() as u8]);
            set.extend(pair);
        }
        let mut out = vec![0x31, set.len() as u8];
        out.extend(set);
        out
    }

    const C: &[u8] = &[0x55, 0x04, 0x06];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    fn subject(der: &[u8]) -> String {
        rfc2253(&name_attributes(der).expect("a valid Name"))
    }

    fn identity(der: &[u8]) -> Option<String> {
        name_attributes(der)?
            .iter()
            .find(|a| a.oid == COMMON_NAME)
            .and_then(|a| text(a.tag, a.value))
    }

    /// The subject Mosquitto 2.0.11 logged for this certificate (see the module docs).
    #[test]
    fn subject_is_printed_as_openssl_rfc2253() {
        let mut der = Vec::new();
        der.extend(rdn(&[(C, 0x13, b"GB")]));
        der.extend(rdn(&[(O, 0x0c, b"Acme, Inc.")]));
        der.extend(rdn(&[(OU, 0x0c, "Sensörs".as_bytes())]));
        der.extend(rdn(&[(COMMON_NAME, 0x0c, b"sensor-7")]));
        der.extend(rdn(&[(COMMON_NAME, 0x0c, b"second")]));
        der.extend(rdn(&[(EMAIL, 0x16, b"a@b.c")]));
        assert_eq!(
            subject(&der),
            "emailAddress=a@b.c,CN=second,CN=sensor-7,OU=Sens\\C3\\B6rs,O=Acme\\, Inc.,C=GB"
        );
        assert_eq!(identity(&der).as_deref(), Some("sensor-7"));
    }

    #[test]
    fn multi_valued_rdn_is_joined_with_plus_in_reverse() {
        let der = rdn(&[(OU, 0x0c, b"a"), (COMMON_NAME, 0x0c, b"b")]);
        assert_eq!(subject(&der), "CN=b+OU=a");
    }

    #[test]
    fn special_characters_are_escaped_as_openssl_does() {
        let der = rdn(&[(COMMON_NAME, 0x0c, b"#a+b;c<d>\"e\\ =f\x01 ")]);
        assert_eq!(subject(&der), "CN=\\#a\\+b\\;c\\<d\\>\\\"e\\\\ =f\\01\\ ");
    }

    #[test]
    fn unknown_attribute_is_dotted_oid_and_hex_der() {
        let der = rdn(&[(&[0x2a, 0x03, 0x04], 0x0c, b"xyz")]);
        assert_eq!(subject(&der), "1.2.3.4=#0C0378797A");
    }

    #[test]
    fn bmp_string_is_converted_to_utf8() {
        let der = rdn(&[(COMMON_NAME, 0x1e, &[0x00, 0x73, 0x00, 0xf6])]);
        assert_eq!(identity(&der).as_deref(), Some("sö"));
    }

    #[test]
    fn no_common_name_is_no_identity() {
        let der = rdn(&[(O, 0x0c, b"Acme")]);
        assert_eq!(identity(&der), None);
    }

    #[test]
    fn truncated_names_are_refused() {
        let der = rdn(&[(COMMON_NAME, 0x0c, b"sensor")]);
        for len in 1..der.len() {
            assert!(
                name_attributes(&der[..len]).is_none(),
                "prefix of {len} bytes"
            );
        }
        assert!(name_attributes(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn dotted_oids() {
        assert_eq!(dotted(EMAIL), "1.2.840.113549.1.9.1");
        assert_eq!(dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
    }
}
