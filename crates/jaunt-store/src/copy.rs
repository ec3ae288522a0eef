//! Copying a whole store to another backend (`jaunt storage copy`): from the
//! embedded SQLite file to a shared PostgreSQL database, or back.

use crate::{Backend, Result, StoreError};

/// Items read per page: bounded memory whatever the store holds
/// (recordings are stored in pieces of at most a few MiB).
const PAGE: usize = 256;

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub items: u64,
    pub bytes: u64,
}

/// Copies every live item of `from` into `to`, keeping values and expiry
/// (revisions start again at 1). `to` must be empty unless `overwrite`,
/// which replaces the keys both hold and keeps the others. `progress` is
/// told the items and bytes copied so far after each page.
pub async fn copy_store(
    from: &dyn Backend,
    to: &dyn Backend,
    overwrite: bool,
    mut progress: impl FnMut(Copied),
) -> Result<Copied> {
    if !overwrite {
        let there = to.count("").await?;
        if there > 0 {
            return Err(StoreError::NotEmpty(there));
        }
    }
    let mut done = Copied::default();
    let mut after: Option<String> = None;
    loop {
        let page = from.list_page("", after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = Some(last.key.clone());
        let (lasting, expiring): (Vec<_>, Vec<_>) =
            page.into_iter().partition(|i| i.expires.is_none());
        let batch: Vec<(String, Vec<u8>, Option<i64>)> = lasting
            .iter()
            .map(|i| (i.key.clone(), i.value.clone(), None))
            .collect();
        let written = to.create_many(batch).await?;
        if written < lasting.len() {
            // Some keys were there already: only with `overwrite` (or a
            // writer on the target meanwhile), and then ours win.
            if !overwrite {
                return Err(StoreError::Conflict(
                    "the target store, written to during the copy,".into(),
                ));
            }
            for item in &lasting {
                to.put(&item.key, item.value.clone(), None).await?;
            }
        }
        for item in &expiring {
            to.put(&item.key, item.value.clone(), item.expires).await?;
        }
        for item in lasting.iter().chain(&expiring) {
            done.items += 1;
            done.bytes += item.value.len() as u64;
        }
        progress(done);
    }
}
