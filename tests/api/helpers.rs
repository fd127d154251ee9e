//! Shared test fixtures: an in-process server (`spawn_app`), the binary as a child process
//! (`ChildServer`), request builders and assertions on `google.rpc` error details.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use participants_facade::config::Config;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{
    Address, Channel, CreateParticipantRequest, CreateServiceParticipantRequest,
    FetchParticipantRequest, FetchServiceParticipantRequest, MessagingBinding, Participant,
    ServiceParticipant,
};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel as GrpcChannel, Endpoint};
use tonic::{Code, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// The service name health reports for the participants service.
pub const SERVICE_NAME: &str = "participants.v1.ParticipantService";
/// The account id the local backend stamps when none is configured.
pub const DEFAULT_ACCOUNT: &str = "AC00000000000000000000000000000000";
/// Upper bound for any single wait on the server in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------

/// A server running inside the test's runtime, with connected clients.
pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: GrpcChannel,
    pub client: ParticipantServiceClient<GrpcChannel>,
    pub health: HealthClient<GrpcChannel>,
    data_dir: PathBuf,
    holder: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts a server on a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir")).await
}

/// Starts a server on `data_dir` (which may hold a previous server's data).
pub async fn spawn_app_in(data_dir: TempDir) -> TestApp {
    let path = data_dir.path().to_path_buf();
    spawn_app_at(data_dir, path).await
}

/// Starts a server on `data_dir`, somewhere inside `holder` (kept alive by the handle).
pub async fn spawn_app_at(holder: TempDir, data_dir: PathBuf) -> TestApp {
    spawn_app_with(holder, data_dir, |_| {}).await
}

/// Starts a server on a fresh data directory with a configuration adjusted by `configure`.
pub async fn spawn_app_configured(configure: impl FnOnce(&mut Config)) -> TestApp {
    let holder = tempfile::tempdir().expect("temp dir");
    let data_dir = holder.path().to_path_buf();
    spawn_app_with(holder, data_dir, configure).await
}

