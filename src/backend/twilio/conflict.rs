//! A retried v2 create that meets a 409: whether the participant Twilio names is the
//! create's own earlier attempt, or a real conflict (see `TwilioBackend::resolve_conflict`).

use crate::domain::{Address, NewParticipant, Participant};

/// Whether a participant Twilio holds is the one `request` would have created: used to
/// recognise our own earlier attempt behind a 409 after an ambiguous failure.
pub(crate) fn same_participant(request: &NewParticipant, existing: &Participant) -> bool {
    let key = |a: &Address| (a.channel, a.conflict_key(), a.channel_id.clone());
    let mut wanted: Vec<_> = request.addresses.iter().map(key).collect();
    let mut found: Vec<_> = existing.addresses.iter().map(key).collect();
    wanted.sort();
    found.sort();
    existing.conversation_id == request.conversation_id
        && existing.name == request.name
        && (request.kind.is_none() || existing.kind == request.kind)
        && (request.profile_id.is_none() || existing.profile_id == request.profile_id)
        && wanted == found
}

/// Whether `existing` holds one of `request`'s addresses (same channel, same address as
/// conflicts compare them): what a participant must do to conflict with the request.
pub(crate) fn shares_an_address(request: &NewParticipant, existing: &Participant) -> bool {
    existing.addresses.iter().any(|held| {
        request.addresses.iter().any(|wanted| {
            wanted.channel == held.channel && wanted.conflict_key() == held.conflict_key()
        })
    })
}
