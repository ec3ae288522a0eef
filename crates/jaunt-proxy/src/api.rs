//! The HTTPS JSON API for `jsh`: ping, signup, login and whoami. Errors
//! become responses in one place, [`ApiError`]'s `IntoResponse`.

use axum::body::Bytes;
use axum::extract::{Extension, FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jaunt_auth::{AuthError, AuthServer};
use jaunt_ca::IdentityKind;
use jaunt_types::api::*;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

/// The verified client certificate of the connection, if any.
#[derive(Clone)]
struct ClientCert(Option<CertificateDer<'static>>);

impl ClientCert {
    /// The CA that issued it (a TLS CA rotation renews certificates from
    /// a CA that no longer signs).
    fn issuer(&self) -> Option<String> {
        let der = self.0.as_ref()?;
        jaunt_ca::client_identity(der).ok().map(|id| id.issuer)
    }
}

pub(crate) fn router(auth: Arc<AuthServer>, tunnels: Arc<crate::tunnel::Tunnels>) -> Router {
    Router::new()
        .route(jaunt_types::trust::PATH_CLUSTERS, get(list_clusters))
        .route(
            jaunt_types::trust::PATH_TRUST_REGISTER,
            post(trust_register),
        )
        .route(
            jaunt_types::trust::PATH_TRUST_HEARTBEAT,
            post(trust_heartbeat),
        )
        .route(PATH_PING, get(ping))
        .route(PATH_SIGNUP_START, post(signup_start))
        .route(PATH_SIGNUP_FINISH, post(signup_finish))
        .route(PATH_LOGIN, post(login))
        .route(PATH_WHOAMI, get(whoami))
        .route(PATH_NODES, get(list_nodes))
        .route(PATH_NODE_JOIN, post(node_join))
        .route(PATH_NODE_HEARTBEAT, post(node_heartbeat))
        .route(PATH_NODE_AUTHORIZE, post(node_authorize))
        .route(PATH_NODE_LOCKS, get(node_locks))
        .route(PATH_NODE_EVENTS, post(node_events))
        .route(PATH_NODE_SESSIONS, post(node_sessions))
        .route(
            PATH_NODE_RECORDING,
            post(node_recording).layer(axum::extract::DefaultBodyLimit::max(RECORDING_PIECE_LIMIT)),
        )
        .route(PATH_SESSIONS, get(list_sessions))
        .route(PATH_RECORDINGS, get(list_recordings))
        .route(jaunt_types::admin::PATH_ADMIN, post(admin))
        .route(&format!("{PATH_RECORDINGS}/{{id}}"), get(get_recording))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such API path".into(),
            )
        })
        .layer(Extension(tunnels))
        .with_state(auth)
}

pub(crate) async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    cert: Option<CertificateDer<'static>>,
    router: Router,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ClientCert(cert.clone()));
            req.extensions_mut().insert(peer);
            req
        },
    );
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc))
        .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// An error as the client sees it.
pub(crate) struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: String) -> Self {
        ApiError {
            status,
            body: ApiErrorBody { code, message },
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            AuthError::InvalidCredentials => (S::UNAUTHORIZED, ErrorCode::InvalidCredentials),
            // Exactly a wrong password's answer: telling the client that an
            // account is locked tells anyone that it exists. The lock is in
            // the audit log and 'jctl users ls' for administrators.
            AuthError::Locked { .. } => {
                tracing::info!(reason = %e, "login refused");
                return AuthError::InvalidCredentials.into();
            }
            AuthError::AccessDenied(_) => (S::FORBIDDEN, ErrorCode::AccessDenied),
            AuthError::Throttled(_) => (S::TOO_MANY_REQUESTS, ErrorCode::Throttled),
            AuthError::NotFound(_) => (S::NOT_FOUND, ErrorCode::NotFound),
            AuthError::AlreadyExists(_) | AuthError::BadRequest(_) => {
                (S::BAD_REQUEST, ErrorCode::BadRequest)
            }
            AuthError::Store(_) | AuthError::Ca(_) | AuthError::Internal(_) => {
                // Details stay in the server log.
                tracing::error!(error = %e, "request failed");
                return ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error; the cluster's log has the details".into(),
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON request body; a malformed one is a 400 with serde's reason.
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), ErrorCode::BadRequest, e.body_text()))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("malformed request: {e}"),
            )
        })
    }
}

/// The user named by the connection's client certificate, checked (this
/// cluster, a user certificate, valid now) before the handler runs: a
/// handler that takes one cannot forget the check.
struct UserCaller(String);

/// The node (its UUID) named by the connection's client certificate,
/// checked as [`UserCaller`] is.
struct NodeCaller(String);

impl FromRequestParts<Arc<AuthServer>> for UserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthServer>,
    ) -> Result<Self, ApiError> {
        let user = caller(auth, parts, IdentityKind::User)?;
        // A locked user's certificate opens nothing more.
        auth.refuse_locked(&user, None, None).await?;
        Ok(UserCaller(user))
    }
}

