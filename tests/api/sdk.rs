//! Twilio's official Node SDK (`twilio`, pinned in `tests/sdk/package.json`), pointed at
//! the facade, must create, fetch, list (following its next pages), update and remove
//! participants of both versions; and `/openapi.json`
//! must validate against the official OpenAPI schemas. Both run Node scripts from
//! `tests/sdk/` (installed by `scripts/install-tools`); when Node or the packages are
//! missing, the tests fail and say how to install them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use participants_facade::transport::auth::InboundAuth;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::fixtures::*;

const SDK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// What the SDK signs its requests with: Basic `AccountSid:AuthToken`.
const SDK_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const SDK_TOKEN: &str = "sdk-auth-token";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Fails with instructions unless Node and the pinned packages are installed.
fn require_installed(package: &str) {
    let version = std::process::Command::new("node").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "Node.js is needed for the Twilio SDK check ({other:?}); install Node.js 20+ and \
             run scripts/install-tools"
        ),
    }
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(sdk_dir().join("package.json")).expect("tests/sdk/package.json"),
    )
    .expect("package.json is JSON");
    let pinned = manifest["dependencies"][package]
        .as_str()
        .unwrap_or_else(|| panic!("{package} is pinned in tests/sdk/package.json"));
    let installed = sdk_dir()
        .join("node_modules")
        .join(package)
        .join("package.json");
    let installed: Value = std::fs::read_to_string(&installed)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| {
            panic!(
                "{package} is not installed in tests/sdk/node_modules: run scripts/install-tools \
                 (it runs `npm ci --prefix tests/sdk`)"
            )
        });
    assert_eq!(
        installed["version"].as_str(),
        Some(pinned),
        "tests/sdk/node_modules holds another {package} than the pinned one: run \
         `npm ci --prefix tests/sdk`"
    );
}

/// Runs `node script args...` in `tests/sdk` (bounded), feeding `stdin`; returns its one
/// JSON line of output.
async fn run_node(script: &str, args: &[String], stdin: Option<&[u8]>) -> Value {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .args(args)
        .current_dir(sdk_dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Loopback only: no proxy, no region or edge rewriting of the host, no credentials
    // from the environment.
    for (name, _) in std::env::vars() {
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("_PROXY") || upper.starts_with("TWILIO_") || upper == "NODE_OPTIONS" {
            command.env_remove(&name);
        }
    }
    let mut child = command.spawn().expect("node starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(SDK_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {SDK_TIMEOUT:?}"))
        .expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node {script} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("node {script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// What `check.js` is asked to do.
struct Plan {
    conversation_id: String,
    phone: String,
    chat_service_sid: String,
    conversation_sid: String,
    identity: String,
    role_sid: String,
    binding_address: String,
    binding_proxy_address: String,
    list_conversation_id: String,
    list_conversation_sid: String,
    list_phones: Vec<String>,
    list_identities: Vec<String>,
    new_proxy_address: String,
}

/// Participants each list creates, and the page size the SDK lists them with: 3 pages.
const LISTED: usize = 7;
const LIST_PAGE_SIZE: usize = 3;

impl Plan {
    fn new() -> Plan {
        Plan {
            conversation_id: conversation_id(),
            phone: phone(),
            chat_service_sid: sid("IS"),
            conversation_sid: sid("CH"),
            identity: format!("sdk-user-{}", unique()),
            role_sid: sid("RL"),
            binding_address: phone(),
            binding_proxy_address: phone(),
            list_conversation_id: conversation_id(),
            list_conversation_sid: sid("CH"),
            list_phones: (0..LISTED).map(|_| phone()).collect(),
            list_identities: (0..LISTED)
                .map(|i| format!("sdk-list-{}-{i}", unique()))
                .collect(),
            new_proxy_address: phone(),
        }
    }

    fn to_json(&self, base_url: &str, token: &str) -> String {
        json!({
            "baseUrl": base_url,
            "accountSid": SDK_ACCOUNT,
            "authToken": token,
            "conversationId": self.conversation_id,
            "name": "Ada Lovelace",
            "profileId": "mem_profile_01h2xcejqtf2nbrexx3vqjhp41",
            "phone": self.phone,
            "idempotencyKey": format!("sdk-{}", unique()),
            "missingV2Id": "conv_participant_01m8b7a6yqrhp4et8761yqjt4y",
            "chatServiceSid": self.chat_service_sid,
            "conversationSid": self.conversation_sid,
            "identity": self.identity,
            "attributes": "{\"source\":\"sdk\"}",
            "roleSid": self.role_sid,
            "dateCreated": "2015-12-16T22:18:37Z",
            "bindingAddress": self.binding_address,
            "bindingProxyAddress": self.binding_proxy_address,
            "listConversationId": self.list_conversation_id,
            "listConversationSid": self.list_conversation_sid,
            "listPhones": self.list_phones,
            "listIdentities": self.list_identities,
            "listPageSize": LIST_PAGE_SIZE,
            "newName": "Ada King",
            "newAttributes": "{\"updated\":true}",
            "newProxyAddress": self.new_proxy_address,
        })
        .to_string()
    }
}

/// Runs `check.js` against `app` with the SDK signing as `SDK_ACCOUNT:token`.
async fn run_sdk_check(app: &TestApp, plan: &Plan, token: &str) -> Value {
    require_installed("twilio");
    run_node("check.js", &[plan.to_json(&base_url(app), token)], None).await
}

/// The step's value, or a failure showing the SDK's error and the request it sent.
fn ok<'a>(results: &'a Value, step: &str) -> &'a Value {
    let outcome = &results[step];
    assert_eq!(
        outcome["ok"],
        json!(true),
        "SDK step {step} failed: {}",
        serde_json::to_string_pretty(outcome).unwrap_or_default()
    );
    &outcome["value"]
}

