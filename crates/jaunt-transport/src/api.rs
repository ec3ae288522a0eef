//! The HTTPS client for the proxy's API, and the TLS dialer under it. The
//! proxy's certificate must chain to the cluster CA saved at an earlier
//! login or join, or to a CA in the presented chain whose key matches
//! `--ca-pin`; only when there is neither do the system's roots decide.
//! `--insecure` skips the check (and the caller warns).

use crate::{Result, TransportError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use jaunt_types::api::{ALPN_HTTP, ApiErrorBody, CLUSTER_SERVER_NAME, ErrorCode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How to trust the proxy.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// `sha256:<hex>` of the cluster TLS CA's public key.
    pub ca_pin: Option<String>,
    /// The cluster CA saved at an earlier login (PEM).
    pub cluster_ca_pem: Option<String>,
    pub insecure: bool,
}

/// A TLS client certificate and key (PEM), from `jsh login`.
#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    system: Option<Arc<WebPkiServerVerifier>>,
    saved: Vec<CertificateDer<'static>>,
    pin: Option<String>,
    insecure: bool,
}

fn tls_error(msg: String) -> rustls::Error {
    rustls::Error::General(msg)
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        // A pin or a saved cluster CA is the only trust: a public CA that
        // will sign anything for anyone must not override it (for a node,
        // a heartbeat answer sets its user CA keys).
        if self.pin.is_none() && self.saved.is_empty() {
            let untrusted = |why: String| {
                tls_error(format!(
                    "the proxy's certificate is not trusted by this system ({why}); pass --ca-pin=sha256:... (printed by 'jctl status' and 'jctl users add') or, for a test cluster, --insecure"
                ))
            };
            return match &self.system {
                Some(system) => system
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                    .map_err(|e| untrusted(e.to_string())),
                None => Err(untrusted("no system roots".into())),
            };
        }
        // The saved CAs came from the cluster over a channel already
        // trusted (the pin, or the CAs saved before), so they stand beside
        // the pin: after a TLS CA rotation the proxy's CA is a saved one
        // that the old pin does not name.
        let mut anchors: Vec<CertificateDer<'static>> = self.saved.clone();
        if let Some(pin) = &self.pin {
            let pinned: Vec<_> = intermediates
                .iter()
                .filter(|c| jaunt_ca::ca_pin(c).ok().as_deref() == Some(pin.as_str()))
                .map(|c| c.clone().into_owned())
                .collect();
            let saved_issuer = intermediates.iter().any(|c| self.saved.contains(c));
            if pinned.is_empty() && !saved_issuer {
                return Err(tls_error(format!(
                    "the proxy's certificate does not chain to a CA matching --ca-pin={pin}; check the pin with 'jctl status' on the auth server"
                )));
            }
            anchors.extend(pinned);
        }
        let mut roots = RootCertStore::empty();
        for a in anchors {
            roots.add(a)?;
        }
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| tls_error(e.to_string()))?;
        v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn system_verifier(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .ok()
}

/// A client for one proxy. Clones share its idle connections.
#[derive(Clone)]
pub struct ApiClient {
    dialer: Arc<Dialer>,
    /// Calls reuse a kept-alive connection when one is idle: a node makes
    /// several calls per SSH session (authorize, sessions, audit), and a
    /// TLS handshake each was most of what a session start cost auth.
    http: Client<Connector, Full<Bytes>>,
}

/// How to open a TLS connection to the proxy.
struct Dialer {
    addr: String,
    host: String,
    /// The server name asked for: the cluster's reserved name when the
    /// cluster's CA is the trust (the proxy answers with the certificate
    /// that CA issued it), else the proxy's host.
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    /// Other proxy instances of the cluster, tried in turn when `addr`
    /// cannot be reached (a node learns them from its heartbeats).
    fallbacks: std::sync::RwLock<Vec<String>>,
}

