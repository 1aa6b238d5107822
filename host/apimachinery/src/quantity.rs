//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`, …) as exact milli-units.
//!
//! Written by hand: k8s-openapi's `Quantity` is a string newtype only, and the crates that parse
//! it pull in an older k8s-openapi, regex or a decimal library for what is a small grammar:
//!
//! ```text
//! <quantity> ::= <sign>? <number> <suffix>
//! <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | "" | k | M | G | T | P | E | (e|E)<sign>?<digits>
//! ```
//!
//! Values are held as `i128` thousandths of the base unit (millicores for CPU, millibytes for
//! memory), so sums and comparisons are exact; anything finer than a thousandth rounds up, as
//! Kubernetes' `MilliValue` does.

/// A quantity in thousandths of its unit (`1` = 1000, `100m` = 100, `1Ki` = 1 024 000).
pub type Milli = i128;

/// Parses a Kubernetes quantity into milli-units.
pub fn parse(s: &str) -> Result<Milli, QuantityError> {
    parse_text(s).map_err(QuantityError)
}

/// A string that is not a Kubernetes quantity; the message is Kubernetes' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(pub String);

fn parse_text(s: &str) -> Result<Milli, String> {
    let bad = || {
        format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {s:?}")
    };
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(bad());
    }
    // mantissa × 10^exp10 × 2^exp2
    let mut mantissa: i128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    let mut exp10 = -(frac.len() as i64);
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        _ => {
            let exp = suffix.strip_prefix(['e', 'E']).ok_or_else(bad)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4
            {
                return Err(bad());
            }
            exp10 += exp.parse::<i64>().map_err(|_| bad())?;
        }
    }
    // To milli-units.
    exp10 += 3;
    let mut value = mantissa
        .checked_mul(1i128 << exp2)
        .ok_or_else(|| format!("quantity too large: {s:?}"))?;
    if exp10 >= 0 {
        let scale = 10i128
            .checked_pow(u32::try_from(exp10).unwrap_or(u32::MAX))
            .ok_or_else(|| format!("quantity too large: {s:?}"))?;
        value = value
            .checked_mul(scale)
            .ok_or_else(|| format!("quantity too large: {s:?}"))?;
    } else {
        // Round a fraction of a milli-unit up (away from zero for the magnitude, as Kubernetes).
        let div = u32::try_from(-exp10)
            .ok()
            .and_then(|e| 10i128.checked_pow(e));
        value = match div {
            Some(div) => value / div + i128::from(value % div != 0),
            None => i128::from(value != 0),
        };
    }
    Ok(if negative { -value } else { value })
}

/// Does this quantity string use a binary suffix (`Ki`, `Mi`, …)? Sums keep that format.
pub fn is_binary(s: &str) -> bool {
    s.trim_end().ends_with('i')
}

/// Formats milli-units canonically, as Kubernetes prints quantities: `500m`, `2`, `1k`,
/// and with `binary` `128Mi` (falling back to decimal when not a multiple of 1024).
pub fn format(milli: Milli, binary: bool) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let v = milli / 1000;
    if v == 0 {
        return "0".into();
    }
    if binary && v.abs() >= 1024 {
        for (k, suffix) in [
            (6, "Ei"),
            (5, "Pi"),
            (4, "Ti"),
            (3, "Gi"),
            (2, "Mi"),
            (1, "Ki"),
        ] {
            let unit = 1i128 << (10 * k);
            if v % unit == 0 {
                return format!("{}{suffix}", v / unit);
            }
        }
    }
    for (k, suffix) in [(6, "E"), (5, "P"), (4, "T"), (3, "G"), (2, "M"), (1, "k")] {
        let unit = 1000i128.pow(k);
        if v % unit == 0 {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        let table: &[(&str, Milli)] = &[
            ("0", 0),
            ("1", 1000),
            ("100m", 100),
            ("1.5", 1500),
            ("0.5", 500),
            (".5", 500),
            ("5.", 5000),
            ("+2", 2000),
            ("-1", -1000),
            ("-100m", -100),
            ("0.1m", 1),
            ("1u", 1),
            ("1n", 1),
            ("1k", 1_000_000),
            ("1M", 1_000_000_000),
            ("1G", 1_000_000_000_000),
            ("1T", 1_000_000_000_000_000),
            ("1P", 1_000_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000_000),
            ("1Ki", 1_024_000),
            ("128Mi", 128 * 1024 * 1024 * 1000),
            ("1.5Gi", 3 * 512 * 1024 * 1024 * 1000),
            ("1Ti", (1i128 << 40) * 1000),
            ("1Pi", (1i128 << 50) * 1000),
            ("1Ei", (1i128 << 60) * 1000),
            ("2e3", 2_000_000),
            ("2E3", 2_000_000),
            ("1e-3", 1),
            ("1.5e+2", 150_000),
            ("12e0", 12_000),
            ("250m", 250),
            ("0.25", 250),
            ("00010", 10_000),
        ];
        for (s, want) in table {
            assert_eq!(parse(s), Ok(*want), "{s}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "", "abc", "1.2.3", "1Xi", "1 Mi", "m", ".", "1e", "1e+", "--1", "1mm", "1KiB",
            "1e99999",
        ] {
            assert!(parse(s).is_err(), "{s:?} should not parse");
        }
        assert!(parse("99999999999999999999999999999999999999999Ei").is_err());
    }

    #[test]
    fn formats_canonically() {
        let table: &[(Milli, bool, &str)] = &[
            (0, false, "0"),
            (500, false, "500m"),
            (1500, false, "1500m"),
            (2000, false, "2"),
            (1_000_000, false, "1k"),
            (1_500_000, false, "1500"),
            (128 * 1024 * 1024 * 1000, true, "128Mi"),
            (1_024_000, true, "1Ki"),
            (1_536_000, true, "1536"),
            (2_000_000, true, "2k"),
            (1000, true, "1"),
            (-2000, false, "-2"),
            (3 * (1i128 << 30) * 1000, true, "3Gi"),
        ];
        for (milli, binary, want) in table {
            assert_eq!(format(*milli, *binary), *want, "{milli} binary={binary}");
        }
        assert!(is_binary("128Mi") && !is_binary("1G") && !is_binary("2"));
        for s in ["100m", "2", "128Mi", "1k", "3Gi"] {
            assert_eq!(format(parse(s).unwrap(), is_binary(s)), s);
        }
    }
}
