//! The diagnostics port (`diag_addr`: plain HTTP, off by default, meant for
//! loopback or a private network): `/healthz` answers while the process
//! runs; `/metrics` gives every metric of the process (`jaunt-metrics`); `/readyz` answers 200 only while this instance can serve: its
//! store answers in time and its CAs are loaded. A load balancer's or an
//! orchestrator's checks take an instance whose database is gone out of
//! rotation, and say why.

use axum::http::StatusCode;
use axum::routing::get;
use jaunt_auth::AuthServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the store has to answer a readiness check: far less than the
/// store's own patience with a failing-over database.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// What `/readyz` asks: auth's store (an auth+proxy process), or a node
/// process's own check (joined, heartbeats answered).
#[derive(Clone)]
pub enum Readiness {
    Auth(Arc<AuthServer>),
    Node(Arc<dyn Fn() -> Result<(), String> + Send + Sync>),
}

/// Serves the diagnostics routes on `listener` until `shutdown`.
pub async fn serve_diag(
    listener: TcpListener,
    ready: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let auth = match &ready {
        Readiness::Auth(auth) => Some(auth.clone()),
        Readiness::Node(_) => None,
    };
    let router = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get({
                let auth = auth.clone();
                move || {
                    let auth = auth.clone();
                    async move { metrics_text(auth.as_deref()) }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready {
                        Readiness::Auth(auth) => readiness(&auth).await,
                        Readiness::Node(check) => match check() {
                            Ok(()) => (StatusCode::OK, "ready\n".into()),
                            Err(why) => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("not ready: {why}\n"),
                            ),
                        },
                    }
                }
            }),
        );
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "the diagnostics port stopped");
    }
}

/// Every metric of the process, in Prometheus's text format.
fn metrics_text(auth: Option<&AuthServer>) -> impl axum::response::IntoResponse + use<> {
    let m = jaunt_metrics::metrics();
    if let Some(auth) = auth {
        m.auth_nodes_online.set(auth.nodes_online() as i64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

async fn readiness(auth: &AuthServer) -> (StatusCode, String) {
    match tokio::time::timeout(READY_WITHIN, auth.check_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the store did not answer within {} s\n",
                READY_WITHIN.as_secs()
            ),
        ),
    }
}
