//! Following the cluster's locks. While a connection is open the node
//! keeps one long poll at auth (`GET /v1/node/locks?after=<version>`,
//! answered when the set changes), so a lock ends a live session within
//! a second or two; with no connection open it asks nothing, and an idle
//! fleet holds no connections at the proxy. Logins and channels are
//! checked by auth itself, so the node's copy only ends what is open.

use crate::context::NodeContext;
use jaunt_types::api::{LOCKS_WAIT_SECS, LocksResponse, PATH_NODE_LOCKS};
use std::sync::Arc;
use std::time::Duration;

/// How long a poll may take before it counts as lost (a proxy gone
/// without a word).
const POLL_TIMEOUT: Duration = Duration::from_secs(LOCKS_WAIT_SECS + 10);
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) async fn follow_locks(ctx: Arc<NodeContext>) {
    let mut live = ctx.live.subscribe();
    loop {
        if live.wait_for(|n| *n > 0).await.is_err() {
            return;
        }
        let mut version: Option<String> = None;
        while *live.borrow_and_update() > 0 {
            match poll(&ctx, version.as_deref()).await {
                Ok(answer) => {
                    version = Some(answer.version);
                    ctx.locks.send_if_modified(|known| {
                        let changed = **known != answer.locks;
                        if changed {
                            *known = Arc::new(answer.locks);
                        }
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the cluster's locks; auth still checks each login and channel");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        // Nothing is open: what is known now may be stale by the next
        // connection, which auth checks itself; the next poll starts anew.
        ctx.locks.send_replace(Arc::new(Vec::new()));
    }
}

async fn poll(ctx: &NodeContext, after: Option<&str>) -> Result<LocksResponse, String> {
    let api = ctx.api_client().ok_or("the API client is unavailable")?;
    let path = match after {
        Some(v) => format!("{PATH_NODE_LOCKS}?after={v}"),
        None => PATH_NODE_LOCKS.to_string(),
    };
    match tokio::time::timeout(POLL_TIMEOUT, api.get::<LocksResponse>(&path)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}
