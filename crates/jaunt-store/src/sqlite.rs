//! The embedded SQLite backend: one table of keys, in WAL mode with
//! `synchronous=FULL`, so an acknowledged write is on disk.

use crate::{Backend, Item, Result, StoreError, check_key, range_end};
use async_trait::async_trait;
use jaunt_sys::clock::now;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// SQLite file-backed store. Calls run on tokio's blocking pool.
#[derive(Clone)]
pub struct SqliteBackend {
    conn: Arc<Mutex<Connection>>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

const SCHEMA_VERSION: i64 = 1;

/// Opens (creating if needed) a SQLite file readable by its owner only, in
/// WAL mode with `synchronous=FULL`: a committed write is on disk. The
/// store and the node's audit queue both open theirs this way.
pub(crate) fn open_durable(path: &Path) -> Result<Connection> {
    restrict_to_owner(path)?;
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err)?;
    Ok(conn)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = open_durable(path)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Database(format!(
                "{} was written by a newer Jaunt (schema {version}, this one knows {SCHEMA_VERSION})",
                path.display()
            )));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                 key TEXT PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL,
                 revision INTEGER NOT NULL,
                 expires INTEGER
             );
             CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires) WHERE expires IS NOT NULL;
             PRAGMA user_version = 1;",
        )
        .map_err(db_err)?;
        Ok(SqliteBackend {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Writes a consistent copy of the whole database to `to` (a new
    /// file), while the database stays in use: one read transaction.
    pub async fn snapshot(&self, to: &Path) -> Result<()> {
        let to = to
            .to_str()
            .ok_or_else(|| db_err(format!("{}: not a UTF-8 path", to.display())))?
            .to_string();
        self.run(move |c| exec(c, "VACUUM INTO ?1", params![to]).map(|_| ()))
            .await
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| db_err("store lock poisoned by an earlier panic"))?;
            f(&mut guard)
        })
        .await
        .map_err(db_err)?
    }
}

/// Creates the database file readable by its owner only (SQLite gives its
/// -wal and -shm files the same mode), or tightens an existing one.
fn restrict_to_owner(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |e: std::io::Error| StoreError::Database(format!("{}: {e}", path.display()));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// Runs a statement from the connection's cache (each SQL text is parsed
/// once per connection, not per call).
fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(p))
        .map_err(db_err)
}

/// Expired items deleted per transaction.
const PURGE_BATCH: i64 = 1000;

/// An item from a row of `key, value, revision, expires`.
fn row_item(r: &rusqlite::Row) -> rusqlite::Result<Item> {
    Ok(Item {
        key: r.get(0)?,
        value: r.get(1)?,
        revision: r.get(2)?,
        expires: r.get(3)?,
    })
}