fn sdk_error<'a>(results: &'a Value, step: &str) -> &'a Value {
    let outcome = &results[step];
    assert_eq!(
        outcome["ok"],
        json!(false),
        "SDK step {step} should have failed: {outcome}"
    );
    &outcome["error"]
}

#[tokio::test]
async fn twilio_node_sdk_creates_and_fetches_participants_of_both_versions() {
    // Arrange
    let app = spawn_app().await;
    let plan = Plan::new();

    // Act
    let results = run_sdk_check(&app, &plan, SDK_TOKEN).await;

    // Assert: v2, through client.conversations.v2.participants(...)
    let created = ok(&results, "v2Create");
    let id = created["id"].as_str().expect("id");
    assert!(is_participant_id(id), "{created}");
    assert_eq!(created["conversationId"], json!(plan.conversation_id));
    assert_eq!(created["accountId"], json!(DEFAULT_ACCOUNT));
    assert_eq!(created["name"], json!("Ada Lovelace"));
    assert_eq!(created["type"], json!("CUSTOMER"));
    assert_eq!(
        created["profileId"],
        json!("mem_profile_01h2xcejqtf2nbrexx3vqjhp41")
    );
    assert_eq!(
        created["addresses"],
        json!([{"channel": "SMS", "address": plan.phone}])
    );
    for date in ["createdAt", "updatedAt"] {
        assert_eq!(
            results["v2Create"][date]["parsed"],
            json!(true),
            "the SDK parsed {date}: {}",
            results["v2Create"]
        );
    }
    assert_eq!(
        results["v2Create"]["request"]["headers"]["Content-Type"],
        json!("application/json"),
        "the SDK sends v2 as JSON"
    );
    assert_eq!(
        ok(&results, "v2CreateAgain"),
        created,
        "Idempotency-Key through the SDK"
    );
    assert_eq!(ok(&results, "v2Fetch"), created);
    let missing = sdk_error(&results, "v2FetchMissing");
    assert_eq!(
        (&missing["name"], &missing["status"], &missing["code"]),
        (&json!("RestException"), &json!(404), &json!(20404)),
        "{missing}"
    );
    assert!(
        missing["moreInfo"]
            .as_str()
            .is_some_and(|m| m.contains("20404"))
    );
    let grpc = app
        .fetch(&plan.conversation_id, id)
        .await
        .expect("the SDK's participant is there for gRPC");
    assert_eq!(grpc.addresses.len(), 1);

    // Assert: v1, through client.conversations.v1.services(IS).conversations(CH).participants
    let created = ok(&results, "v1Create");
    let mb = created["sid"].as_str().expect("sid");
    assert!(is_lower_hex_sid(mb, "MB"), "{created}");
    assert_eq!(created["accountSid"], json!(DEFAULT_ACCOUNT));
    assert_eq!(created["chatServiceSid"], json!(plan.chat_service_sid));
    assert_eq!(created["conversationSid"], json!(plan.conversation_sid));
    assert_eq!(created["identity"], json!(plan.identity));
    assert_eq!(created["attributes"], json!("{\"source\":\"sdk\"}"));
    assert_eq!(created["roleSid"], json!(plan.role_sid));
    assert_eq!(created["messagingBinding"], Value::Null);
    assert_eq!(created["lastReadMessageIndex"], Value::Null);
    assert_eq!(
        results["v1Create"]["dateCreated"],
        json!({"parsed": true, "iso": "2015-12-16T22:18:37.000Z"}),
        "DateCreated sent by the SDK is kept and parsed back"
    );
    assert_eq!(results["v1Create"]["dateUpdated"]["parsed"], json!(true));
    assert_eq!(
        created["url"],
        json!(format!(
            "http://{}/v1/Services/{}/Conversations/{}/Participants/{mb}",
            app.addr, plan.chat_service_sid, plan.conversation_sid
        ))
    );
    let request = &results["v1Create"]["request"]["headers"];
    assert_eq!(
        request["Content-Type"],
        json!("application/x-www-form-urlencoded"),
        "the SDK sends v1 as a form"
    );
    assert_eq!(request["X-Twilio-Webhook-Enabled"], json!("true"));
    assert_eq!(ok(&results, "v1Fetch"), created);
    assert_eq!(ok(&results, "v1FetchByIdentity"), created);
    let binding = ok(&results, "v1CreateBinding");
    assert_eq!(
        binding["messagingBinding"],
        json!({
            "type": "sms",
            "address": plan.binding_address,
            "proxy_address": plan.binding_proxy_address,
        })
    );
    assert_eq!(binding["identity"], Value::Null);
    let duplicate = sdk_error(&results, "v1CreateDuplicate");
    assert_eq!(
        (&duplicate["status"], &duplicate["code"]),
        (&json!(409), &json!(50433)),
        "{duplicate}"
    );
    let grpc = app
        .fetch_v1(&plan.chat_service_sid, &plan.conversation_sid, mb)
        .await
        .expect("the SDK's v1 participant is there for gRPC");
    assert_eq!(grpc.identity, plan.identity);
}