/// An idle connection is closed after this: longer than the gaps between
/// the calls of one session's start or end (milliseconds), shorter than a
/// heartbeat interval, so an idle node holds no connection at the proxy
/// (at 10 s, 10,000 simulated nodes kept ~6,700 open: +225 MiB of proxy
/// RSS). The proxy closes idle ones after 30 s, so this side closes first.
const IDLE: Duration = Duration::from_secs(2);
/// Idle connections kept per client.
const MAX_IDLE: usize = 8;

/// Dials the proxy for the HTTP client's pool.
#[derive(Clone)]
struct Connector(Arc<Dialer>);

/// A TLS connection to the proxy, as the HTTP client's pool holds it.
struct Conn(TokioIo<tokio_rustls::client::TlsStream<TcpStream>>);

impl tower::Service<hyper::Uri> for Connector {
    type Response = Conn;
    type Error = TransportError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move { Ok(Conn(TokioIo::new(dialer.connect(ALPN_HTTP).await?))) })
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Dialer {
    /// A connection to the proxy, or, when it cannot be reached, to the
    /// first other instance that can.
    async fn connect(&self, alpn: &[u8]) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let first = match self.connect_to(&self.addr, alpn).await {
            Err(e @ TransportError::Connect { .. }) => e,
            done => return done,
        };
        let others = self.fallbacks.read().map(|f| f.clone()).unwrap_or_default();
        for addr in others.iter().filter(|a| **a != self.addr) {
            match self.connect_to(addr, alpn).await {
                Err(TransportError::Connect { .. }) => continue,
                done => return done,
            }
        }
        Err(first)
    }

    /// The same trust and certificate, at another address (another
    /// instance of the proxy).
    async fn connect_to(
        &self,
        addr: &str,
        alpn: &[u8],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let connect_err = |reason: String| TransportError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = self.server_name.clone();
        let config = if alpn == ALPN_HTTP {
            self.tls.clone()
        } else {
            let mut c = (*self.tls).clone();
            c.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(c)
        };
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| TransportError::Tls {
                addr: addr.to_string(),
                reason: e
                    .into_inner()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "handshake failed".into())
                    // Our verifier's own messages are complete sentences.
                    .trim_start_matches("unexpected error: ")
                    .to_string(),
            })?;
        if tls.get_ref().1.alpn_protocol() != Some(alpn) {
            return Err(TransportError::Protocol(format!(
                "the proxy at {} does not speak {}; is it a Jaunt proxy of the same version?",
                addr,
                String::from_utf8_lossy(alpn)
            )));
        }
        Ok(tls)
    }
}

/// The connector's own error when the pool's error carries one (so a TLS
/// or pin failure reads the same as before pooling), else the HTTP error.
fn unwrap_error(e: hyper_util::client::legacy::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(c) = err.downcast_ref::<TransportError>() {
            return c.clone();
        }
        source = err.source();
    }
    TransportError::Protocol(e.to_string())
}

