//! Connection limits at the public port, so no one address (and no crowd)
//! can take every descriptor or handshake slot: connections from one
//! address in all, connections from one address still in their TLS
//! handshake (or before a raw relay's first byte), and connections in
//! all. A connection over a limit is closed at once, before any work.
//! Refusals are logged at most once per [`LOG_EVERY`], with how many.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often refusals are logged at most (a flood must not flood the log).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits; 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Connections from one address not yet past their handshake.
    pub max_pending_per_ip: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, PerIp>,
    refused: u64,
    logged: Option<Instant>,
}

#[derive(Default, Clone, Copy)]
struct PerIp {
    open: usize,
    pending: usize,
}

/// Counts open connections against [`ConnLimits`].
pub struct Limiter {
    /// Changed in place by a reload (SIGHUP).
    limits: std::sync::RwLock<ConnLimits>,
    counts: Mutex<Counts>,
}

/// An admitted connection's place, given back when dropped.
pub struct Admitted {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    pending: bool,
}

fn over(limit: usize, n: usize) -> bool {
    limit != 0 && n >= limit
}

impl Limiter {
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Limiter {
            limits: std::sync::RwLock::new(limits),
            counts: Mutex::default(),
        })
    }

    /// The limits from now on (connections over them stay; new ones
    /// are counted against them).
    pub fn set_limits(&self, limits: ConnLimits) {
        if let Ok(mut l) = self.limits.write() {
            *l = limits;
        }
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits.read().map(|l| *l).unwrap_or(ConnLimits {
            max_connections: 0,
            max_connections_per_ip: 0,
            max_pending_per_ip: 0,
        })
    }

    /// Admits a new connection from `ip`, pending until
    /// [`Admitted::established`]; `None` if a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let limits = self.limits();
        let mut c = self.counts.lock().ok()?;
        let per = c.by_ip.get(&ip).copied().unwrap_or_default();
        let why = if over(limits.max_connections, c.total) {
            Some("connections in all (max_connections)")
        } else if over(limits.max_connections_per_ip, per.open) {
            Some("connections from one address (max_connections_per_ip)")
        } else if over(limits.max_pending_per_ip, per.pending) {
            Some("handshakes from one address (max_pending_per_ip)")
        } else {
            None
        };
        if let Some(why) = why {
            c.refused += 1;
            if c.logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                tracing::warn!(%ip, refused = c.refused, limit = why, "connections refused at a limit");
                c.refused = 0;
                c.logged = Some(Instant::now());
            }
            return None;
        }
        c.total += 1;
        let e = c.by_ip.entry(ip).or_default();
        e.open += 1;
        e.pending += 1;
        Some(Admitted {
            limiter: self.clone(),
            ip,
            pending: true,
        })
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock().expect("lock");
        let p = c.by_ip.get(&ip).copied().unwrap_or_default();
        (p.open, p.pending)
    }
}

impl Admitted {
    /// The connection is past its handshake.
    pub fn established(&mut self) {
        if std::mem::take(&mut self.pending)
            && let Ok(mut c) = self.limiter.counts.lock()
            && let Some(e) = c.by_ip.get_mut(&self.ip)
        {
            e.pending -= 1;
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Ok(mut c) = self.limiter.counts.lock() else {
            return;
        };
        c.total -= 1;
        if let Some(e) = c.by_ip.get_mut(&self.ip) {
            e.open -= 1;
            if self.pending {
                e.pending -= 1;
            }
            if e.open == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn handshakes_connections_per_address_and_in_all_are_each_bounded() {
        let l = Limiter::new(ConnLimits {
            max_connections: 10,
            max_connections_per_ip: 4,
            max_pending_per_ip: 2,
        });
        let a = ip("10.0.0.1");
        let mut first = l.admit(a).expect("1");
        let _second = l.admit(a).expect("2");
        assert!(l.admit(a).is_none(), "two handshakes already pending");
        first.established();
        let third = l.admit(a).expect("a pending slot came back");
        drop(third);
        let more: Vec<_> = (0..2)
            .map(|_| {
                let mut m = l.admit(a).expect("room");
                m.established();
                m
            })
            .collect();
        assert_eq!(l.open_from(a), (4, 1));
        assert!(l.admit(a).is_none(), "four from one address");
        // Others are not held up by it, until the total is reached.
        let others: Vec<_> = (0..6)
            .map(|i| l.admit(ip(&format!("10.0.1.{i}"))).expect("others"))
            .collect();
        assert!(l.admit(ip("10.0.2.1")).is_none(), "ten in all");
        drop(others);
        drop(more);
        drop(first);
        drop(_second);
        assert_eq!(l.open_from(a), (0, 0));
        assert!(l.counts.lock().expect("lock").by_ip.is_empty());
    }

    #[test]
    fn zero_means_no_limit() {
        let l = Limiter::new(ConnLimits {
            max_connections: 0,
            max_connections_per_ip: 0,
            max_pending_per_ip: 0,
        });
        let held: Vec<_> = (0..1000)
            .map(|_| l.admit(ip("10.0.0.1")).expect("no limit"))
            .collect();
        assert_eq!(held.len(), 1000);
    }
}
