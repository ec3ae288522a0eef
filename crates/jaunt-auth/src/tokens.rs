//! Join and signup tokens.

use crate::records::{TOKENS, TokenRecord, random_token, token_key};
use crate::{AuthError, AuthServer, now};
use jaunt_store::StoreError;
use jaunt_types::resources::{Labels, TokenInfo, TokenKind};
use jaunt_types::{Secret, Ttl};

/// How long a node join token lives unless told.
pub const DEFAULT_NODE_TOKEN_TTL: Ttl = Ttl::from_secs(30 * 60);

impl AuthServer {
    pub(crate) async fn create_token(&self, record: &TokenRecord) -> Result<(), AuthError> {
        self.store
            .create(
                &token_key(record.token.expose()),
                record,
                Some(record.expires),
            )
            .await?;
        Ok(())
    }

    /// A new join token of `kind` (node or trusted cluster), stored;
    /// `labels` go to what joins with it.
    pub(crate) async fn add_join_token(
        &self,
        kind: TokenKind,
        ttl: Ttl,
        uses: Option<u32>,
        labels: Option<Labels>,
    ) -> Result<TokenRecord, AuthError> {
        if let Some(labels) = &labels {
            crate::nodes::validate_labels(labels)?;
        }
        if ttl.as_secs() == 0 || uses == Some(0) {
            return Err(AuthError::BadRequest(
                "a token needs a positive --ttl and --uses".into(),
            ));
        }
        let record = TokenRecord {
            token: Secret::new(random_token()),
            kind,
            expires: now() + ttl.as_secs() as i64,
            user: None,
            uses_left: uses,
            totp_secret: None,
            labels,
        };
        self.create_token(&record).await?;
        Ok(record)
    }

    /// A node join token, and the command a node runs with it; `labels`,
    /// when given, are every joining node's labels (see
    /// [`TokenRecord::labels`]).
    pub async fn add_node_token(
        &self,
        ttl: Option<Ttl>,
        uses: Option<u32>,
        labels: Option<Labels>,
    ) -> Result<(TokenInfo, String), AuthError> {
        let ttl = ttl.unwrap_or(DEFAULT_NODE_TOKEN_TTL);
        let record = self
            .add_join_token(TokenKind::Node, ttl, uses, labels)
            .await?;
        // The token itself is a secret: the event names its kind only.
        self.emit(
            self.event("join_token.create", true)
                .with("kind", "node")
                .with("expires", record.expires)
                .with("uses", uses),
        )
        .await?;
        let command = format!(
            "jaunt start --roles=node --token={} --proxy={} --ca-pin={}",
            record.token.expose(),
            self.config.public_addr,
            self.authorities().tls.pin()?
        );
        Ok((record.info(), command))
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, AuthError> {
        Ok(self
            .store
            .list::<TokenRecord>(TOKENS)
            .await?
            .into_iter()
            .map(|v| v.value.info())
            .collect())
    }

    pub async fn remove_token(&self, token: &str) -> Result<String, AuthError> {
        match self.store.delete(&token_key(token)).await {
            Ok(()) => Ok("token has been deleted".to_string()),
            Err(StoreError::NotFound(_)) => Err(AuthError::NotFound(
                "token not found (or already expired)".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A live token of `kind`, or an error that does not say which part
    /// (existence, kind, expiry) was wrong.
    pub(crate) async fn find_token(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<(TokenRecord, i64), AuthError> {
        let invalid = || {
            AuthError::AccessDenied(
                "the token is invalid or has expired; ask an administrator for a new one".into(),
            )
        };
        if token.is_empty()
            || token.len() > 128
            || !token.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid());
        }
        let v = self
            .store
            .get::<TokenRecord>(&token_key(token))
            .await?
            .ok_or_else(invalid)?;
        if v.value.kind != kind || v.value.expires <= now() || v.value.uses_left == Some(0) {
            return Err(invalid());
        }
        Ok((v.value, v.revision))
    }
}
