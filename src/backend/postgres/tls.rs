//! TLS to PostgreSQL, with rustls: managed databases (RDS, Cloud SQL, Azure) require it.
//!
//! The URL's `sslmode` decides whether TLS is used: `disable` never, `prefer` (the
//! default) when the server offers it, `require` always. When it is used, the server's
//! certificate is always verified (unlike libpq's `prefer` and `require`, which accept
//! any certificate): against the web's public roots and the PEM certificates of
//! `--database-ca` (a managed database's own CA, such as RDS's bundle). A server with a
//! certificate that neither signed is refused; `sslmode=disable` is the way to connect
//! without TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::domain::error::Error;

/// The connector every connection of the store uses.
pub(super) fn connector(extra_ca: Option<&Path>) -> Result<MakeRustlsConnect, Error> {
    let mut roots = RootCertStore::empty();
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        // A root the verifier cannot use is skipped, as reqwest does.
        let _ = roots.add(der.clone());
    }
    if let Some(path) = extra_ca {
        let refused = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("--database-ca {}: {e}", path.display()))
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| refused(&e))? {
            roots
                .add(cert.map_err(|e| refused(&e))?)
                .map_err(|e| refused(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(refused(&"holds no certificate"));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Internal(format!("TLS to the database: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
