//! The audit log: events written to the cluster store before the action
//! they record is reported done (so an allowed action's event is never
//! lost), events delivered by nodes (stored once by ID, however often a
//! node retries), and searching them.
//!
//! Each event is stored under its own time (`/events/<time>/<seq>/<id>`,
//! stable across a node's retries) with, in the same transaction, index
//! entries under the time auth recorded it, whose value is the event's
//! key: `/events_at/<recorded>/<id>` for every event, and
//! `/events_by/<user|type|session>/<digest of the value>/<recorded>/<id>`
//! for each of those it has. A search reads one index (the most selective
//! its filters allow) between its `since` and `until`, backwards from the
//! newest when it wants only the last N, and then only the events named.

use crate::{AuthError, AuthServer};
use jaunt_types::audit::{self, AuditEvent, AuditQuery};
use sha2::Digest;
use std::collections::BTreeMap;

const EVENTS: &str = "/events/";
const BY_TIME: &str = "/events_at/";
const BY_FIELD: &str = "/events_by/";
/// Set once the events stored before the indexes have their entries
/// (`/cluster/events_indexed` meant the time index only).
pub(crate) const INDEXED: &str = "/cluster/events_indexed_by";
/// Index entries read per page.
const PAGE: usize = 1000;
/// Most events one node delivery may carry.
pub const MAX_BATCH: usize = 1000;

fn event_key(e: &AuditEvent) -> String {
    // Time first, so keys sort by time; the ID makes them unique.
    format!("{EVENTS}{:016}/{:020}/{}", e.time.max(0), e.seq, e.id)
}

/// Where the entries of one index start: the time index, or the entries
/// of one user, type or session. Values are digested (128 bits of
/// SHA-256): they may hold any character and be kilobytes long, and a
/// search checks every event it reads against the query anyway.
fn index_prefix(field: Option<(&str, &str)>) -> String {
    match field {
        None => BY_TIME.to_string(),
        Some((name, value)) => {
            let digest = sha2::Sha256::digest(value.as_bytes());
            format!("{BY_FIELD}{name}/{}/", hex::encode(&digest[..16]))
        }
    }
}

/// The fields an event is indexed by (and a search may read by), the
/// most selective first.
fn indexed_fields<'a>(
    session: Option<&'a str>,
    user: Option<&'a str>,
    event: Option<&'a str>,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    [("session", session), ("user", user), ("type", event)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
}

/// An event's index entries: its key under each index it belongs to.
fn index_rows(
    e: &AuditEvent,
    key: &str,
    expires: Option<i64>,
) -> Result<Vec<jaunt_store::NewItem>, AuthError> {
    let entry = serde_json::to_vec(key).map_err(|err| AuthError::Internal(err.to_string()))?;
    let at = format!("{:016}/{}", e.recorded_at().max(0), e.id);
    let fields = indexed_fields(e.session_id.as_deref(), e.user.as_deref(), Some(&e.event));
    Ok(std::iter::once(None)
        .chain(fields.map(Some))
        .map(|field| {
            (
                format!("{}{at}", index_prefix(field)),
                entry.clone(),
                expires,
            )
        })
        .collect())
}

/// An event's rows: the event, then its index entries, all with `expires`.
pub fn event_rows(
    e: &AuditEvent,
    expires: Option<i64>,
) -> Result<Vec<jaunt_store::NewItem>, AuthError> {
    let key = event_key(e);
    let value = serde_json::to_vec(e).map_err(|err| AuthError::Internal(err.to_string()))?;
    let mut rows = index_rows(e, &key, expires)?;
    rows.insert(0, (key, value, expires));
    Ok(rows)
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
        // Caused by a remote administrator's request (`jctl --proxy`).
        match crate::admin::ACTING_ADMIN.try_with(String::clone) {
            Ok(by) => e.with("by", by),
            Err(_) => e,
        }
    }

    /// Writes an event durably (the store syncs before it answers).
    pub async fn emit(&self, event: AuditEvent) -> Result<(), AuthError> {
        // A refused login's user name is the client's to choose.
        let event = event.capped();
        let rows = event_rows(&event, self.event_expiry(&event))?;
        // One transaction; an event there already is left as it is.
        match self.store.backend().create_many(rows).await {
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
        let mut rows = Vec::with_capacity(checked.len() * 5);
        for e in &checked {
            rows.extend(event_rows(e, self.event_expiry(e))?);
        }
        // A retried delivery: its events are there already and stay as
        // they were; only new index entries may be added (a search finds
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

    /// The events `query` matches, oldest first (with `limit`, the last
    /// ones auth recorded). Reads one index between `since` and `until`
    /// and the events it names, not the whole log.
    pub async fn search_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, AuthError> {
        let field = indexed_fields(
            query.session_id.as_deref(),
            query.user.as_deref(),
            query.event.as_deref(),
        )
        .next();
        let prefix = index_prefix(field);
        // Entries are `<prefix><recorded, 16 digits>/<id>`.
        let low = format!("{prefix}{:016}", query.since.unwrap_or(0).max(0));
        let high = query
            .until
            .map(|u| format!("{prefix}{:016}", u.saturating_add(1).max(0)));
        let backend = self.store.backend();
        let mut found = BTreeMap::new();
        match query.limit {
            // The newest first, until enough match.
            Some(limit) => {
                let mut before = high;
                'back: while found.len() < limit {
                    let page = backend
                        .list_page_back(&prefix, before.as_deref(), PAGE)
                        .await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.key.clone());
                    for item in &page {
                        if item.key < low {
                            break 'back;
                        }
                        self.read_indexed(&item.value, query, &mut found).await?;
                        if found.len() >= limit {
                            break 'back;
                        }
                    }
                    if page.len() < PAGE {
                        break;
                    }
                }
            }
            None => {
                let mut after = low;
                'forward: loop {
                    let page = backend.list_page(&prefix, Some(&after), PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = last.key.clone();
                    for item in &page {
                        if high.as_ref().is_some_and(|h| &item.key >= h) {
                            break 'forward;
                        }
                        self.read_indexed(&item.value, query, &mut found).await?;
                    }
                    if page.len() < PAGE {
                        break;
                    }
                }
            }
        }
        Ok(query.apply(found.into_values()))
    }

    /// Reads the event an index entry names into `found` when the query
    /// matches it (once, however many entries name it: a retried delivery
    /// leaves one more, under a later time).
    async fn read_indexed(
        &self,
        entry: &[u8],
        query: &AuditQuery,
        found: &mut BTreeMap<String, AuditEvent>,
    ) -> Result<(), AuthError> {
        let Ok(key) = serde_json::from_slice::<String>(entry) else {
            return Ok(());
        };
        if found.contains_key(&key) {
            return Ok(());
        }
        if let Some(v) = self.store.get::<AuditEvent>(&key).await?
            && query.matches(&v.value)
        {
            found.insert(key, v.value);
        }
        Ok(())
    }

    /// Gives the events stored before the indexes their entries, once.
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
                rows.extend(index_rows(&e, &item.key, item.expires)?);
            }
            indexed += self.store.backend().create_many(rows).await?;
        }
        self.store
            .backend()
            .put(INDEXED, b"true".to_vec(), None)
            .await?;
        if indexed > 0 {
            tracing::info!(indexed, "audit index entries written for earlier events");
        }
        Ok(())
    }
}
