//! Conversations v1 participants (of a conversation in a chat service) on the wire,
//! snake_case as Twilio's OpenAPI names them: the create form, which the REST front reads
//! and the twilio backend writes, and the participant, which the REST front writes and the
//! twilio backend reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::fields::{format_date, lenient, lenient_date, write_date};
use crate::domain::{
    MessagingBinding, NewServiceParticipant, Page, Raw, ServiceParticipant,
    ServiceParticipantChanges, ServiceParticipantDraft, ServiceParticipantUpdateDraft, Webhooks,
};

/// Form fields of `POST /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants`.
// Read, every field is optional text, so that validation (not decoding) names what is
// wrong. Written, unset fields are left out, in this order.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateServiceParticipantForm {
    /// Chat identity, at most 256 characters.
    #[serde(rename = "Identity", skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// JSON text.
    #[serde(rename = "Attributes", skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// The participant's own number.
    #[serde(
        rename = "MessagingBinding.Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_address: Option<String>,
    /// The Twilio number the participant talks to.
    #[serde(
        rename = "MessagingBinding.ProxyAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_proxy_address: Option<String>,
    /// The group MMS number a chat participant is projected as.
    #[serde(
        rename = "MessagingBinding.ProjectedAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_projected_address: Option<String>,
    /// The sender Twilio falls back to when the proxy address cannot deliver (RCS to
    /// SMS); in Twilio's `createRcsWithFallback` example, not in its schema.
    #[serde(
        rename = "MessagingBinding.ProxyAddressFallback",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_proxy_address_fallback: Option<String>,
    /// `RL` + 32 hex digits.
    #[serde(rename = "RoleSid", skip_serializing_if = "Option::is_none")]
    pub role_sid: Option<String>,
    /// RFC 3339 creation date to record.
    #[serde(rename = "DateCreated", skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    /// RFC 3339 update date to record.
    #[serde(rename = "DateUpdated", skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
}

/// Form fields of `POST /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants/{Sid}`
/// (update). A field present changes (empty clears it, and so does `null` for the two
/// binding addresses and the last-read index, as Twilio's spec says), a field absent is
/// kept; a field this resource does not have is refused.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceParticipantForm {
    /// RFC 3339 creation date to record.
    #[serde(rename = "DateCreated", skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    /// RFC 3339 update date to record; empty: the server's clock.
    #[serde(rename = "DateUpdated", skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<String>,
    /// Chat identity, at most 256 characters; empty clears it.
    #[serde(rename = "Identity", skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// JSON text; empty sets `{}`.
    #[serde(rename = "Attributes", skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// `RL` + 32 hex digits; empty clears it.
    #[serde(rename = "RoleSid", skip_serializing_if = "Option::is_none")]
    pub role_sid: Option<String>,
    /// The Twilio number the participant talks to; `null` clears it.
    #[serde(
        rename = "MessagingBinding.ProxyAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_proxy_address: Option<String>,
    /// The group MMS number a chat participant is projected as; `null` clears it.
    #[serde(
        rename = "MessagingBinding.ProjectedAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub messaging_binding_projected_address: Option<String>,
    /// Index of the last read message, 0 or more; empty or `null` clears it.
    #[serde(
        rename = "LastReadMessageIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_read_message_index: Option<String>,
    /// Timestamp of the last read message; empty clears it.
    #[serde(rename = "LastReadTimestamp", skip_serializing_if = "Option::is_none")]
    pub last_read_timestamp: Option<String>,
}

/// A binding address of the update form: Twilio's literal `null` clears it, as empty does.
fn clearable(value: Option<String>) -> String {
    value.filter(|v| v != "null").unwrap_or_default()
}

