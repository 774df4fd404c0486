//! Just enough DER (X.690) to read a certificate's validity period (RFC 5280 §4.1.2.5):
//! when paf's certificate expires decides when it is renewed. Any malformed input is `None`,
//! never a panic.

use std::time::{Duration, SystemTime};

/// A certificate's `notBefore` and `notAfter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until (inclusive).
    pub not_after: SystemTime,
}

impl Validity {
    /// The validity period of the certificate `der`; `None` if it does not parse.
    pub fn of_certificate(der: &[u8]) -> Option<Validity> {
        // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
        //   serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE, … } … }
        let (tag, cert, _) = element(der)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, mut tbs, _) = element(cert)?;
        if tag != 0x30 {
            return None;
        }
        let mut fields = Vec::new();
        while !tbs.is_empty() && fields.len() < 6 {
            let (tag, body, rest) = element(tbs)?;
            fields.push((tag, body));
            tbs = rest;
        }
        let skip = usize::from(fields.first()?.0 == 0xa0);
        let (tag, validity) = *fields.get(skip + 3)?;
        if tag != 0x30 {
            return None;
        }
        let (t1, b1, rest) = element(validity)?;
        let (t2, b2, _) = element(rest)?;
        Some(Validity {
            not_before: time(t1, b1)?,
            not_after: time(t2, b2)?,
        })
    }

    /// When to renew: `fraction` (0..=1) of the way from `not_before` to `not_after`.
    pub fn renew_at(&self, fraction: f64) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life.mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// One TLV: (tag, contents, what follows). Definite lengths only, as DER requires.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn time(tag: u8, body: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(body).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r)?.parse::<i64>().ok();
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            // RFC 5280 §4.1.2.5.1: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let month = num(rest..rest + 2)?;
    let day = num(rest + 2..rest + 4)?;
    let hour = num(rest + 4..rest + 6)?;
    let minute = num(rest + 6..rest + 8)?;
    let second = num(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        let t = |tag, s: &str| {
            time(tag, s.as_bytes()).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
        };
        assert_eq!(t(0x17, "700101000000Z"), Some(Duration::ZERO));
        assert_eq!(
            t(0x17, "491231235959Z"),
            Some(Duration::from_secs(2_524_607_999))
        );
        assert_eq!(
            t(0x18, "20240229120000Z"),
            Some(Duration::from_secs(1_709_208_000))
        );
        for bad in [
            "",
            "Z",
            "7001010000Z",
            "701301000000Z",
            "70010100000aZ",
            "700101000000",
        ] {
            assert_eq!(t(0x17, bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_the_validity_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 2);
        params.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let v = Validity::of_certificate(cert.der()).unwrap();
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(v.not_before), 1_893_542_400);
        assert_eq!(secs(v.not_after), 2_845_584_000);
        let third = v.renew_at(1.0 / 3.0);
        assert!(third > v.not_before && third < v.not_after);
        // Every truncation of it is refused, without a panic.
        for n in 0..cert.der().len() {
            let _ = Validity::of_certificate(&cert.der()[..n]);
        }
        assert_eq!(Validity::of_certificate(b"\x30\x84\xff\xff\xff\xff"), None);
    }
}
