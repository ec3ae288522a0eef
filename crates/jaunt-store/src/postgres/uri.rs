//! The PostgreSQL connection string, as libpq's users write it. tokio-postgres
//! parses most of it; the TLS parameters it does not know (`sslrootcert`,
//! `sslcert`, `sslkey`, and `sslmode=verify-ca|verify-full`) are taken out
//! here and applied through rustls.

use std::path::PathBuf;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `sslmode=disable`: plain TCP.
    Disable,
    /// `sslmode=prefer` (libpq's default): TLS if the server offers it.
    Prefer,
    /// `sslmode=require|verify-ca|verify-full`: TLS or nothing. The
    /// server's certificate and name are always verified: Jaunt keeps its
    /// CA keys in this database, so a server nobody vouches for is never
    /// spoken to once TLS is asked for.
    Verify,
}

/// A connection string with the TLS parameters taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// What tokio-postgres parses (the string without the TLS parameters).
    pub config: String,
    pub tls: TlsMode,
    /// `sslrootcert`: CA certificates (PEM) the server's must chain to;
    /// the system's roots when absent.
    pub root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`: a client certificate (PEM), both or neither.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage URI: {0}")]
pub struct UriError(String);

/// Reads a `postgres://` or `postgresql://` URI.
pub fn parse(uri: &str) -> Result<PgTarget, UriError> {
    if !(uri.starts_with("postgres://") || uri.starts_with("postgresql://")) {
        return Err(UriError(
            "expected postgres://[user[:password]@]host[:port][,host2...]/database[?options]"
                .into(),
        ));
    }
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut kept = Vec::new();
    let mut tls = TlsMode::Prefer;
    let (mut root_cert, mut cert, mut key) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || percent_decode(value).map_err(|e| UriError(format!("{name}: {e}")));
        match name {
            "sslmode" => {
                tls = match value {
                    "disable" => TlsMode::Disable,
                    "allow" | "prefer" => TlsMode::Prefer,
                    "require" | "verify-ca" | "verify-full" => TlsMode::Verify,
                    other => return Err(UriError(format!("unknown sslmode {other:?}"))),
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(decoded()?)),
            "sslcert" => cert = Some(PathBuf::from(decoded()?)),
            "sslkey" => key = Some(PathBuf::from(decoded()?)),
            _ => kept.push(pair),
        }
    }
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(UriError("sslcert and sslkey go together".into())),
    };
    if tls == TlsMode::Disable && (root_cert.is_some() || client_cert.is_some()) {
        return Err(UriError(
            "sslmode=disable with certificate files: say which is meant".into(),
        ));
    }
    let config = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok(PgTarget {
        config,
        tls,
        root_cert,
        client_cert,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept() {
        let t = parse(
            "postgres://jaunt@db1:5432,db2/jaunt?sslmode=verify-full&target_session_attrs=read-write\
             &sslrootcert=/etc/jaunt/db%20ca.pem&sslcert=/c.pem&sslkey=/k.pem&connect_timeout=5",
        )
        .expect("valid");
        assert_eq!(
            t.config,
            "postgres://jaunt@db1:5432,db2/jaunt?target_session_attrs=read-write&connect_timeout=5"
        );
        assert_eq!(t.tls, TlsMode::Verify);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/jaunt/db ca.pem")));
        assert_eq!(
            t.client_cert,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
    }

    #[test]
    fn defaults_and_modes() {
        let t = parse("postgresql://h/db").expect("valid");
        assert_eq!(
            (t.tls, t.config.as_str()),
            (TlsMode::Prefer, "postgresql://h/db")
        );
        for (mode, want) in [
            ("disable", TlsMode::Disable),
            ("prefer", TlsMode::Prefer),
            ("require", TlsMode::Verify),
            ("verify-ca", TlsMode::Verify),
        ] {
            let t = parse(&format!("postgres://h/db?sslmode={mode}")).expect("valid");
            assert_eq!(t.tls, want, "{mode}");
            assert_eq!(t.config, "postgres://h/db");
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            "mysql://h/db",
            "host=h dbname=db",
            "postgres://h/db?sslmode=sometimes",
            "postgres://h/db?sslcert=/c.pem",
            "postgres://h/db?sslmode=disable&sslrootcert=/ca.pem",
            "postgres://h/db?sslrootcert=%zz",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