impl FromRequestParts<Arc<AuthServer>> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthServer>,
    ) -> Result<Self, ApiError> {
        caller(auth, parts, IdentityKind::Node).map(NodeCaller)
    }
}

fn denied(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::AccessDenied,
        message.to_string(),
    )
}

/// The verified identity on the connection's client certificate, of the
/// kind the endpoint needs. Auth checks validity on every request, not
/// only at the handshake, since a kept-alive connection can outlive it.
fn caller(auth: &AuthServer, parts: &Parts, kind: IdentityKind) -> Result<String, ApiError> {
    let der = parts
        .extensions
        .get::<ClientCert>()
        .and_then(|c| c.0.as_ref())
        .ok_or_else(|| match kind {
            IdentityKind::User => denied("this call needs the client certificate from 'jsh login'"),
            IdentityKind::Node => denied("this call needs a node certificate"),
            IdentityKind::RemoteCluster => denied("this call needs a leaf cluster's certificate"),
        })?;
    let id = jaunt_ca::client_identity(der).map_err(|e| denied(&e.to_string()))?;
    id.check(&auth.identity().cluster_name, kind, jaunt_sys::clock::now())
        .map_err(denied)?;
    Ok(id.user)
}

async fn ping(State(auth): State<Arc<AuthServer>>) -> Json<PingResponse> {
    let c = auth.config();
    Json(PingResponse {
        cluster_name: c.cluster_name.clone(),
        public_addr: c.public_addr.clone(),
        second_factor: c.second_factor,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

async fn signup_start(
    State(auth): State<Arc<AuthServer>>,
    Body(req): Body<SignupStartRequest>,
) -> ApiResult<SignupStartResponse> {
    Ok(Json(auth.signup_start(&req.token).await?))
}

async fn signup_finish(
    State(auth): State<Arc<AuthServer>>,
    Body(req): Body<SignupFinishRequest>,
) -> ApiResult<SignupFinishResponse> {
    Ok(Json(auth.signup_finish(req).await?))
}

async fn login(
    State(auth): State<Arc<AuthServer>>,
    Extension(peer): Extension<SocketAddr>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<LoginResponse> {
    let user = req.user.clone();
    match auth.login(req, &peer.to_string()).await {
        Ok(resp) => Ok(Json(resp)),
        Err(e) => {
            tracing::info!(%user, %peer, reason = %e, "login refused");
            Err(e.into())
        }
    }
}

async fn whoami(
    State(auth): State<Arc<AuthServer>>,
    UserCaller(name): UserCaller,
) -> ApiResult<WhoAmIResponse> {
    let user = auth
        .user_record(&name)
        .await?
        .ok_or_else(|| denied("the user of this certificate no longer exists"))?;
    let checker = auth.access_checker(&user).await?;
    Ok(Json(WhoAmIResponse {
        user: user.name.clone(),
        roles: checker.role_names(),
        logins: checker.logins(),
        cluster_name: auth.identity().cluster_name.clone(),
    }))
}

/// `?cluster=NAME`: a leaf's nodes, asked of the leaf.
#[derive(serde::Deserialize)]
struct ClusterQuery {
    cluster: Option<String>,
}

impl From<crate::relay::Refusal> for ApiError {
    fn from(r: crate::relay::Refusal) -> Self {
        use crate::relay::Refusal as R;
        match r {
            R::Internal(e) => e.into(),
            R::UnknownCluster { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, r.to_string())
            }
            R::LeafOffline(_) | R::Tunnel(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotFound,
                r.to_string(),
            ),
            other => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AccessDenied,
                other.to_string(),
            ),
        }
    }
}

async fn list_nodes(
    State(auth): State<Arc<AuthServer>>,
    Extension(tunnels): Extension<Arc<crate::tunnel::Tunnels>>,
    axum::extract::Query(query): axum::extract::Query<ClusterQuery>,
    UserCaller(user): UserCaller,
) -> ApiResult<NodeListResponse> {
    let own = &auth.identity().cluster_name;
    if let Some(leaf) = query.cluster.filter(|c| !c.is_empty() && c != own) {
        let nodes = crate::remote::leaf_nodes(&auth, &tunnels, &leaf, &user).await?;
        return Ok(Json(NodeListResponse {
            cluster_name: leaf,
            nodes,
        }));
    }
    let nodes = auth.nodes_for(&user, true).await?;
    Ok(Json(NodeListResponse {
        cluster_name: auth.identity().cluster_name.clone(),
        nodes: nodes.iter().map(|n| n.info()).collect(),
    }))
}

async fn list_clusters(
    State(auth): State<Arc<AuthServer>>,
    Extension(tunnels): Extension<Arc<crate::tunnel::Tunnels>>,
    UserCaller(_user): UserCaller,
) -> ApiResult<jaunt_types::trust::ClustersResponse> {
    Ok(Json(jaunt_types::trust::ClustersResponse {
        clusters: crate::remote::clusters(&auth, &tunnels).await?,
    }))
}

/// A leaf cluster asks to trust this one (the token proves it may).
async fn trust_register(
    State(auth): State<Arc<AuthServer>>,
    Extension(peer): Extension<SocketAddr>,
    Body(req): Body<jaunt_types::trust::TrustRegisterRequest>,
) -> ApiResult<jaunt_types::trust::TrustRegisterResponse> {
    Ok(Json(auth.register_leaf(req, &peer.to_string()).await?))
}

async fn trust_heartbeat(
    State(auth): State<Arc<AuthServer>>,
    parts: LeafCaller,
    Extension(cert): Extension<ClientCert>,
    Body(req): Body<jaunt_types::trust::TrustHeartbeatRequest>,
) -> ApiResult<jaunt_types::trust::TrustHeartbeatResponse> {
    let issuer = cert.issuer();
    Ok(Json(
        auth.leaf_heartbeat(&parts.0, &req, issuer.as_deref())
            .await?,
    ))
}

/// A leaf cluster's proxy, by its certificate.
struct LeafCaller(String);

impl FromRequestParts<Arc<AuthServer>> for LeafCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        auth: &Arc<AuthServer>,
    ) -> Result<Self, ApiError> {
        caller(auth, parts, IdentityKind::RemoteCluster).map(LeafCaller)
    }
}

