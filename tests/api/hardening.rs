//! TLS and listener hardening, against the real server on 127.0.0.1:
//! - TLS (`--tls-cert`/`--tls-key`) serving REST and gRPC, refusing cleartext; mutual TLS
//!   (`--tls-client-ca`); TLS configuration errors of the binary;
//! - HTTP/2 limits: SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced, the "rapid
//!   reset" flood answered with GOAWAY(ENHANCE_YOUR_CALM), the header list size;
//! - HTTP/1 limits: header count, request-head buffer, the header read timeout (slowloris);
//! - message size limits on both fronts, load shedding past `--max-in-flight`, and the
//!   server's `--request-timeout`.
//!
//! Certificates are made here with rcgen (a test CA, a server certificate for `localhost`
//! and 127.0.0.1, client certificates); clients are reqwest (REST), tonic over a
//! tokio-rustls connector (gRPC over TLS), and a small raw HTTP/2 frame writer/reader
//! (`raw_h2`) where the test must send what a well-behaved client library would not.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{Channel as AddressChannel, FetchParticipantRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::fixtures::*;

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// Server reflection: a bidirectional stream, served while its requests still arrive.
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/// One gRPC frame holding `ServerReflectionRequest { list_services: "" }`.
const LIST_SERVICES: &[u8] = &[0, 0, 0, 0, 2, 0x3a, 0];

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A test PKI in a temporary directory: a CA, a server certificate for `localhost` and
/// 127.0.0.1 signed by it, a client certificate signed by it, and a client certificate
/// signed by another CA.
struct Pki {
    dir: TempDir,
    ca_pem: String,
    /// `--tls-cert`.
    server_cert: PathBuf,
    /// `--tls-key`.
    server_key: PathBuf,
    /// `--tls-client-ca`: the same CA that signed the server's certificate.
    client_ca: PathBuf,
    /// A client certificate (then its key) signed by the CA.
    client: Identity,
    /// A client certificate (then its key) signed by an unrelated CA.
    stranger: Identity,
}

/// A certificate chain and its private key, PEM.
#[derive(Clone)]
struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    /// Certificate then key, as `reqwest::Identity::from_pem` wants them.
    fn pem_bundle(&self) -> Vec<u8> {
        format!("{}{}", self.cert_pem, self.key_pem).into_bytes()
    }
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> Identity {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("sign leaf");
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = certificate_authority("participants-facade test CA");
        let other_ca = certificate_authority("some other CA");
        let server = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let client = leaf(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let stranger = leaf(
            &["stranger.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other_ca,
        );
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        let server_cert = write("server.crt", &server.cert_pem);
        let server_key = write("server.key", &server.key_pem);
        let client_ca = write("ca.crt", &ca.pem());
        Pki {
            ca_pem: ca.pem(),
            server_cert,
            server_key,
            client_ca,
            client,
            stranger,
            dir,
        }
    }

    /// Writes `text` to `name` in the PKI's directory.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A rustls client configuration trusting only the test CA, offering `alpn`, with an
    /// optional client certificate.
    fn client_config(&self, identity: Option<&Identity>, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA PEM"))
            .expect("trust the CA");
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).expect("cert")],
                    PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key"),
                )
                .expect("client auth cert"),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// A REST client for `https://localhost:PORT` trusting only the test CA.
    fn https_client(
        &self,
        addr: SocketAddr,
        identity: Option<&Identity>,
        http1_only: bool,
    ) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .connect_timeout(Duration::from_secs(5))
            .resolve("localhost", addr)
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA")]);
        if let Some(id) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(&id.pem_bundle()).expect("id"));
        }
        if http1_only {
            builder = builder.http1_only();
        }
        builder.build().expect("https client")
    }
}

