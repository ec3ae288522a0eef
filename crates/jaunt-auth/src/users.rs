//! User administration: add (with a signup token), list, update, reset,
//! unlock, remove.

use crate::authn::new_totp_secret;
use crate::records::{TOKENS, TokenRecord, USERS, UserRecord, random_token, user_key};
use crate::{AuthError, AuthServer, now};
use jaunt_store::StoreError;
use jaunt_types::api::SecondFactor;
use jaunt_types::resources::{TokenKind, UserInfo, validate_login, validate_name};
use jaunt_types::{Secret, Ttl};

/// How long a signup token lives unless told.
pub const DEFAULT_SIGNUP_TTL: Ttl = Ttl::from_secs(3600);

/// A signup token and the command the user runs with it.
#[derive(Debug, Clone)]
pub struct SignupInvite {
    pub user: String,
    pub token: Secret<String>,
    pub expires: i64,
    pub command: String,
}

impl AuthServer {
    async fn check_roles_and_logins(
        &self,
        roles: &[String],
        logins: &[String],
    ) -> Result<(), AuthError> {
        if roles.is_empty() {
            return Err(AuthError::BadRequest(
                "a user needs at least one role (--roles=access)".into(),
            ));
        }
        for role in roles {
            if !self.role_exists(role).await? {
                return Err(AuthError::NotFound(format!(
                    "role {role:?} not found; see 'jctl get roles'"
                )));
            }
        }
        for login in logins {
            validate_login(login).map_err(AuthError::BadRequest)?;
        }
        Ok(())
    }