async fn spawn_app_with(
    holder: TempDir,
    data_dir: PathBuf,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let mut config = Config::local(&data_dir);
    configure(&mut config);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(participants_facade::server::run(listener, config, async {
        let _ = rx.await;
    }));
    let channel = connect(addr).await;
    TestApp {
        addr,
        client: ParticipantServiceClient::new(channel.clone()),
        health: HealthClient::new(channel.clone()),
        channel,
        data_dir,
        holder: Some(holder),
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Asks the server to shut down, waits (bounded) for `run` to return `Ok`, and hands
    /// back the temporary directory so a test can start a new server on it.
    pub async fn stop(mut self) -> TempDir {
        let _ = self.shutdown.take().expect("running").send(());
        let server = self.server.take().expect("running");
        let result = tokio::time::timeout(WAIT, server)
            .await
            .expect("server stops within the bound")
            .expect("server task does not panic");
        result.expect("server::run returns Ok after a clean shutdown");
        self.holder.take().expect("temp dir")
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestApp {
        let data_dir = self.data_dir.clone();
        let holder = self.stop().await;
        spawn_app_at(holder, data_dir).await
    }

    /// The directory the server keeps its store in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh client on a new connection.
    pub async fn new_client(&self) -> ParticipantServiceClient<GrpcChannel> {
        ParticipantServiceClient::new(connect(self.addr).await)
    }

    pub async fn create(&self, request: CreateParticipantRequest) -> Result<Participant, Status> {
        self.client
            .clone()
            .create_participant(request)
            .await
            .map(Response::into_inner)
    }

    pub async fn fetch(
        &self,
        conversation_id: &str,
        participant_id: &str,
    ) -> Result<Participant, Status> {
        self.client
            .clone()
            .fetch_participant(FetchParticipantRequest {
                conversation_id: conversation_id.to_owned(),
                participant_id: participant_id.to_owned(),
            })
            .await
            .map(Response::into_inner)
    }

    pub async fn create_v1(
        &self,
        request: CreateServiceParticipantRequest,
    ) -> Result<ServiceParticipant, Status> {
        self.client
            .clone()
            .create_service_participant(request)
            .await
            .map(Response::into_inner)
    }

    pub async fn fetch_v1(
        &self,
        chat_service_sid: &str,
        conversation_sid: &str,
        sid: &str,
    ) -> Result<ServiceParticipant, Status> {
        self.client
            .clone()
            .fetch_service_participant(FetchServiceParticipantRequest {
                chat_service_sid: chat_service_sid.to_owned(),
                conversation_sid: conversation_sid.to_owned(),
                sid: sid.to_owned(),
            })
            .await
            .map(Response::into_inner)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that did not stop the server: stop it anyway so the runtime can wind down.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An endpoint on 127.0.0.1 with bounded connect and call times.
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(WAIT)
}

/// Connects (eagerly) to `addr`.
pub async fn connect(addr: SocketAddr) -> GrpcChannel {
    endpoint(addr)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// One health check on a new connection; `None` when the server cannot be reached.
pub async fn health_status(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = endpoint(addr)
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

// ---------------------------------------------------------------------------------------
// The binary as a child process
// ---------------------------------------------------------------------------------------

/// The compiled `participants-facade` binary.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_participants-facade"));
    // The child's configuration comes from its flags only.
    for (name, _) in std::env::vars() {
        if ["PARTICIPANTS_", "TWILIO_", "OTEL_", "RUST_LOG"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }
    command
}

/// A free port on 127.0.0.1, found by binding port 0 and letting it go.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The binary running as a child process; killed (and reaped) on drop.
pub struct ChildServer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ChildServer {
    /// Starts the binary on `data_dir` with `extra` flags and waits (bounded) until its
    /// health check reports SERVING.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> ChildServer {
        ChildServer::start_with_env(data_dir, extra, &[]).await
    }

    /// As [`ChildServer::start`], with extra environment variables.
    pub async fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ChildServer {
        ChildServer::start_command(binary, data_dir, extra, env).await
    }

    /// As [`ChildServer::start`], with the binary's files limited to `max_file_bytes`
    /// each (the soft `RLIMIT_FSIZE`, set by util-linux's `prlimit`; the hard limit stays
    /// unlimited, so the soft one can be lifted again without privileges).
    pub async fn start_with_file_size_limit(
        data_dir: &Path,
        extra: &[&str],
        max_file_bytes: u64,
    ) -> ChildServer {
        let limited = || {
            let mut command = binary();
            let program = command.get_program().to_owned();
            let mut prlimit = Command::new("prlimit");
            prlimit
                .arg(format!("--fsize={max_file_bytes}:unlimited"))
                .arg("--")
                .arg(program);
            for (name, value) in command.get_envs() {
                match value {
                    Some(value) => prlimit.env(name, value),
                    None => prlimit.env_remove(name),
                };
            }
            command = prlimit;
            command
        };
        ChildServer::start_command(limited, data_dir, extra, &[]).await
    }

    async fn start_command(
        command: impl Fn() -> Command,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ChildServer {
        // The port is chosen before the child binds it; if another process takes it in
        // between, the child exits at once and we try another port.
        for attempt in 0..3 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let log = data_dir
                .parent()
                .unwrap_or(data_dir)
                .join(format!("child-{}-{attempt}.log", unique()));
            let stderr = File::create(&log).expect("create child log");
            let child = command()
                .args(["--listen", &addr.to_string(), "--data-dir"])
                .arg(data_dir)
                .args(["--log-format", "json"])
                .args(extra)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .expect("spawn participants-facade");
            let mut server = ChildServer { child, addr, log };
            match server.wait_until_serving().await {
                Ok(()) => return server,
                Err(status) if server.logs().contains("cannot listen") => {
                    eprintln!("port {addr} was taken ({status}); retrying");
                    continue;
                }
                Err(status) => panic!(
                    "child did not become ready ({status}); logs:\n{}",
                    server.logs()
                ),
            }
        }
        panic!("could not start the child on a free port in 3 attempts")
    }

    async fn wait_until_serving(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited early with {status}"));
            }
            if health_status(self.addr, "").await == Some(ServingStatus::Serving) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("not SERVING within 10 s".to_owned())
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("send signal to child");
    }

    /// Waits (bounded, polling) for the child to exit.
    pub async fn wait_for_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit within {bound:?}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the child wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn client(&self) -> ParticipantServiceClient<GrpcChannel> {
        ParticipantServiceClient::new(connect(self.addr).await)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A number unique within this test binary.
pub fn unique() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A conversation id no other test uses.
pub fn conversation_id() -> String {
    format!("conv_conversation_{}_{}", std::process::id(), unique())
}

/// An E.164 number no other test uses (within this process).
pub fn phone() -> String {
    format!("+1555{:07}", unique() % 10_000_000)
}

/// A `prefix` sid (32 hex digits) no other test uses.
pub fn sid(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", std::process::id(), unique())
}

pub fn address(channel: Channel, address: &str) -> Address {
    Address {
        channel: channel.into(),
        address: address.to_owned(),
        channel_id: String::new(),
    }
}

/// A valid v2 create request: one SMS address in a fresh conversation.
pub fn create_request() -> CreateParticipantRequest {
    CreateParticipantRequest {
        conversation_id: conversation_id(),
        name: "Ada Lovelace".to_owned(),
        r#type: participant_type_customer(),
        profile_id: String::new(),
        addresses: vec![address(Channel::Sms, &phone())],
        idempotency_key: String::new(),
    }
}

fn participant_type_customer() -> i32 {
    participants_facade::proto::ParticipantType::Customer.into()
}

/// A valid v1 create request: a chat participant with a fresh identity in a fresh
/// conversation of a fresh service.
pub fn create_v1_request() -> CreateServiceParticipantRequest {
    CreateServiceParticipantRequest {
        chat_service_sid: sid("IS"),
        conversation_sid: sid("CH"),
        identity: format!("user-{}", unique()),
        ..Default::default()
    }
}

/// A binding (SMS) participant's binding.
pub fn binding(address: &str, proxy_address: &str) -> Option<MessagingBinding> {
    Some(MessagingBinding {
        address: address.to_owned(),
        proxy_address: proxy_address.to_owned(),
        projected_address: String::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------

/// Asserts `result` is INVALID_ARGUMENT whose BadRequest names exactly `expected` fields.
pub fn assert_bad_request<T: Debug>(result: Result<T, Status>, expected: &[&str], case: &str) {
    let status = match result {
        Ok(value) => panic!("{case}: expected INVALID_ARGUMENT, got Ok({value:?})"),
        Err(status) => status,
    };
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{case}: wrong code: {status:?}"
    );
    let fields = bad_request_fields(&status);
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        fields, expected,
        "{case}: wrong field violations: {status:?}"
    );
}

/// The set of `field`s in the status's BadRequest (panics when there is none).
pub fn bad_request_fields(status: &Status) -> BTreeSet<String> {
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    for violation in &bad_request.field_violations {
        assert!(
            !violation.description.is_empty(),
            "violation of {} has no description",
            violation.field
        );
    }
    bad_request
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Asserts `result` failed with `code`, and returns the status.
pub fn expect_code<T: Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// Asserts ALREADY_EXISTS naming `existing_id` in ErrorInfo metadata.
pub fn assert_conflict_with<T: Debug>(result: Result<T, Status>, existing_id: &str) {
    let status = expect_code(result, Code::AlreadyExists);
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(
        info.metadata
            .get("conflicting_resource_id")
            .map(String::as_str),
        Some(existing_id),
        "ErrorInfo: {info:?}"
    );
}

/// Asserts INVALID_ARGUMENT with ErrorInfo reason IDEMPOTENCY_KEY_REUSED.
pub fn assert_key_reused<T: Debug>(result: Result<T, Status>) {
    let status = expect_code(result, Code::InvalidArgument);
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "IDEMPOTENCY_KEY_REUSED", "{info:?}");
}

/// Whether `id` is `conv_participant_` and 26 lowercase Crockford base32 characters.
pub fn is_participant_id(id: &str) -> bool {
    id.strip_prefix("conv_participant_").is_some_and(|rest| {
        rest.len() == 26
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Whether `sid` is `prefix` and 32 lowercase hex digits.
pub fn is_lower_hex_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Seconds since the epoch, now.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/2, for calls whose timing the test must control
// ---------------------------------------------------------------------------------------

/// `message` in gRPC's length-prefixed framing (uncompressed).
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Opens an HTTP/2 connection to `addr` and starts a unary gRPC call to `method` with
/// `extra_headers`; the request body is left open for the test to send.
pub async fn start_raw_call(
    addr: SocketAddr,
    method: &str,
    extra_headers: &[(&str, &str)],
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let (h2, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut h2 = h2.ready().await.expect("h2 ready");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    h2.send_request(request.body(()).expect("request"), false)
        .expect("send headers")
}

/// What came back for a raw call.
#[derive(Debug)]
pub struct RawResponse {
    pub http_status: u16,
    /// `grpc-status` from the trailers, or from the headers of a trailers-only response.
    pub grpc_status: Option<String>,
    /// The response body (length-prefixed messages).
    pub body: Vec<u8>,
}

/// Reads the whole response (bounded).
pub async fn read_raw_response(response: h2::client::ResponseFuture) -> RawResponse {
    use bytes::Buf;
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("response headers within 10 s")
        .expect("response headers");
    let http_status = response.status().as_u16();
    let header_status = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut recv = response.into_body();
    let mut body = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, recv.data())
        .await
        .expect("body within 10 s")
    {
        let chunk = chunk.expect("body chunk");
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(chunk.chunk());
    }
    let trailers = tokio::time::timeout(WAIT, recv.trailers())
        .await
        .expect("trailers within 10 s")
        .expect("trailers");
    let trailer_status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    RawResponse {
        http_status,
        grpc_status: trailer_status.or(header_status),
        body,
    }
}

/// The single message of a unary response body.
pub fn single_message<M: prost::Message + Default>(body: &[u8]) -> M {
    assert!(body.len() >= 5, "a length-prefixed message: {body:?}");
    assert_eq!(body[0], 0, "uncompressed");
    let len = u32::from_be_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
    assert_eq!(body.len(), 5 + len, "exactly one message");
    M::decode(&body[5..]).expect("the message decodes")
}
