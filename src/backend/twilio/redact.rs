//! Upstream URLs as spans may show them: personal data in a path (an identity in place of
//! a sid, a free-form conversation id) never leaves the process in a span.

/// Whether a value in the position of template parameter `param` is safe to show: only
/// Twilio-shaped ids of the kind that position holds. Anything else (an identity used in
/// place of a sid, a free-form conversation id) is personal data until proven otherwise.
fn safe_param(param: &str, value: &str) -> bool {
    let sid = |prefix: &str| crate::domain::rules::is_sid(value, prefix);
    match param {
        "{ChatServiceSid}" => sid("IS"),
        "{ConversationSid}" => sid("CH"),
        "{Sid}" => sid("MB"),
        "{ConversationId}" => {
            value.starts_with("conv_conversation_")
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        "{id}" => {
            value.starts_with("conv_participant_")
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
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
