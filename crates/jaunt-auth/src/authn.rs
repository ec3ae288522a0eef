//! Authentication: passwords (Argon2id), TOTP codes (each accepted once) and
//! account lockout. A success yields [`Authenticated`], the only thing the
//! certificate issuer accepts.

use crate::error::AuthError;
use crate::records::{LOCK_ALL_ADDRESSES, MAX_FAILING_ADDRESSES, UserRecord, user_key};
use crate::{AuthServer, now};
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use jaunt_store::StoreError;
use jaunt_types::Secret;
use jaunt_types::api::SecondFactor;
use jaunt_types::timefmt::format_unix;
use std::net::IpAddr;
use totp_rs::{Algorithm, TOTP};

/// Proof that a user just authenticated. Its field is private, so only this
/// module can make one.
#[derive(Debug)]
pub struct Authenticated {
    user: UserRecord,
}

impl Authenticated {
    pub fn user(&self) -> &UserRecord {
        &self.user
    }
}

/// The shortest password accepted at signup.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Argon2id work, on a few dedicated threads (one per core). Each check
/// takes 19 MiB: on the blocking pool's many threads, freed buffers piled
/// up in per-thread malloc arenas (auth grew to ~900 MiB after a burst of
/// logins); here at most one buffer per core is in use or kept, and a flood
/// of logins queues instead of taking every core.
fn hasher() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<HashJob>> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<HashJob>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..hasher_threads() {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
        }
        std::sync::Mutex::new(tx)
    })
}

type HashJob = Box<dyn FnOnce() + Send>;

/// How many threads check passwords: one per core.
pub(crate) fn hasher_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `work` on the hasher threads.
async fn on_hasher<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = tx.send(work());
    });
    hasher().lock().ok()?.send(job).ok()?;
    rx.await.ok()
}

pub(crate) async fn hash_password(password: String) -> Result<String, AuthError> {
    on_hasher(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Internal(format!("hashing password: {e}")))
    })
    .await
    .unwrap_or_else(|| Err(AuthError::Internal("the password hasher stopped".into())))
}

