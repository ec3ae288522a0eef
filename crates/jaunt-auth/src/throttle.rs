//! Unauthenticated clients cannot spend auth's work without bound. Two
//! gates stand before every password check, kept in memory per instance:
//!
//! - **Failed logins per address**: an address that failed
//!   [`FAILS_PER_ADDRESS`] logins within [`FAIL_WINDOW`] is refused, before
//!   any work, until its window ends, whatever user it names. It learns
//!   nothing about users by it.
//! - **The password-check queue** is bounded ([`QUEUE_PER_THREAD`] per
//!   hasher thread), and one address holds at most a fair share of it
//!   ([`SHARE_PER_THREAD`] per thread), so a flood from one address cannot
//!   delay everyone else's logins by more than its share.
//!
//! Both answer "try again later" (HTTP 429): no account is locked by them.

use crate::AuthError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins an address may have within [`FAIL_WINDOW`].
pub const FAILS_PER_ADDRESS: u32 = 20;
pub const FAIL_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Password checks waiting or running, per hasher thread.
pub const QUEUE_PER_THREAD: usize = 64;
/// What one address may hold of that, per hasher thread.
pub const SHARE_PER_THREAD: usize = 8;
/// Addresses remembered at most; past that, those whose window ended are
/// dropped, and if none has, the oldest window goes.
const MAX_ADDRESSES: usize = 100_000;

struct Window {
    start: Instant,
    fails: u32,
}

pub(crate) struct LoginGate {
    fails: Mutex<HashMap<IpAddr, Window>>,
    checks: Mutex<Checks>,
    queue: usize,
    share: usize,
}

#[derive(Default)]
struct Checks {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A place in the password-check queue, given back when dropped.
pub(crate) struct CheckPermit<'a> {
    gate: &'a LoginGate,
    addr: IpAddr,
}

impl Drop for CheckPermit<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.gate.checks.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.by_address.get_mut(&self.addr) {
                *n -= 1;
                if *n == 0 {
                    c.by_address.remove(&self.addr);
                }
            }
        }
    }
}

fn busy(what: &str) -> AuthError {
    AuthError::Throttled(format!("{what}; try again in a few seconds"))
}

impl LoginGate {
    pub(crate) fn new(hasher_threads: usize) -> Self {
        LoginGate {
            fails: Mutex::default(),
            checks: Mutex::default(),
            queue: QUEUE_PER_THREAD * hasher_threads.max(1),
            share: SHARE_PER_THREAD * hasher_threads.max(1),
        }
    }

    /// Refuses an address that failed too often lately.
    pub(crate) fn check_address(&self, addr: IpAddr) -> Result<(), AuthError> {
        let fails = self
            .fails
            .lock()
            .map_err(|_| busy("login gate unavailable"))?;
        match fails.get(&addr) {
            Some(w) if w.fails >= FAILS_PER_ADDRESS && w.start.elapsed() < FAIL_WINDOW => {
                let left = FAIL_WINDOW.saturating_sub(w.start.elapsed()).as_secs() / 60 + 1;
                Err(AuthError::Throttled(format!(
                    "too many failed logins from {addr}; try again in {left} min"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `addr`.
    pub(crate) fn failed(&self, addr: IpAddr) {
        let Ok(mut fails) = self.fails.lock() else {
            return;
        };
        if fails.len() >= MAX_ADDRESSES && !fails.contains_key(&addr) {
            fails.retain(|_, w| w.start.elapsed() < FAIL_WINDOW);
            if fails.len() >= MAX_ADDRESSES
                && let Some(oldest) = fails.iter().min_by_key(|(_, w)| w.start).map(|(a, _)| *a)
            {
                fails.remove(&oldest);
            }
        }
        let w = fails.entry(addr).or_insert(Window {
            start: Instant::now(),
            fails: 0,
        });
        if w.start.elapsed() >= FAIL_WINDOW {
            *w = Window {
                start: Instant::now(),
                fails: 0,
            };
        }
        w.fails += 1;
    }

    /// A place in the password-check queue for `addr`, if the queue and
    /// the address's share have room.
    pub(crate) fn admit(&self, addr: IpAddr) -> Result<CheckPermit<'_>, AuthError> {
        let mut c = self
            .checks
            .lock()
            .map_err(|_| busy("login gate unavailable"))?;
        if c.total >= self.queue {
            return Err(busy("the cluster is busy checking passwords"));
        }
        let mine = c.by_address.entry(addr).or_insert(0);
        if *mine >= self.share {
            return Err(busy(&format!("too many logins at once from {addr}")));
        }
        *mine += 1;
        c.total += 1;
        Ok(CheckPermit { gate: self, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_address_that_fails_too_often_is_refused_and_no_other() {
        let gate = LoginGate::new(1);
        let (bad, good) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..FAILS_PER_ADDRESS - 1 {
            gate.failed(bad);
            assert!(gate.check_address(bad).is_ok());
        }
        gate.failed(bad);
        let err = gate.check_address(bad).expect_err("throttled");
        assert!(
            err.to_string()
                .contains("too many failed logins from 10.0.0.1"),
            "{err}"
        );
        assert!(gate.check_address(good).is_ok());
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_a_bounded_queue() {
        let gate = LoginGate::new(1);
        let flood: Vec<_> = (0..SHARE_PER_THREAD)
            .map(|_| gate.admit(ip("10.0.0.1")).expect("within the share"))
            .collect();
        let err = gate.admit(ip("10.0.0.1")).err().expect("past the share");
        assert!(err.to_string().contains("too many logins at once"), "{err}");
        // Others still get in, until the whole queue is full.
        let others: Vec<_> = (0..QUEUE_PER_THREAD - SHARE_PER_THREAD)
            .map(|i| {
                gate.admit(ip(&format!("10.1.{}.{}", i / 200, i % 200)))
                    .expect("room")
            })
            .collect();
        let err = gate.admit(ip("10.9.9.9")).err().expect("queue full");
        assert!(err.to_string().contains("busy"), "{err}");
        // Places come back when checks end.
        drop(flood);
        assert!(gate.admit(ip("10.0.0.1")).is_ok());
        drop(others);
        let c = gate.checks.lock().expect("lock");
        assert_eq!(c.total, 0);
        assert!(c.by_address.is_empty());
    }

    #[test]
    fn the_remembered_addresses_are_bounded() {
        let gate = LoginGate::new(1);
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            gate.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(gate.fails.lock().expect("lock").len() <= MAX_ADDRESSES);
    }
}
