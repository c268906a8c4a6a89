//! The gRPC API on TCP (`api = "tcp://..."`), for routers on other hosts:
//! the same services as the Unix socket, health and reflection included,
//! behind mutual TLS (rustls). A client must present a certificate that
//! the configured client CA signed; others are refused in the handshake.
//!
//! [`TcpApi::open`] runs before the daemon changes anything: it reads the
//! certificate, key and CA, checks that the key is private, builds the TLS
//! setup (so a bad PEM stops the start with the setting named) and binds
//! the port. [`TcpApi::serve`] then serves until the daemon exits.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::api::Services;
use crate::config::TcpApi as Settings;

/// A TCP API that cannot start. `at` names the config line:
/// `wgd.toml:2: api "tcp://0.0.0.0:50061"`.
#[derive(Debug, thiserror::Error)]
pub enum TcpApiError {
    #[error("{at}: {setting} {path}: {reason}")]
    File {
        at: String,
        setting: &'static str,
        path: String,
        reason: String,
    },
    #[error("{at}: TLS setup from tls_cert, tls_key and tls_client_ca: {reason}")]
    Tls { at: String, reason: String },
    #[error("{at}: {source}")]
    Bind { at: String, source: std::io::Error },
}

/// The TCP API, checked and bound, not yet serving.
#[derive(Debug)]
pub struct TcpApi {
    listener: tokio::net::TcpListener,
    tls: ServerTlsConfig,
}

impl TcpApi {
    /// Reads and checks the TLS files and binds the port; `config` is the
    /// config file's path, for errors.
    pub async fn open(settings: &Settings, config: &Path) -> Result<TcpApi, TcpApiError> {
        let at = format!(
            "{}:{}: api \"tcp://{}\"",
            config.display(),
            settings.line,
            settings.listen
        );
        let file = |setting: &'static str, path: &Path| {
            std::fs::read(path).map_err(|error| TcpApiError::File {
                at: at.clone(),
                setting,
                path: path.display().to_string(),
                reason: error.to_string(),
            })
        };
        let cert = file("tls_cert", &settings.cert)?;
        let key = file("tls_key", &settings.key)?;
        let client_ca = file("tls_client_ca", &settings.client_ca)?;
        // As for WireGuard keys: a private key others can read is refused.
        let mode = std::fs::metadata(&settings.key)
            .map(|metadata| metadata.permissions().mode() & 0o7777)
            .unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(TcpApiError::File {
                at,
                setting: "tls_key",
                path: settings.key.display().to_string(),
                reason: format!("readable by group or others (mode {mode:04o}); chmod 600 it"),
            });
        }
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(client_ca));
        // The PEM is parsed here: a bad file stops the start, not the first client.
        Server::builder()
            .tls_config(tls.clone())
            .map_err(|error| TcpApiError::Tls {
                at: at.clone(),
                reason: describe(&error),
            })?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| TcpApiError::Bind { at, source })?;
        Ok(TcpApi { listener, tls })
    }

    /// Serves `services` until the server fails.
    pub async fn serve(
        self,
        services: Services,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let server = Server::builder().tls_config(self.tls)?;
        services
            .router(server)?
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                self.listener,
            ))
            .await?;
        Ok(())
    }
}

/// An error with its causes (tonic's own text is only "transport error").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