/// A TLS connection to `addr` as `localhost`.
async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// A gRPC channel over TLS (ALPN h2) to `addr`, connected eagerly.
async fn grpc_tls_channel(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<GrpcChannel, tonic::transport::Error> {
    let config = Arc::new(config);
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let config = config.clone();
        async move {
            let tls = tls_connect(addr, (*config).clone()).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    endpoint(addr).connect_with_connector(connector).await
}

// ---------------------------------------------------------------------------------------
// A TLS server in-process
// ---------------------------------------------------------------------------------------

async fn serve_tls(pki: &Pki, mutual: bool) -> Served {
    let cert = pki.server_cert.clone();
    let key = pki.server_key.clone();
    let ca = mutual.then(|| pki.client_ca.clone());
    serve(move |c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = ca;
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 and HTTP/2
// ---------------------------------------------------------------------------------------

/// `GET /healthz` with `extra` header lines.
fn http1_get_healthz(extra: &[String]) -> Vec<u8> {
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    request.into_bytes()
}

/// Polls `addr` until its gRPC health check answers SERVING (bounded).
async fn assert_still_serving(addr: SocketAddr) {
    let serving = eventually(WAIT, || async {
        health_status(addr, "").await == Some(ServingStatus::Serving)
    })
    .await;
    assert!(serving, "the server stopped serving");
    let mut client = ParticipantServiceClient::new(connect(addr).await);
    client
        .create_participant(create_request())
        .await
        .expect("a create on a new connection succeeds");
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tls_serves_rest_and_grpc_and_refuses_cleartext() {
    // Arrange
    let pki = Pki::new();
    let app = serve_tls(&pki, false).await;
    let base = format!("https://localhost:{}", app.addr.port());
    let conversation = conversation_id();
    let phone = phone();

    // Act + assert: REST over TLS, HTTP/2 by ALPN.
    let https = pki.https_client(app.addr, None, false);
    let created = send(
        https
            .post(format!("{base}{}", v2_path(&conversation)))
            .json(&v2_body(&phone)),
    )
    .await;
    created.expect_status(201);
    assert_eq!(
        created.version,
        reqwest::Version::HTTP_2,
        "ALPN picks h2: {created:?}"
    );
    let id = created.json()["id"].as_str().expect("an id").to_owned();
    let fetched = send(https.get(format!("{base}{}/{id}", v2_path(&conversation)))).await;
    fetched.expect_status(200);
    assert_eq!(fetched.json()["id"], Value::from(id.clone()));

    // REST over TLS, HTTP/1.1.
    let https1 = pki.https_client(app.addr, None, true);
    let healthz = send(https1.get(format!("{base}/healthz"))).await;
    healthz.expect_status(200);
    assert_eq!(healthz.version, reqwest::Version::HTTP_11);

    // gRPC over TLS: health, and a fetch of the participant REST created.
    let channel = grpc_tls_channel(app.addr, pki.client_config(None, &[b"h2"]))
        .await
        .expect("gRPC over TLS connects");
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await
        .expect("health check over TLS")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    let participant = ParticipantServiceClient::new(channel)
        .fetch_participant(FetchParticipantRequest {
            conversation_id: conversation.clone(),
            participant_id: id.clone(),
        })
        .await
        .expect("FetchParticipant over TLS")
        .into_inner();
    assert_eq!(participant.id, id);
    assert_eq!(
        participant.addresses,
        vec![address(AddressChannel::Sms, &phone)]
    );

    // Cleartext to the TLS port: REST (HTTP/1.1 and h2c) and gRPC all fail.
    let cleartext = format!("http://{}/healthz", app.addr);
    for client in [http_client(), h2c_client()] {
        let result = client.get(&cleartext).send().await;
        assert!(
            result.is_err(),
            "a cleartext request to the TLS port must fail: {result:?}"
        );
    }
    let grpc = async {
        let channel = endpoint(app.addr).connect().await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(status)
    };
    let result = tokio::time::timeout(WAIT, grpc)
        .await
        .expect("the cleartext gRPC attempt ends within the bound");
    assert!(
        result.is_err(),
        "cleartext gRPC to the TLS port must fail: {result:?}"
    );

    // The server still serves TLS clients afterwards, and stops cleanly.
    send(https.get(format!("{base}/healthz")))
        .await
        .expect_status(200);
    app.stop().await;
}

/// The error of a request that must fail, with its sources, as one string.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What a raw TLS client gets when it connects with `config` and sends a request: the
/// handshake error, or the error or EOF that follows it (TLS 1.3 servers judge the client
/// certificate after the client's handshake is done), or `Ok(response bytes)`.
async fn raw_tls_request(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<Vec<u8>, String> {
    let attempt = async {
        let mut tls = tls_connect(addr, config)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        match tls.read_to_end(&mut response).await {
            Ok(_) if response.is_empty() => Err("closed without a response".to_owned()),
            Ok(_) => Ok(response),
            Err(e) => Err(format!("read: {e}")),
        }
    };
    tokio::time::timeout(WAIT, attempt)
        .await
        .expect("the TLS attempt ends within the bound")
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_client_ca() {
    // Arrange
    let pki = Pki::new();
    let app = serve_tls(&pki, true).await;
    let base = format!("https://localhost:{}", app.addr.port());

    // A client certificate signed by the CA: REST and gRPC are served.
    let trusted = pki.https_client(app.addr, Some(&pki.client), false);
    send(trusted.get(format!("{base}/healthz")))
        .await
        .expect_status(200);
    let created = send(
        trusted
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .json(&v2_body(&phone())),
    )
    .await;
    created.expect_status(201);
    let channel = grpc_tls_channel(app.addr, pki.client_config(Some(&pki.client), &[b"h2"]))
        .await
        .expect("gRPC with a client certificate connects");
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health check with a client certificate");
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
    let raw = raw_tls_request(
        app.addr,
        pki.client_config(Some(&pki.client), &[b"http/1.1"]),
    )
    .await;
    assert!(
        raw.as_ref().is_ok_and(|r| r.starts_with(b"HTTP/1.1 200")),
        "a raw TLS client with a good certificate is served: {raw:?}"
    );

    // No client certificate, or one from another CA: refused, by REST, gRPC and raw clients.
    // rustls names the alert the server sent: certificate required (TLS 1.3 without a
    // certificate) or unknown CA.
    for (case, identity, alert) in [
        ("no certificate", None, "CertificateRequired"),
        ("another CA", Some(&pki.stranger), "UnknownCA"),
    ] {
        let client = pki.https_client(app.addr, identity, false);
        let result = client.get(format!("{base}/healthz")).send().await;
        match result {
            Ok(response) => panic!("{case}: REST must be refused, got {response:?}"),
            Err(e) => {
                let chain = error_chain(&e);
                assert!(
                    chain.contains(alert),
                    "{case}: REST refused with {alert}: {chain}"
                );
            }
        }
        let grpc = async {
            let channel = grpc_tls_channel(app.addr, pki.client_config(identity, &[b"h2"])).await?;
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(status)
        };
        let result = tokio::time::timeout(WAIT, grpc)
            .await
            .expect("the gRPC attempt ends within the bound");
        assert!(result.is_err(), "{case}: gRPC must be refused: {result:?}");
        let raw = raw_tls_request(app.addr, pki.client_config(identity, &[b"http/1.1"])).await;
        let error = raw.expect_err(&format!("{case}: a raw TLS client must be refused"));
        assert!(
            error.contains(alert),
            "{case}: refused during or right after the handshake with {alert}: {error}"
        );
    }

    // The refusals did not hurt the server.
    send(trusted.get(format!("{base}/healthz")))
        .await
        .expect_status(200);
    app.stop().await;
}

#[tokio::test]
async fn tls_configuration_errors_stop_the_binary_with_a_clear_message() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = pki.server_cert.to_str().expect("utf-8 path").to_owned();
    let key = pki.server_key.to_str().expect("utf-8 path").to_owned();
    let ca = pki.client_ca.to_str().expect("utf-8 path").to_owned();

    // A flag that needs another: exit 2, one line naming the missing flag.
    for (args, missing) in [
        (vec!["--tls-cert", cert.as_str()], "--tls-key"),
        (vec!["--tls-key", key.as_str()], "--tls-cert"),
        (vec!["--tls-client-ca", ca.as_str()], "--tls-cert"),
    ] {
        let (status, stderr) = run_to_exit(dir.path(), &args, &[]).await;
        let code = status.code();
        assert_eq!(code, Some(2), "{args:?}: exit 2; stderr {stderr:?}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {stderr:?}"
        );
        assert!(
            stderr.contains(missing),
            "{args:?}: names {missing}: {stderr:?}"
        );
    }

    // Files that cannot serve: a non-zero exit and a message naming the problem.
    let other_key = KeyPair::generate().expect("key").serialize_pem();
    let wrong_key = pki.write("wrong.key", &other_key);
    let wrong_key = wrong_key.to_str().expect("utf-8 path").to_owned();
    let missing = pki.dir.path().join("absent.pem");
    let missing = missing.to_str().expect("utf-8 path").to_owned();
    let not_a_cert = key.clone();
    let empty = pki.write("empty.pem", "");
    let empty = empty.to_str().expect("utf-8 path").to_owned();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--tls-cert", &cert, "--tls-key", &wrong_key],
            vec!["do not match"],
        ),
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            vec!["--tls-cert", &missing],
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &missing],
            vec!["--tls-key", &missing],
        ),
        (
            vec!["--tls-cert", &not_a_cert, "--tls-key", &key],
            vec!["--tls-cert", "no certificate"],
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &cert],
            vec!["--tls-key"],
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &missing,
            ],
            vec!["--tls-client-ca", &missing],
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &empty,
            ],
            vec!["client certificate verifier"],
        ),
    ];
    for (args, words) in cases {
        let (status, stderr) = run_to_exit(dir.path(), &args, &[]).await;
        let code = status.code();
        assert!(
            code.is_some_and(|c| c != 0),
            "{args:?}: a non-zero exit, got {code:?}; stderr {stderr:?}"
        );
        for word in words {
            assert!(
                stderr.contains(word),
                "{args:?}: stderr mentions {word:?}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn tls_file_errors_stop_the_binary_before_it_touches_the_data_directory() {
    // Arrange: a key that does not belong to the certificate.
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let wrong_key = pki.write(
        "wrong.key",
        &KeyPair::generate().expect("key").serialize_pem(),
    );
    let cert = pki.server_cert.to_str().expect("utf-8 path");
    let key = wrong_key.to_str().expect("utf-8 path");

    // Act
    let (status, stderr) =
        run_to_exit(dir.path(), &["--tls-cert", cert, "--tls-key", key], &[]).await;
    let code = status.code();

    // Assert: refused, like the flag errors, before the store is created and locked.
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "a TLS configuration error touches nothing on disk, yet --data-dir holds {:?}",
        std::fs::read_dir(dir.path().join("data")).map(|d| d
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );
}

// ---------------------------------------------------------------------------------------
// HTTP/2 limits
// ---------------------------------------------------------------------------------------

/// The server's first SETTINGS frame on a new connection, as (identifier, value) pairs.
async fn server_settings(addr: SocketAddr) -> Vec<(u16, u32)> {
    let mut conn = raw_h2::Conn::connect(addr).await;
    conn.until(WAIT, |f| f.kind == raw_h2::SETTINGS && f.flags == 0)
        .await
        .expect("the server's SETTINGS")
        .settings()
}

fn setting(settings: &[(u16, u32)], id: u16) -> Option<u32> {
    settings
        .iter()
        .rev()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| *v)
}

#[tokio::test]
async fn http2_max_concurrent_streams_is_advertised_and_enforced() {
    // The default: 100 streams, and a 16 KiB header list.
    let default = spawn_app().await;
    let settings = server_settings(default.addr).await;
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(100),
        "{settings:?}"
    );
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(16 * 1024),
        "{settings:?}"
    );

    // Configured: 5.
    let app = spawn_app_configured(|c| c.max_concurrent_streams = 5).await;
    let settings = server_settings(app.addr).await;
    assert_eq!(
        setting(&settings, raw_h2::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(5),
        "{settings:?}"
    );

    // A client that ignores the setting: six calls whose bodies stay open. The sixth
    // (stream 11) is refused at once; the first five are not answered (they wait for
    // their bodies).
    let authority = app.addr.to_string();
    let mut conn = raw_h2::Conn::connect(app.addr).await;
    let mut burst = Vec::new();
    for stream in [1, 3, 5, 7, 9, 11] {
        burst.extend(raw_h2::headers(
            stream,
            &raw_h2::grpc_request(CREATE_PARTICIPANT, &authority),
            false,
        ));
    }
    conn.send(&burst).await.expect("send six HEADERS");
    let refused = conn
        .until(Duration::from_secs(5), |f| {
            assert!(
                !(f.stream != 0
                    && f.stream < 11
                    && matches!(f.kind, raw_h2::HEADERS | raw_h2::RST_STREAM)),
                "a stream within the limit was answered or reset: {f:?}"
            );
            f.stream == 11
        })
        .await
        .expect("the sixth stream is answered at once");
    assert_eq!(
        (refused.kind, refused.error_code()),
        (raw_h2::RST_STREAM, Some(raw_h2::REFUSED_STREAM)),
        "the stream over the limit is refused (RST_STREAM REFUSED_STREAM): {refused:?}"
    );

    // One call finishes; its slot is free again and a new stream is served.
    let request = grpc_frame(&create_request());
    conn.send(&raw_h2::data(1, &request, true))
        .await
        .expect("finish stream 1");
    conn.until(WAIT, |f| f.stream == 1 && f.flags & raw_h2::END_STREAM != 0)
        .await
        .expect("stream 1 is answered in full");
    let mut health = raw_h2::headers(13, &raw_h2::grpc_request(HEALTH_CHECK, &authority), false);
    health.extend(raw_h2::data(
        13,
        &grpc_frame(&HealthCheckRequest::default()),
        true,
    ));
    conn.send(&health).await.expect("send stream 13");
    let answer = conn
        .until(WAIT, |f| f.stream == 13)
        .await
        .expect("stream 13 is answered");
    assert_eq!(
        answer.kind,
        raw_h2::HEADERS,
        "a stream opened after one finished is served: {answer:?}"
    );
}

