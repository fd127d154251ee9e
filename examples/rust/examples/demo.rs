//! participants.v1 from Rust, with this crate: the same calls as the other examples.
//!
//! `cargo run --example demo` against PARTICIPANTS_ADDR (default 127.0.0.1:50051): create,
//! fetch, list every page and update (v2); create, list, update and delete (v1); errors
//! read as [`ApiError`]; a deadline. Exits non-zero at the first answer that is not what
//! the API promises.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use participants_client::proto::{
    self, Address, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    DeleteServiceParticipantRequest, FetchParticipantRequest, FetchServiceParticipantRequest,
    ListParticipantsRequest, ListServiceParticipantsRequest, Participant, ParticipantType,
    ServiceParticipant, UpdateParticipantRequest, UpdateServiceParticipantRequest,
};
use participants_client::{ApiError, ParticipantServiceClient, connect, request, within};
use tonic::Request;
use tonic::transport::Channel as GrpcChannel;

type Client = ParticipantServiceClient<GrpcChannel>;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("examples/rust: FAILED: {what}").into())
    }
}

/// A request with its deadline: it travels as grpc-timeout.
fn call<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(5));
    request
}

/// Distinct per run (the nanoseconds of the clock), so reruns use fresh ids and numbers.
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

async fn v2(client: &mut Client) -> Result<()> {
    let run = unique();
    let conversation_id = format!("conv_example_{run:x}");
    let mut created: Vec<Participant> = Vec::new();
    for n in 0..5 {
        let request = CreateParticipantRequest {
            conversation_id: conversation_id.clone(),
            name: format!("Customer {n}"),
            r#type: ParticipantType::Customer as i32,
            addresses: vec![Address {
                channel: Channel::Sms as i32,
                address: format!("+1555{:06}{n}", run % 1_000_000),
                ..Default::default()
            }],
            // Safe to retry: the same key answers with the same participant.
            idempotency_key: format!("{run:x}-{n}"),
            ..Default::default()
        };
        created.push(client.create_participant(call(request)).await?.into_inner());
    }
    let first = created[0].clone();
    println!(
        "created {} v2 participants in {conversation_id}, first {}",
        created.len(),
        first.id
    );

    let fetched = client
        .fetch_participant(call(FetchParticipantRequest {
            conversation_id: conversation_id.clone(),
            participant_id: first.id.clone(),
        }))
        .await?
        .into_inner();
    check(fetched == first, "fetch returns the participant as created")?;

    // Every page: follow next_page_token until it is empty.
    let (mut listed, mut page_token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = client
            .list_participants(call(ListParticipantsRequest {
                conversation_id: conversation_id.clone(),
                page_size: 2,
                page_token,
            }))
            .await?
            .into_inner();
        listed.extend(page.participants);
        pages += 1;
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    let ids = |ps: &[Participant]| ps.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    check(
        ids(&listed) == ids(&created),
        "list gives every participant, oldest first",
    )?;
    println!("listed {} participants in {pages} pages", listed.len());

    // Update: the mask names the fields that change.
    let updated = client
        .update_participant(call(UpdateParticipantRequest {
            participant: Some(Participant {
                conversation_id: conversation_id.clone(),
                id: first.id.clone(),
                name: "Renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        }))
        .await?
        .into_inner();
    check(
        updated.name == "Renamed" && updated.created_at == first.created_at,
        "update changes the name only",
    )?;
    println!("updated {}: name {:?}", updated.id, updated.name);

    // ALREADY_EXISTS, as a typed error naming the holder.
    let taken = client
        .create_participant(call(CreateParticipantRequest {
            conversation_id: conversation_id.clone(),
            addresses: first.addresses.clone(),
            ..Default::default()
        }))
        .await
        .map_err(ApiError::from);
    match taken {
        Err(ApiError::AlreadyExists {
            reason,
            conflicting_resource_id: Some(holder),
            ..
        }) if holder == first.id => println!("ALREADY_EXISTS: reason {reason}, held by {holder}"),
        other => check(
            false,
            &format!("ALREADY_EXISTS naming the holder, got {other:?}"),
        )?,
    }

    // INVALID_ARGUMENT: one violation per invalid field.
    let invalid = client
        .create_participant(call(CreateParticipantRequest {
            addresses: vec![Address {
                channel: Channel::Email as i32,
                address: "not-an-email".into(),
                ..Default::default()
            }],
            ..Default::default()
        }))
        .await
        .map_err(ApiError::from);
    match invalid {
        Err(ApiError::InvalidArgument { violations, .. }) => {
            let mut fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
            fields.sort_unstable();
            check(
                fields == ["addresses[0].address", "conversation_id"],
                "the violations name the fields",
            )?;
            for v in &violations {
                println!("INVALID_ARGUMENT: {}: {}", v.field, v.description);
            }
        }
        other => check(false, &format!("INVALID_ARGUMENT, got {other:?}"))?,
    }
    Ok(())
}

async fn v1(client: &mut Client) -> Result<()> {
    let run = unique();
    let chat_service_sid = format!("IS{run:032x}");
    let conversation_sid = format!("CH{run:032x}");
    let mut made: Vec<ServiceParticipant> = Vec::new();
    for n in 0..3 {
        let request = CreateServiceParticipantRequest {
            chat_service_sid: chat_service_sid.clone(),
            conversation_sid: conversation_sid.clone(),
            identity: format!("agent-{n}"),
            attributes: r#"{"team": "support"}"#.into(),
            ..Default::default()
        };
        made.push(
            client
                .create_service_participant(call(request))
                .await?
                .into_inner(),
        );
    }
    let page = client
        .list_service_participants(call(ListServiceParticipantsRequest {
            chat_service_sid: chat_service_sid.clone(),
            conversation_sid: conversation_sid.clone(),
            page_size: 50,
            page_token: String::new(),
        }))
        .await?
        .into_inner();
    let sids = |ps: &[ServiceParticipant]| ps.iter().map(|p| p.sid.clone()).collect::<Vec<_>>();
    check(
        sids(&page.participants) == sids(&made),
        "v1 list, oldest first",
    )?;
    let renamed = client
        .update_service_participant(call(UpdateServiceParticipantRequest {
            service_participant: Some(ServiceParticipant {
                chat_service_sid: chat_service_sid.clone(),
                conversation_sid: conversation_sid.clone(),
                sid: made[0].sid.clone(),
                identity: "agent-lead".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["identity".into()],
            }),
            ..Default::default()
        }))
        .await?
        .into_inner();
    check(renamed.identity == "agent-lead", "v1 update")?;
    // Delete by identity, as Twilio allows.
    client
        .delete_service_participant(call(DeleteServiceParticipantRequest {
            chat_service_sid: chat_service_sid.clone(),
            conversation_sid: conversation_sid.clone(),
            sid: "agent-lead".into(),
            ..Default::default()
        }))
        .await?;
    let gone = client
        .fetch_service_participant(call(FetchServiceParticipantRequest {
            chat_service_sid,
            conversation_sid,
            sid: made[0].sid.clone(),
        }))
        .await
        .map_err(ApiError::from);
    check(
        matches!(gone, Err(ApiError::NotFound { .. })),
        "a deleted participant is NOT_FOUND",
    )?;
    println!(
        "v1: created 3, listed {}, renamed and deleted {}",
        page.participants.len(),
        made[0].sid
    );
    Ok(())
}

async fn deadline(client: &mut Client) -> Result<()> {
    // A budget handed down from the caller's own caller, already spent: the call ends
    // at once with DeadlineExceeded, before it is sent (`within`). A budget not yet spent
    // travels as the request's grpc-timeout, so the server gives up too (`request`).
    let spent = tokio::time::Instant::now();
    let message = proto::ListParticipantsRequest {
        conversation_id: "conv_example".into(),
        ..Default::default()
    };
    let result = within(spent, client.list_participants(request(message, spent))).await;
    check(
        matches!(result, Err(ApiError::DeadlineExceeded { .. })),
        &format!("DEADLINE_EXCEEDED, got {result:?}"),
    )?;
    println!("DEADLINE_EXCEEDED for a call whose deadline has passed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr = std::env::var("PARTICIPANTS_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let mut client = connect(format!("http://{addr}")).await?;
    v2(&mut client).await?;
    v1(&mut client).await?;
    deadline(&mut client).await?;
    println!("examples/rust: OK");
    Ok(())
}
