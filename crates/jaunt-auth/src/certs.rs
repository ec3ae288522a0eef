//! Certificate issuance at login: an SSH user certificate and a TLS client
//! certificate, both for the authenticated user only, with the logins and
//! options their roles grant and a lifetime their roles cap.

use crate::authn::Authenticated;
use crate::records::{UserRecord, role_key};
use crate::{AuthError, AuthServer, now};
use jaunt_ca::{UserCertRequest, parse_public_key};
use jaunt_metrics::Metrics;
use jaunt_rbac::{AccessChecker, Traits};
use jaunt_types::Ttl;
use jaunt_types::api::{LoginRequest, LoginResponse};
use jaunt_types::resources::Role;

/// A principal no OS login can have (logins may not start with '-'): users
/// whose roles grant no logins still get a certificate, valid for nothing.
const NO_LOGIN_PRINCIPAL: &str = "-jaunt-no-login";

impl AuthServer {
    /// The access checker for a user: their existing roles and traits.
    pub async fn access_checker(&self, user: &UserRecord) -> Result<AccessChecker, AuthError> {
        let mut roles: Vec<Role> = Vec::new();
        for name in &user.roles {
            match self.store.get::<Role>(&role_key(name)).await? {
                Some(v) => roles.push(v.value),
                None => {
                    tracing::warn!(user = %user.name, role = %name, "user refers to a role that no longer exists")
                }
            }
        }
        Ok(AccessChecker::new(
            user.name.clone(),
            roles,
            Traits {
                logins: user.logins.clone(),
            },
        ))
    }

    /// Authenticates and, on success, signs the client's keys.
    /// `addr` is the client's address, for the audit log.
    pub async fn login(&self, req: LoginRequest, addr: &str) -> Result<LoginResponse, AuthError> {
        // Parse what the client sent before spending a password check.
        let public_key = parse_public_key(&req.ssh_public_key)
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let login_event = |success: bool| {
            let mut e = self.event("user.login", success).with("method", "local");
            e.user = Some(req.user.clone());
            e.addr = Some(addr.to_string());
            e
        };
        let who = match self
            .authenticate(&req.user, &req.password, req.otp.as_ref(), addr)
            .await
        {
            Ok(who) => who,
            Err(refused) => {
                count_login(&refused);
                self.emit(login_event(false).with("reason", refused.to_string()))
                    .await?;
                return Err(refused);
            }
        };
        // Only now: a lock's words are for the user, not for whoever
        // guesses a name.
        if let Err(locked) = self.refuse_locked(&req.user, None, None).await {
            count_login(&locked);
            self.emit(login_event(false).with("reason", locked.to_string()))
                .await?;
            return Err(locked);
        }
        let resp = self
            .issue_user_certs(
                &who,
                public_key,
                &req.tls_csr_pem,
                req.ttl_secs.map(Ttl::from_secs),
                addr,
            )
            .await?;
        let mut cert = self
            .event("cert.create", true)
            .with("roles", resp.roles.clone())
            .with("logins", resp.logins.clone())
            .with("valid_until", resp.valid_until);
        cert.user = Some(req.user.clone());
        self.emit(cert).await?;
        self.emit(login_event(true)).await?;
        let m = jaunt_metrics::metrics();
        Metrics::inc(&m.auth_logins, &[("result", "success"), ("reason", "")]);
        Metrics::inc(&m.auth_certificates, &[("kind", "user_ssh")]);
        Metrics::inc(&m.auth_certificates, &[("kind", "user_tls")]);
        Ok(resp)
    }

    async fn issue_user_certs(
        &self,
        who: &Authenticated,
        public_key: jaunt_ca::ssh_key::PublicKey,
        csr_pem: &str,
        ttl: Option<Ttl>,
        addr: &str,
    ) -> Result<LoginResponse, AuthError> {
        let user = who.user();
        let checker = self.access_checker(user).await?;
        let ttl = checker.grant_ttl(ttl);
        if ttl.as_secs() == 0 {
            return Err(AuthError::BadRequest(
                "the certificate lifetime (--ttl) must be positive".into(),
            ));
        }
        let now = now();
        let mut principals = checker.logins();
        let logins = principals.clone();
        if principals.is_empty() {
            principals.push(NO_LOGIN_PRINCIPAL.to_string());
        }
        let id = &self.identity;
        let cert = self
            .authorities()
            .user
            .signer()
            .sign_user_cert(&UserCertRequest {
                public_key,
                user: user.name.clone(),
                principals,
                now: now as u64,
                ttl_secs: ttl.as_secs(),
                permit_pty: true,
                permit_port_forwarding: checker.port_forwarding(),
                permit_agent_forwarding: checker.forward_agent(),
                // pin_source_ip: the certificate works only from the address
                // the proxy saw this login come from (nodes learn the client's
                // address from the proxy, so it holds through it).
                source_address: checker
                    .pin_source_ip()
                    .then(|| crate::authn::client_ip(addr))
                    .map(|ip| match ip {
                        std::net::IpAddr::V4(v4) => format!("{v4}/32"),
                        std::net::IpAddr::V6(v6) => format!("{v6}/128"),
                    }),
                roles: checker.role_names(),
                logins_trait: user.logins.clone(),
            })?;
        let tls_cert_pem = self
            .authorities()
            .tls
            .client_signer()
            .sign_client_csr(
                csr_pem,
                jaunt_ca::IdentityKind::User,
                &user.name,
                &id.cluster_name,
                now as u64,
                ttl.as_secs(),
            )
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        tracing::info!(user = %user.name, ttl = %ttl, "issued user certificates");
        Ok(LoginResponse {
            cluster_name: id.cluster_name.clone(),
            ssh_cert: cert
                .to_openssh()
                .map_err(|e| AuthError::Internal(e.to_string()))?,
            tls_cert_pem,
            tls_ca_pem: self.authorities().tls.bundle(),
            host_ca_keys: self.authorities().host.public_keys()?,
            roles: checker.role_names(),
            logins,
            valid_until: now + ttl.as_secs() as i64,
        })
    }
}

/// Counts a refused login by its reason (a fixed word, never the name).
fn count_login(refused: &AuthError) {
    let reason = match refused {
        AuthError::InvalidCredentials => "invalid_credentials",
        AuthError::Locked { .. } => "locked_out",
        AuthError::Throttled(_) => "throttled",
        AuthError::AccessDenied(_) => "locked",
        AuthError::BadRequest(_) => "bad_request",
        _ => "internal",
    };
    let m = jaunt_metrics::metrics();
    Metrics::inc(&m.auth_logins, &[("result", "failure"), ("reason", reason)]);
}
