//! Where the auth service keeps the cluster's state: SQLite in the data
//! directory (the default, one machine) or a PostgreSQL database that
//! several auth/proxy instances share. Written as `storage: {type,
//! conn_string, pool_size}` in the file, or as one URI (`--storage-uri`,
//! `jaunt storage copy`): `sqlite:[PATH]` or `postgres://...`.

use jaunt_types::Secret;
use jaunt_types::addr::without_password as shown;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The SQLite file's name in a data directory.
pub const SQLITE_FILE: &str = "jaunt.db";
const DEFAULT_POOL: usize = 16;

/// The `storage:` section as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `sqlite` or `postgres`; implied by `conn_string` when absent.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub conn_string: Option<String>,
    /// PostgreSQL connections per instance at most.
    pub pool_size: Option<usize>,
}

/// Where the store is.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    Sqlite {
        path: PathBuf,
    },
    /// The connection string may hold a password: never shown whole.
    Postgres {
        conn_string: Secret<String>,
        pool_size: usize,
    },
}

impl Storage {
    /// Reads a storage URI. `sqlite:` alone is the SQLite file of
    /// `data_dir`; `sqlite:PATH` a file ending in `.db` or a data directory.
    pub fn from_uri(uri: &str, data_dir: &Path) -> Result<Storage, String> {
        if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            return Ok(Storage::Postgres {
                conn_string: Secret::new(uri.to_string()),
                pool_size: DEFAULT_POOL,
            });
        }
        match uri
            .strip_prefix("sqlite:")
            .or((uri == "sqlite").then_some(""))
        {
            Some("") => Ok(Storage::Sqlite {
                path: data_dir.join(SQLITE_FILE),
            }),
            Some(path) => {
                let path = PathBuf::from(path);
                Ok(Storage::Sqlite {
                    path: match path.extension().is_some_and(|e| e == "db") {
                        true => path,
                        false => path.join(SQLITE_FILE),
                    },
                })
            }
            None => Err(format!(
                "{:?}: use sqlite:[PATH] or postgres://[user@]host[,host2]/database[?options]",
                shown(uri)
            )),
        }
    }

    /// The settings: a URI (the flag) wins over the file's section; with
    /// neither, SQLite in the data directory.
    pub fn resolve(
        section: Option<&StorageSection>,
        uri: Option<&str>,
        data_dir: &Path,
    ) -> Result<Storage, String> {
        let section = section.cloned().unwrap_or_default();
        let text = uri.map(str::to_string).or(section.conn_string.clone());
        let storage = match (section.kind.as_deref(), text) {
            (None | Some("sqlite"), None) => Storage::Sqlite {
                path: data_dir.join(SQLITE_FILE),
            },
            (Some("postgres"), None) => {
                return Err("type postgres needs a conn_string (postgres://...)".into());
            }
            (kind @ (None | Some("sqlite") | Some("postgres")), Some(text)) => {
                let storage = Storage::from_uri(&text, data_dir)?;
                let same = matches!(
                    (kind, &storage),
                    (None, _)
                        | (Some("sqlite"), Storage::Sqlite { .. })
                        | (Some("postgres"), Storage::Postgres { .. })
                );
                if !same {
                    return Err(format!(
                        "type {} does not match {:?}",
                        kind.unwrap_or_default(),
                        shown(&text)
                    ));
                }
                storage
            }
            (Some(other), _) => {
                return Err(format!("type {other:?}: use sqlite or postgres"));
            }
        };
        match (storage, section.pool_size) {
            (_, Some(0)) => Err("pool_size must be at least 1".into()),
            (Storage::Postgres { conn_string, .. }, Some(n)) => Ok(Storage::Postgres {
                conn_string,
                pool_size: n,
            }),
            (Storage::Sqlite { .. }, Some(_)) => {
                Err("pool_size is for PostgreSQL (SQLite has one connection)".into())
            }
            (storage, None) => Ok(storage),
        }
    }

    /// For messages: the URI with any password hidden.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite { path } => format!("sqlite:{}", path.display()),
            Storage::Postgres { conn_string, .. } => shown(conn_string.expose()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dd() -> PathBuf {
        PathBuf::from("/var/lib/jaunt")
    }

    #[test]
    fn uris() {
        let sqlite = |p: &str| Storage::Sqlite { path: p.into() };
        assert_eq!(
            Storage::from_uri("sqlite:", &dd()),
            Ok(sqlite("/var/lib/jaunt/jaunt.db"))
        );
        assert_eq!(
            Storage::from_uri("sqlite", &dd()),
            Ok(sqlite("/var/lib/jaunt/jaunt.db"))
        );
        assert_eq!(
            Storage::from_uri("sqlite:/srv/j", &dd()),
            Ok(sqlite("/srv/j/jaunt.db"))
        );
        assert_eq!(
            Storage::from_uri("sqlite:/srv/x.db", &dd()),
            Ok(sqlite("/srv/x.db"))
        );
        let pg = Storage::from_uri("postgres://u:pw@db1,db2/jaunt", &dd()).expect("pg");
        assert_eq!(pg.describe(), "postgres://u:***@db1,db2/jaunt");
        let err = Storage::from_uri("mysql://u:pw@db/j", &dd()).expect_err("mysql");
        assert!(
            err.contains("mysql://u:***@db/j") && !err.contains("pw"),
            "{err}"
        );
    }

    #[test]
    fn sections_and_flags() {
        let section =
            |kind: Option<&str>, conn: Option<&str>, pool: Option<usize>| StorageSection {
                kind: kind.map(String::from),
                conn_string: conn.map(String::from),
                pool_size: pool,
            };
        assert_eq!(
            Storage::resolve(None, None, &dd()),
            Ok(Storage::Sqlite {
                path: "/var/lib/jaunt/jaunt.db".into()
            })
        );
        let pg = section(Some("postgres"), Some("postgres://db/jaunt"), Some(4));
        match Storage::resolve(Some(&pg), None, &dd()) {
            Ok(Storage::Postgres {
                conn_string,
                pool_size,
            }) => {
                assert_eq!(
                    (conn_string.expose().as_str(), pool_size),
                    ("postgres://db/jaunt", 4)
                );
            }
            other => panic!("{other:?}"),
        }
        // The flag wins over the file.
        match Storage::resolve(Some(&pg), Some("postgres://other/j"), &dd()) {
            Ok(Storage::Postgres { conn_string, .. }) => {
                assert_eq!(conn_string.expose(), "postgres://other/j");
            }
            other => panic!("{other:?}"),
        }
        for (bad, why) in [
            (section(Some("postgres"), None, None), "needs a conn_string"),
            (section(Some("mongo"), None, None), "use sqlite or postgres"),
            (
                section(Some("sqlite"), Some("postgres://db/j"), None),
                "does not match",
            ),
            (
                section(None, Some("postgres://db/j"), Some(0)),
                "at least 1",
            ),
            (section(Some("sqlite"), None, Some(4)), "for PostgreSQL"),
        ] {
            let err = Storage::resolve(Some(&bad), None, &dd()).expect_err(why);
            assert!(err.contains(why), "{err}");
        }
    }
}
