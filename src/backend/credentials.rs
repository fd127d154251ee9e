//! Credentials for Twilio, as the backend seam carries them: the configured ones, or a
//! caller's own when inbound auth passes them through.

use secrecy::{ExposeSecret, SecretString};

/// HTTP basic credentials for Twilio: an API key SID and secret (preferred), or the
/// account SID and auth token. The password is a [`SecretString`]: it is neither printed
/// by `Debug` nor kept in memory after drop.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Credentials {
    /// Credentials from a username (API key SID or account SID) and its secret.
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: SecretString::from(password.to_owned()),
        }
    }

    /// The username (an API key SID or account SID; not a secret).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// A keyed hash of the whole credential (username and secret), hex: two callers share
    /// it only if they hold the same username and the same secret. The secret cannot be
    /// recovered from it without `key`.
    pub fn scope(&self, key: &[u8; 64]) -> String {
        use hmac::Mac as _;
        use hmac::digest::KeyInit;
        // A key of SHA-256's block size, HMAC's natural one: no fallible length check.
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new(key.into());
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        mac.update(&(self.username.len() as u64).to_be_bytes());
        mac.update(self.username.as_bytes());
        mac.update(self.password.expose_secret().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Reads `TWILIO_API_KEY` + `TWILIO_API_SECRET`, else `TWILIO_ACCOUNT_SID` +
    /// `TWILIO_AUTH_TOKEN`, from the environment.
    pub fn from_env() -> Result<Credentials, String> {
        Credentials::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// As [`Credentials::from_env`], with the variables looked up by `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let pair = |user: &str, secret: &str| match (var(user), var(secret)) {
            (Some(u), Some(s)) => Ok(Some((u, s))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("{user} is set but {secret} is not")),
            (None, Some(_)) => Err(format!("{secret} is set but {user} is not")),
        };
        let (username, password) = match pair("TWILIO_API_KEY", "TWILIO_API_SECRET")? {
            Some(p) => p,
            None => pair("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")?.ok_or(
                "the twilio backend needs credentials: set TWILIO_API_KEY and TWILIO_API_SECRET \
                 (preferred), or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            )?,
        };
        Ok(Credentials {
            username,
            password: SecretString::from(password),
        })
    }
}

impl Credentials {
    /// The secret, for the one place that signs a request with it.
    pub(crate) fn secret(&self) -> &str {
        self.password.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_prefer_an_api_key_and_never_print_the_secret() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(env(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "token-1"),
            ("TWILIO_API_KEY", "SK1"),
            ("TWILIO_API_SECRET", "secret-1"),
        ]))
        .expect("credentials");
        assert_eq!(c.username, "SK1");
        assert!(!format!("{c:?}").contains("secret-1"));
        let c = Credentials::from_lookup(env(&[
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
        ]))
        .expect("account credentials");
        assert_eq!(c.username, "AC1");
        assert!(Credentials::from_lookup(env(&[("TWILIO_API_KEY", "SK1")])).is_err());
        assert!(Credentials::from_lookup(env(&[])).is_err());
    }
}