#[tokio::test]
async fn twilio_node_sdk_lists_through_every_page_updates_and_removes_participants() {
    // Arrange
    let app = spawn_app().await;
    let plan = Plan::new();

    // Act
    let results = run_sdk_check(&app, &plan, SDK_TOKEN).await;

    // Assert: v2 list, through the SDK's token pages (pageSize 3: pages of 3, 3 and 1).
    let created: Vec<Value> = ok(&results, "v2ListCreate")
        .as_array()
        .expect("ids")
        .clone();
    assert_eq!(created.len(), LISTED);
    assert_eq!(
        ok(&results, "v2List").as_array().expect("ids"),
        &created,
        "list() follows nextToken to the end, oldest first"
    );
    let pages = ok(&results, "v2Pages").as_array().expect("pages").clone();
    let items: Vec<usize> = pages
        .iter()
        .map(|p| p["items"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(items, [3, 3, 1], "{pages:?}");
    assert!(
        pages[1]["params"]["pageToken"].is_string(),
        "the SDK sent meta.nextToken as pageToken: {pages:?}"
    );
    assert_eq!(pages[1]["params"]["pageSize"], json!(LIST_PAGE_SIZE));

    // v2 update: the keys sent change (null clears), the others stay.
    let before = ok(&results, "v2Create").clone();
    let updated = ok(&results, "v2Update");
    assert_eq!(updated["name"], json!("Ada King"));
    assert_eq!(updated["profileId"], Value::Null);
    for kept in ["id", "type", "addresses", "createdAt"] {
        assert_eq!(updated[kept], before[kept], "{kept} kept: {updated}");
    }
    assert_eq!(
        results["v2Update"]["request"]["method"],
        json!("put"),
        "{}",
        results["v2Update"]
    );
    assert_eq!(results["v2Update"]["updatedAt"]["parsed"], json!(true));
    assert_eq!(ok(&results, "v2FetchUpdated"), updated);

    // v1 list, through the SDK's next_page_url (absolute, back to the facade).
    let created: Vec<Value> = ok(&results, "v1ListCreate")
        .as_array()
        .expect("sids")
        .clone();
    assert_eq!(created.len(), LISTED);
    assert_eq!(
        ok(&results, "v1List").as_array().expect("sids"),
        &created,
        "list() follows next_page_url to the end, oldest first"
    );
    let pages = ok(&results, "v1Pages").as_array().expect("pages").clone();
    let items: Vec<usize> = pages
        .iter()
        .map(|p| p["items"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(items, [3, 3, 1], "{pages:?}");
    let list_url = format!(
        "http://{}/v1/Services/{}/Conversations/{}/Participants",
        app.addr, plan.chat_service_sid, plan.list_conversation_sid
    );
    for (index, page) in pages.iter().enumerate().skip(1) {
        let url = page["url"].as_str().expect("the URL the SDK asked");
        assert!(
            url.starts_with(&format!(
                "{list_url}?PageSize={LIST_PAGE_SIZE}&Page={index}&PageToken="
            )),
            "page {index} was asked at next_page_url: {url}"
        );
    }

    // v1 update and remove.
    let updated = ok(&results, "v1Update");
    let before = ok(&results, "v1Create");
    assert_eq!(updated["attributes"], json!("{\"updated\":true}"));
    assert_eq!(updated["lastReadMessageIndex"], json!(3));
    for kept in ["sid", "identity", "roleSid", "dateCreated", "url"] {
        assert_eq!(updated[kept], before[kept], "{kept} kept: {updated}");
    }
    let request = &results["v1Update"]["request"];
    assert_eq!(
        request["headers"]["X-Twilio-Webhook-Enabled"],
        json!("true")
    );
    let binding = ok(&results, "v1UpdateBinding");
    assert_eq!(
        binding["messagingBinding"]["proxy_address"],
        json!(plan.new_proxy_address)
    );
    assert_eq!(
        binding["messagingBinding"]["address"],
        json!(plan.binding_address)
    );
    assert_eq!(
        ok(&results, "v1Remove"),
        &json!(true),
        "remove() resolves true on 204"
    );
    for step in ["v1FetchRemoved", "v1RemoveAgain"] {
        let gone = sdk_error(&results, step);
        assert_eq!(
            (&gone["status"], &gone["code"]),
            (&json!(404), &json!(20404)),
            "{step}: {gone}"
        );
    }
}

#[tokio::test]
async fn twilio_node_sdk_basic_credentials_pass_inbound_auth_and_wrong_ones_get_20003() {
    // Arrange: the facade accepts the SDK's AccountSid:AuthToken pair.
    let app = spawn_app_with(|s| {
        s.inbound_auth = Some(Arc::new(
            InboundAuth::from_values(Some(&format!("{SDK_ACCOUNT}:{SDK_TOKEN}")), None, false)
                .expect("auth"),
        ));
    })
    .await;

    // Act
    let accepted = run_sdk_check(&app, &Plan::new(), SDK_TOKEN).await;
    let refused = run_sdk_check(&app, &Plan::new(), "wrong-token").await;

    // Assert
    for step in [
        "v2Create",
        "v2Fetch",
        "v1Create",
        "v1Fetch",
        "v1CreateBinding",
    ] {
        ok(&accepted, step);
        let error = sdk_error(&refused, step);
        assert_eq!(
            (&error["status"], &error["code"]),
            (&json!(401), &json!(20003)),
            "{step}: {error}"
        );
    }
}

#[tokio::test]
async fn openapi_json_validates_against_the_openapi_schemas() {
    // Arrange
    require_installed("@seriousme/openapi-schema-validator");
    let app = spawn_app().await;
    let document = openapi_document(&app).await;

    // Act
    let verdict = run_node(
        "validate-openapi.mjs",
        &[],
        Some(document.to_string().as_bytes()),
    )
    .await;

    // Assert
    assert_eq!(
        verdict,
        json!({"valid": true, "version": "3.1", "errors": null, "refsResolved": true, "refError": null}),
        "the OpenAPI document validates"
    );
}
