//! Heartbeat policy: how often a node beats, when it counts as offline, and
//! when a heartbeat must write the node's record; plus this instance's
//! in-memory note of each node's latest heartbeat (its lease).
//!
//! Why not write every heartbeat: each write is a synced transaction, and
//! at tens of thousands of nodes they were most of auth's work. The stored
//! time is refreshed often enough that instances sharing the store (which
//! see only stored times) still see a beating node online; this instance
//! answers from the lease, so it sees every heartbeat.

use crate::records::NodeRecord;
use std::collections::HashMap;
use std::sync::Mutex;

/// Heartbeats per second one auth instance asks for at most. Past
/// `HEARTBEAT_RATE × offline_after / 4` nodes, the interval (and with it
/// the time a dead node takes to show offline) grows with the inventory,
/// rather than heartbeats queueing until they time out.
pub const HEARTBEAT_RATE: u64 = 1_000;

/// A node not heard from for this long no longer counts toward the rate.
const LIVE_HORIZON: i64 = 600;

/// Seconds between heartbeats for a node, when `nodes` beat at this
/// instance: a quarter of `offline_after`, or longer to stay within
/// [`HEARTBEAT_RATE`].
pub fn interval(offline_after: u64, nodes: usize) -> u64 {
    (offline_after / 4)
        .max((nodes as u64).div_ceil(HEARTBEAT_RATE))
        .max(1)
}

/// Seconds of silence after which a node told to beat every `interval`
/// (0: not told yet) is offline: `offline_after`, stretched to four
/// intervals for a node the rate spaced out.
pub fn offline_window(offline_after: u64, interval: u64) -> i64 {
    if interval <= (offline_after / 4).max(1) {
        offline_after as i64
    } else {
        offline_after.max(interval.saturating_mul(4)) as i64
    }
}

/// Whether a heartbeat must write `fresh` over `stored`: when anything the
/// node reports changed, or when the stored time is half an offline window
/// old. A beating node's stored time is then never older than half a
/// window plus one interval, so every instance sees it online.
pub fn must_write(stored: &NodeRecord, fresh: &NodeRecord, offline_after: u64) -> bool {
    // Every field named, so a field added to the record is compared too
    // (or fails to compile here until someone decides).
    let NodeRecord {
        uuid,
        name,
        labels,
        addr,
        host_public_key,
        last_seen: _,
        heartbeat_secs,
        labels_pinned,
        sub_kind,
    } = fresh;
    let same = *uuid == stored.uuid
        && *name == stored.name
        && *labels == stored.labels
        && *addr == stored.addr
        && *host_public_key == stored.host_public_key
        && *heartbeat_secs == stored.heartbeat_secs
        && *labels_pinned == stored.labels_pinned
        && *sub_kind == stored.sub_kind;
    let window = offline_window(offline_after, fresh.heartbeat_secs);
    !same || fresh.last_seen - stored.last_seen >= window / 2
}

/// The latest heartbeat this instance took from each node.
#[derive(Default)]
pub struct Leases {
    inner: Mutex<LeaseMap>,
}

#[derive(Default)]
struct LeaseMap {
    seen: HashMap<String, i64>,
    pruned_at: i64,
}

impl Leases {
    /// Notes a heartbeat from `uuid` at `now`.
    pub fn beat(&self, uuid: &str, now: i64) {
        let mut map = self.lock();
        match map.seen.get_mut(uuid) {
            Some(t) => *t = (*t).max(now),
            None => {
                map.seen.insert(uuid.to_string(), now);
            }
        }
        // Drop nodes gone quiet, at most once a minute (a scan).
        if now - map.pruned_at >= 60 {
            map.seen.retain(|_, t| now - *t <= LIVE_HORIZON);
            map.pruned_at = now;
        }
    }

    /// Nodes that beat here recently (within ten minutes, give or take the
    /// once-a-minute pruning).
    pub fn live(&self) -> usize {
        self.lock().seen.len()
    }

    /// Forgets `uuid` (it is no longer in the inventory).
    pub fn forget(&self, uuid: &str) {
        self.lock().seen.remove(uuid);
    }

