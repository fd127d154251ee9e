//! A Twilio stand-in that injects faults, for the storm test in `upstream`: raw HTTP/1.1
//! on 127.0.0.1:0 (wiremock cannot reset a connection mid-body or drip-feed), serving the
//! four participant routes with Twilio's rules and shapes, and misbehaving on a fixed
//! schedule of its requests: a connection closed halfway through the body, a 201 whose
//! body never comes, a body dripped one byte every 100 ms, a connection closed without an
//! answer, an endless body, answers of the wrong shape, single 500s (after acting on the
//! request, as a real failure after the commit would), and windows of 503 and 429 storms
//! with `Retry-After`.
//!
//! Like Twilio it refuses a second v2 participant with the same address in a conversation
//! (409, `X-Conflicting-Resource-Id`) and a second v1 participant with the same identity,
//! and answers a repeated `Idempotency-Key` with the original participant. It remembers
//! every participant it really created, with the key and the address or identity it was
//! created for ([`Applied`]), so a test can tell whether one logical create became two
//! participants.
//!
//! Everything it does is bounded: a hang or a drip lasts until the client goes away or
//! [`HOLD`] passes, an endless body stops at [`ENDLESS`], an idle connection closes after
//! [`HOLD`], and dropping the fake stops every task it started.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::twilio::ACCOUNT;

/// Longest a hang, a drip or an idle connection lasts.
pub const HOLD: Duration = Duration::from_secs(10);
/// Size at which an endless body gives up (the facade reads at most 1 MiB of it).
pub const ENDLESS: usize = 16 * 1024 * 1024;
/// Requests in one scheduling window; the third of every six is a 503 storm, the fifth a
/// 429 storm.
const WINDOW: u64 = 24;

/// What the fake does to one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The right answer, whole.
    None,
    /// Acted on; headers and half the body, then the connection closes.
    ResetMidBody,
    /// Acted on; headers (with the body's length), then nothing.
    HeadersThenHang,
    /// Acted on; the answer one byte every 100 ms.
    Drip,
    /// Acted on; the connection closes without an answer.
    CloseWithoutAnswer,
    /// Acted on; a success answer's body replaced by one of the wrong shape.
    WrongShape,
    /// Acted on; a success status and a body that never ends.
    EndlessBody,
    /// Acted on, then 500 (an ambiguous failure).
    Status500,
    /// Not acted on: 503 with `Retry-After: 0`.
    Status503,
    /// Not acted on: 429 with `Retry-After` of 0 or 1 s.
    Status429,
}

impl Fault {
    /// Every fault, for coverage checks.
    pub const ALL: [Fault; 10] = [
        Fault::None,
        Fault::ResetMidBody,
        Fault::HeadersThenHang,
        Fault::Drip,
        Fault::CloseWithoutAnswer,
        Fault::WrongShape,
        Fault::EndlessBody,
        Fault::Status500,
        Fault::Status503,
        Fault::Status429,
    ];

    /// The fault of the `n`th request: storms in fixed windows, otherwise a fixed
    /// pseudo-random draw (so every run sees the same sequence).
    fn of_request(n: u64) -> Fault {
        match (n / WINDOW) % 6 {
            2 => return Fault::Status503,
            4 => return Fault::Status429,
            _ => {}
        }
        match splitmix(n) % 100 {
            0..40 => Fault::None,
            40..48 => Fault::ResetMidBody,
            48..56 => Fault::HeadersThenHang,
            56..61 => Fault::Drip,
            61..67 => Fault::CloseWithoutAnswer,
            67..77 => Fault::WrongShape,
            77..82 => Fault::EndlessBody,
            82..89 => Fault::Status500,
            89..94 => Fault::Status503,
            _ => Fault::Status429,
        }
    }

    /// Whether the fake acts on the request (creates the participant) before misbehaving.
    fn acts(self) -> bool {
        !matches!(self, Fault::Status503 | Fault::Status429)
    }
}

fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A participant the fake really created.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The v2 address or v1 identity it was created for.
    pub logical: String,
    /// The `Idempotency-Key` of the request that created it.
    pub key: Option<String>,
    /// Its id or sid.
    pub id: String,
}

#[derive(Default)]
struct State {
    requests: u64,
    healthy: bool,
    /// Faults dealt before any other, in order (see [`FaultyTwilio::force`]).
    forced: VecDeque<Fault>,
    /// Method and path of every request, in arrival order.
    received: Vec<(String, String)>,
    next_id: u64,
    /// v2 participants by id, and their ids by (conversation, channel, address).
    v2: HashMap<String, Value>,
    v2_addresses: HashMap<(String, String, String), String>,
    /// v1 participants by sid, and their sids by (service, conversation, identity).
    v1: HashMap<String, Value>,
    v1_identities: HashMap<(String, String, String), String>,
    /// The 201 body first answered for each `Idempotency-Key`.
    replies: HashMap<String, Value>,
    applied: Vec<Applied>,
    faults: HashMap<Fault, u64>,
}

/// The fault-injecting Twilio; stops (every connection with it) when dropped.
pub struct FaultyTwilio {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyTwilio {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

impl FaultyTwilio {
    /// Starts the fake, healthy (no faults) until [`FaultyTwilio::set_faulty`].
    pub async fn start() -> FaultyTwilio {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert!(addr.ip().is_loopback());
        let state = Arc::new(Mutex::new(State {
            healthy: true,
            ..State::default()
        }));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve(stream, shared.clone()));
                    }
                    // Reap finished connections so the set stays small.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        FaultyTwilio {
            url: format!("http://{addr}"),
            state,
            server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// From now on, requests meet the fault schedule.
    pub fn set_faulty(&self) {
        self.lock().healthy = false;
    }

    /// From now on, every request is answered right.
    pub fn set_healthy(&self) {
        self.lock().healthy = true;
    }

    /// The next requests meet `faults`, in order, whatever the schedule or health says.
    pub fn force(&self, faults: &[Fault]) {
        self.lock().forced.extend(faults.iter().copied());
    }

    /// How many requests came with `method` on `path`.
    pub fn received(&self, method: &str, path: &str) -> usize {
        self.lock()
            .received
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    /// Every participant really created, in order.
    pub fn applied(&self) -> Vec<Applied> {
        self.lock().applied.clone()
    }

    /// How often each fault was dealt.
    pub fn faults(&self) -> HashMap<Fault, u64> {
        self.lock().faults.clone()
    }

    /// Puts a v2 participant in `conversation` (not counted as applied); its id.
    pub fn seed_v2(&self, conversation: &str, address: &str) -> String {
        let mut state = self.lock();
        let id = state.fresh_v2_id();
        let body = v2_participant(
            &id,
            conversation,
            &json!({"addresses": [{"channel": "SMS", "address": address}]}),
        );
        state.v2_addresses.insert(
            (conversation.into(), "SMS".into(), address.into()),
            id.clone(),
        );
        state.v2.insert(id.clone(), body);
        id
    }

    /// Puts a v1 participant with `identity` in the conversation (not counted as
    /// applied); its sid.
    pub fn seed_v1(&self, service: &str, conversation: &str, identity: &str) -> String {
        let mut state = self.lock();
        let sid = state.fresh_v1_sid();
        let form = vec![("Identity".to_owned(), identity.to_owned())];
        state.v1.insert(
            sid.clone(),
            v1_participant(&sid, service, conversation, &form),
        );
        state.v1_identities.insert(
            (service.into(), conversation.into(), identity.into()),
            sid.clone(),
        );
        sid
    }
}

impl State {
    fn fresh_v2_id(&mut self) -> String {
        self.next_id += 1;
        format!("conv_participant_{:026}", self.next_id)
    }

    fn fresh_v1_sid(&mut self) -> String {
        self.next_id += 1;
        format!("MB{:032x}", self.next_id)
    }