impl UpdateServiceParticipantForm {
    /// The request as a draft for the participant named by the path, without what headers
    /// carry (webhooks): the update mask is the fields present in the form.
    pub(crate) fn into_draft(
        self,
        chat_service_sid: String,
        conversation_sid: String,
        sid: String,
    ) -> ServiceParticipantUpdateDraft {
        let mut mask = Vec::new();
        for (present, path) in [
            (self.identity.is_some(), "identity"),
            (self.attributes.is_some(), "attributes"),
            (self.role_sid.is_some(), "role_sid"),
            (
                self.messaging_binding_proxy_address.is_some(),
                "messaging_binding.proxy_address",
            ),
            (
                self.messaging_binding_projected_address.is_some(),
                "messaging_binding.projected_address",
            ),
            (self.date_created.is_some(), "date_created"),
            (self.date_updated.is_some(), "date_updated"),
            (
                self.last_read_message_index.is_some(),
                "last_read_message_index",
            ),
            (self.last_read_timestamp.is_some(), "last_read_timestamp"),
        ] {
            if present {
                mask.push(path.to_owned());
            }
        }
        let last_read_message_index =
            self.last_read_message_index
                .map(|v| match clearable(Some(v)) {
                    v if v.is_empty() => Raw::Unset,
                    v => v.parse().map_or(Raw::Unknown(v), Raw::Known),
                });
        ServiceParticipantUpdateDraft {
            chat_service_sid,
            conversation_sid,
            sid,
            identity: self.identity.unwrap_or_default(),
            attributes: self.attributes.unwrap_or_default(),
            role_sid: self.role_sid.unwrap_or_default(),
            proxy_address: clearable(self.messaging_binding_proxy_address),
            projected_address: clearable(self.messaging_binding_projected_address),
            date_created: form_date(self.date_created),
            date_updated: form_date(self.date_updated),
            last_read_message_index,
            last_read_timestamp: self.last_read_timestamp.unwrap_or_default(),
            mask: Some(mask),
            field_prefix: "",
            webhooks: Webhooks::Unsaid,
        }
    }
}

/// `meta` of a v1 list, as Twilio writes it: absolute URLs a client follows as they are.
// Written, every field; read (from Twilio), any may be missing (the spec requires none):
// without `next_page_url` there is no next page.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct PageMetaJson {
    /// The page's index, as the caller counted it (`Page`, 0 for the first).
    pub page: u32,
    /// The page size asked for (or the default, 50).
    pub page_size: u32,
    /// URL of the first page.
    pub first_page_url: String,
    /// Always null: pages are followed forward only.
    #[serde(default)]
    pub previous_page_url: Option<String>,
    /// URL of this page.
    pub url: String,
    /// URL of the next page (`PageSize`, `Page` + 1 and `PageToken`); null on the last
    /// page.
    #[serde(default)]
    pub next_page_url: Option<String>,
    /// The key of the list in the answer: `participants`.
    #[schema(example = "participants")]
    pub key: String,
}

/// Answer of `GET /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListServiceParticipantsJson {
    /// The page's participants, oldest first.
    pub participants: Vec<ServiceParticipantJson>,
    /// Where the page sits, and the URLs of the pages around it.
    #[serde(default)]
    pub meta: PageMetaJson,
}

/// Which page a v1 list answer is, for its `meta`.
pub(crate) struct PageAt<'a> {
    /// The base of absolute URLs (scheme and authority).
    pub(crate) base: &'a str,
    /// The list's path (`/v1/Services/.../Participants`), its segments already escaped.
    pub(crate) path: &'a str,
    /// `PageSize`.
    pub(crate) page_size: u32,
    /// `Page`.
    pub(crate) page: u32,
    /// `PageToken` of this page, if it is not the first.
    pub(crate) page_token: Option<&'a str>,
}

impl PageAt<'_> {
    /// The absolute URL of the page `page` starting at `token`.
    fn url(&self, page: u32, token: Option<&str>) -> String {
        let size = self.page_size.to_string();
        let index = page.to_string();
        let mut query = vec![("PageSize", size.as_str()), ("Page", index.as_str())];
        if let Some(token) = token {
            query.push(("PageToken", token));
        }
        // Pairs of plain text always encode.
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        format!("{}{}?{query}", self.base, self.path)
    }
}

impl ListServiceParticipantsJson {
    /// `page` as the REST front answers it, at `at`.
    pub(crate) fn new(page: Page<ServiceParticipant>, at: &PageAt<'_>) -> Self {
        let next_page_url = page
            .next_page_token
            .as_deref()
            .map(|token| at.url(at.page.saturating_add(1), Some(token)));
        ListServiceParticipantsJson {
            participants: page
                .items
                .into_iter()
                .map(|p| ServiceParticipantJson::new(p, at.base))
                .collect(),
            meta: PageMetaJson {
                page: at.page,
                page_size: at.page_size,
                first_page_url: at.url(0, None),
                previous_page_url: None,
                url: at.url(at.page, at.page_token),
                next_page_url,
                key: "participants".to_owned(),
            },
        }
    }
}

