//! Optional mutual TLS between the services, for a cluster without a mesh: each server presents its certificate
//! and requires a client certificate signed by the suite's CA; each outgoing call presents the service's own and
//! verifies the server's against the same CA. All from PEM files: `RAPPORT_TLS_CERT`, `RAPPORT_TLS_KEY` and
//! `RAPPORT_TLS_CA` (all three or none). With TLS on, every outgoing `http://` address is called as `https://`, and
//! the health service is also served in plaintext on `RAPPORT_HEALTH_LISTEN` when set (kubelet's gRPC probes speak
//! no TLS); it answers health only. Certificates are read at start: a renewed certificate takes effect when the pod
//! restarts (restart before expiry, e.g. with a reloader watching the Secret).
use std::{fmt, net::SocketAddr, path::Path, sync::OnceLock};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::{self, ConfigError};

/// A service's certificate and key, and the CA its peers' certificates must chain to.
#[derive(Clone)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// From PEM texts: the certificate (chain), its private key, the CA.
    pub fn from_pem(cert: &str, key: &str, ca: &str) -> Self {
        Self { identity: Identity::from_pem(cert, key), ca: Certificate::from_pem(ca) }
    }

    /// From `RAPPORT_TLS_CERT`, `RAPPORT_TLS_KEY` and `RAPPORT_TLS_CA` (paths of PEM files); `None` when none is
    /// set, an error when only some are or a file cannot be read.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let vars = ["RAPPORT_TLS_CERT", "RAPPORT_TLS_KEY", "RAPPORT_TLS_CA"];
        let set: Vec<Option<String>> = vars.iter().map(|v| config::var(v)).collect();
        if set.iter().all(Option::is_none) {
            return Ok(None);
        }
        let read = |i: usize| -> Result<String, ConfigError> {
            let invalid = |problem: String| ConfigError { name: vars[i].into(), problem };
            let path = set[i].clone().ok_or_else(|| invalid("must be set with the other RAPPORT_TLS_*".into()))?;
            std::fs::read_to_string(Path::new(&path)).map_err(|e| invalid(format!("cannot read {path}: {e}")))
        };
        Ok(Some(Self::from_pem(&read(0)?, &read(1)?, &read(2)?)))
    }

    /// The server side: this certificate, and client certificates required, signed by the CA.
    pub fn server(&self) -> ServerTlsConfig {
        // A peer that never finishes its handshake is dropped after 5 s (no request limit counts handshakes).
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .timeout(std::time::Duration::from_secs(5))
    }

    /// The client side: this certificate presented, the server's verified against the CA.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().identity(self.identity.clone()).ca_certificate(self.ca.clone())
    }
}

static CLIENT: OnceLock<Tls> = OnceLock::new();

/// Sets the TLS of this process's outgoing calls (once; a service binary sets it at start from its configuration),
/// after which [`crate::client::channel`] calls every `http://` address as `https://` with it.
pub fn set_client(tls: Tls) {
    let _ = CLIENT.set(tls);
}

/// The TLS of outgoing calls, if set.
pub fn client() -> Option<&'static Tls> {
    CLIENT.get()
}

/// `RAPPORT_HEALTH_LISTEN`: where health is also served in plaintext while TLS is on.
pub fn health_listen_from_env() -> Result<Option<SocketAddr>, ConfigError> {
    config::var("RAPPORT_HEALTH_LISTEN")
        .map(|_| config::addr("RAPPORT_HEALTH_LISTEN", SocketAddr::from(([0, 0, 0, 0], 0))))
        .transpose()
}