#[tokio::test]
async fn http2_rapid_reset_flood_is_answered_with_goaway_enhance_your_calm() {
    // Arrange
    let app = spawn_app().await;
    let authority = app.addr.to_string();
    let mut conn = raw_h2::Conn::connect(app.addr).await;
    let fields = raw_h2::grpc_request(HEALTH_CHECK, &authority);

    // Act: 500 streams, each opened and reset at once (CVE-2023-44487), in batches of 50.
    let mut written = 0;
    for batch in 0..10u32 {
        let mut bytes = Vec::new();
        for i in 0..50u32 {
            let stream = 2 * (batch * 50 + i) + 1;
            bytes.extend(raw_h2::headers(stream, &fields, false));
            bytes.extend(raw_h2::rst_stream(stream, raw_h2::CANCEL));
        }
        if conn.send(&bytes).await.is_err() {
            break; // The server already hung up.
        }
        written += 50;
    }

    // Assert: GOAWAY with ENHANCE_YOUR_CALM, then the connection closes.
    let goaway = conn
        .until(WAIT, |f| f.kind == raw_h2::GOAWAY)
        .await
        .unwrap_or_else(|e| panic!("expected GOAWAY after {written} resets: {e}"));
    assert_eq!(
        goaway.error_code(),
        Some(raw_h2::ENHANCE_YOUR_CALM),
        "{goaway:?}"
    );
    let closed = loop {
        match conn.next(WAIT).await {
            raw_h2::Read::Frame(_) => continue,
            other => break other,
        }
    };
    match closed {
        raw_h2::Read::Closed(how) => eprintln!("closed after GOAWAY: {how}"),
        other => panic!("the connection closes after GOAWAY: {other:?}"),
    }

    // The server serves new connections.
    assert_still_serving(app.addr).await;
    assert_eq!(
        app.health
            .clone()
            .check(HealthCheckRequest::default())
            .await
            .expect("the app's own connection still works")
            .into_inner()
            .status,
        ServingStatus::Serving as i32
    );
}

