//! Just enough of X.509 (DER) to report on a certificate: validity dates,
//! subject and issuer names, and subject alternative names.
//!
//! The handshake itself is verified by rustls/webpki; this reader only
//! describes what the server sent, so it is lenient: a field it cannot read
//! is left out rather than failing the check.

use std::net::IpAddr;

/// What a diagnostic says about a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// `notBefore`, in seconds since the Unix epoch.
    pub(crate) not_before: Option<i64>,
    /// `notAfter`, in seconds since the Unix epoch.
    pub(crate) not_after: Option<i64>,
    /// The subject, shortened to its `CN` and `O` (`CN=api.example.com, O=Example`).
    pub(crate) subject: String,
    /// The issuer, the same way.
    pub(crate) issuer: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub(crate) names: Vec<String>,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads a DER certificate; `None` when it is not one.
pub(crate) fn parse(der: &[u8]) -> Option<CertInfo> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let mut next = || -> Option<(u8, &[u8])> {
        let (tag, content, after) = tlv(rest)?;
        rest = after;
        Some((tag, content))
    };
    let (mut tag, _) = next()?;
    if tag == 0xa0 {
        // [0] EXPLICIT version
        (tag, _) = next()?;
    }
    // serialNumber INTEGER
    if tag != 0x02 {
        return None;
    }
    let (_signature_algorithm, _) = next()?;
    let (tag, issuer) = next()?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, validity) = next()?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, subject) = next()?;
    if tag != SEQUENCE {
        return None;
    }
    let mut info = CertInfo {
        issuer: name(issuer),
        subject: name(subject),
        ..CertInfo::default()
    };
    let (t1, v1, after) = tlv(validity)?;
    let (t2, v2, _) = tlv(after)?;
    info.not_before = time(t1, v1);
    info.not_after = time(t2, v2);
    let _spki = next()?;
    while let Some((tag, content)) = next() {
        if tag == 0xa3 {
            info.names = alt_names(content).unwrap_or_default();
        }
    }
    Some(info)
}

/// One tag-length-value: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // High tag numbers do not occur in the fields read here.
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
        let mut len = 0usize;
        for &b in &rest[..count] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Every element of a constructed value.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = tlv(input)?;
        input = rest;
        Some((tag, content))
    })
}

/// `CN=…, O=…` of a Name (the CN first; other attributes are left out).
fn name(der: &[u8]) -> String {
    let mut cn = Vec::new();
    let mut org = Vec::new();
    for (tag, rdn) in elements(der) {
        if tag != SET {
            continue;
        }
        for (tag, attr) in elements(rdn) {
            if tag != SEQUENCE {
                continue;
            }
            let mut parts = elements(attr);
            let (Some((OID, oid)), Some((vtag, value))) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some(text) = string(vtag, value) else {
                continue;
            };
            if oid == OID_CN {
                cn.push(format!("CN={text}"));
            } else if oid == OID_O {
                org.push(format!("O={text}"));
            }
        }
    }
    cn.extend(org);
    cn.join(", ")
}

/// The text of a directory string.
fn string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, T61String, IA5String, VisibleString
        0x0c | 0x13 | 0x14 | 0x16 | 0x1a => Some(String::from_utf8_lossy(value).into_owned()),
        // BMPString (UTF-16BE)
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// DNS names and IPs of the subjectAltName extension, from `[3] Extensions`.
fn alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    let (tag, list, _) = tlv(explicit)?;
    if tag != SEQUENCE {
        return None;
    }
    for (tag, ext) in elements(list) {
        if tag != SEQUENCE {
            continue;
        }
        let mut parts = elements(ext);
        let Some((OID, oid)) = parts.next() else {
            continue;
        };
        if oid != OID_SAN {
            continue;
        }
        let mut value = parts.next()?;
        if value.0 == BOOLEAN {
            value = parts.next()?;
        }
        if value.0 != OCTET_STRING {
            return None;
        }
        let (tag, names, _) = tlv(value.1)?;
        if tag != SEQUENCE {
            return None;
        }
        return Some(
            elements(names)
                .filter_map(|(tag, v)| match tag {
                    // dNSName [2] IA5String
                    0x82 => Some(String::from_utf8_lossy(v).into_owned()),
                    // iPAddress [7] OCTET STRING
                    0x87 => match v.len() {
                        4 => Some(IpAddr::from(<[u8; 4]>::try_from(v).ok()?).to_string()),
                        16 => Some(IpAddr::from(<[u8; 16]>::try_from(v).ok()?).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
        );
    }
    Some(Vec::new())
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// Unix seconds.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, date_time_ymd};

    #[test]
    fn reads_dates_names_and_alt_names_of_a_real_certificate() {
        let mut params =
            CertificateParams::new(vec!["api.example.test".to_string(), "10.0.0.7".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "api.example.test");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example Ltd");
        params.not_before = date_time_ymd(2024, 2, 29);
        params.not_after = date_time_ymd(2051, 1, 1);
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let info = parse(cert.der()).expect("parses");
        assert_eq!(info.not_before, Some(1_709_164_800));
        // 2051 is written as GeneralizedTime (UTCTime stops at 2049).
        assert_eq!(info.not_after, Some(2_556_144_000));
        assert_eq!(info.subject, "CN=api.example.test, O=Example Ltd");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.names, ["api.example.test", "10.0.0.7"]);
    }

    #[test]
    fn junk_is_not_a_certificate() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0x30, 0x82, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
    }

    #[test]
    fn times_and_civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(time(UTC_TIME, b"5001010000Z"), None);
        assert_eq!(time(UTC_TIME, b"501301000000Z"), None);
    }
}
