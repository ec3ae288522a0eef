//! Throttling of direct connections per source address: each connection
//! that ends without authenticating is a strike against its address, and
//! an address with [`STRIKES`] strikes within [`WINDOW`] is turned away
//! (closed before the SSH banner, so before any key exchange) until its
//! window ends. This is the defence ssh-audit's DHEat check asks for: an
//! unauthenticated client cannot make the node do key exchanges at a high
//! rate. An address that authenticated within [`TRUSTED_FOR`] (the proxy,
//! whose connections are users' sessions) is never turned away: one user's
//! failing logins must not cut everyone off a node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const STRIKES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(10);
pub const TRUSTED_FOR: Duration = Duration::from_secs(10 * 60);
/// Addresses remembered at most (each a few dozen bytes).
const MAX_SOURCES: usize = 65_536;

#[derive(Default)]
struct Source {
    strikes: u32,
    window_start: Option<Instant>,
    trusted_at: Option<Instant>,
}

impl Source {
    fn trusted(&self) -> bool {
        self.trusted_at.is_some_and(|t| t.elapsed() < TRUSTED_FOR)
    }

    fn window_open(&self) -> bool {
        self.window_start.is_some_and(|t| t.elapsed() < WINDOW)
    }
}

#[derive(Default)]
pub(super) struct Penalties {
    sources: Mutex<HashMap<IpAddr, Source>>,
    /// When a refusal was last logged (one line per window, not per
    /// connection).
    logged: Mutex<Option<Instant>>,
}

impl Penalties {
    /// Whether a new connection from `ip` is served.
    pub(super) fn admits(&self, ip: IpAddr) -> bool {
        let Ok(sources) = self.sources.lock() else {
            return true;
        };
        let turned_away = sources
            .get(&ip)
            .is_some_and(|s| !s.trusted() && s.window_open() && s.strikes >= STRIKES);
        drop(sources);
        if turned_away
            && let Ok(mut logged) = self.logged.lock()
            && logged.is_none_or(|t| t.elapsed() >= WINDOW)
        {
            tracing::warn!(%ip, strikes = STRIKES, window = ?WINDOW, "connections from this address turned away: too many ended without authenticating");
            *logged = Some(Instant::now());
        }
        !turned_away
    }

    /// Records how a connection from `ip` ended.
    pub(super) fn ended(&self, ip: IpAddr, authenticated: bool) {
        let Ok(mut sources) = self.sources.lock() else {
            return;
        };
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            sources.retain(|_, s| s.trusted() || s.window_open());
            if sources.len() >= MAX_SOURCES {
                return;
            }
        }
        let s = sources.entry(ip).or_default();
        if authenticated {
            s.trusted_at = Some(Instant::now());
            return;
        }
        if !s.window_open() {
            s.window_start = Some(Instant::now());
            s.strikes = 0;
        }
        s.strikes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_whose_connections_never_authenticate_is_turned_away() {
        let p = Penalties::default();
        let (scanner, other): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        for _ in 0..STRIKES {
            assert!(p.admits(scanner));
            p.ended(scanner, false);
        }
        assert!(!p.admits(scanner));
        assert!(p.admits(other), "other addresses are not");
    }

    #[test]
    fn an_address_that_authenticates_is_never_turned_away() {
        let p = Penalties::default();
        let proxy: IpAddr = "10.0.0.3".parse().expect("ip");
        p.ended(proxy, true);
        for _ in 0..STRIKES * 3 {
            p.ended(proxy, false);
        }
        assert!(p.admits(proxy));
    }
}