    pub async fn add_user(
        &self,
        name: &str,
        roles: Vec<String>,
        logins: Vec<String>,
        ttl: Option<Ttl>,
    ) -> Result<SignupInvite, AuthError> {
        validate_name(name).map_err(|e| AuthError::BadRequest(format!("user name: {e}")))?;
        self.check_roles_and_logins(&roles, &logins).await?;
        let record = UserRecord {
            name: name.to_string(),
            roles,
            logins,
            created: now(),
            password_hash: None,
            totp_secret: None,
            totp_last_step: None,
            locked_until: None,
            address_failures: Default::default(),
        };
        match self.store.create(&user_key(name), &record, None).await {
            Ok(_) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(AuthError::AlreadyExists(format!(
                    "user {name:?} already exists; use 'jctl users reset {name}' for a new signup token"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = name, "user created");
        let mut e = self
            .event("user.create", true)
            .with("roles", record.roles.clone())
            .with("logins", record.logins.clone());
        e.user = Some(name.to_string());
        self.emit(e).await?;
        self.signup_invite(name, ttl).await
    }

    /// Replaces any earlier signup token of `name` with a new one.
    async fn signup_invite(&self, name: &str, ttl: Option<Ttl>) -> Result<SignupInvite, AuthError> {
        self.remove_signup_tokens(name).await?;
        let ttl = ttl.unwrap_or(DEFAULT_SIGNUP_TTL);
        if ttl.as_secs() == 0 {
            return Err(AuthError::BadRequest("--ttl must be positive".into()));
        }
        let record = TokenRecord {
            token: Secret::new(random_token()),
            kind: TokenKind::Signup,
            expires: now() + ttl.as_secs() as i64,
            user: Some(name.to_string()),
            uses_left: Some(1),
            totp_secret: (self.config.second_factor == SecondFactor::Otp)
                .then(|| Secret::new(new_totp_secret())),
            labels: None,
        };
        self.create_token(&record).await?;
        let command = format!(
            "jsh signup --proxy={} --token={} --ca-pin={}",
            self.config.public_addr,
            record.token.expose(),
            self.authorities().tls.pin()?
        );
        Ok(SignupInvite {
            user: name.to_string(),
            token: record.token,
            expires: record.expires,
            command,
        })
    }

    async fn remove_signup_tokens(&self, name: &str) -> Result<(), AuthError> {
        for t in self.store.list::<TokenRecord>(TOKENS).await? {
            if t.value.kind == TokenKind::Signup && t.value.user.as_deref() == Some(name) {
                match self
                    .store
                    .delete(&crate::records::token_key(t.value.token.expose()))
                    .await
                {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub async fn user_record(&self, name: &str) -> Result<Option<UserRecord>, AuthError> {
        Ok(self
            .store
            .get::<UserRecord>(&user_key(name))
            .await?
            .map(|v| v.value))
    }

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AuthError> {
        let now = now();
        Ok(self
            .store
            .list::<UserRecord>(USERS)
            .await?
            .into_iter()
            .map(|v| v.value.info(now))
            .collect())
    }

    pub async fn remove_user(&self, name: &str) -> Result<String, AuthError> {
        match self.store.delete(&user_key(name)).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(AuthError::NotFound(format!("user {name:?} not found")));
            }
            Err(e) => return Err(e.into()),
        }
        self.remove_signup_tokens(name).await?;
        tracing::info!(user = name, "user deleted");
        let mut e = self.event("user.delete", true);
        e.user = Some(name.to_string());
        self.emit(e).await?;
        Ok(format!("user {name:?} has been deleted"))
    }

    /// Applies `change` to a user's record with compare-and-swap.
    pub(crate) async fn modify_user<F>(
        &self,
        name: &str,
        change: F,
    ) -> Result<UserRecord, AuthError>
    where
        F: Fn(&mut UserRecord),
    {
        loop {
            let v = self
                .store
                .get::<UserRecord>(&user_key(name))
                .await?
                .ok_or_else(|| AuthError::NotFound(format!("user {name:?} not found")))?;
            let mut next = v.value;
            change(&mut next);
            match self
                .store
                .update_if(&user_key(name), v.revision, &next, None)
                .await
            {
                Ok(_) => return Ok(next),
                Err(StoreError::Conflict(_)) => continue,
                Err(StoreError::NotFound(_)) => {
                    return Err(AuthError::NotFound(format!("user {name:?} not found")));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn update_user(
        &self,
        name: &str,
        roles: Option<Vec<String>>,
        logins: Option<Vec<String>>,
    ) -> Result<String, AuthError> {
        if roles.is_none() && logins.is_none() {
            return Err(AuthError::BadRequest(
                "nothing to change: give --set-roles and/or --set-logins".into(),
            ));
        }
        let current = self
            .store
            .get::<UserRecord>(&user_key(name))
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {name:?} not found")))?
            .value;
        let new_roles = roles.clone().unwrap_or(current.roles);
        let new_logins = logins.clone().unwrap_or(current.logins);
        self.check_roles_and_logins(&new_roles, &new_logins).await?;
        self.modify_user(name, |u| {
            u.roles = new_roles.clone();
            u.logins = new_logins.clone();
        })
        .await?;
        tracing::info!(user = name, "user updated");
        self.emit_user_update(name, "roles and logins changed")
            .await?;
        Ok(format!("user {name:?} has been updated"))
    }

    /// Clears the password and second factor and issues a new signup token.
    pub async fn reset_user(
        &self,
        name: &str,
        ttl: Option<Ttl>,
    ) -> Result<SignupInvite, AuthError> {
        self.modify_user(name, |u| {
            u.password_hash = None;
            u.totp_secret = None;
            u.totp_last_step = None;
            u.unlock();
        })
        .await?;
        self.emit_user_update(name, "password and second factor reset")
            .await?;
        self.signup_invite(name, ttl).await
    }

    pub async fn unlock_user(&self, name: &str) -> Result<String, AuthError> {
        self.modify_user(name, |u| {
            u.unlock();
        })
        .await?;
        self.emit_user_update(name, "unlocked").await?;
        Ok(format!("user {name:?} has been unlocked"))
    }

    async fn emit_user_update(&self, name: &str, change: &str) -> Result<(), AuthError> {
        let mut e = self.event("user.update", true).with("change", change);
        e.user = Some(name.to_string());
        self.emit(e).await
    }
}
