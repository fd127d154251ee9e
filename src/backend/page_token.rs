//! The stores' page tokens (embedded and PostgreSQL): the last position a page showed (its `seq`), signed
//! for the list it belongs to.
//!
//! A token is base64url (no padding) of 42 bytes: a format byte, the API (v2 or v1), the
//! last `seq` (8 bytes, big-endian) and HMAC-SHA256 over all that and the list's identity
//! (the API and the conversation, with its chat service for v1). The identity is not in
//! the token, only in what the MAC covers: a token of another conversation, of the other
//! API, forged, truncated or from another store's key fails the check and is
//! INVALID_ARGUMENT ([`bad_page_token`]), never a wrong page. The key is random, made
//! once per store and kept in the database, so tokens outlive restarts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::error::Error;
use crate::domain::page::bad_page_token;

/// Bytes of the signing key.
pub(crate) const KEY_BYTES: usize = 32;
const FORMAT: u8 = 1;
const TAG_BYTES: usize = 32;
const TOKEN_BYTES: usize = 2 + 8 + TAG_BYTES;
/// Separates this MAC's inputs from any other use of the key.
const CONTEXT: &[u8] = b"participants-facade local page token";

/// Which list a token belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum List<'a> {
    /// A v2 conversation's participants.
    V2 { conversation_id: &'a str },
    /// A v1 conversation's participants.
    V1 {
        chat_service_sid: &'a str,
        conversation_sid: &'a str,
    },
}

impl List<'_> {
    fn api(self) -> u8 {
        match self {
            List::V2 { .. } => 2,
            List::V1 { .. } => 1,
        }
    }
}

/// Issues and checks page tokens under one store's key.
pub(crate) struct PageTokens {
    mac: Hmac<Sha256>,
}

impl PageTokens {
    pub(crate) fn new(key: &[u8]) -> Result<PageTokens, Error> {
        let mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| Error::Internal("page token key of invalid length".into()))?;
        Ok(PageTokens { mac })
    }

    fn tag(&self, list: List<'_>, head: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(CONTEXT);
        mac.update(head);
        let parts: &[&str] = match list {
            List::V2 { conversation_id } => &[conversation_id],
            List::V1 {
                chat_service_sid,
                conversation_sid,
            } => &[chat_service_sid, conversation_sid],
        };
        for part in parts {
            // Length-prefixed, so that no two lists feed the MAC the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The token of the page after the one that ended at `last_seq` in `list`.
    pub(crate) fn issue(&self, list: List<'_>, last_seq: i64) -> String {
        let mut token = Vec::with_capacity(TOKEN_BYTES);
        token.push(FORMAT);
        token.push(list.api());
        token.extend_from_slice(&last_seq.to_be_bytes());
        let tag = self.tag(list, &token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The last `seq` of the page before, if `token` is one this store issued for `list`.
    pub(crate) fn check(&self, list: List<'_>, token: &str) -> Result<i64, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad_page_token())?;
        if bytes.len() != TOKEN_BYTES || bytes[0] != FORMAT || bytes[1] != list.api() {
            return Err(bad_page_token());
        }
        let (head, tag) = bytes.split_at(10);
        // Constant-time comparison.
        self.tag(list, head)
            .verify_slice(tag)
            .map_err(|_| bad_page_token())?;
        let mut seq = [0; 8];
        seq.copy_from_slice(&head[2..10]);
        let seq = i64::from_be_bytes(seq);
        if seq < 0 {
            return Err(bad_page_token());
        }
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: List<'static> = List::V2 {
        conversation_id: "conv_a",
    };

    fn tokens() -> PageTokens {
        PageTokens::new(&[7; KEY_BYTES]).expect("key")
    }

    fn is_bad_token(result: Result<i64, Error>) -> bool {
        matches!(result, Err(Error::InvalidArgument(ref f)) if f[0].field == "page_token")
    }

    #[test]
    fn a_token_round_trips_for_its_own_list_only() {
        let t = tokens();
        let token = t.issue(V2, 42);
        assert_eq!(t.check(V2, &token).expect("valid"), 42);
        assert!(token.bytes().all(|b| b.is_ascii_graphic()));
        let others = [
            List::V2 {
                conversation_id: "conv_b",
            },
            List::V1 {
                chat_service_sid: "conv_a",
                conversation_sid: "",
            },
        ];
        for other in others {
            assert!(is_bad_token(t.check(other, &token)), "{other:?}");
        }
        let v1 = List::V1 {
            chat_service_sid: "IS1",
            conversation_sid: "CH1",
        };
        let v1_token = t.issue(v1, 3);
        assert_eq!(t.check(v1, &v1_token).expect("valid"), 3);
        // The parts of the identity cannot be shifted into each other.
        let shifted = List::V1 {
            chat_service_sid: "IS",
            conversation_sid: "1CH1",
        };
        assert!(is_bad_token(t.check(shifted, &v1_token)));
        assert!(is_bad_token(t.check(V2, &v1_token)));
    }

    #[test]
    fn forged_truncated_garbage_and_foreign_key_tokens_are_refused() {
        let t = tokens();
        let token = t.issue(V2, 42);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        raw[9] ^= 1; // another position, same tag
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        let other_key = PageTokens::new(&[8; KEY_BYTES]).expect("key").issue(V2, 42);
        for bad in [
            forged.as_str(),
            &token[..token.len() - 1],
            &token[..10],
            "",
            "garbage",
            "!!!!",
            &format!("{token}A"),
            &format!("{token}="),
            &other_key,
        ] {
            assert!(is_bad_token(t.check(V2, bad)), "{bad:?}");
        }
    }
}
