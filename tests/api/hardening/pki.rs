//! A test PKI for the TLS tests: a CA, a server certificate for `localhost` and 127.0.0.1,
//! client certificates from that CA and from another, rustls and reqwest clients that
//! trust only the test CA, and an in-process server serving TLS with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tonic::transport::Channel as GrpcChannel;

use super::*;

/// A test PKI in a temporary directory: a CA, a server certificate for `localhost` and
/// 127.0.0.1 signed by it, a client certificate signed by it, and a client certificate
/// signed by another CA.
pub(super) struct Pki {
    pub(super) dir: TempDir,
    pub(super) ca_pem: String,
    /// `--tls-cert`.
    pub(super) server_cert: PathBuf,
    /// `--tls-key`.
    pub(super) server_key: PathBuf,
    /// `--tls-client-ca`: the same CA that signed the server's certificate.
    pub(super) client_ca: PathBuf,
    /// A client certificate (then its key) signed by the CA.
    pub(super) client: Identity,
    /// A client certificate (then its key) signed by an unrelated CA.
    pub(super) stranger: Identity,
}

/// A certificate chain and its private key, PEM.
#[derive(Clone)]
pub(super) struct Identity {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
}

impl Identity {
    /// Certificate then key, as `reqwest::Identity::from_pem` wants them.
    pub(super) fn pem_bundle(&self) -> Vec<u8> {
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
    pub(super) fn new() -> Pki {
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
    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A rustls client configuration trusting only the test CA, offering `alpn`, with an
    /// optional client certificate.
    pub(super) fn client_config(
        &self,
        identity: Option<&Identity>,
        alpn: &[&[u8]],
    ) -> rustls::ClientConfig {
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
    pub(super) fn https_client(
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
pub(super) async fn tls_connect(
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
pub(super) async fn grpc_tls_channel(
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

pub(super) async fn serve_tls(pki: &Pki, mutual: bool) -> Served {
    let cert = pki.server_cert.clone();
    let key = pki.server_key.clone();
    let ca = mutual.then(|| pki.client_ca.clone());
    serve(move |c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
        c.tls.client_ca = ca;
    })
    .await
}
