//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string a JSON value hashes to.
//!
//! Objects are sorted by the UTF-16 code units of their keys, strings use the minimal JSON escapes,
//! and numbers are printed as ECMAScript prints a double. Integers beyond ±2^53 cannot be
//! represented exactly as I-JSON numbers (RFC 7493), so they are refused rather than silently
//! rounded: two different actions must never share a digest.

use serde_json::{Map, Number, Value};

/// The largest integer an IEEE 754 double represents exactly, and therefore the largest I-JSON
/// allows.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CanonicalError {
    #[error(
        "the number {0} is too large to be represented exactly in JSON (limit ±2^53); send it as a string"
    )]
    UnsafeInteger(String),
    #[error("the number {0} is not finite; JSON has no NaN or infinity")]
    NotFinite(f64),
}

/// Returns the RFC 8785 canonical form of `value`.
pub fn to_canonical_string(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // RFC 8785 §3.2.3: sort by UTF-16 code units, not by UTF-8 bytes or chars.
    entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

/// Writes `s` as a JSON string with the escapes RFC 8785 §3.2.2.2 prescribes.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{09}' => out.push_str("\\t"),
            '\u{0A}' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\u{0D}' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let code = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) -> Result<(), CanonicalError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(CanonicalError::UnsafeInteger(u.to_string()));
        }
        out.push_str(&u.to_string());
        return Ok(());
    }
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(CanonicalError::UnsafeInteger(i.to_string()));
        }
        out.push_str(&i.to_string());
        return Ok(());
    }
    match n.as_f64() {
        Some(f) => write_double(out, f),
        None => Err(CanonicalError::UnsafeInteger(n.to_string())),
    }
}

/// Writes a double exactly as ECMAScript's `Number.prototype.toString` does (ECMA-262
/// Number::toString), which RFC 8785 §3.2.2.3 adopts.
pub fn write_double(out: &mut String, value: f64) -> Result<(), CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NotFinite(value));
    }
    if value == 0.0 {
        // Covers -0 too: ECMAScript prints both as "0".
        out.push('0');
        return Ok(());
    }
    if value < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` prints the shortest digit string that round-trips, which is the `s` of
    // ECMA-262's algorithm; only the layout differs.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits = ties_to_even(digits, exponent, value.abs());
    let k = digits.len() as i32;
    // n is the position of the decimal point relative to the digit string: value = 0.digits × 10^n.
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    Ok(())
}

/// ECMA-262 asks for the k-digit decimal closest to the value and, when the value lies exactly
/// halfway between two of them, the even one. Rust's shortest formatting finds the right k and the
/// closest digits, but breaks such exact ties upwards; this corrects that one case.
fn ties_to_even(digits: String, exponent: i32, value: f64) -> String {
    if !digits.ends_with(['1', '3', '5', '7', '9']) {
        return digits;
    }
    // A double's exact decimal expansion has at most 767 significant digits.
    let exact = format!("{value:.800e}");
    let exact_digits: String = exact
        .split('e')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let exact_digits = exact_digits.trim_end_matches('0');
    let k = digits.len();
    if exact_digits.len() != k + 1 || !exact_digits.ends_with('5') {
        return digits;
    }
    let below = &exact_digits[..k];
    let alternative = if digits == below {
        match increment_decimal(below) {
            Some(above) => above,
            None => return digits,
        }
    } else {
        below.to_owned()
    };
    let round_trips = format!("0.{alternative}e{}", exponent + 1)
        .parse::<f64>()
        .is_ok_and(|parsed| parsed == value);
    if round_trips { alternative } else { digits }
}

/// `digits` plus one in its last place, or `None` when that carries into a new leading digit.
fn increment_decimal(digits: &str) -> Option<String> {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8(bytes).ok();
        }
    }
    None
}