fn read(conn: &Connection, key: &str) -> Result<Option<Item>> {
    conn.prepare_cached(
        "SELECT key, value, revision, expires FROM kv WHERE key = ?1 AND (expires IS NULL OR expires > ?2)",
    )
    .map_err(db_err)?
    .query_row(
        params![key, now()],
        row_item,
    )
    .optional()
    .map_err(db_err)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Item>> {
        let key = key.to_string();
        self.run(move |c| read(c, &key)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item> {
        check_key(key)?;
        let key = key.to_string();
        self.run(move |c| {
            let tx = c.transaction().map_err(db_err)?;
            // An expired row does not count as existing.
            exec(
                &tx,
                "DELETE FROM kv WHERE key = ?1 AND expires IS NOT NULL AND expires <= ?2",
                params![key, now()],
            )?;
            let inserted = exec(
                &tx,
                "INSERT OR IGNORE INTO kv (key, value, revision, expires) VALUES (?1, ?2, 1, ?3)",
                params![key, value, expires],
            )?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(key));
            }
            tx.commit().map_err(db_err)?;
            Ok(Item {
                key,
                value,
                revision: 1,
                expires,
            })
        })
        .await
    }

    async fn create_many(&self, items: Vec<(String, Vec<u8>, Option<i64>)>) -> Result<usize> {
        for (key, _, _) in &items {
            check_key(key)?;
        }
        self.run(move |c| {
            let tx = c.transaction().map_err(db_err)?;
            let mut written = 0;
            {
                let now = now();
                let mut expired = tx
                    .prepare_cached("DELETE FROM kv WHERE key = ?1 AND expires IS NOT NULL AND expires <= ?2")
                    .map_err(db_err)?;
                let mut insert = tx
                    .prepare_cached("INSERT OR IGNORE INTO kv (key, value, revision, expires) VALUES (?1, ?2, 1, ?3)")
                    .map_err(db_err)?;
                for (key, value, expires) in &items {
                    expired.execute(params![key, now]).map_err(db_err)?;
                    written += insert.execute(params![key, value, expires]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(written)
        })
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item> {
        check_key(key)?;
        let key = key.to_string();
        self.run(move |c| {
            let revision: i64 = c
                .prepare_cached(
                    "INSERT INTO kv (key, value, revision, expires) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value,
                         revision = kv.revision + 1, expires = excluded.expires
                     RETURNING revision",
                )
                .map_err(db_err)?
                .query_row(params![key, value, expires], |r| r.get(0))
                .map_err(db_err)?;
            Ok(Item {
                key,
                value,
                revision,
                expires,
            })
        })
        .await
    }

    async fn update_if(
        &self,
        key: &str,
        revision: i64,
        value: Vec<u8>,
        expires: Option<i64>,
    ) -> Result<Item> {
        let key = key.to_string();
        self.run(move |c| {
            let tx = c.transaction().map_err(db_err)?;
            let changed = exec(
                &tx,
                "UPDATE kv SET value = ?1, revision = revision + 1, expires = ?2
                     WHERE key = ?3 AND revision = ?4 AND (expires IS NULL OR expires > ?5)",
                params![value, expires, key, revision, now()],
            )?;
            if changed == 0 {
                return match read(&tx, &key)? {
                    Some(_) => Err(StoreError::Conflict(key)),
                    None => Err(StoreError::NotFound(key)),
                };
            }
            tx.commit().map_err(db_err)?;
            Ok(Item {
                key,
                value,
                revision: revision + 1,
                expires,
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.run(move |c| {
            let n = exec(
                c,
                "DELETE FROM kv WHERE key = ?1 AND (expires IS NULL OR expires > ?2)",
                params![key, now()],
            )?;
            if n == 0 {
                Err(StoreError::NotFound(key))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Item>> {
        let prefix = prefix.to_string();
        self.run(move |c| {
            let upper = range_end(&prefix);
            let mut stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM kv
                     WHERE key >= ?1 AND key < ?2 AND (expires IS NULL OR expires > ?3) ORDER BY key",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![prefix, upper, now()], row_item)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let prefix = prefix.to_string();
        let after = after.unwrap_or("").to_string();
        self.run(move |c| {
            let upper = range_end(&prefix);
            let mut stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM kv
                     WHERE key >= ?1 AND key < ?2 AND key > ?3 AND (expires IS NULL OR expires > ?4)
                     ORDER BY key LIMIT ?5",
                )
                .map_err(db_err)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![prefix, upper, after, now(), limit], row_item)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn list_page_back(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let prefix = prefix.to_string();
        let upper = before.map_or_else(|| range_end(&prefix), str::to_string);
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM kv
                     WHERE key >= ?1 AND key < ?2 AND (expires IS NULL OR expires > ?3)
                     ORDER BY key DESC LIMIT ?4",
                )
                .map_err(db_err)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![prefix, upper, now(), limit], row_item)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_string();
        self.run(move |c| {
            let upper = range_end(&prefix);
            c.prepare_cached(
                "SELECT count(*) FROM kv WHERE key >= ?1 AND key < ?2 AND (expires IS NULL OR expires > ?3)",
            )
            .map_err(db_err)?
            .query_row(params![prefix, upper, now()], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }

    /// In batches, each its own short transaction: a year of audit
    /// events expiring at once must not hold the writer for long.
    async fn purge_expired(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .run(|c| {
                    exec(
                        c,
                        "DELETE FROM kv WHERE key IN (
                             SELECT key FROM kv WHERE expires IS NOT NULL AND expires <= ?1 LIMIT ?2)",
                        params![now(), PURGE_BATCH],
                    )
                })
                .await?;
            total += n;
            if n < PURGE_BATCH as usize {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jaunt.db");
        {
            let b = SqliteBackend::open(&path).expect("open");
            b.put("/k", b"v".to_vec(), None).await.expect("put");
        }
        let b = SqliteBackend::open(&path).expect("reopen");
        assert_eq!(
            b.get("/k").await.expect("get").map(|i| i.value),
            Some(b"v".to_vec())
        );
    }
}
