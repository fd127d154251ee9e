//! TLS to the shared store: a PostgreSQL of the test's own serving TLS with a certificate
//! from a test CA. The facade verifies the server's certificate: without `--database-ca`
//! it refuses to start (exit 2, one line, no password); with it, it serves, and the
//! database reports the facade's connections as TLS.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::fixtures::*;

/// Writes a CA and a server certificate it signed (for 127.0.0.1 and localhost) into the
/// cluster's data directory, turns TLS on and reloads; returns the CA's PEM.
async fn serve_tls(cluster: &PrivateCluster) -> String {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "participants test database CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    let key = KeyPair::generate().expect("server key");
    let cert = server.signed_by(&key, &ca).expect("server certificate");
    let data = cluster.data_dir();
    for (name, pem) in [
        ("server.crt", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        let path = data.join(name);
        std::fs::write(&path, pem).expect("write the server's TLS files");
        owned_by_the_server(&path, &data);
    }
    let admin = pg_connect(cluster.url()).await;
    for statement in ["ALTER SYSTEM SET ssl = 'on'", "SELECT pg_reload_conf()"] {
        admin.batch_execute(statement).await.expect("turn TLS on");
    }
    // The reload is asynchronous: wait until the server says TLS is on.
    let served = eventually(WAIT, || async {
        let row = admin
            .query_one("SELECT current_setting('ssl')", &[])
            .await
            .expect("read ssl");
        row.get::<_, String>(0) == "on"
    })
    .await;
    assert!(served, "PostgreSQL did not turn TLS on");
    ca.pem()
}

/// PostgreSQL reads its key only if the server's user owns it, with no access for others.
fn owned_by_the_server(path: &Path, data: &Path) {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let owner = std::fs::metadata(data).expect("data dir").uid();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let status = std::process::Command::new("chown")
        .arg(owner.to_string())
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {owner} {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_certificate_is_verified_and_its_ca_can_be_given() {
    // Arrange: a cluster serving TLS with a certificate from a CA of the test's own.
    let cluster = PrivateCluster::start().await;
    let ca_pem = serve_tls(&cluster).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("database-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    let url = format!("{}?sslmode=require", cluster.url());
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .expect("a password in the cluster's URL");

    // Act and assert: without the CA, the certificate is not trusted: exit 2, one line.
    let (status, stderr) = run_to_exit(dir.path(), &["--database-url", &url], &[]).await;
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("participants-facade:"), "{stderr}");
    assert!(!stderr.contains(&password), "the password leaked: {stderr}");

    // With the CA, it serves over TLS.
    let ca = ca_file.to_str().expect("UTF-8 path");
    let server = ChildServer::start(
        &dir.path().join("data"),
        &["--database-url", &url, "--database-ca", ca],
    )
    .await;
    let mut client = server.client().await;
    let created = client
        .create_participant(create_request())
        .await
        .expect("create over a TLS database connection")
        .into_inner();
    let fetched = client
        .fetch_participant(participants_facade::proto::FetchParticipantRequest {
            conversation_id: created.conversation_id.clone(),
            participant_id: created.id.clone(),
        })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched, created);
    let admin = pg_connect(cluster.url()).await;
    let tls_connections: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE s.ssl AND a.application_name = 'participants-facade'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(
        tls_connections > 0,
        "the facade's connections are not TLS; logs:\n{}",
        server.logs()
    );
    assert!(
        !server.logs().contains(&password),
        "the password leaked into the logs"
    );
}
