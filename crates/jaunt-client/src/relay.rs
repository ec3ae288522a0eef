//! Reaching a node through the proxy: a TLS connection on ALPN
//! `jaunt-ssh/1` with the user's certificate, one line naming the target,
//! one line back; then the node's SSH bytes.

use crate::api::ApiClient;
use crate::{ClientError, Result};
use jaunt_types::api::{ALPN_SSH, DialRequest, DialResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type RelayStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens a relayed connection to `target` (`login@host[:port]`).
pub async fn dial(client: &ApiClient, target: &str, cluster: Option<&str>) -> Result<RelayStream> {
    let mut conn = client.connect(ALPN_SSH).await?;
    let mut line = serde_json::to_vec(&DialRequest {
        target: target.to_string(),
        cluster: cluster.map(str::to_string),
    })
    .map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let io =
        |e: std::io::Error| ClientError::Protocol(format!("the proxy closed the connection: {e}"));
    conn.write_all(&line).await.map_err(io)?;
    conn.flush().await.map_err(io)?;
    let mut answer = Vec::new();
    loop {
        let b = conn.read_u8().await.map_err(io)?;
        if b == b'\n' {
            break;
        }
        answer.push(b);
        if answer.len() > 8192 {
            return Err(ClientError::Protocol(
                "the proxy sent a malformed answer".into(),
            ));
        }
    }
    let resp: DialResponse =
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(e.to_string()))?;
    match resp.error {
        Some(message) => Err(ClientError::Api {
            code: jaunt_types::api::ErrorCode::AccessDenied,
            message,
        }),
        None => Ok(conn),
    }
}