    /// The fault for the next request.
    fn deal(&mut self) -> Fault {
        let fault = if let Some(forced) = self.forced.pop_front() {
            forced
        } else if self.healthy {
            Fault::None
        } else {
            let n = self.requests;
            self.requests += 1;
            Fault::of_request(n)
        };
        *self.faults.entry(fault).or_default() += 1;
        fault
    }

    /// What Twilio answers to `request`, acting on it.
    fn answer(&mut self, request: &Request) -> Reply {
        let segments: Vec<String> = request
            .path
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let key = request.header("idempotency-key");
        match (request.method.as_str(), &segments[..]) {
            ("POST", ["v2", "Conversations", conversation, "Participants"]) => {
                let Ok(sent) = serde_json::from_slice::<Value>(&request.body) else {
                    return Reply::error(400, 20001, "Invalid JSON");
                };
                if let Some(body) = key.and_then(|k| self.replies.get(k)) {
                    return Reply::json(201, body.clone());
                }
                let addresses: Vec<(String, String)> = sent["addresses"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|a| {
                                let channel = a["channel"].as_str().unwrap_or("").to_owned();
                                let address = a["address"].as_str().unwrap_or("");
                                let address = if channel == "EMAIL" {
                                    address.to_ascii_lowercase()
                                } else {
                                    address.to_owned()
                                };
                                (channel, address)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for (channel, address) in &addresses {
                    let taken = (conversation.to_string(), channel.clone(), address.clone());
                    if let Some(existing) = self.v2_addresses.get(&taken) {
                        return Reply::error(409, 50416, "Participant address already exists")
                            .with_header("X-Conflicting-Resource-Id", existing);
                    }
                }
                let id = self.fresh_v2_id();
                let body = v2_participant(&id, conversation, &sent);
                for (channel, address) in &addresses {
                    self.v2_addresses.insert(
                        (conversation.to_string(), channel.clone(), address.clone()),
                        id.clone(),
                    );
                }
                self.v2.insert(id.clone(), body.clone());
                self.created(key, addresses.first().map(|a| a.1.clone()), &id, &body);
                Reply::json(201, body)
            }
            ("GET", ["v2", "Conversations", conversation, "Participants", id]) => {
                match self.v2.get(*id) {
                    Some(p) if p["conversationId"] == *conversation => Reply::json(200, p.clone()),
                    _ => Reply::error(404, 20404, "Participant not found"),
                }
            }
            (
                "POST",
                [
                    "v1",
                    "Services",
                    service,
                    "Conversations",
                    conversation,
                    "Participants",
                ],
            ) => {
                let form: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
                if let Some(body) = key.and_then(|k| self.replies.get(k)) {
                    return Reply::json(201, body.clone());
                }
                let identity = form
                    .iter()
                    .find(|(k, _)| k == "Identity")
                    .map(|(_, v)| v.clone());
                if let Some(identity) = &identity {
                    let taken = (
                        service.to_string(),
                        conversation.to_string(),
                        identity.clone(),
                    );
                    if let Some(existing) = self.v1_identities.get(&taken) {
                        return Reply::error(409, 50433, "Participant already exists")
                            .with_header("X-Conflicting-Resource-Id", existing);
                    }
                }
                let sid = self.fresh_v1_sid();
                let body = v1_participant(&sid, service, conversation, &form);
                if let Some(identity) = &identity {
                    self.v1_identities.insert(
                        (
                            service.to_string(),
                            conversation.to_string(),
                            identity.clone(),
                        ),
                        sid.clone(),
                    );
                }
                self.v1.insert(sid.clone(), body.clone());
                self.created(key, identity, &sid, &body);
                Reply::json(201, body)
            }
            (
                "GET",
                [
                    "v1",
                    "Services",
                    service,
                    "Conversations",
                    conversation,
                    "Participants",
                    wanted,
                ],
            ) => {
                let by_identity = (
                    service.to_string(),
                    conversation.to_string(),
                    wanted.to_string(),
                );
                let sid = self
                    .v1_identities
                    .get(&by_identity)
                    .cloned()
                    .unwrap_or_else(|| wanted.to_string());
                match self.v1.get(&sid) {
                    Some(p) if p["conversation_sid"] == *conversation => {
                        Reply::json(200, p.clone())
                    }
                    _ => Reply::error(404, 20404, "Participant not found"),
                }
            }
            _ => Reply::error(404, 20404, "The requested resource was not found"),
        }
    }

    fn created(&mut self, key: Option<&str>, logical: Option<String>, id: &str, body: &Value) {
        if let Some(key) = key {
            self.replies.insert(key.to_owned(), body.clone());
        }
        self.applied.push(Applied {
            logical: logical.unwrap_or_default(),
            key: key.map(str::to_owned),
            id: id.to_owned(),
        });
    }
}

/// A v2 participant as Twilio answers it, from the create's JSON body.
fn v2_participant(id: &str, conversation: &str, sent: &Value) -> Value {
    json!({
        "id": id,
        "conversationId": conversation,
        "accountId": ACCOUNT,
        "name": sent.get("name").cloned().unwrap_or(Value::Null),
        "type": sent.get("type").cloned().unwrap_or(json!("CUSTOMER")),
        "profileId": sent.get("profileId").cloned().unwrap_or(Value::Null),
        "addresses": sent["addresses"].clone(),
        "createdAt": "2026-01-02T03:04:05Z",
        "updatedAt": "2026-01-02T03:04:05Z",
    })
}

/// A v1 participant as Twilio answers it, from the create's form.
fn v1_participant(
    sid: &str,
    service: &str,
    conversation: &str,
    form: &[(String, String)],
) -> Value {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map_or(Value::Null, |(_, v)| json!(v))
    };
    json!({
        "account_sid": ACCOUNT,
        "chat_service_sid": service,
        "conversation_sid": conversation,
        "sid": sid,
        "identity": field("Identity"),
        "attributes": form.iter().find(|(k, _)| k == "Attributes").map_or("{}", |(_, v)| v),
        "messaging_binding": null,
        "role_sid": field("RoleSid"),
        "date_created": "2026-01-02T03:04:05Z",
        "date_updated": "2026-01-02T03:04:05Z",
        "url": format!("https://conversations.twilio.com/v1/Services/{service}/Conversations/{conversation}/Participants/{sid}"),
        "last_read_message_index": null,
        "last_read_timestamp": null,
    })
}

/// Answers of the wrong shape, for [`Fault::WrongShape`], picked by the request number.
fn wrong_shape(right: &Value, n: u64) -> Vec<u8> {
    let mut spoiled = right.clone();
    match n % 7 {
        0 => return b"{\"hello\": \"world\"}".to_vec(),
        1 => return b"[]".to_vec(),
        2 => return b"<html><body>Service temporarily unavailable</body></html>".to_vec(),
        3 => {
            let whole = right.to_string().into_bytes();
            return whole[..whole.len() / 2].to_vec();
        }
        4 => {
            for id in ["id", "sid"] {
                if spoiled.get(id).is_some() {
                    spoiled[id] = json!("");
                }
            }
        }
        5 => {
            for parent in ["conversationId", "conversation_sid"] {
                if spoiled.get(parent).is_some() {
                    spoiled[parent] = json!("CHffffffffffffffffffffffffffffffff");
                }
            }
        }
        _ => {
            if spoiled.get("addresses").is_some() {
                spoiled["addresses"] = json!([]);
            } else {
                spoiled["account_sid"] = json!("AC-not-a-sid");
            }
        }
    }
    spoiled.to_string().into_bytes()
}

/// One answer: status, extra headers, JSON body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    fn error(status: u16, code: u32, message: &str) -> Reply {
        Reply::json(
            status,
            json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            }),
        )
    }

    fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The status line and headers, with the body's length unless `chunked`.
    fn head(&self, chunked: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            201 => "Created",
            404 => "Not Found",
            409 => "Conflict",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Other",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\n",
            self.status
        );
        if chunked {
            head.push_str("transfer-encoding: chunked\r\n");
        } else {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// One request as read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request (head, then a `content-length` body); `None` when the peer
/// closed, sent garbage, or stayed idle for [`HOLD`].
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        read_more(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > 1024 * 1024 {
        return None;
    }
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout(HOLD, stream.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
        _ => None,
    }
}

/// Serves one connection: requests in turn (keep-alive) until a fault ends it.
async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buf).await {
        let (fault, n, reply) = {
            let mut state = state.lock().expect("fake state");
            state
                .received
                .push((request.method.clone(), request.path.clone()));
            let n = state.requests;
            let fault = state.deal();
            let reply = if fault.acts() {
                state.answer(&request)
            } else {
                let after = if fault == Fault::Status429 && n.is_multiple_of(2) {
                    "1"
                } else {
                    "0"
                };
                let (status, code) = if fault == Fault::Status429 {
                    (429, 20429)
                } else {
                    (503, 20503)
                };
                Reply::error(status, code, "Try again later").with_header("Retry-After", after)
            };
            (fault, n, reply)
        };
        if !deliver(&mut stream, fault, n, reply).await {
            return;
        }
    }
}

