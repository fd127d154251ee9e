//! Page tokens of the twilio backend: Twilio's own paging state, wrapped so that it is
//! opaque to callers and bound to the list it was issued for.
//!
//! A token is base64url (no padding) of a small JSON object naming the API (`v2`, `v1`),
//! the list (the conversation, and for v1 the chat service) and Twilio's state: v2's
//! `meta.nextToken`, or the path and query of v1's `meta.next_page_url`. Decoding checks
//! the list; a token of another list, or anything else, is
//! [`crate::domain::page::bad_page_token`]. Nothing in a token can make the facade call
//! another host: a v1 next page is only ever the path of the list itself, on the
//! configured upstream (checked when Twilio's answer is read, and again when a token is
//! decoded), and a v2 token is only ever a query value.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::domain::error::Error;
use crate::domain::page::{MAX_PAGE_TOKEN, bad_page_token};

/// Query parameters a v1 next page may carry (Twilio's `PageSize`, `Page`, `PageToken`).
const V1_QUERY: [&str; 3] = ["PageSize", "Page", "PageToken"];

/// What a token says.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Token {
    /// `v2` or `v1`.
    api: String,
    /// The list: `[conversation]` (v2) or `[chat service, conversation]` (v1).
    list: Vec<String>,
    /// Twilio's state: v2's `nextToken`, v1's next page path and query.
    next: String,
}

/// Which list a token belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) enum List<'a> {
    V2 {
        conversation_id: &'a str,
    },
    V1 {
        chat_service_sid: &'a str,
        conversation_sid: &'a str,
    },
}

impl List<'_> {
    fn api(self) -> &'static str {
        match self {
            List::V2 { .. } => "v2",
            List::V1 { .. } => "v1",
        }
    }

    fn names(self) -> Vec<String> {
        match self {
            List::V2 { conversation_id } => vec![conversation_id.to_owned()],
            List::V1 {
                chat_service_sid,
                conversation_sid,
            } => vec![chat_service_sid.to_owned(), conversation_sid.to_owned()],
        }
    }
}

/// The caller's token for Twilio's state `next` of `list`; `None` when too long to be a
/// page token (Twilio's state is far shorter).
pub(super) fn encode(list: List<'_>, next: &str) -> Option<String> {
    let token = Token {
        api: list.api().to_owned(),
        list: list.names(),
        next: next.to_owned(),
    };
    let json = serde_json::to_vec(&token).ok()?;
    let text = URL_SAFE_NO_PAD.encode(json);
    (text.len() <= MAX_PAGE_TOKEN).then_some(text)
}

/// Twilio's state in the caller's `token`, if it was issued for `list`.
pub(super) fn decode(list: List<'_>, token: &str) -> Result<String, Error> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad_page_token())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad_page_token())?;
    if token.api != list.api() || token.list != list.names() || token.next.is_empty() {
        return Err(bad_page_token());
    }
    Ok(token.next)
}

/// The path and query of a v1 next page, if `link` (Twilio's `next_page_url`, absolute or
/// relative) leads to `list_url`'s own path on `list_url`'s own scheme, host and port,
/// with no query but Twilio's paging parameters. `None` otherwise: such a link is never
/// followed.
pub(super) fn v1_next(list_url: &Url, link: &str) -> Option<String> {
    let url = list_url.join(link).ok()?;
    let same_origin = url.scheme() == list_url.scheme()
        && url.host_str() == list_url.host_str()
        && url.port_or_known_default() == list_url.port_or_known_default();
    if !same_origin || url.path() != list_url.path() || !url.username().is_empty() {
        return None;
    }
    if url.password().is_some() || url.fragment().is_some() {
        return None;
    }
    let query = url.query().unwrap_or_default();
    if !url
        .query_pairs()
        .all(|(k, _)| V1_QUERY.contains(&k.as_ref()))
    {
        return None;
    }
    Some(format!("{}?{query}", url.path()))
}

/// The URL of a v1 next page from a decoded token's state: `list_url` with the state's
/// query, when the state names exactly `list_url`'s path.
pub(super) fn v1_follow(list_url: &Url, state: &str) -> Result<Url, Error> {
    let (path, query) = state.split_once('?').ok_or_else(bad_page_token)?;
    if path != list_url.path() {
        return Err(bad_page_token());
    }
    let mut url = list_url.clone();
    url.set_query(Some(query));
    if !url
        .query_pairs()
        .all(|(k, _)| V1_QUERY.contains(&k.as_ref()))
    {
        return Err(bad_page_token());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: List<'static> = List::V2 {
        conversation_id: "conv_conversation_1",
    };

    #[test]
    fn a_token_decodes_only_for_its_own_list() {
        let token = encode(V2, "PT123").expect("short");
        assert_eq!(decode(V2, &token).expect("own list"), "PT123");
        let other = List::V2 {
            conversation_id: "conv_conversation_2",
        };
        assert!(decode(other, &token).is_err());
        let v1 = List::V1 {
            chat_service_sid: "IS1",
            conversation_sid: "conv_conversation_1",
        };
        assert!(decode(v1, &token).is_err());
        for garbage in ["", "!!!", "eyJ9", "bm90IGpzb24"] {
            assert!(decode(V2, garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn a_v1_next_page_is_followed_only_on_the_list_itself() {
        let list = Url::parse(
            "https://conversations.twilio.com/v1/Services/IS1/Conversations/CH1/Participants",
        )
        .expect("url");
        let own = "https://conversations.twilio.com/v1/Services/IS1/Conversations/CH1/Participants?PageSize=2&Page=1&PageToken=PT1";
        let state = v1_next(&list, own).expect("own list");
        assert_eq!(
            state,
            "/v1/Services/IS1/Conversations/CH1/Participants?PageSize=2&Page=1&PageToken=PT1"
        );
        assert_eq!(
            v1_follow(&list, &state).expect("follow").as_str(),
            own,
            "rebuilt on the configured upstream"
        );
        assert!(
            v1_next(
                &list,
                "/v1/Services/IS1/Conversations/CH1/Participants?Page=1"
            )
            .is_some()
        );
        for foreign in [
            "https://evil.example/v1/Services/IS1/Conversations/CH1/Participants?Page=1",
            "http://conversations.twilio.com/v1/Services/IS1/Conversations/CH1/Participants?Page=1",
            "https://conversations.twilio.com:8443/v1/Services/IS1/Conversations/CH1/Participants",
            "https://conversations.twilio.com/v1/Services/IS1/Conversations/CH2/Participants",
            "//evil.example/v1/Services/IS1/Conversations/CH1/Participants",
            "https://u:p@conversations.twilio.com/v1/Services/IS1/Conversations/CH1/Participants",
            "https://conversations.twilio.com/v1/Services/IS1/Conversations/CH1/Participants?Other=1",
        ] {
            assert!(v1_next(&list, foreign).is_none(), "{foreign}");
        }
        assert!(
            v1_follow(
                &list,
                "/v1/Services/IS1/Conversations/CH2/Participants?Page=1"
            )
            .is_err()
        );
        assert!(v1_follow(&list, "no query").is_err());
    }
}