    /// Moves each record's `last_seen` up to its lease, if newer.
    pub fn refresh<'a>(&self, nodes: impl IntoIterator<Item = &'a mut NodeRecord>) {
        let map = self.lock();
        for node in nodes {
            if let Some(t) = map.seen.get(&node.uuid) {
                node.last_seen = node.last_seen.max(*t);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseMap> {
        // The map holds plain values; one a panicking holder left is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(last_seen: i64, heartbeat_secs: u64) -> NodeRecord {
        NodeRecord {
            uuid: "u1".into(),
            name: "web".into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            addr: None,
            host_public_key: "ssh-ed25519 AAAA".into(),
            last_seen,
            heartbeat_secs,
            labels_pinned: false,
            sub_kind: None,
        }
    }

    #[test]
    fn interval_is_a_quarter_of_offline_after_until_the_rate_is_reached() {
        assert_eq!(interval(60, 0), 15);
        assert_eq!(interval(60, 15_000), 15);
        assert_eq!(interval(60, 15_001), 16);
        assert_eq!(interval(60, 50_000), 50);
        assert_eq!(interval(2, 10), 1);
        assert_eq!(interval(600, 50_000), 150);
    }

    #[test]
    fn offline_window_is_four_intervals_never_below_the_configured_one() {
        assert_eq!(offline_window(60, 0), 60);
        assert_eq!(offline_window(60, 15), 60);
        assert_eq!(offline_window(60, 50), 200);
        // Short windows keep theirs (the interval's 1 s floor is no stretch).
        assert_eq!(offline_window(2, 1), 2);
        assert_eq!(offline_window(2, 3), 12);
    }

    #[test]
    fn unchanged_heartbeats_write_once_per_half_window() {
        let stored = node(1_000, 15);
        assert!(!must_write(&stored, &node(1_015, 15), 60));
        assert!(!must_write(&stored, &node(1_029, 15), 60));
        assert!(must_write(&stored, &node(1_030, 15), 60));
        // A longer interval widens the window, and the refresh with it.
        let slow = node(1_000, 50);
        assert!(!must_write(&slow, &node(1_099, 50), 60));
        assert!(must_write(&slow, &node(1_100, 50), 60));
    }

    #[test]
    fn any_reported_change_is_written_at_once() {
        let stored = node(1_000, 15);
        let mut labels = node(1_001, 15);
        labels.labels.insert("rack".into(), "r1".into());
        assert!(must_write(&stored, &labels, 60));
        let mut renamed = node(1_001, 15);
        renamed.name = "web2".into();
        assert!(must_write(&stored, &renamed, 60));
        let mut moved = node(1_001, 15);
        moved.addr = Some("10.0.0.1:3022".into());
        assert!(must_write(&stored, &moved, 60));
        let mut rekeyed = node(1_001, 15);
        rekeyed.host_public_key = "ssh-ed25519 BBBB".into();
        assert!(must_write(&stored, &rekeyed, 60));
        // A new interval changes the node's offline window: others must see it.
        assert!(must_write(&stored, &node(1_001, 16), 60));
    }

    #[test]
    fn leases_refresh_only_forward_and_forget() {
        let leases = Leases::default();
        leases.beat("u1", 1_020);
        leases.beat("u1", 1_010); // an older, late one does not move it back
        let mut a = node(1_000, 15);
        leases.refresh([&mut a]);
        assert_eq!(a.last_seen, 1_020);
        // A stored time newer than the lease (another instance) wins.
        let mut b = node(1_050, 15);
        leases.refresh([&mut b]);
        assert_eq!(b.last_seen, 1_050);
        assert_eq!(leases.live(), 1);
        leases.forget("u1");
        assert_eq!(leases.live(), 0);
        let mut c = node(1_000, 15);
        leases.refresh([&mut c]);
        assert_eq!(c.last_seen, 1_000);
    }

    #[test]
    fn nodes_gone_quiet_stop_counting() {
        let leases = Leases::default();
        leases.beat("old", 1_000);
        leases.beat("new", 1_000 + LIVE_HORIZON);
        assert_eq!(leases.live(), 2);
        // The next scan (a minute on) drops the one past the horizon.
        leases.beat("new", 1_060 + LIVE_HORIZON);
        assert_eq!(leases.live(), 1);
    }
}