/// `count` headers named `x-pad-N` with `size`-byte values.
fn padding(count: usize, size: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("x-pad-{i}"), "a".repeat(size)))
        .collect()
}

/// A health check over HTTP/2 (the h2 crate, which sends whatever header list it is
/// given) with `extra` headers: the HTTP status, or the stream or connection error.
async fn h2_health_check_with(
    addr: SocketAddr,
    extra: &[(String, String)],
) -> Result<u16, h2::Error> {
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (response, mut body) = try_start_raw_call(addr, HEALTH_CHECK, &extra).await?;
    let _ = body.send_data(
        Bytes::from(grpc_frame(&HealthCheckRequest::default())),
        true,
    );
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("answered within the bound")?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn oversized_request_heads_are_refused_and_the_server_stays_up() {
    let app = spawn_app().await;
    let lines = |headers: Vec<(String, String)>| -> Vec<String> {
        headers
            .into_iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    };

    // HTTP/1.1, header count: 90 headers are served, 150 are refused with 431.
    let within = http1_exchange(app.addr, http1_get_healthz(&lines(padding(90, 8)))).await;
    assert_eq!(within.map(|r| r.status), Ok(200), "90 headers are fine");
    let over = http1_exchange(app.addr, http1_get_healthz(&lines(padding(150, 8)))).await;
    assert_eq!(
        over.as_ref().map(|r| r.status),
        Ok(431),
        "150 headers: 431 Request Header Fields Too Large: {over:?}"
    );

    // HTTP/1.1, head size: a 32 KiB header is served, a 96 KiB one is refused (431, or the
    // connection is dropped while the client still writes).
    let within = http1_exchange(app.addr, http1_get_healthz(&lines(padding(1, 32 * 1024)))).await;
    assert_eq!(within.map(|r| r.status), Ok(200), "a 32 KiB head is fine");
    let over = http1_exchange(app.addr, http1_get_healthz(&lines(padding(1, 96 * 1024)))).await;
    assert!(
        over.as_ref().map_or(true, |r| r.status == 431),
        "a 96 KiB head is refused: {over:?}"
    );

    // HTTP/2, header list (SETTINGS_MAX_HEADER_LIST_SIZE 16 KiB): 10 KiB is served, 24 KiB
    // is refused with 431 (h2 answers it, then resets the stream).
    let within = h2_health_check_with(app.addr, &padding(10, 1000)).await;
    assert_eq!(within.ok(), Some(200), "a 10 KiB header list is served");
    let over = h2_health_check_with(app.addr, &padding(24, 1000)).await;
    assert_eq!(
        over.as_ref().ok(),
        Some(&431),
        "a 24 KiB header list is refused with 431: {over:?}"
    );

    assert_still_serving(app.addr).await;
}

// ---------------------------------------------------------------------------------------
// Message size limits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn messages_over_max_message_bytes_are_refused_on_both_fronts() {
    // Arrange
    let app = spawn_app_configured(|c| c.max_message_bytes = 2048).await;
    let base = format!("http://{}", app.addr);

    // REST: a body over the limit is 413 with Twilio's body, over HTTP/1.1 and HTTP/2.
    let mut big = v2_body(&phone());
    big["name"] = Value::from("n".repeat(4000));
    for client in [http_client(), h2c_client()] {
        let answer = send(
            client
                .post(format!("{base}{}", v2_path(&conversation_id())))
                .json(&big),
        )
        .await;
        assert_twilio_error(&answer, 413, 413);
        let small = send(
            client
                .post(format!("{base}{}", v2_path(&conversation_id())))
                .json(&v2_body(&phone())),
        )
        .await;
        small.expect_status(201);
    }

    // gRPC: a message over the limit is RESOURCE_EXHAUSTED, as gRPC's status-code table
    // says (and grpc-go, -java and C-core answer), not tonic's own OUT_OF_RANGE; with no
    // RetryInfo, since the same message would be refused again.
    let mut request = create_request();
    request.name = "n".repeat(4000);
    let status = expect_code(app.create(request).await, Code::ResourceExhausted);
    assert!(
        status.message().contains("2048"),
        "the message names the limit: {status:?}"
    );
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&status).is_none(),
        "no RetryInfo: {status:?}"
    );
    // Under the limit, on the same connection: served.
    app.create(create_request())
        .await
        .expect("a small create succeeds");
}

