//! Listing: which page of a conversation's participants a caller asks for, and the page
//! it gets. Tokens are opaque to the domain; each backend issues and checks its own
//! (the local store signs a position, the twilio backend wraps Twilio's own token).

use super::error::Error;
use super::rules::{self as rules, Violations};

/// Participants per page when the caller does not say (Twilio's default on both APIs).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest v2 page (Twilio's `pageSize` maximum).
pub const MAX_V2_PAGE_SIZE: u32 = 1000;
/// Largest v1 page (Twilio's `PageSize` maximum).
pub const MAX_V1_PAGE_SIZE: u32 = 100;
/// Longest page token accepted, in bytes: ours are far shorter, and Twilio's v1 next-page
/// query fits well within it.
pub const MAX_PAGE_TOKEN: usize = 2048;

/// Which page: its size, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Participants per page, 1 to the API's maximum.
    pub page_size: u32,
    /// Opaque token of a previous answer; `None` for the first page.
    pub page_token: Option<String>,
}

/// One page of a list, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Lists a v2 conversation's participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParticipants {
    /// The conversation.
    pub conversation_id: String,
    /// Which page.
    pub page: PageQuery,
}

/// Lists a v1 conversation's participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListServiceParticipants {
    /// The chat service (`IS...`).
    pub chat_service_sid: String,
    /// The conversation (`CH...`, or in twilio mode its unique name).
    pub conversation_sid: String,
    /// Which page.
    pub page: PageQuery,
}

impl PageQuery {
    /// A page request as sent: `page_size` 0 means the default; a negative size or one
    /// above `max` is INVALID_ARGUMENT, as is an over-long or non-printable token.
    fn checked(v: &mut Violations, page_size: i64, page_token: String, max: u32) -> PageQuery {
        // An out-of-range size is recorded, and the query is then never used.
        let size = match u32::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= max => n,
            _ => {
                v.add(
                    "page_size",
                    format!("must be between 1 and {max} (0 means 50)"),
                );
                DEFAULT_PAGE_SIZE
            }
        };
        if page_token.len() > MAX_PAGE_TOKEN || !page_token.bytes().all(|b| b.is_ascii_graphic()) {
            v.add(
                "page_token",
                "is not a page token this server issued; use next_page_token from a previous page",
            );
        }
        PageQuery {
            page_size: size,
            page_token: super::non_empty(page_token),
        }
    }
}

impl ListParticipants {
    /// Checks the conversation id and the page request.
    pub fn validate(
        conversation_id: String,
        page_size: i64,
        page_token: String,
    ) -> Result<Self, Error> {
        let mut v = Violations::default();
        rules::resource_id(&mut v, "conversation_id", &conversation_id);
        let page = PageQuery::checked(&mut v, page_size, page_token, MAX_V2_PAGE_SIZE);
        v.into_result()?;
        Ok(ListParticipants {
            conversation_id,
            page,
        })
    }

    /// The conversation, for backends that key lists by it.
    pub fn conversation(&self) -> &str {
        &self.conversation_id
    }
}

impl ListServiceParticipants {
    /// Checks the chat service and conversation sids and the page request.
    pub fn validate(
        chat_service_sid: String,
        conversation_sid: String,
        page_size: i64,
        page_token: String,
    ) -> Result<Self, Error> {
        let mut v = Violations::default();
        super::service_participant::conversation(&mut v, &chat_service_sid, &conversation_sid);
        let page = PageQuery::checked(&mut v, page_size, page_token, MAX_V1_PAGE_SIZE);
        v.into_result()?;
        Ok(ListServiceParticipants {
            chat_service_sid,
            conversation_sid,
            page,
        })
    }
}

/// The error for a page token that does not decode, was not issued by this server, or
/// was issued for another list: INVALID_ARGUMENT on `page_token`, never a wrong page.
pub fn bad_page_token() -> Error {
    Error::InvalidArgument(vec![super::error::FieldViolation {
        field: "page_token".to_owned(),
        description:
            "is not a page token this server issued for this list; use next_page_token from a previous page"
                .to_owned(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_zero_is_the_default_and_bounds_are_the_apis() {
        let q = ListParticipants::validate("conv_1".into(), 0, String::new()).expect("valid");
        assert_eq!(q.page.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(q.page.page_token, None);
        assert!(ListParticipants::validate("conv_1".into(), 1000, String::new()).is_ok());
        for bad in [-1, 1001, i64::from(i32::MAX)] {
            assert!(ListParticipants::validate("conv_1".into(), bad, String::new()).is_err());
        }
        let is = format!("IS{}", "0".repeat(32));
        let ch = format!("CH{}", "0".repeat(32));
        assert!(
            ListServiceParticipants::validate(is.clone(), ch.clone(), 100, String::new()).is_ok()
        );
        assert!(ListServiceParticipants::validate(is, ch, 101, String::new()).is_err());
    }

    #[test]
    fn tokens_with_spaces_or_control_characters_are_refused() {
        for bad in ["a b", "a\nb", &"x".repeat(MAX_PAGE_TOKEN + 1)] {
            let err = ListParticipants::validate("conv_1".into(), 0, bad.to_owned())
                .expect_err("refused");
            assert!(matches!(err, Error::InvalidArgument(ref f) if f[0].field == "page_token"));
        }
    }

    #[test]
    fn a_v1_conversation_is_a_ch_sid_or_a_unique_name() {
        let is = format!("IS{}", "0".repeat(32));
        let ok =
            |c: &str| ListServiceParticipants::validate(is.clone(), c.into(), 0, String::new());
        for good in [
            format!("CH{}", "a".repeat(32)),
            "support-room".to_owned(),
            "room with spaces".to_owned(),
            "n".repeat(256),
        ] {
            assert!(ok(&good).is_ok(), "{good}");
        }
        for bad in [
            String::new(),
            "a/b".to_owned(),
            ".".to_owned(),
            "..".to_owned(),
            "a\nb".to_owned(),
            "n".repeat(257),
            format!("CH{}", "z".repeat(32)),
        ] {
            assert!(ok(&bad).is_err(), "{bad:?}");
        }
        assert!(super::super::is_conversation_sid(&format!(
            "CH{}",
            "a".repeat(32)
        )));
        assert!(!super::super::is_conversation_sid("support-room"));
    }
}