async fn node_join(
    State(auth): State<Arc<AuthServer>>,
    Extension(peer): Extension<SocketAddr>,
    Body(req): Body<NodeJoinRequest>,
) -> ApiResult<NodeJoinResponse> {
    let name = req.name.clone();
    match auth.join_node(req).await {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            tracing::warn!(node = %name, %peer, reason = %e, "node join refused");
            Err(e.into())
        }
    }
}

async fn node_heartbeat(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(uuid): NodeCaller,
    Extension(cert): Extension<ClientCert>,
    Body(req): Body<HeartbeatRequest>,
) -> ApiResult<HeartbeatResponse> {
    let issuer = cert.issuer();
    Ok(Json(auth.heartbeat(&uuid, req, issuer.as_deref()).await?))
}

async fn node_authorize(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(uuid): NodeCaller,
    Body(req): Body<AuthorizeRequest>,
) -> ApiResult<AuthorizeResponse> {
    Ok(Json(auth.authorize_login(&uuid, &req).await?))
}

#[derive(serde::Deserialize)]
struct LocksQuery {
    after: Option<String>,
}

/// The locks in force; waits while they are still what the node has.
async fn node_locks(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(_): NodeCaller,
    axum::extract::Query(q): axum::extract::Query<LocksQuery>,
) -> Json<LocksResponse> {
    let wait = std::time::Duration::from_secs(LOCKS_WAIT_SECS);
    Json(auth.locks_after(q.after.as_deref(), wait).await)
}

/// A recording piece's largest body: nodes send at most 4 MiB of text at a
/// time, which JSON escaping can grow.
const RECORDING_PIECE_LIMIT: usize = 32 * 1024 * 1024;

async fn node_events(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(uuid): NodeCaller,
    Body(req): Body<NodeEventsRequest>,
) -> ApiResult<Ack> {
    auth.ingest_node_events(&uuid, req.events).await?;
    Ok(Json(Ack {}))
}

async fn node_sessions(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(uuid): NodeCaller,
    Body(req): Body<NodeSessionsRequest>,
) -> ApiResult<Ack> {
    auth.set_node_sessions(&uuid, req.sessions).await?;
    Ok(Json(Ack {}))
}

async fn node_recording(
    State(auth): State<Arc<AuthServer>>,
    NodeCaller(uuid): NodeCaller,
    Body(req): Body<RecordingUpload>,
) -> ApiResult<Ack> {
    auth.put_recording(&uuid, req).await?;
    Ok(Json(Ack {}))
}

async fn list_sessions(
    State(auth): State<Arc<AuthServer>>,
    UserCaller(user): UserCaller,
) -> ApiResult<SessionListResponse> {
    Ok(Json(SessionListResponse {
        sessions: auth.sessions_for(&user).await?,
    }))
}

#[derive(serde::Deserialize)]
struct RecordingsQuery {
    /// Unix seconds.
    since: Option<i64>,
}

async fn list_recordings(
    State(auth): State<Arc<AuthServer>>,
    UserCaller(user): UserCaller,
    axum::extract::Query(q): axum::extract::Query<RecordingsQuery>,
) -> ApiResult<RecordingListResponse> {
    Ok(Json(RecordingListResponse {
        recordings: auth.recordings_for(&user, q.since).await?,
    }))
}

/// `jctl --proxy`: one administrative request, if the caller's roles
/// allow it.
async fn admin(
    State(auth): State<Arc<AuthServer>>,
    UserCaller(user): UserCaller,
    Body(req): Body<jaunt_types::admin::AdminRequest>,
) -> ApiResult<jaunt_types::admin::AdminResponse> {
    Ok(Json(auth.admin_as(&user, req).await?))
}

async fn get_recording(
    State(auth): State<Arc<AuthServer>>,
    UserCaller(user): UserCaller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<RecordingResponse> {
    let (meta, data) = auth.recording(&user, &id).await?;
    Ok(Json(RecordingResponse { meta, data }))
}