#[tokio::test]
async fn a_create_within_max_message_bytes_gets_its_participant_back() {
    // Arrange: a valid request just under the 2048-byte limit (long name and profile, 20
    // e-mail addresses with channel ids).
    let app = spawn_app_configured(|c| c.max_message_bytes = 2048).await;
    let mut request = create_request();
    request.name = "n".repeat(256);
    request.profile_id = "p".repeat(128);
    request.addresses = (0..20)
        .map(|i| {
            let email = format!("someone-{i}-{:06}@example.com", unique() % 1_000_000);
            let mut address = address(AddressChannel::Email, &email);
            address.channel_id = "c".repeat(44);
            address
        })
        .collect();
    let size = prost::Message::encoded_len(&request);
    assert!(
        (1900..=2048).contains(&size),
        "the request is just within the limit: {size} bytes"
    );

    // Act
    let result = app.create(request.clone()).await;

    // Assert: the server accepted the request, so the caller must learn the outcome. The
    // answer (the request plus id, account and timestamps) is bigger than the request.
    if let Err(status) = result {
        let retry = app.create(request).await;
        panic!(
            "a {size}-byte create (within --max-message-bytes 2048) was answered {:?} {:?}; \
             yet it was committed: a retry answers {:?}",
            status.code(),
            status.message(),
            retry.map_err(|s| (s.code(), s.message().to_owned()))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------

/// Writes `bytes` on `stream`, then waits (at most `bound`) for the server to close it;
/// returns how long that took, or `None` if it stayed open.
async fn time_until_closed<S>(mut stream: S, bytes: &[u8], bound: Duration) -> Option<Duration>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    let mut sink = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            // A 408 or similar before closing is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn tcp(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("tcp connect")
}

#[tokio::test]
async fn http1_slowloris_is_disconnected_after_the_header_read_timeout() {
    // Arrange
    let app = spawn_app().await;

    // Act: a request line and part of a header, then nothing.
    let closed = time_until_closed(
        tcp(app.addr).await,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: a",
        Duration::from_secs(15),
    )
    .await;

    // Assert: closed after the 10 s header read timeout, not before, not never.
    let after = closed.expect("a slowloris connection is closed within 15 s");
    assert!(
        after >= Duration::from_secs(9),
        "closed after the header read timeout, not at once: {after:?}"
    );
    assert_still_serving(app.addr).await;
}

#[tokio::test]
async fn connections_that_never_send_a_request_head_are_disconnected() {
    // Arrange: a cleartext server and a TLS server.
    let pki = Pki::new();
    let app = spawn_app().await;
    let tls = serve_tls(&pki, false).await;
    let bound = Duration::from_secs(15);
    let handshaken = tls_connect(tls.addr, pki.client_config(None, &[b"http/1.1"]))
        .await
        .expect("TLS handshake");

    // Act, concurrently: connections that send nothing, or only the start of the HTTP/2
    // preface (which keeps the server guessing between HTTP/1 and HTTP/2).
    let (silent, partial_preface, silent_tls, handshaken) = tokio::join!(
        time_until_closed(tcp(app.addr).await, b"", bound),
        time_until_closed(tcp(app.addr).await, b"PRI * HTTP/2.0\r\n", bound),
        time_until_closed(tcp(tls.addr).await, b"", bound),
        time_until_closed(handshaken, b"", bound),
    );

    // Assert: each is closed (the TLS handshake timeout, the header read timeout: 10 s).
    let outcomes = [
        ("cleartext, nothing sent", silent),
        ("cleartext, half an HTTP/2 preface", partial_preface),
        ("TLS port, no ClientHello", silent_tls),
        ("TLS handshake done, nothing sent", handshaken),
    ];
    let open: Vec<&str> = outcomes
        .iter()
        .filter(|(_, closed)| closed.is_none())
        .map(|(case, _)| *case)
        .collect();
    assert!(
        open.is_empty(),
        "connections still open after {bound:?}: {open:?} (all: {outcomes:?})"
    );
    assert_still_serving(app.addr).await;
}

// ---------------------------------------------------------------------------------------
// Load shedding and the request timeout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn calls_past_max_in_flight_are_refused_at_once_and_probes_still_answer() {
    // Arrange: at most 2 calls in flight (and a per-peer share above that, so the global
    // limit is the one met), and two calls held open: server-reflection streams, which
    // are served while their requests still arrive (unary calls take a slot only once
    // their body is in).
    let app = spawn_app_configured(|c| {
        c.max_in_flight = 2;
        c.max_in_flight_per_peer = Some(3);
    })
    .await;
    let base = format!("http://{}", app.addr);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(start_raw_call(app.addr, REFLECTION, &[]).await);
    }
    // The held calls are dispatched once the server has read their headers; wait until a
    // third call is refused (bounded), which also proves the permits are taken.
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let started = Instant::now();
        let result = app.create(create_request()).await;
        match result {
            Err(status) if status.code() == Code::ResourceExhausted => {
                break (status, started.elapsed());
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "a third call was never refused: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Assert: gRPC refused at once with RESOURCE_EXHAUSTED.
    let (status, took) = refused;
    assert!(
        took < Duration::from_secs(2),
        "refused at once, not queued: {took:?}"
    );
    assert!(
        status.message().contains("in flight"),
        "the message says why: {status:?}"
    );

    // REST: 429 with Twilio's body and Retry-After.
    let client = http_client();
    let answer = send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .json(&v2_body(&phone())),
    )
    .await;
    assert_twilio_error(&answer, 429, 20429);
    assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");

    // Probes are not counted: gRPC health and /healthz answer.
    let health = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await
        .expect("health answers while shedding")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    send(client.get(format!("{base}/healthz")))
        .await
        .expect_status(200);

    // The held calls finish normally; then calls are served again.
    for (response, mut body) in held {
        body.send_data(Bytes::from_static(LIST_SERVICES), true)
            .expect("finish the stream");
        let response = read_raw_response(response).await;
        assert_eq!(response.grpc_status.as_deref(), Some("0"), "{response:?}");
    }
    app.create(create_request())
        .await
        .expect("a call after the held ones finished succeeds");
    send(
        client
            .post(format!("{base}{}", v2_path(&conversation_id())))
            .json(&v2_body(&phone())),
    )
    .await
    .expect_status(201);
}

#[tokio::test]
async fn calls_past_the_request_timeout_are_answered_deadline_exceeded_and_504() {
    // Arrange
    let app = spawn_app_configured(|c| c.request_timeout = Duration::from_millis(500)).await;

    // gRPC: a call whose body never completes.
    let frame = grpc_frame(&create_request());
    let (response, mut body) = start_raw_call(app.addr, CREATE_PARTICIPANT, &[]).await;
    let started = Instant::now();
    body.send_data(Bytes::copy_from_slice(&frame[..3]), false)
        .expect("send the first bytes");
    let response = read_raw_response(response).await;
    let took = started.elapsed();
    assert_eq!(
        response.grpc_status.as_deref(),
        Some("4"),
        "DEADLINE_EXCEEDED: {response:?}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "answered at the 500 ms request timeout: {took:?}"
    );

    // REST (HTTP/1.1): a body shorter than its Content-Length.
    let mut stream = TcpStream::connect(app.addr).await.expect("tcp connect");
    let path = v2_path(&conversation_id());
    let started = Instant::now();
    stream
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"name\""
            )
            .as_bytes(),
        )
        .await
        .expect("write a partial request");
    let response = read_http1_response(&mut stream, WAIT)
        .await
        .expect("a response");
    let took = started.elapsed();
    assert_twilio_error(&response.answer(), 504, 504);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "answered at the 500 ms request timeout: {took:?}"
    );
    assert!(response.header("content-type").is_some());

    // A call within the timeout is served.
    app.create(create_request())
        .await
        .expect("a prompt call succeeds");
}

