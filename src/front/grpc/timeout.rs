//! The caller's deadline as gRPC sends it (the `grpc-timeout` header) and as Connect sends
//! it (`Connect-Timeout-Ms`).

use std::time::Duration;

/// Parses a `grpc-timeout` header value (gRPC over HTTP/2 spec: at most 8 digits and a
/// unit H, M, S, m, u or n).
pub(crate) fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Parses a `Connect-Timeout-Ms` header value (Connect protocol: a non-negative integer
/// of at most 10 ASCII digits, in milliseconds).
pub(crate) fn parse_connect_timeout(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = value
        .iter()
        .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_header_is_parsed_per_the_spec() {
        assert_eq!(parse_connect_timeout(b"1"), Some(Duration::from_millis(1)));
        assert_eq!(
            parse_connect_timeout(b"9999999999"),
            Some(Duration::from_millis(9_999_999_999))
        );
        assert_eq!(parse_connect_timeout(b"12345678901"), None);
        assert_eq!(parse_connect_timeout(b""), None);
        assert_eq!(parse_connect_timeout(b"-5"), None);
        assert_eq!(parse_connect_timeout(b"5s"), None);
        assert_eq!(parse_connect_timeout(b" 5"), None);
    }

    #[test]
    fn grpc_timeout_header_is_parsed_per_the_spec() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789m"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("1é"), None);
        assert_eq!(parse_grpc_timeout("+5S"), None);
    }
}
