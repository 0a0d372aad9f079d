//! TLS client configuration from Docker's `--tls*` flags and `DOCKER_CERT_PATH`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ClientError;

/// Docker's TLS options.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Use TLS at all (`--tls`, implied by `--tlsverify`).
    pub enabled: bool,
    /// Verify the daemon's certificate against `ca` (`--tlsverify`, `DOCKER_TLS_VERIFY`).
    pub verify: bool,
    /// CA bundle (`--tlscacert`).
    pub ca: Option<PathBuf>,
    /// Client certificate (`--tlscert`).
    pub cert: Option<PathBuf>,
    /// Client key (`--tlskey`).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// Fills unset paths from a cert directory (`DOCKER_CERT_PATH`, or `~/.docker`) the way the
    /// docker CLI does: `ca.pem`, `cert.pem`, `key.pem`, each only if it exists.
    pub fn with_cert_dir(mut self, dir: &Path) -> TlsOptions {
        let pick = |slot: &mut Option<PathBuf>, name: &str| {
            let p = dir.join(name);
            if slot.is_none() && p.exists() {
                *slot = Some(p);
            }
        };
        pick(&mut self.ca, "ca.pem");
        pick(&mut self.cert, "cert.pem");
        pick(&mut self.key, "key.pem");
        self
    }

    /// Builds the rustls config: mutual TLS when a cert and key are given.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let builder = if self.verify {
            let ca = self.ca.as_ref().ok_or_else(|| {
                ClientError::Tls("--tlsverify needs a CA certificate (--tlscacert)".into())
            })?;
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        };
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| ClientError::Tls(e.to_string()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ClientError::Tls(
                    "both a client certificate and key are needed (--tlscert, --tlskey)".into(),
                ))
            }
        };
        Ok(Arc::new(config))
    }
}

/// The name the daemon's certificate must carry, from `host:port`.
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, ClientError> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string()).map_err(|e| ClientError::Tls(format!("{host}: {e}")))
}

fn open(path: &Path) -> Result<BufReader<File>, ClientError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| ClientError::Tls(format!("could not read {}: {e}", path.display())))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{}: no certificates found",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?
        .ok_or_else(|| ClientError::Tls(format!("{}: no private key found", path.display())))
}

/// `--tls` without `--tlsverify`: encrypt but accept any certificate, as the docker CLI does.
/// Signatures are still checked so the handshake proves possession of the presented key.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_dir_fills_only_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let o = TlsOptions::default().with_cert_dir(dir.path());
        assert_eq!(o.ca, Some(dir.path().join("ca.pem")));
        assert_eq!(o.cert, None);
    }

    #[test]
    fn verify_without_ca_is_an_error() {
        let o = TlsOptions {
            enabled: true,
            verify: true,
            ..Default::default()
        };
        assert!(matches!(o.client_config(), Err(ClientError::Tls(_))));
    }

    #[test]
    fn server_names() {
        assert!(server_name("localhost:2376").is_ok());
        assert!(server_name("127.0.0.1:2376").is_ok());
        assert!(server_name("[::1]:2376").is_ok());
    }

    #[test]
    fn garbage_pem_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a cert").unwrap();
        let o = TlsOptions {
            enabled: true,
            verify: true,
            ca: Some(ca),
            ..Default::default()
        };
        assert!(o.client_config().is_err());
    }
}
