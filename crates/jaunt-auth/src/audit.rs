//! The audit log: events written to the cluster store before the action
//! they record is reported done (so an allowed action's event is never
//! lost), events delivered by nodes (stored once by ID, however often a
//! node retries), and searching them.

use crate::{AuthError, AuthServer};
use jaunt_store::StoreError;
use jaunt_types::audit::{self, AuditEvent, AuditQuery};

const EVENTS: &str = "/events/";
/// Most events one node delivery may carry.
pub const MAX_BATCH: usize = 1000;

fn event_key(e: &AuditEvent) -> String {
    // Time first, so keys sort by time; the ID makes them unique.
    format!("{EVENTS}{:016}/{:020}/{}", e.time.max(0), e.seq, e.id)
}

pub(crate) use jaunt_sys::clock::now_millis;

impl AuthServer {
    /// A new event of this cluster, stamped now.
    pub fn event(&self, name: &str, success: bool) -> AuditEvent {
        let mut e = AuditEvent::new(
            uuid::Uuid::new_v4().to_string(),
            now_millis(),
            name,
            success,
            &self.identity.cluster_name,
        );
        e.seq = self.audit_seq.next();
        e
    }

    /// Writes an event durably (the store syncs before it answers).
    pub async fn emit(&self, event: AuditEvent) -> Result<(), AuthError> {
        // A refused login's user name is the client's to choose.
        let event = event.capped();
        let expires = self.event_expiry(&event);
        match self.store.create(&event_key(&event), &event, expires).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => {
                tracing::error!(event = %event.event, error = %e, "cannot write an audit event");
                Err(e.into())
            }
        }
    }

    /// Events delivered by node `uuid`: the node's identity and the codes
    /// are set here, not taken from the node's word.
    pub async fn ingest_node_events(
        &self,
        uuid: &str,
        events: Vec<AuditEvent>,
    ) -> Result<(), AuthError> {
        if events.len() > MAX_BATCH {
            return Err(AuthError::BadRequest(format!(
                "at most {MAX_BATCH} events per delivery"
            )));
        }
        let node = self
            .node(uuid)
            .await?
            .ok_or_else(|| AuthError::AccessDenied("this node is not in the inventory".into()))?;
        // Every event is checked before any is stored, and the batch is
        // stored in one transaction: one sync per delivery, not per event.
        let mut checked = Vec::with_capacity(events.len());
        for mut e in events {
            if !audit::node_may_write(&e.event) {
                tracing::warn!(node = %node.name, event = %e.event, "a node sent an event only auth writes; batch refused");
                return Err(AuthError::BadRequest(format!(
                    "{:?} events are written by auth, not by nodes",
                    e.event
                )));
            }
            let code = match e.event.as_str() {
                "sftp" => e
                    .fields
                    .get("action")
                    .and_then(|a| a.as_str())
                    .and_then(|a| audit::sftp_code(a, e.success)),
                name => audit::code(name, e.success),
            };
            let Some(code) = code else {
                return Err(AuthError::BadRequest(format!(
                    "unknown audit event {:?}",
                    e.event
                )));
            };
            if uuid::Uuid::parse_str(&e.id).is_err() {
                return Err(AuthError::BadRequest("audit event IDs are UUIDs".into()));
            }
            e.code = code;
            e.received = Some(now_millis());
            e.cluster = self.identity.cluster_name.clone();
            e.node_uuid = Some(uuid.to_string());
            e.node = Some(node.name.clone());
            // Nodes cap what they queue; older ones did not.
            checked.push(e.capped());
        }
        self.store
            .create_many(
                checked
                    .iter()
                    .map(|e| (event_key(e), e, self.event_expiry(e))),
            )
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot write node audit events"))?;
        Ok(())
    }

    /// When an event goes, by `audit_retention` (from when auth got it).
    fn event_expiry(&self, e: &AuditEvent) -> Option<i64> {
        crate::AuthConfig::expiry(self.config.audit_retention, e.recorded_at() / 1000)
    }

    /// The events `query` matches, oldest first.
    pub async fn search_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuthError> {
        let all = self.store.list::<AuditEvent>(EVENTS).await?;
        Ok(query.apply(all.into_iter().map(|v| v.value)))
    }
}