async fn verify_password(password: String, hash: String) -> bool {
    on_hasher(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

pub(crate) fn totp_for(secret_b32: &str, account: &str) -> Result<TOTP, AuthError> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| AuthError::Internal(format!("stored TOTP secret: {e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Jaunt".to_string()),
        account.to_string(),
    )
    .map_err(|e| AuthError::Internal(format!("TOTP: {e}")))
}

pub(crate) fn new_totp_secret() -> String {
    // 160 bits, the size RFC 4226 recommends for HMAC-SHA-1.
    totp_rs::Secret::Raw(rand::random::<[u8; 20]>().to_vec())
        .to_encoded()
        .to_string()
}

/// The time step a code matches, if it matches one within one step of now
/// and after `last_step`.
pub(crate) fn match_totp(totp: &TOTP, code: &str, now: u64, last_step: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / totp.step;
    let mut found = None;
    // Check every candidate step, not just until the first hit, so timing
    // does not depend on which step matched.
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = totp.generate(step * totp.step);
        let same = constant_time_eq(expected.as_bytes(), code.as_bytes());
        if same && last_step.is_none_or(|last| step > last) {
            found = Some(step);
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's IP as text (a port, if given, dropped): failures and
/// locks are kept per address, not per connection.
pub(crate) fn client_ip(addr: &str) -> IpAddr {
    addr.parse::<std::net::SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| addr.parse::<IpAddr>())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

impl AuthServer {
    /// Checks a user's password and, when the cluster requires it, a TOTP
    /// code, for a client at `addr`. Every failure says only "invalid
    /// credentials" and takes as long as the others; consecutive failures
    /// from one address lock the account for that address (see
    /// [`UserRecord::address_failures`]), and an address that fails too
    /// often, or floods the password checks, waits ([`crate::throttle`]).
    pub async fn authenticate(
        &self,
        user: &str,
        password: &Secret<String>,
        otp: Option<&Secret<String>>,
        addr: &str,
    ) -> Result<Authenticated, AuthError> {
        let ip = client_ip(addr);
        self.login_gate.check_address(ip)?;
        let outcome = self.authenticate_from(user, password, otp, ip).await;
        if matches!(
            outcome,
            Err(AuthError::InvalidCredentials | AuthError::Locked { .. })
        ) {
            self.login_gate.failed(ip);
        }
        outcome
    }

    async fn authenticate_from(
        &self,
        user: &str,
        password: &Secret<String>,
        otp: Option<&Secret<String>>,
        ip: IpAddr,
    ) -> Result<Authenticated, AuthError> {
        let permit = self.login_gate.admit(ip)?;
        let now = now();
        let addr = ip.to_string();
        let stored = self.store.get::<UserRecord>(&user_key(user)).await?;
        let hash = stored
            .as_ref()
            .and_then(|v| v.value.password_hash.as_ref().map(|h| h.expose().clone()))
            .unwrap_or_else(|| self.dummy_hash.clone());
        // Checked even for a locked account, so its answer takes as long
        // as a wrong password's.
        let password_ok = verify_password(password.expose().clone(), hash).await;
        drop(permit);
        if let Some(until) = stored.as_ref().and_then(|v| v.value.locked_for(&addr, now)) {
            return Err(locked(user, until));
        }
        let otp_step = match self.config.second_factor {
            SecondFactor::Off => Some(None),
            SecondFactor::Otp => {
                let record = stored.as_ref().map(|v| &v.value);
                let seed = record.and_then(|r| r.totp_secret.as_ref());
                match (seed, otp) {
                    (Some(seed), Some(code)) => {
                        let totp = totp_for(seed.expose(), user)?;
                        match_totp(
                            &totp,
                            code.expose(),
                            now as u64,
                            record.and_then(|r| r.totp_last_step),
                        )
                        .map(Some)
                    }
                    _ => None,
                }
            }
        };
        let Some(stored) = stored else {
            return Err(AuthError::InvalidCredentials);
        };
        let success = password_ok && stored.value.password_hash.is_some() && otp_step.is_some();
        let attempt = Attempt {
            addr: &addr,
            success,
            otp_step: otp_step.flatten(),
            now,
        };
        self.record_attempt(user, stored.revision, stored.value, &attempt)
            .await
    }

    /// Writes the outcome of an attempt with compare-and-swap, so two
    /// concurrent logins cannot both use one TOTP code or lose a failure.
    async fn record_attempt(
        &self,
        user: &str,
        mut revision: i64,
        mut record: UserRecord,
        attempt: &Attempt<'_>,
    ) -> Result<Authenticated, AuthError> {
        loop {
            let mut next = record.clone();
            let outcome = self.apply_attempt(user, &mut next, attempt);
            match self
                .store
                .update_if(&user_key(user), revision, &next, None)
                .await
            {
                Ok(_) => {
                    self.audit_new_locks(user, &record, &next, attempt).await?;
                    return outcome.map(|()| Authenticated { user: next });
                }
                Err(StoreError::Conflict(_)) => {
                    let fresh = self
                        .store
                        .get::<UserRecord>(&user_key(user))
                        .await?
                        .ok_or(AuthError::InvalidCredentials)?;
                    revision = fresh.revision;
                    record = fresh.value;
                }
                Err(StoreError::NotFound(_)) => return Err(AuthError::InvalidCredentials),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The record after an attempt, and what the client is answered.
    fn apply_attempt(
        &self,
        user: &str,
        next: &mut UserRecord,
        attempt: &Attempt<'_>,
    ) -> Result<(), AuthError> {
        let (now, lockout) = (attempt.now, self.config.lockout_duration.as_secs() as i64);
        // Failures and locks past the lockout time are forgotten.
        next.address_failures
            .retain(|_, f| f.locked_until.is_some_and(|t| t > now) || now - f.last < lockout);
        if attempt.success {
            // Re-check the step against the freshest record: a code
            // that a concurrent login used is refused here.
            if let (Some(step), Some(last)) = (attempt.otp_step, next.totp_last_step)
                && step <= last
            {
                return Err(AuthError::InvalidCredentials);
            }
            if let Some(until) = next.locked_for(attempt.addr, now) {
                // Locked by a concurrent attempt meanwhile.
                return Err(locked(user, until));
            }
            next.address_failures.remove(attempt.addr);
            if attempt.otp_step.is_some() {
                next.totp_last_step = attempt.otp_step;
            }
            return Ok(());
        }
        let failures = next
            .address_failures
            .entry(attempt.addr.to_string())
            .or_default();
        failures.failures += 1;
        failures.last = now;
        if failures.failures < self.config.max_login_attempts {
            if next.address_failures.len() > MAX_FAILING_ADDRESSES
                && let Some(oldest) = next
                    .address_failures
                    .iter()
                    .filter(|(_, f)| f.locked_until.is_none())
                    .min_by_key(|(_, f)| f.last)
                    .map(|(a, _)| a.clone())
            {
                next.address_failures.remove(&oldest);
            }
            return Err(AuthError::InvalidCredentials);
        }
        let until = now + lockout;
        failures.failures = 0;
        failures.locked_until = Some(until);
        if next.locked_addresses(now) >= LOCK_ALL_ADDRESSES {
            next.locked_until = Some(until);
        }
        tracing::warn!(
            user,
            addr = attempt.addr,
            "account locked after too many failed logins"
        );
        Err(locked(user, until))
    }

    /// `user.locked` for each lock the attempt made: for its address, and
    /// for every address once enough addresses each locked it.
    async fn audit_new_locks(
        &self,
        user: &str,
        before: &UserRecord,
        after: &UserRecord,
        attempt: &Attempt<'_>,
    ) -> Result<(), AuthError> {
        let lock_of = |r: &UserRecord| {
            r.address_failures
                .get(attempt.addr)
                .and_then(|f| f.locked_until)
        };
        let mut events = Vec::new();
        if lock_of(after).is_some() && lock_of(after) != lock_of(before) {
            events.push(
                self.event("user.locked", true)
                    .with("reason", "too many failed logins from this address")
                    .with("until", lock_of(after)),
            );
        }
        if after.locked_until.is_some() && after.locked_until != before.locked_until {
            events.push(
                self.event("user.locked", true)
                    .with(
                        "reason",
                        format!("too many failed logins from {LOCK_ALL_ADDRESSES} addresses; locked for every address"),
                    )
                    .with("until", after.locked_until),
            );
        }
        for mut e in events {
            e.user = Some(user.to_string());
            e.addr = Some(attempt.addr.to_string());
            self.emit(e).await?;
        }
        Ok(())
    }
}

/// One login attempt's outcome, as [`AuthServer::record_attempt`] writes it.
struct Attempt<'a> {
    /// The client's IP.
    addr: &'a str,
    success: bool,
    otp_step: Option<u64>,
    now: i64,
}

fn locked(user: &str, until: i64) -> AuthError {
    AuthError::Locked {
        user: user.to_string(),
        until,
        until_text: format_unix(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_codes_match_once_and_within_one_step() {
        let seed = new_totp_secret();
        let totp = totp_for(&seed, "alice").expect("totp");
        let now = 1_800_000_015u64;
        let step = now / 30;
        let code = totp.generate(now);
        assert_eq!(match_totp(&totp, &code, now, None), Some(step));
        assert_eq!(match_totp(&totp, &code, now, Some(step)), None, "used once");
        assert_eq!(
            match_totp(&totp, &code, now + 30, None),
            Some(step),
            "one step late is fine"
        );
        assert_eq!(
            match_totp(&totp, &code, now + 90, None),
            None,
            "three steps late is not"
        );
        let next = totp.generate(now + 30);
        assert_eq!(match_totp(&totp, &next, now, Some(step)), Some(step + 1));
        for bad in ["", "12345", "1234567", "abcdef", " "] {
            assert_eq!(match_totp(&totp, bad, now, None), None, "{bad:?}");
        }
    }
}