/// Holds one call open on `addr` (a server-reflection stream that has sent nothing) and waits (bounded) until a
/// further call is refused RESOURCE_EXHAUSTED; returns the held call.
async fn hold_until_shedding(app: &TestApp) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let held = start_raw_call(app.addr, REFLECTION, &[]).await;
    let deadline = Instant::now() + WAIT;
    loop {
        match app.create(create_request()).await {
            Err(status) if status.code() == Code::ResourceExhausted => break,
            other => assert!(
                Instant::now() < deadline,
                "a further call was never refused: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held
}

#[tokio::test]
async fn refusals_and_timeouts_answer_grpc_web_callers_in_grpc_web_framing() {
    // Load shedding: one call in flight at most, and one held.
    let shedding = spawn_app_configured(|c| c.max_in_flight = 1).await;
    let _held = hold_until_shedding(&shedding).await;
    let refused = grpc_web_call(&shedding, CREATE_PARTICIPANT, &create_request(), false, &[]).await;
    let refused_ok = refused.http_status == 200
        && refused.content_type.starts_with("application/grpc-web")
        && refused.grpc_status.as_deref() == Some("8");

    // The request timeout: a gRPC-Web call (HTTP/1.1) whose body never completes.
    let slow = spawn_app_configured(|c| c.request_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(slow.addr).await.expect("tcp connect");
    stream
        .write_all(
            format!(
                "POST {CREATE_PARTICIPANT} HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
                 Content-Length: 100\r\n\r\n\0\0\0"
            )
            .as_bytes(),
        )
        .await
        .expect("write a partial call");
    let timed_out = read_http1_response(&mut stream, WAIT)
        .await
        .expect("an answer");
    let trailer_status = String::from_utf8_lossy(&timed_out.body).contains("grpc-status:4");
    let timed_out_ok = timed_out.status == 200
        && timed_out
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/grpc-web"))
        && (timed_out.header("grpc-status") == Some("4") || trailer_status);

    // Assert: both are gRPC-Web answers (a browser's gRPC-Web client cannot read an
    // `application/grpc` answer), with RESOURCE_EXHAUSTED (8) and DEADLINE_EXCEEDED (4).
    assert!(
        refused_ok && timed_out_ok,
        "gRPC-Web answers expected; load shedding answered {:?} grpc-status {:?}, the \
         request timeout answered {:?} grpc-status {:?}",
        refused.content_type,
        refused.grpc_status,
        timed_out.header("content-type"),
        timed_out.header("grpc-status"),
    );
}
