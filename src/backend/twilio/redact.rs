//! Upstream URLs as spans may show them: personal data in a path (an identity in place of
//! a sid, a free-form conversation id) never leaves the process in a span.

use crate::domain::rules::{self, V2Id};

/// Whether a value in the position of template parameter `param` is safe to show: only
/// Twilio-shaped ids of the kind that position holds. Anything else (an identity used in
/// place of a sid, a free-form conversation id) is personal data until proven otherwise.
fn safe_param(param: &str, value: &str) -> bool {
    match param {
        "{ChatServiceSid}" => rules::is_sid(value, "IS"),
        "{ConversationSid}" => rules::is_sid(value, "CH"),
        "{Sid}" => rules::is_sid(value, "MB"),
        "{ConversationId}" => v2_id_to_show(value, V2Id::Conversation),
        "{id}" => v2_id_to_show(value, V2Id::Participant),
        _ => false,
    }
}

/// A v2 id of `kind` ([`rules::is_v2_id`]) without the separators a resource id may also
/// hold: Twilio's ids are ULIDs, and a `.`, `-` or `:` could carry a name or an address
/// (`conv_conversation_dana.scully`).
fn v2_id_to_show(value: &str, kind: V2Id) -> bool {
    rules::is_v2_id(value, kind) && !value.contains(['.', '-', ':'])
}

/// The URL as a span may show it: no credentials, no query; the path's parameters, read
/// by their position in `template`, replaced by `REDACTED` unless they are ids of their
/// kind. A path prefix of the configured base URL is kept as it is.
pub(crate) fn safe_url(url: &reqwest::Url, template: &str) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    let template: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let prefix = segments.len().saturating_sub(template.len());
    for (i, segment) in segments.iter().enumerate() {
        let shown_segment = match i.checked_sub(prefix).map(|t| template[t]) {
            None => segment,
            Some(param) if param.starts_with('{') => {
                if safe_param(param, segment) {
                    segment
                } else {
                    "REDACTED"
                }
            }
            Some(literal) if literal == *segment => segment,
            Some(_) => "REDACTED",
        };
        shown.push('/');
        shown.push_str(shown_segment);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_of_the_positions_kind_are_shown() {
        assert!(safe_param(
            "{id}",
            "conv_participant_01hzy3v6b0qz8d3v5e6w7x8y9z"
        ));
        assert!(safe_param("{ConversationId}", "conv_conversation_1"));
        assert!(safe_param("{Sid}", "MB0123456789abcdef0123456789abcdef"));
        for (param, value) in [
            ("{id}", "conv_participant_"),
            ("{id}", "conv_conversation_1"),
            ("{ConversationId}", "conv_conversation_dana.scully"),
            ("{ConversationId}", "ada@example.com"),
            ("{Sid}", "dana"),
            ("{ChatServiceSid}", "MB0123456789abcdef0123456789abcdef"),
        ] {
            assert!(!safe_param(param, value), "{param} {value}");
        }
    }
}