/// `messaging_binding` of a v1 participant.
// Untyped in Twilio's spec; these are the fields it documents. `type` is Twilio's own,
// passed through (read leniently: a value that is not text is absent); written, the
// participant's, else derived from the address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagingBindingJson {
    /// `sms`, `whatsapp`, `rcs`, ... as Twilio types the binding.
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    #[schema(value_type = String, required = true)]
    pub kind: Option<String>,
    /// The participant's own number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Twilio number the participant talks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_address: Option<String>,
    /// The group MMS number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_address: Option<String>,
    /// The sender used when the proxy address cannot deliver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_address_fallback: Option<String>,
}

/// A v1 participant, in Twilio's snake_case shape.
// The REST front writes every field. Read from Twilio, only `sid` is required (the spec
// makes every field nullable): parents it leaves out come from the request's path, a date
// that does not parse is absent, and `url`, which the REST front builds itself, is read
// leniently. `twilio::answer` then checks the values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceParticipantJson {
    /// `AC` + 32 hex.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub account_sid: Option<String>,
    /// `IS` + 32 hex.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub chat_service_sid: Option<String>,
    /// `CH` + 32 hex.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub conversation_sid: Option<String>,
    /// `MB` + 32 hex.
    pub sid: String,
    /// Chat identity, null for SMS/WhatsApp participants.
    #[serde(default)]
    pub identity: Option<String>,
    /// JSON text, `{}` when unset.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub attributes: Option<String>,
    /// How a non-chat participant is reached.
    #[serde(default)]
    pub messaging_binding: Option<MessagingBindingJson>,
    /// `RL` + 32 hex.
    #[serde(default)]
    pub role_sid: Option<String>,
    /// ISO 8601 creation date.
    #[serde(
        default,
        serialize_with = "write_date",
        deserialize_with = "lenient_date"
    )]
    #[schema(value_type = Option<String>)]
    pub date_created: Option<DateTime<Utc>>,
    /// ISO 8601 update date.
    #[serde(
        default,
        serialize_with = "write_date",
        deserialize_with = "lenient_date"
    )]
    #[schema(value_type = Option<String>)]
    pub date_updated: Option<DateTime<Utc>>,
    /// Absolute URL of this participant.
    #[serde(default, deserialize_with = "lenient")]
    #[schema(value_type = String, required = true)]
    pub url: Option<String>,
    /// Index of the last read message.
    #[serde(default)]
    pub last_read_message_index: Option<i64>,
    /// Timestamp of the last read message.
    #[serde(default)]
    pub last_read_timestamp: Option<String>,
}

/// A date field of the form: absent or empty is unset (`None`), else RFC 3339 or kept as
/// text for validation to refuse.
fn form_date(value: Option<String>) -> Option<Raw<DateTime<Utc>>> {
    let value = value.filter(|s| !s.is_empty())?;
    Some(
        DateTime::parse_from_rfc3339(&value)
            .map(|t| Raw::Known(t.with_timezone(&Utc)))
            .unwrap_or(Raw::Unknown(value)),
    )
}

impl CreateServiceParticipantForm {
    /// The request as a draft in the given parents, without what headers carry (webhooks,
    /// the idempotency key).
    pub(crate) fn into_draft(
        self,
        chat_service_sid: String,
        conversation_sid: String,
    ) -> ServiceParticipantDraft {
        ServiceParticipantDraft {
            chat_service_sid,
            conversation_sid,
            identity: self.identity.unwrap_or_default(),
            attributes: self.attributes.unwrap_or_default(),
            messaging_binding: MessagingBinding {
                address: self.messaging_binding_address,
                proxy_address: self.messaging_binding_proxy_address,
                projected_address: self.messaging_binding_projected_address,
                proxy_address_fallback: self.messaging_binding_proxy_address_fallback,
                kind: None,
            },
            role_sid: self.role_sid.unwrap_or_default(),
            date_created: form_date(self.date_created),
            date_updated: form_date(self.date_updated),
            webhooks: Webhooks::Unsaid,
            idempotency_key: String::new(),
        }
    }
}