impl ApiClient {
    /// `addr` is a normalized `host:port`.
    pub fn new(addr: &str, trust: &Trust, client_cert: Option<&ClientCert>) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_err = |reason: String| TransportError::Tls {
            addr: addr.to_string(),
            reason,
        };
        let saved = match &trust.cluster_ca_pem {
            Some(pem) => CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(format!("saved cluster CA: {e}")))?,
            None => Vec::new(),
        };
        let by_cluster_ca = !trust.insecure && (trust.ca_pin.is_some() || !saved.is_empty());
        let verifier = Verifier {
            // The system's roots are read only where they can count: not
            // for nodes, nor for jsh once it has the cluster's CA.
            system: match trust.insecure || by_cluster_ca {
                true => None,
                false => system_verifier(&provider),
            },
            provider: provider.clone(),
            saved,
            pin: trust.ca_pin.clone(),
            insecure: trust.insecure,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match client_cert {
            Some(c) => {
                let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_err(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
                    .map_err(|e| tls_err(format!("client key: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_err(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP.to_vec()];
        let host = jaunt_types::addr::split_host_port(addr, 0)
            .map(|(host, _)| host)
            .unwrap_or_else(|_| addr.to_string());
        let server_name = match by_cluster_ca {
            true => ServerName::try_from(CLUSTER_SERVER_NAME),
            false => ServerName::try_from(host.clone()),
        }
        .map_err(|e| tls_err(format!("invalid host name: {e}")))?;
        let dialer = Arc::new(Dialer {
            addr: addr.to_string(),
            host,
            server_name,
            tls: Arc::new(config),
            fallbacks: std::sync::RwLock::new(Vec::new()),
        });
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MAX_IDLE)
            .build(Connector(dialer.clone()));
        Ok(ApiClient { dialer, http })
    }

    pub fn addr(&self) -> &str {
        &self.dialer.addr
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        self.call(Method::GET, path, Bytes::new(), true).await
    }

    /// A POST whose connection is not kept for another call: for periodic
    /// calls far apart (heartbeats), so thousands of nodes do not each
    /// hold a connection at the proxy between them.
    pub async fn post_once<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R> {
        self.post_json(path, body, false).await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R> {
        self.post_json(path, body, true).await
    }

    async fn post_json<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        keep_alive: bool,
    ) -> Result<R> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| TransportError::Protocol(e.to_string()))?;
        self.call(Method::POST, path, Bytes::from(bytes), keep_alive)
            .await
    }

    /// A TLS connection to the proxy speaking `alpn`, with this client's
    /// trust and certificate.
    pub async fn connect(&self, alpn: &[u8]) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.dialer.connect(alpn).await
    }

    /// Other instances of the proxy (`host:port`), tried in turn when this
    /// client's own address cannot be reached.
    pub fn set_fallbacks(&self, addrs: Vec<String>) {
        if let Ok(mut f) = self.dialer.fallbacks.write() {
            *f = addrs;
        }
    }

    /// As [`ApiClient::connect`], to the proxy instance at `addr`.
    pub async fn connect_to(
        &self,
        addr: &str,
        alpn: &[u8],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.dialer.connect_to(addr, alpn).await
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        keep_alive: bool,
    ) -> Result<R> {
        let uri = format!("https://{}{path}", self.dialer.addr);
        let mut req = Request::builder().method(method);
        if !keep_alive {
            req = req.header(hyper::header::CONNECTION, "close");
        }
        let req = req
            .uri(uri)
            .header(hyper::header::HOST, &self.dialer.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(unwrap_error)?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| TransportError::Protocol(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| TransportError::Protocol(format!("{path}: {e}")));
        }
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => Err(TransportError::Api {
                code: body.code,
                message: body.message,
            }),
            Err(_) => Err(TransportError::Api {
                code: ErrorCode::Internal,
                message: format!("the proxy answered {status}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaunt_ca::TlsCa;

    const NOW: u64 = 1_800_000_000;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem")
    }

    /// A CA and a server certificate it issued for `name`.
    fn issued(ca_name: &str, name: &str) -> (TlsCa, CertificateDer<'static>) {
        let ca = TlsCa::generate(ca_name, NOW).expect("ca");
        let (cert, _) = ca
            .issue_server_cert(&[name.to_string()], NOW, 3600)
            .expect("cert");
        (ca, der(&cert))
    }

    fn verifier(system: &TlsCa, saved: Option<&TlsCa>, pin: Option<String>) -> Verifier {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(der(system.cert_pem())).expect("root");
        Verifier {
            system: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok(),
            provider,
            saved: saved.map(|c| vec![der(c.cert_pem())]).unwrap_or_default(),
            pin,
            insecure: false,
        }
    }

    fn check(
        v: &Verifier,
        leaf: &CertificateDer<'_>,
        chain: &[CertificateDer<'_>],
        name: &str,
    ) -> Result<(), String> {
        let name = ServerName::try_from(name.to_string()).expect("name");
        let now = UnixTime::since_unix_epoch(Duration::from_secs(NOW + 60));
        v.verify_server_cert(leaf, chain, &name, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_pin_or_a_saved_ca_is_the_only_trust() {
        // A certificate from a CA the system trusts (a public CA, or one
        // an attacker got into the trust store) for the proxy's name.
        let (public, forged) = issued("public", "proxy.example.com");
        let (cluster, genuine) = issued("cluster", CLUSTER_SERVER_NAME);
        let public_chain = [der(public.cert_pem())];
        let cluster_chain = [der(cluster.cert_pem())];
        let pin = jaunt_ca::ca_pin(&der(cluster.cert_pem())).expect("pin");

        // No pin and no saved CA: the system's roots decide.
        let open = verifier(&public, None, None);
        assert_eq!(
            check(&open, &forged, &public_chain, "proxy.example.com"),
            Ok(())
        );
        let err = check(&open, &genuine, &cluster_chain, CLUSTER_SERVER_NAME).expect_err("unknown");
        assert!(err.contains("--ca-pin"), "{err}");

        // With a pin, the system's roots are not asked (they were first).
        let pinned = verifier(&public, None, Some(pin.clone()));
        let err = check(&pinned, &forged, &public_chain, "proxy.example.com").expect_err("pinned");
        assert!(
            err.contains("does not chain to a CA matching --ca-pin"),
            "{err}"
        );
        assert_eq!(
            check(&pinned, &genuine, &cluster_chain, CLUSTER_SERVER_NAME),
            Ok(())
        );

        // With the cluster CA saved at login or join, likewise.
        let saved = verifier(&public, Some(&cluster), None);
        assert!(check(&saved, &forged, &public_chain, "proxy.example.com").is_err());
        assert_eq!(check(&saved, &genuine, &[], CLUSTER_SERVER_NAME), Ok(()));
    }

    #[test]
    fn after_a_tls_ca_rotation_the_saved_cas_stand_beside_an_old_pin() {
        let (old, _) = issued("cluster", CLUSTER_SERVER_NAME);
        let (new, rotated) = issued("cluster-next", CLUSTER_SERVER_NAME);
        let (public, forged) = issued("public", CLUSTER_SERVER_NAME);
        let old_pin = jaunt_ca::ca_pin(&der(old.cert_pem())).expect("pin");
        let new_chain = [der(new.cert_pem())];
        // Saved both CAs at a login during the rotation: the proxy's new
        // certificate is trusted though the remembered pin is the old one.
        let mut both = verifier(&public, Some(&old), Some(old_pin.clone()));
        both.saved.push(der(new.cert_pem()));
        assert_eq!(
            check(&both, &rotated, &new_chain, CLUSTER_SERVER_NAME),
            Ok(())
        );
        // Only the old CA saved: refused, naming the pin.
        let stale = verifier(&public, Some(&old), Some(old_pin));
        let err = check(&stale, &rotated, &new_chain, CLUSTER_SERVER_NAME).expect_err("stale");
        assert!(err.contains("--ca-pin"), "{err}");
        // Nor does a chain that merely claims a saved CA get through.
        let claimed = [der(old.cert_pem())];
        assert!(check(&both, &forged, &claimed, CLUSTER_SERVER_NAME).is_err());
    }

    #[test]
    fn clients_that_trust_the_cluster_ca_ask_for_the_cluster_name() {
        let name = |trust: Trust| {
            ApiClient::new("proxy.example.com:3080", &trust, None)
                .map(|c| format!("{:?}", c.dialer.server_name))
                .expect("client")
        };
        let by_host = name(Trust::default());
        assert!(by_host.contains("proxy.example.com"), "{by_host}");
        let pinned = name(Trust {
            ca_pin: Some("sha256:00".into()),
            ..Default::default()
        });
        assert!(pinned.contains(CLUSTER_SERVER_NAME), "{pinned}");
        let insecure = name(Trust {
            ca_pin: Some("sha256:00".into()),
            insecure: true,
            ..Default::default()
        });
        assert!(insecure.contains("proxy.example.com"), "{insecure}");
    }
}
