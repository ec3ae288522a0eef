//! The audit log: events written to the cluster store before the action
//! they record is reported done (so an allowed action's event is never
//! lost), events delivered by nodes (stored once by ID, however often a
//! node retries), and searching them.
//!
//! Each event is stored under its own time (`/events/<time>/<seq>/<id>`,
//! stable across a node's retries) with, in the same transaction, an
//! index entry under the time auth recorded it
//! (`/events_at/<recorded>/<id>`, whose value is the event's key): a query
//! with `--since` reads that window of the index, not every event.

use crate::{AuthError, AuthServer};
use jaunt_types::audit::{self, AuditEvent, AuditQuery};

const EVENTS: &str = "/events/";
const BY_TIME: &str = "/events_at/";
/// Set once the events stored before the index have their entries.
const INDEXED: &str = "/cluster/events_indexed";
/// Index entries read per page.
const PAGE: usize = 1000;
/// Most events one node delivery may carry.
pub const MAX_BATCH: usize = 1000;

fn event_key(e: &AuditEvent) -> String {
    // Time first, so keys sort by time; the ID makes them unique.
    format!("{EVENTS}{:016}/{:020}/{}", e.time.max(0), e.seq, e.id)
}

fn index_key(recorded: i64, id: &str) -> String {
    format!("{BY_TIME}{:016}/{id}", recorded.max(0))
}

/// An event's two rows: the event, and its index entry (the event's key),
/// both with `expires`.
fn event_rows(
    e: &AuditEvent,
    expires: Option<i64>,
) -> Result<[jaunt_store::NewItem; 2], AuthError> {
    let key = event_key(e);
    let value = serde_json::to_vec(e).map_err(|err| AuthError::Internal(err.to_string()))?;
    let entry = serde_json::to_vec(&key).map_err(|err| AuthError::Internal(err.to_string()))?;
    Ok([
        (key, value, expires),
        (index_key(e.recorded_at(), &e.id), entry, expires),
    ])
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
        let rows = event_rows(&event, self.event_expiry(&event))?;
        // One transaction; an event there already is left as it is.
        match self.store.backend().create_many(rows.to_vec()).await {
            Ok(_) => Ok(()),
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
        let mut rows = Vec::with_capacity(checked.len() * 2);
        for e in &checked {
            rows.extend(event_rows(e, self.event_expiry(e))?);
        }
        // A retried delivery: its events are there already and stay as
        // they were; only a new index entry may be added (a search finds
        // the event once, by the time first recorded).
        self.store
            .backend()
            .create_many(rows)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot write node audit events"))?;
        Ok(())
    }

    /// When an event goes, by `audit_retention` (from when auth got it).
    fn event_expiry(&self, e: &AuditEvent) -> Option<i64> {
        crate::AuthConfig::expiry(self.config.audit_retention, e.recorded_at() / 1000)
    }

    /// The events `query` matches, oldest first. With `since`, only that
    /// window of the index is read (and the events it names).
    pub async fn search_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuthError> {
        let Some(since) = query.since else {
            let all = self.store.list::<AuditEvent>(EVENTS).await?;
            return Ok(query.apply(all.into_iter().map(|v| v.value)));
        };
        let mut keys = std::collections::BTreeSet::new();
        let mut after = format!("{BY_TIME}{:016}", since.max(0));
        'pages: loop {
            let page = self
                .store
                .backend()
                .list_page(BY_TIME, Some(&after), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            for item in &page {
                let recorded = item.key[BY_TIME.len()..]
                    .split('/')
                    .next()
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(i64::MAX);
                if query.until.is_some_and(|u| recorded > u) {
                    break 'pages;
                }
                if let Ok(key) = serde_json::from_slice::<String>(&item.value) {
                    keys.insert(key);
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        let mut events = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(v) = self.store.get::<AuditEvent>(&key).await? {
                events.push(v.value);
            }
        }
        Ok(query.apply(events))
    }

    /// Gives the events stored before the index their entries, once.
    pub(crate) async fn index_old_events(&self) -> Result<(), AuthError> {
        if self.store.backend().get(INDEXED).await?.is_some() {
            return Ok(());
        }
        let (mut after, mut indexed) = (None::<String>, 0usize);
        loop {
            let page = self
                .store
                .backend()
                .list_page(EVENTS, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let mut rows = Vec::with_capacity(page.len());
            for item in &page {
                let Ok(e) = serde_json::from_slice::<AuditEvent>(&item.value) else {
                    continue;
                };
                let entry = serde_json::to_vec(&item.key)
                    .map_err(|err| AuthError::Internal(err.to_string()))?;
                rows.push((index_key(e.recorded_at(), &e.id), entry, item.expires));
            }
            indexed += self.store.backend().create_many(rows).await?;
        }
        self.store
            .backend()
            .put(INDEXED, b"true".to_vec(), None)
            .await?;
        if indexed > 0 {
            tracing::info!(indexed, "audit events indexed by time");
        }
        Ok(())
    }
}