/// Writes `reply` as `fault` says; whether the connection may carry another request.
async fn deliver(stream: &mut TcpStream, fault: Fault, n: u64, mut reply: Reply) -> bool {
    let success = (200..300).contains(&reply.status);
    match fault {
        Fault::None | Fault::Status503 | Fault::Status429 => {
            let mut bytes = reply.head(false);
            bytes.extend_from_slice(&reply.body);
            stream.write_all(&bytes).await.is_ok()
        }
        Fault::Status500 => {
            let reply = Reply::error(500, 20500, "Internal Server Error");
            let mut bytes = reply.head(false);
            bytes.extend_from_slice(&reply.body);
            stream.write_all(&bytes).await.is_ok()
        }
        Fault::WrongShape => {
            if success {
                let right: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                reply.body = wrong_shape(&right, n);
            }
            let mut bytes = reply.head(false);
            bytes.extend_from_slice(&reply.body);
            stream.write_all(&bytes).await.is_ok()
        }
        Fault::ResetMidBody => {
            let mut bytes = reply.head(false);
            bytes.extend_from_slice(&reply.body[..reply.body.len() / 2]);
            let _ = stream.write_all(&bytes).await;
            false
        }
        Fault::HeadersThenHang => {
            if stream.write_all(&reply.head(false)).await.is_ok() {
                // Until the client gives up (reads 0 or fails) or HOLD passes.
                let mut byte = [0u8; 1];
                let _ = tokio::time::timeout(HOLD, stream.read(&mut byte)).await;
            }
            false
        }
        Fault::Drip => {
            let mut bytes = reply.head(false);
            bytes.extend_from_slice(&reply.body);
            let dripping = async {
                for byte in bytes {
                    stream.write_all(&[byte]).await?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                std::io::Result::Ok(())
            };
            // A drip the client sat through is a whole answer; either way, no reuse.
            let _ = tokio::time::timeout(HOLD, dripping).await;
            false
        }
        Fault::CloseWithoutAnswer => false,
        Fault::EndlessBody => {
            reply.status = if success { reply.status } else { 200 };
            if stream.write_all(&reply.head(true)).await.is_err() {
                return false;
            }
            let chunk = {
                let data = vec![b' '; 64 * 1024];
                let mut c = format!("{:x}\r\n", data.len()).into_bytes();
                c.extend_from_slice(&data);
                c.extend_from_slice(b"\r\n");
                c
            };
            let _ = stream.write_all(b"5\r\n{\"id\"\r\n").await;
            let mut sent = 0;
            while sent < ENDLESS {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            false
        }
    }
}
