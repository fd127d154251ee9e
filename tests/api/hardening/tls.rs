//! TLS on the one port: REST (HTTP/2 by ALPN and HTTP/1.1) and gRPC over TLS, cleartext
//! refused; mutual TLS admitting only clients with a certificate from `--tls-client-ca`;
//! TLS configuration errors that stop the binary with a clear message, before it touches
//! the data directory.

use std::net::SocketAddr;

use participants_facade::proto::participant_service_client::ParticipantServiceClient;
use participants_facade::proto::{Channel as AddressChannel, FetchParticipantRequest};
use rcgen::KeyPair;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;

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
