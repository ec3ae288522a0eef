//! A durable first-in, first-out queue of JSON values in a private SQLite
//! file (WAL, `synchronous=FULL`): a push is committed and synced when it
//! returns, so what was queued survives `kill -9` and power loss. Items
//! leave only when the consumer acknowledges them; one that cannot be read
//! back is set aside in a table of its own, never dropped and never
//! blocking the items behind it. The node queues its audit events here.

use crate::{Result, StoreError, open_durable};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// One queued item as read back.
#[derive(Debug)]
pub struct Queued<T> {
    /// Its place in the queue: larger is later.
    pub id: i64,
    /// The item, or why its stored bytes could not be decoded.
    pub item: std::result::Result<T, String>,
}

/// A queue of `T`, in the order pushed.
pub struct DurableQueue<T> {
    /// One connection; its lock also orders pushes.
    db: Mutex<Connection>,
    _item: PhantomData<fn(T) -> T>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl<T: Serialize + DeserializeOwned> DurableQueue<T> {
    /// Opens (creating, 0600) the queue at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_durable(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (row INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS bad (row INTEGER PRIMARY KEY, event BLOB NOT NULL);",
        )
        .map_err(db_err)?;
        Ok(DurableQueue {
            db: Mutex::new(db),
            _item: PhantomData,
        })
    }

    fn db(&self) -> Result<MutexGuard<'_, Connection>> {
        self.db
            .lock()
            .map_err(|_| StoreError::Database("the queue's lock was poisoned by a panic".into()))
    }

    /// Appends `item`, durably.
    pub fn push(&self, item: &T) -> Result<()> {
        let bytes = encode(item)?;
        self.db()?
            .prepare_cached("INSERT INTO queue (event) VALUES (?1)")
            .and_then(|mut s| s.execute(params![bytes]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Appends every item in one transaction (one sync): all or none.
    pub fn push_all<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<usize>
    where
        T: 'a,
    {
        let mut db = self.db()?;
        let tx = db.transaction().map_err(db_err)?;
        let mut n = 0;
        for item in items {
            tx.execute(
                "INSERT INTO queue (event) VALUES (?1)",
                params![encode(item)?],
            )
            .map_err(db_err)?;
            n += 1;
        }
        tx.commit().map_err(db_err)?;
        Ok(n)
    }

    /// Up to `limit` items from the front, oldest first; they stay queued.
    pub fn read_batch(&self, limit: usize) -> Result<Vec<Queued<T>>> {
        let db = self.db()?;
        let mut stmt = db
            .prepare_cached("SELECT row, event FROM queue ORDER BY row LIMIT ?1")
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(db_err)?;
        rows.map(|row| {
            let (id, bytes) = row.map_err(db_err)?;
            let item = serde_json::from_slice(&bytes).map_err(|e| e.to_string());
            Ok(Queued { id, item })
        })
        .collect()
    }

    /// Removes every item up to and including `id`: the consumer has them.
    pub fn acknowledge_through(&self, id: i64) -> Result<()> {
        self.db()?
            .prepare_cached("DELETE FROM queue WHERE row <= ?1")
            .and_then(|mut s| s.execute(params![id]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Moves one item out of the queue into the set-aside table, for an
    /// operator to look at; the items behind it move up.
    pub fn set_aside(&self, id: i64) -> Result<()> {
        let mut db = self.db()?;
        let tx = db.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT OR REPLACE INTO bad (row, event) SELECT row, event FROM queue WHERE row = ?1",
            params![id],
        )
        .map_err(db_err)?;
        tx.execute("DELETE FROM queue WHERE row = ?1", params![id])
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// How many items wait.
    pub fn len(&self) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM queue")
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// How many items were set aside.
    pub fn set_aside_len(&self) -> Result<usize> {
        self.count("SELECT COUNT(*) FROM bad")
    }

    /// The stored bytes of every set-aside item, oldest first.
    pub fn set_aside_items(&self) -> Result<Vec<Vec<u8>>> {
        let db = self.db()?;
        let mut stmt = db
            .prepare("SELECT event FROM bad ORDER BY row")
            .map_err(db_err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err)?;
        rows.collect::<std::result::Result<_, _>>().map_err(db_err)
    }

    fn count(&self, sql: &str) -> Result<usize> {
        let n: i64 = self
            .db()?
            .query_row(sql, [], |r| r.get(0))
            .map_err(db_err)?;
        Ok(n as usize)
    }

    /// Appends bytes as stored, whether or not they decode: how tests put
    /// a torn item in the queue.
    #[cfg(test)]
    fn push_raw(&self, bytes: &[u8]) -> Result<()> {
        self.db()?
            .execute("INSERT INTO queue (event) VALUES (?1)", params![bytes])
            .map_err(db_err)?;
        Ok(())
    }
}

fn encode<T: Serialize>(item: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(item).map_err(|e| StoreError::Corrupt {
        key: "queue item".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Q = DurableQueue<String>;

    fn items(q: &Q) -> Vec<String> {
        q.read_batch(1000)
            .expect("read")
            .into_iter()
            .map(|q| q.item.expect("decodes"))
            .collect()
    }

    #[test]
    fn order_survives_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("q.db");
        let q = Q::open(&path).expect("open");
        for i in 0..5 {
            q.push(&format!("e{i}")).expect("push");
        }
        drop(q);
        let q = Q::open(&path).expect("reopen");
        q.push(&"e5".to_string()).expect("push");
        assert_eq!(items(&q), ["e0", "e1", "e2", "e3", "e4", "e5"]);
        assert_eq!(q.len().expect("len"), 6);
        assert_eq!(q.read_batch(2).expect("read").len(), 2);
    }

    #[test]
    fn acknowledged_items_leave_and_later_ones_stay() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = Q::open(&dir.path().join("q.db")).expect("open");
        let pushed = ["a", "b", "c"].map(String::from);
        assert_eq!(q.push_all(&pushed).expect("push"), 3);
        let batch = q.read_batch(2).expect("read");
        q.acknowledge_through(batch[1].id).expect("ack");
        assert_eq!(items(&q), ["c"]);
        // Acknowledging again, or past the end, is harmless.
        q.acknowledge_through(batch[1].id).expect("ack");
        assert_eq!(items(&q), ["c"]);
        q.acknowledge_through(i64::MAX).expect("ack");
        assert!(q.is_empty().expect("empty"));
    }

    #[test]
    fn an_unreadable_item_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        let q = Q::open(&dir.path().join("q.db")).expect("open");
        q.push_raw(b"{torn").expect("push");
        q.push(&"after".to_string()).expect("push");
        let batch = q.read_batch(10).expect("read");
        assert!(batch[0].item.is_err(), "{:?}", batch[0]);
        assert_eq!(batch[1].item.as_deref(), Ok("after"));
        q.set_aside(batch[0].id).expect("set aside");
        assert_eq!(items(&q), ["after"]);
        assert_eq!(q.set_aside_len().expect("count"), 1);
        assert_eq!(q.set_aside_items().expect("bad"), [b"{torn".to_vec()]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("q.db");
        Q::open(&path).expect("open");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
