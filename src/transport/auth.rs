//! Inbound authentication, for both gRPC and REST: off unless configured.
//!
//! Configured from the environment only (secrets never go on a command line):
//! `PARTICIPANTS_AUTH_BASIC` holds `user:secret` pairs separated by commas (as Twilio's
//! clients send them in `Authorization: Basic`), `PARTICIPANTS_AUTH_BEARER_TOKENS` holds
//! bearer tokens separated by commas. Comparisons run in constant time. With
//! `--auth-passthrough` (twilio backend), a caller's own Basic credentials are forwarded
//! to Twilio, which then is the one to accept or refuse them (multi-tenant use).

use base64::Engine as _;
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::backend::Credentials;
use crate::domain::error::{Error, FieldViolation};

/// What the server learned about a caller, put in the request's extensions for the fronts.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Credentials to use upstream instead of the configured ones (passthrough).
    pub upstream_credentials: Option<Credentials>,
}

/// The configured inbound credentials.
#[derive(Default)]
pub struct InboundAuth {
    basic: Vec<(Vec<u8>, SecretString)>,
    bearer: Vec<SecretString>,
    passthrough: bool,
}

impl std::fmt::Debug for InboundAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundAuth")
            .field("basic_pairs", &self.basic.len())
            .field("bearer_tokens", &self.bearer.len())
            .field("passthrough", &self.passthrough)
            .finish()
    }
}

impl InboundAuth {
    /// Reads `PARTICIPANTS_AUTH_BASIC` and `PARTICIPANTS_AUTH_BEARER_TOKENS`.
    pub fn from_env(passthrough: bool) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::from_values(
            var("PARTICIPANTS_AUTH_BASIC").as_deref(),
            var("PARTICIPANTS_AUTH_BEARER_TOKENS").as_deref(),
            passthrough,
        )
    }

    /// Builds from the two variables' values.
    pub fn from_values(
        basic: Option<&str>,
        bearer: Option<&str>,
        passthrough: bool,
    ) -> Result<Self, String> {
        let mut auth = InboundAuth {
            passthrough,
            ..InboundAuth::default()
        };
        for pair in basic
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (user, secret) = pair
                .split_once(':')
                .filter(|(u, s)| !u.is_empty() && !s.is_empty())
                .ok_or("PARTICIPANTS_AUTH_BASIC must hold user:secret pairs separated by commas")?;
            auth.basic.push((
                user.as_bytes().to_vec(),
                SecretString::from(secret.to_owned()),
            ));
        }
        if basic.is_some_and(|b| !b.trim().is_empty()) && auth.basic.is_empty() {
            // "," or " , ": set, but no pair; auth silently off would be the wrong reading.
            return Err("PARTICIPANTS_AUTH_BASIC is set but holds no user:secret pair".into());
        }
        for token in bearer
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            auth.bearer.push(SecretString::from(token.to_owned()));
        }
        if bearer.is_some_and(|b| !b.trim().is_empty()) && auth.bearer.is_empty() {
            return Err("PARTICIPANTS_AUTH_BEARER_TOKENS is set but holds no token".into());
        }
        Ok(auth)
    }

    /// Whether callers' Basic credentials are forwarded to Twilio.
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// Whether callers must authenticate.
    pub fn required(&self) -> bool {
        !self.basic.is_empty() || !self.bearer.is_empty()
    }

    /// Checks a request's `Authorization` header; UNAUTHENTICATED when auth is required
    /// and the header is missing or wrong.
    ///
    /// With auth on (required or passthrough):
    /// - more than one `Authorization` header is INVALID_ARGUMENT (400): a proxy in front
    ///   may have checked one and this server would use another;
    /// - a header that is present but unusable (not text, malformed Basic, an unknown
    ///   scheme or a wrong token) is refused, never taken as "no credentials";
    /// - with passthrough, Basic credentials that match a configured pair authenticate the
    ///   caller here (the configured upstream credentials serve it); any other Basic
    ///   credentials are forwarded to Twilio, which accepts or refuses them. A caller with
    ///   no header at all uses the configured credentials only when auth is not required.
    pub fn check(&self, headers: &HeaderMap) -> Result<Caller, Error> {
        if !self.required() && !self.passthrough {
            // Auth off: an Authorization header (Twilio's SDKs always send one) is ignored.
            return Ok(Caller::default());
        }
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let (header, another) = (values.next(), values.next());
        if another.is_some() {
            return Err(Error::InvalidArgument(vec![FieldViolation {
                field: "authorization".into(),
                description: "send one Authorization header, not several".into(),
            }]));
        }
        let Some(header) = header else {
            return if self.required() {
                Err(Error::Unauthenticated(
                    "send Authorization: Basic or Bearer credentials".into(),
                ))
            } else {
                Ok(Caller::default())
            };
        };
        let invalid = || Error::Unauthenticated("invalid credentials".into());
        let header = header.to_str().map_err(|_| invalid())?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(Error::Unauthenticated("malformed Basic credentials".into()));
            };
            if self.basic_matches(user.as_bytes(), secret.as_bytes()) {
                return Ok(Caller::default());
            }
            if self.passthrough {
                if user.is_empty() || secret.is_empty() {
                    return Err(Error::Unauthenticated("malformed Basic credentials".into()));
                }
                return Ok(Caller {
                    upstream_credentials: Some(Credentials::new(user, secret)),
                });
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && self.bearer_matches(value.as_bytes()) {
            return Ok(Caller::default());
        }
        Err(invalid())
    }

    fn basic_matches(&self, user: &[u8], secret: &[u8]) -> bool {
        // Every pair is compared, so the time taken does not tell which part matched.
        self.basic.iter().fold(false, |found, (u, s)| {
            let same = u.ct_eq(user) & s.expose_secret().as_bytes().ct_eq(secret);
            found | bool::from(same)
        })
    }

    fn bearer_matches(&self, token: &[u8]) -> bool {
        self.bearer.iter().fold(false, |found, t| {
            found | bool::from(t.expose_secret().as_bytes().ct_eq(token))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().expect("header"));
        h
    }

    fn basic(user: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
        )
    }

    #[test]
    fn off_by_default_and_anyone_passes() {
        let auth = InboundAuth::from_values(None, None, false).expect("auth");
        assert!(!auth.required());
        assert!(auth.check(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn basic_and_bearer_credentials_are_checked_when_configured() {
        let auth =
            InboundAuth::from_values(Some("svc-a:s3cret, svc-b:other"), Some("tok-1"), false)
                .expect("auth");
        assert!(auth.check(&headers(&basic("svc-a", "s3cret"))).is_ok());
        assert!(auth.check(&headers(&basic("svc-b", "other"))).is_ok());
        assert!(auth.check(&headers("Bearer tok-1")).is_ok());
        for bad in [
            basic("svc-a", "other"),
            basic("nobody", "s3cret"),
            "Bearer tok-2".into(),
            "Basic !!".into(),
        ] {
            assert!(
                matches!(auth.check(&headers(&bad)), Err(Error::Unauthenticated(_))),
                "{bad}"
            );
        }
        assert!(auth.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn passthrough_forwards_the_callers_basic_credentials() {
        let auth = InboundAuth::from_values(None, None, true).expect("auth");
        let caller = auth
            .check(&headers(&basic("AC1", "token")))
            .expect("caller");
        assert!(caller.upstream_credentials.is_some());
    }

    #[test]
    fn malformed_configuration_is_refused() {
        assert!(InboundAuth::from_values(Some("no-colon"), None, false).is_err());
        assert!(InboundAuth::from_values(Some(":secret"), None, false).is_err());
    }
}