impl From<&NewServiceParticipant> for CreateServiceParticipantForm {
    fn from(r: &NewServiceParticipant) -> Self {
        let binding = r.messaging_binding.clone().unwrap_or_default();
        CreateServiceParticipantForm {
            identity: r.identity.clone(),
            attributes: r.attributes.clone(),
            messaging_binding_address: binding.address,
            messaging_binding_proxy_address: binding.proxy_address,
            messaging_binding_projected_address: binding.projected_address,
            messaging_binding_proxy_address_fallback: binding.proxy_address_fallback,
            role_sid: r.role_sid.clone(),
            date_created: r.date_created.map(format_date),
            date_updated: r.date_updated.map(format_date),
        }
    }
}

/// What Twilio's spec says a cleared binding address is sent as.
const CLEARED_ADDRESS: &str = "null";

impl From<&ServiceParticipantChanges> for UpdateServiceParticipantForm {
    fn from(c: &ServiceParticipantChanges) -> Self {
        let cleared_address = |a: &Option<Option<String>>| {
            a.as_ref()
                .map(|a| a.clone().unwrap_or_else(|| CLEARED_ADDRESS.to_owned()))
        };
        let cleared_text =
            |a: &Option<Option<String>>| a.as_ref().map(|a| a.clone().unwrap_or_default());
        UpdateServiceParticipantForm {
            date_created: c.date_created.map(format_date),
            // Unchanged: Twilio sets its own clock, as the local store does.
            date_updated: c.date_updated.map(format_date),
            identity: cleared_text(&c.identity),
            attributes: c.attributes.clone(),
            role_sid: cleared_text(&c.role_sid),
            messaging_binding_proxy_address: cleared_address(&c.proxy_address),
            messaging_binding_projected_address: cleared_address(&c.projected_address),
            last_read_message_index: c
                .last_read_message_index
                .map(|i| i.map(|i| i.to_string()).unwrap_or_default()),
            last_read_timestamp: cleared_text(&c.last_read_timestamp),
        }
    }
}

impl ServiceParticipantJson {
    /// `p` as the REST front answers it, its `url` under `base`.
    pub(crate) fn new(p: ServiceParticipant, base: &str) -> Self {
        let url = format!("{base}{}", p.path());
        ServiceParticipantJson {
            account_sid: Some(p.account_sid),
            chat_service_sid: Some(p.chat_service_sid),
            conversation_sid: Some(p.conversation_sid),
            sid: p.sid,
            identity: p.identity,
            attributes: Some(p.attributes),
            messaging_binding: p.messaging_binding.map(|b| MessagingBindingJson {
                kind: b.kind.or_else(|| {
                    MessagingBinding::kind_of(
                        b.address
                            .as_deref()
                            .or(b.proxy_address.as_deref())
                            .or(b.projected_address.as_deref()),
                    )
                }),
                address: b.address,
                proxy_address: b.proxy_address,
                projected_address: b.projected_address,
                proxy_address_fallback: b.proxy_address_fallback,
            }),
            role_sid: p.role_sid,
            date_created: p.date_created,
            date_updated: p.date_updated,
            url: Some(url),
            last_read_message_index: p.last_read_message_index,
            last_read_timestamp: p.last_read_timestamp,
        }
    }

    /// The domain participant; parents Twilio left out come from the request's path.
    pub(crate) fn into_domain(
        self,
        chat_service_sid: &str,
        conversation_sid: &str,
    ) -> ServiceParticipant {
        ServiceParticipant {
            sid: self.sid,
            account_sid: self.account_sid.unwrap_or_default(),
            chat_service_sid: self
                .chat_service_sid
                .unwrap_or_else(|| chat_service_sid.to_owned()),
            conversation_sid: self
                .conversation_sid
                .unwrap_or_else(|| conversation_sid.to_owned()),
            identity: self.identity,
            attributes: self.attributes.unwrap_or_else(|| "{}".to_owned()),
            messaging_binding: self.messaging_binding.map(|b| MessagingBinding {
                address: b.address,
                proxy_address: b.proxy_address,
                projected_address: b.projected_address,
                proxy_address_fallback: b.proxy_address_fallback,
                kind: b.kind.filter(|k| !k.is_empty()),
            }),
            role_sid: self.role_sid,
            date_created: self.date_created,
            date_updated: self.date_updated,
            last_read_message_index: self.last_read_message_index,
            last_read_timestamp: self.last_read_timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SID: &str = "MB0123456789abcdef0123456789abcdef";

    #[test]
    fn a_participant_is_written_with_every_field_in_twilios_order() {
        let p = ServiceParticipant {
            sid: SID.into(),
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            chat_service_sid: "IS0123456789abcdef0123456789abcdef".into(),
            conversation_sid: "CH0123456789abcdef0123456789abcdef".into(),
            identity: None,
            attributes: "{}".into(),
            messaging_binding: Some(MessagingBinding {
                address: Some("whatsapp:+18005550100".into()),
                proxy_address: Some("whatsapp:+18005550199".into()),
                projected_address: None,
                proxy_address_fallback: None,
                kind: None,
            }),
            role_sid: None,
            date_created: None,
            date_updated: None,
            last_read_message_index: None,
            last_read_timestamp: None,
        };
        let json = serde_json::to_value(ServiceParticipantJson::new(p, "http://h")).expect("json");
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 13, "every field, null or not: {json}");
        assert_eq!(json["messaging_binding"]["type"], "whatsapp");
        assert!(json["messaging_binding"].get("projected_address").is_none());
        assert_eq!(json["attributes"], "{}");
        assert!(
            json["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://h/v1/Services/IS"))
        );
    }

