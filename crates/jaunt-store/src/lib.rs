//! The cluster store. Everything the auth service keeps (CAs, users, roles,
//! tokens, nodes) is a JSON value under a path-like key, with a revision for
//! compare-and-swap and an optional expiry. Two backends implement that
//! small interface: SQLite (embedded, one machine, the default) and
//! PostgreSQL (several auth/proxy instances sharing one database). It also
//! holds the node's durable local queue ([`DurableQueue`]).
//!
//! Architecture Invariant: this is the only crate that speaks SQL.

mod copy;
pub mod postgres;
mod queue;
mod sqlite;

pub use copy::{Copied, copy_store};
pub use postgres::{PgOptions, PostgresBackend};
pub use queue::{DurableQueue, Queued};
pub use sqlite::SqliteBackend;
use sqlite::open_durable;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} was changed concurrently; try again")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored value at {key} is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0:?} cannot be a key: keys are non-empty and hold no NUL character")]
    InvalidKey(String),
    /// A copy's target holds items already.
    #[error(
        "the target store holds {0} items already: copy into an empty store, or replace the keys both hold with --force"
    )]
    NotEmpty(u64),
}

/// The end of the key range that `prefix` starts: `[prefix, prefix +
/// U+10FFFF)` holds every key starting with `prefix` (in byte order, as
/// both backends compare), so a listing is a range scan on the key.
pub(crate) fn range_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Keys every backend can hold: PostgreSQL's text cannot carry NUL, so
/// neither backend takes it (the same key works on both or on neither).
pub(crate) fn check_key(key: &str) -> Result<()> {
    match key.is_empty() || key.contains('\0') {
        true => Err(StoreError::InvalidKey(key.to_string())),
        false => Ok(()),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub value: Vec<u8>,
    /// Starts at 1 and grows by one on every write of this key.
    pub revision: i64,
    /// Unix seconds after which the item is gone.
    pub expires: Option<i64>,
}

/// A new item for [`Backend::create_many`]: key, value, expiry.
pub type NewItem = (String, Vec<u8>, Option<i64>);

/// The storage interface. Every acknowledged write is durable (it survives
/// `kill -9` of the process and, with SQLite's `synchronous=FULL`, power loss).
/// Expired items are never returned.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Item>>;
    /// Writes a new key; fails with `AlreadyExists` if it is there.
    async fn create(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item>;
    /// Writes each new key of `items` (key, value, expiry) in one
    /// transaction (one sync for all); keys already there are left as they
    /// are. Returns how many were written.
    async fn create_many(&self, items: Vec<NewItem>) -> Result<usize>;
    /// Writes a key whether or not it exists.
    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item>;
    /// Writes a key only if its revision is still `revision` (`Conflict`
    /// otherwise, `NotFound` if it is gone).
    async fn update_if(
        &self,
        key: &str,
        revision: i64,
        value: Vec<u8>,
        expires: Option<i64>,
    ) -> Result<Item>;
    /// Removes a key; `NotFound` if it was not there.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every live item whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<Item>>;
    /// At most `limit` live items whose key starts with `prefix` and comes
    /// after `after` (from the first when `None`), sorted by key: a large
    /// range read in pages.
    async fn list_page(&self, prefix: &str, after: Option<&str>, limit: usize)
    -> Result<Vec<Item>>;
    /// The same read backwards: at most `limit` live items whose key starts
    /// with `prefix` and comes before `before` (from the last when `None`),
    /// the greatest key first: the newest entries of a time-keyed range.
    async fn list_page_back(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>>;
    /// How many live items have a key starting with `prefix`.
    async fn count(&self, prefix: &str) -> Result<u64>;
    /// Physically removes expired items; returns how many.
    async fn purge_expired(&self) -> Result<usize>;
}

pub type SharedBackend = Arc<dyn Backend>;

/// A typed view over a backend: values are JSON.
#[derive(Clone)]
pub struct Store {
    backend: SharedBackend,
}

/// A decoded value with the revision it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
    pub expires: Option<i64>,
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(item: Item) -> Result<Versioned<T>> {
    let value = serde_json::from_slice(&item.value).map_err(|e| StoreError::Corrupt {
        key: item.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(Versioned {
        value,
        revision: item.revision,
        expires: item.expires,
    })
}

impl Store {
    pub fn new(backend: SharedBackend) -> Self {
        Store { backend }
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        timed("get", self.backend.get(key))
            .await?
            .map(decode)
            .transpose()
    }

    pub async fn create<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        expires: Option<i64>,
    ) -> Result<i64> {
        let bytes = encode(key, value)?;
        Ok(timed("create", self.backend.create(key, bytes, expires))
            .await?
            .revision)
    }

    /// [`Backend::create_many`] for typed values, each with its expiry.
    pub async fn create_many<'a, T: Serialize + Sync + 'a>(
        &self,
        items: impl IntoIterator<Item = (String, &'a T, Option<i64>)>,
    ) -> Result<usize> {
        let encoded = items
            .into_iter()
            .map(|(k, v, e)| encode(&k, v).map(|b| (k, b, e)))
            .collect::<Result<Vec<_>>>()?;
        timed("create_many", self.backend.create_many(encoded)).await
    }

    pub async fn put<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        expires: Option<i64>,
    ) -> Result<i64> {
        let bytes = encode(key, value)?;
        Ok(timed("put", self.backend.put(key, bytes, expires))
            .await?
            .revision)
    }

    pub async fn update_if<T: Serialize + Sync>(
        &self,
        key: &str,
        revision: i64,
        value: &T,
        expires: Option<i64>,
    ) -> Result<i64> {
        let bytes = encode(key, value)?;
        Ok(timed(
            "update_if",
            self.backend.update_if(key, revision, bytes, expires),
        )
        .await?
        .revision)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        timed("delete", self.backend.delete(key)).await
    }

    pub async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Versioned<T>>> {
        timed("list", self.backend.list(prefix))
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }
}

/// Runs a store operation, counting its latency in the metrics.
async fn timed<T>(op: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let t0 = std::time::Instant::now();
    let out = f.await;
    jaunt_metrics::observe_store(op, t0.elapsed().as_secs_f64());
    out
}
