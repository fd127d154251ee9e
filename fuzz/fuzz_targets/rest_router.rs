//! The REST router, driven in process with an arbitrary request over the real local
//! backend (SQLite), in a directory of its own made once per process under `$TMPDIR`.
//!
//! The input is a request written as HTTP/1.1 writes one, so that the corpus is readable
//! and hand-written: a request line (`METHOD TARGET`), header lines (`Name: value`), an
//! empty line, then the body. In the target, `{conv}`, `{is}` and `{ch}` stand for a
//! valid v2 conversation id, chat service sid and conversation sid, and `{v2}`, `{v1}`
//! and `{identity}` for participants the store holds (created when the process starts),
//! so that fetches can find something. `Content-Length` and `Transfer-Encoding` are
//! hyper's business, not the router's: inputs with them are skipped, as are those that
//! are not a request an HTTP server could have parsed (a bad URI or header).
//!
//! Checks: no panic; no 5xx (the store is healthy, so any would be a bug); every answer
//! that is not 2xx carries Twilio's error body with its own status, whose message echoes
//! nothing of the request; every 2xx JSON answer parses.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use participants_facade::backend::local::{LocalBackend, StoreOptions};
use participants_facade_fuzz::*;

/// Ids the store holds: created when the process starts.
struct Known {
    v2: Vec<String>,
    v1: Vec<String>,
    identities: Vec<String>,
}

struct Harness {
    router: axum::Router,
    known: Known,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "participants-facade-fuzz-rest-router-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut options = StoreOptions::new(&dir, ACCOUNT_SID);
        // A small fetch cache: its eviction is exercised too.
        options.cache_entries = 64;
        let backend = LocalBackend::open(&options).expect("the local store opens");
        let router = rest_router(Arc::new(backend));
        let mut known = Known {
            v2: Vec::new(),
            v1: Vec::new(),
            identities: Vec::new(),
        };
        for i in 0..2 {
            let body = format!(
                r#"{{"name":"Seed {i}","type":"CUSTOMER","addresses":[{{"channel":"SMS","address":"+1800555010{i}"}}]}}"#
            );
            let answer = call(
                &router,
                Request::post(format!("/v2/Conversations/{CONVERSATION_ID}/Participants"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request"),
            );
            assert_eq!(answer.status, 201, "{answer:?}");
            let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
            known.v2.push(json["id"].as_str().expect("id").to_owned());
            let identity = format!("seed-{i}");
            let answer = call(
                &router,
                Request::post(format!(
                    "/v1/Services/{SERVICE_SID}/Conversations/{CONVERSATION_SID}/Participants"
                ))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(format!("Identity={identity}"))))
                .expect("request"),
            );
            assert_eq!(answer.status, 201, "{answer:?}");
            let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
            known.v1.push(json["sid"].as_str().expect("sid").to_owned());
            known.identities.push(identity);
        }
        Harness { router, known }
    })
}

/// The request target with its placeholders filled in.
fn target(raw: &str, known: &Known) -> String {
    raw.replace("{conv}", CONVERSATION_ID)
        .replace("{is}", SERVICE_SID)
        .replace("{ch}", CONVERSATION_SID)
        .replace("{v2}", &known.v2[raw.len() % known.v2.len()])
        .replace("{v1}", &known.v1[raw.len() % known.v1.len()])
        .replace(
            "{identity}",
            &known.identities[raw.len() % known.identities.len()],
        )
}

/// The request the input writes, or `None` when no HTTP server would have parsed it.
fn request(data: &[u8], known: &Known) -> Option<Request<Full<Bytes>>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let request_line = std::str::from_utf8(lines.next()?).ok()?;
    let (method, raw_target) = request_line.split_once(' ')?;
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).ok()?)
        .uri(target(raw_target, known));
    for line in lines {
        let colon = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            return None;
        }
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        request = request.header(name, HeaderValue::from_bytes(value).ok()?);
    }
    request.body(Full::new(Bytes::copy_from_slice(body))).ok()
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let Some(request) = request(data, &harness.known) else {
        return;
    };
    let head = request.method() == Method::HEAD;
    let answer = call(&harness.router, request);
    assert!(
        !answer.status.is_server_error(),
        "5xx from a healthy local store: {answer:?}"
    );
    if answer.status.is_success() {
        let json = answer
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if json && !head {
            let _: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("a 2xx JSON body parses");
        }
    } else {
        assert_twilio_error(&answer, head);
    }
});