    #[test]
    fn a_participant_is_read_as_twilio_may_answer_it() {
        let read = |v: serde_json::Value| serde_json::from_value::<ServiceParticipantJson>(v);
        let p = read(json!({"sid": SID})).expect("only sid is required");
        let p = p.into_domain("ISx", "CHx");
        assert_eq!(
            (p.chat_service_sid.as_str(), p.attributes.as_str()),
            ("ISx", "{}")
        );
        let p = read(json!({"sid": SID, "url": 5, "date_created": "soon",
            "messaging_binding": {"type": "pigeon", "address": "+18005550100"}}))
        .expect("lenient");
        assert!(p.url.is_none() && p.date_created.is_none());
        assert!(read(json!({"sid": SID, "identity": 5})).is_err());
        assert!(
            read(json!({"account_sid": "AC"})).is_err(),
            "sid is required"
        );
    }

    #[test]
    fn the_form_is_written_in_twilios_names_without_unset_fields() {
        let request = NewServiceParticipant {
            chat_service_sid: "IS0123456789abcdef0123456789abcdef".into(),
            conversation_sid: "CH0123456789abcdef0123456789abcdef".into(),
            identity: Some("dana".into()),
            attributes: None,
            messaging_binding: Some(MessagingBinding {
                address: None,
                proxy_address: None,
                projected_address: Some("+18005550100".into()),
                proxy_address_fallback: None,
                kind: None,
            }),
            role_sid: None,
            date_created: DateTime::parse_from_rfc3339("2015-12-16T22:18:37Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            date_updated: None,
            webhooks: Webhooks::Unsaid,
            idempotency_key: None,
        };
        let form = serde_urlencoded::to_string(CreateServiceParticipantForm::from(&request))
            .expect("form");
        assert_eq!(
            form,
            "Identity=dana&MessagingBinding.ProjectedAddress=%2B18005550100\
             &DateCreated=2015-12-16T22%3A18%3A37Z"
        );
    }

    fn update_form(body: &str) -> ServiceParticipantUpdateDraft {
        serde_urlencoded::from_str::<UpdateServiceParticipantForm>(body)
            .expect("form")
            .into_draft("IS".into(), "CH".into(), "MB".into())
    }

    #[test]
    fn an_update_form_masks_the_fields_present_and_null_clears_addresses() {
        let draft = update_form(
            "MessagingBinding.ProxyAddress=null&MessagingBinding.ProjectedAddress=%2B18005550100\
             &LastReadMessageIndex=null",
        );
        assert_eq!(
            draft.mask,
            Some(vec![
                "messaging_binding.proxy_address".to_owned(),
                "messaging_binding.projected_address".to_owned(),
                "last_read_message_index".to_owned(),
            ])
        );
        assert_eq!(draft.proxy_address, "");
        assert_eq!(draft.projected_address, "+18005550100");
        assert_eq!(draft.last_read_message_index, Some(Raw::Unset));
        let draft =
            update_form("LastReadMessageIndex=4&Identity=&DateUpdated=2015-12-16T22%3A18%3A37Z");
        assert_eq!(draft.last_read_message_index, Some(Raw::Known(4)));
        assert_eq!(
            draft.mask,
            Some(vec![
                "identity".to_owned(),
                "date_updated".to_owned(),
                "last_read_message_index".to_owned(),
            ])
        );
        assert!(matches!(draft.date_updated, Some(Raw::Known(_))));
        let draft = update_form("LastReadMessageIndex=four");
        assert_eq!(
            draft.last_read_message_index,
            Some(Raw::Unknown("four".into()))
        );
        assert_eq!(update_form("").mask, Some(vec![]));
        assert!(
            serde_urlencoded::from_str::<UpdateServiceParticipantForm>(
                "MessagingBinding.Address=x"
            )
            .is_err(),
            "a field update does not take is refused"
        );
    }

    #[test]
    fn a_list_meta_has_absolute_urls_with_the_next_pages_query() {
        let at = PageAt {
            base: "http://h:1",
            path: "/v1/Services/IS1/Conversations/CH1/Participants",
            page_size: 3,
            page: 1,
            page_token: Some("a+b/c="),
        };
        let page = Page {
            items: vec![],
            next_page_token: Some("n=1&x".into()),
        };
        let json = serde_json::to_value(ListServiceParticipantsJson::new(page, &at)).expect("json");
        let list = "http://h:1/v1/Services/IS1/Conversations/CH1/Participants";
        assert_eq!(
            json["meta"],
            json!({
                "page": 1,
                "page_size": 3,
                "first_page_url": format!("{list}?PageSize=3&Page=0"),
                "previous_page_url": null,
                "url": format!("{list}?PageSize=3&Page=1&PageToken=a%2Bb%2Fc%3D"),
                "next_page_url": format!("{list}?PageSize=3&Page=2&PageToken=n%3D1%26x"),
                "key": "participants",
            })
        );
        let last = Page {
            items: vec![],
            next_page_token: None,
        };
        let json = serde_json::to_value(ListServiceParticipantsJson::new(last, &at)).expect("json");
        assert_eq!(json["meta"]["next_page_url"], serde_json::Value::Null);
    }

    #[test]
    fn the_update_form_sends_only_changes_and_clears_addresses_with_null() {
        let changes = ServiceParticipantChanges {
            attributes: Some("{}".into()),
            role_sid: Some(None),
            proxy_address: Some(None),
            projected_address: Some(Some("+18005550100".into())),
            last_read_message_index: Some(Some(4)),
            ..Default::default()
        };
        let form = serde_urlencoded::to_string(UpdateServiceParticipantForm::from(&changes))
            .expect("form");
        assert_eq!(
            form,
            "Attributes=%7B%7D&RoleSid=&MessagingBinding.ProxyAddress=null\
             &MessagingBinding.ProjectedAddress=%2B18005550100&LastReadMessageIndex=4"
        );
        let none = serde_urlencoded::to_string(UpdateServiceParticipantForm::from(
            &ServiceParticipantChanges::default(),
        ))
        .expect("form");
        assert_eq!(none, "", "nothing changed, nothing sent");
    }

    #[test]
    fn the_fallback_sender_is_forwarded_and_twilios_binding_type_is_kept() {
        let binding = MessagingBinding {
            address: Some("rcs:+18005550100".into()),
            proxy_address: Some("rcs:brand_acme_agent".into()),
            proxy_address_fallback: Some("+18005550199".into()),
            ..Default::default()
        };
        let request = NewServiceParticipant {
            chat_service_sid: "IS0123456789abcdef0123456789abcdef".into(),
            conversation_sid: "CH0123456789abcdef0123456789abcdef".into(),
            identity: None,
            attributes: None,
            messaging_binding: Some(binding),
            role_sid: None,
            date_created: None,
            date_updated: None,
            webhooks: Webhooks::Unsaid,
            idempotency_key: None,
        };
        let form = serde_urlencoded::to_string(CreateServiceParticipantForm::from(&request))
            .expect("form");
        assert!(
            form.contains("MessagingBinding.ProxyAddressFallback=%2B18005550199"),
            "{form}"
        );
        let read: ServiceParticipantJson = serde_json::from_value(json!({"sid": SID,
            "messaging_binding": {"type": "whatsapp", "address": "whatsapp:+18005550100"}}))
        .expect("read");
        let p = read.into_domain("ISx", "CHx");
        assert_eq!(
            p.messaging_binding.and_then(|b| b.kind).as_deref(),
            Some("whatsapp")
        );
    }
}
