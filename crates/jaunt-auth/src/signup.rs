//! Signup: a new (or reset) user redeems their one-time token, sets a
//! password and, when the cluster requires it, enrols a TOTP authenticator
//! by proving a first code.

use crate::authn::{MIN_PASSWORD_LEN, hash_password, match_totp, totp_for};
use crate::records::token_key;
use crate::{AuthError, AuthServer, now};
use jaunt_types::Secret;
use jaunt_types::api::{
    SecondFactor, SignupFinishRequest, SignupFinishResponse, SignupStartResponse,
};
use jaunt_types::resources::TokenKind;

impl AuthServer {
    /// What the user needs to finish signing up: their name and, with OTP,
    /// the enrolment URI.
    pub async fn signup_start(
        &self,
        token: &Secret<String>,
    ) -> Result<SignupStartResponse, AuthError> {
        let (record, _) = self.find_token(token.expose(), TokenKind::Signup).await?;
        let user = record
            .user
            .clone()
            .ok_or_else(|| AuthError::Internal("signup token without user".into()))?;
        let totp_uri = match (&self.config.second_factor, &record.totp_secret) {
            (SecondFactor::Otp, Some(seed)) => {
                let account = format!("{user}@{}", self.identity.cluster_name);
                Some(Secret::new(totp_for(seed.expose(), &account)?.get_url()))
            }
            (SecondFactor::Otp, None) => {
                return Err(AuthError::BadRequest(
                    "this signup token was made while second factors were off; ask for a new one with 'jctl users reset'".into(),
                ));
            }
            (SecondFactor::Off, _) => None,
        };
        Ok(SignupStartResponse {
            user,
            second_factor: self.config.second_factor,
            totp_uri,
        })
    }

    pub async fn signup_finish(
        &self,
        req: SignupFinishRequest,
    ) -> Result<SignupFinishResponse, AuthError> {
        let (record, _) = self
            .find_token(req.token.expose(), TokenKind::Signup)
            .await?;
        let user = record
            .user
            .clone()
            .ok_or_else(|| AuthError::Internal("signup token without user".into()))?;
        let password = req.password.expose();
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AuthError::BadRequest(format!(
                "the password must be at least {MIN_PASSWORD_LEN} characters long"
            )));
        }
        let mut otp_step = None;
        if self.config.second_factor == SecondFactor::Otp {
            let seed = record.totp_secret.clone().ok_or_else(|| {
                AuthError::BadRequest(
                    "this signup token has no second factor; ask for a new one".into(),
                )
            })?;
            let code = req.otp.as_ref().ok_or_else(|| {
                AuthError::BadRequest("enter the code your authenticator app shows".into())
            })?;
            let totp = totp_for(seed.expose(), &user)?;
            otp_step = Some(
                match_totp(&totp, code.expose(), now() as u64, None).ok_or_else(|| {
                    AuthError::BadRequest("that code is not right: check the authenticator app and the clock of this machine, then try again".into())
                })?,
            );
        }
        let hash = hash_password(password.clone()).await?;
        // Claim the token first: of two signups racing on one token, only
        // the one that deletes it goes on.
        self.store
            .delete(&token_key(req.token.expose()))
            .await
            .map_err(|_| {
                AuthError::AccessDenied(
                    "the token is invalid or has expired; ask an administrator for a new one"
                        .into(),
                )
            })?;
        let seed = record.totp_secret.clone().filter(|_| otp_step.is_some());
        let updated = self
            .modify_user(&user, |u| {
                u.password_hash = Some(Secret::new(hash.clone()));
                u.totp_secret = seed.clone();
                u.totp_last_step = otp_step;
                u.unlock();
            })
            .await;
        if let Err(e) = updated {
            // Give the user their token back so they can try again.
            if let Err(e2) = self.create_token(&record).await {
                tracing::error!(error = %e2, "could not restore a signup token after a failed signup");
            }
            return Err(e);
        }
        tracing::info!(user = %user, "user signed up");
        Ok(SignupFinishResponse { user })
    }
}
