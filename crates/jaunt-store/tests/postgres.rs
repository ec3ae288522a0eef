//! What only the PostgreSQL backend has: TLS to the database (the server's
//! certificate checked against the given CA, a client certificate when the
//! server asks for one), waiting out a database restart, clear errors for
//! what waiting cannot fix, and several instances on one database.

#[path = "support/postgres.rs"]
mod postgres_server;

use jaunt_store::{Backend, PgOptions, PostgresBackend, StoreError};
use postgres_server::{Postgres, give_to_postgres};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn quick() -> PgOptions {
    PgOptions {
        pool_size: 4,
        retry_for: Duration::from_secs(3),
    }
}

async fn start(extra: Vec<String>) -> Postgres {
    tokio::task::spawn_blocking(move || Postgres::start_with(&extra))
        .await
        .expect("start postgres")
}

/// A CA, and files of certificates it signs, in a directory the server
/// may read.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("jaunt-pg-pki-")
            .tempdir()
            .expect("tempdir");
        give_to_postgres(dir.path());
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let pki = Pki { dir, ca };
        pki.write("ca.pem", &pki.ca.pem());
        pki
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        give_to_postgres(&path);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `<stem>.crt` and `<stem>.key` for `names` (the first is the CN).
    fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        (
            self.write(&format!("{stem}.crt"), &cert.pem()),
            self.write(&format!("{stem}.key"), &key.serialize_pem()),
        )
    }
}

fn ssl_settings(server: &Pki, client_ca: Option<&Path>) -> Vec<String> {
    let (crt, key) = server.issue("server", &["127.0.0.1", "localhost"]);
    let mut extra = vec![
        "ssl=on".to_string(),
        format!("ssl_cert_file={}", crt.display()),
        format!("ssl_key_file={}", key.display()),
    ];
    if let Some(ca) = client_ca {
        extra.push(format!("ssl_ca_file={}", ca.display()));
    }
    extra
}

async fn connect(uri: &str) -> Result<PostgresBackend, StoreError> {
    PostgresBackend::connect(uri, quick()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trusts_only_the_given_ca() {
    let server = Pki::new("db CA");
    let other = Pki::new("another CA");
    let pg = start(ssl_settings(&server, None)).await;
    let ours = server.path("ca.pem");
    let uri = pg.uri(
        "jaunt",
        &format!("sslmode=verify-full&sslrootcert={}", ours.display()),
    );
    let b = connect(&uri).await.expect("connect with the server's CA");
    b.put("/k", b"v".to_vec(), None).await.expect("put");
    assert_eq!(
        b.get("/k").await.expect("get").map(|i| i.value),
        Some(b"v".to_vec())
    );
    // The server saw TLS on the backend's connections.
    let ssl = pg.psql(
        "postgres",
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'jaunt'",
    );
    assert_eq!(ssl.trim(), "t");

    // Another CA, or the system's roots: refused at once, with the reason.
    for options in [
        format!(
            "sslmode=verify-full&sslrootcert={}",
            other.path("ca.pem").display()
        ),
        "sslmode=require".to_string(),
    ] {
        let started = Instant::now();
        let err = match connect(&pg.uri("jaunt", &options)).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{options}: connected to a server nobody vouched for"),
        };
        assert!(err.contains("certificate"), "{options}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{options}: retried a refusal"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_when_the_server_asks_for_one() {
    let server = Pki::new("db CA");
    let clients = Pki::new("client CA");
    let hba = server.write(
        "pg_hba.conf",
        "local all all trust\nhostssl all all 127.0.0.1/32 trust clientcert=verify-full\n",
    );
    let mut extra = ssl_settings(&server, Some(&clients.path("ca.pem")));
    extra.push(format!("hba_file={}", hba.display()));
    let pg = start(extra).await;
    let root = format!(
        "sslmode=verify-full&sslrootcert={}",
        server.path("ca.pem").display()
    );

    let err = match connect(&pg.uri("jaunt", &root)).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected without the client certificate the server asks for"),
    };
    assert!(err.contains("certificate"), "{err}");

    // Issued to the database user (verify-full matches its CN).
    let (crt, key) = clients.issue("jaunt-client", &["jaunt"]);
    let with_cert = format!("{root}&sslcert={}&sslkey={}", crt.display(), key.display());
    let b = connect(&pg.uri("jaunt", &with_cert))
        .await
        .expect("connect with a client certificate");
    b.put("/k", b"v".to_vec(), None).await.expect("put");

    // Plain TCP is not accepted by this server at all.
    let err = match connect(&pg.uri("jaunt", "sslmode=disable")).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("plain TCP accepted"),
    };
    assert!(err.contains("pg_hba.conf"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_out_a_database_restart() {
    let mut pg = start(Vec::new()).await;
    let uri = pg.uri("jaunt", "sslmode=disable");
    let b = PostgresBackend::connect(&uri, PgOptions::default())
        .await
        .expect("connect");
    b.put("/before", b"1".to_vec(), None).await.expect("put");
    pg.stop();
    // Issued while the database is down; acknowledged once it is back.
    let mut writer = {
        let b = b.clone();
        tokio::spawn(async move {
            b.create("/during", b"2".to_vec(), None).await?;
            b.update_if("/during", 1, b"3".to_vec(), None).await
        })
    };
    // Not answered, either way, for as long as the database stays down.
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut writer).await;
    assert!(
        early.is_err(),
        "a write was answered while the database was down: {early:?}"
    );
    let mut pg = tokio::task::spawn_blocking(move || {
        pg.restart_same_port();
        pg
    })
    .await
    .expect("restart");
    let written = writer
        .await
        .expect("task")
        .expect("the write waited and went through");
    assert_eq!(written.revision, 2);
    assert_eq!(
        b.get("/before").await.expect("get").map(|i| i.value),
        Some(b"1".to_vec())
    );
    assert_eq!(
        b.get("/during").await.expect("get").map(|i| i.value),
        Some(b"3".to_vec())
    );
    pg.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waiting_cannot_fix_is_said_clearly() {
    let pg = start(Vec::new()).await;
    // A database that does not exist: at once.
    let started = Instant::now();
    let uri = format!(
        "postgres://jaunt@127.0.0.1:{}/nowhere?sslmode=disable",
        pg.port
    );
    let err = connect(&uri)
        .await
        .err()
        .expect("no such database")
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "retried: {err}");

    // Nothing listening: after the retry window, with the reason and
    // without the password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let uri = format!("postgres://jaunt:hunter2@127.0.0.1:{closed}/jaunt?sslmode=disable");
    let err = connect(&uri)
        .await
        .err()
        .expect("nothing listens")
        .to_string();
    assert!(err.contains("gave up after 3s"), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(
        !err.contains("hunter2") && err.contains("jaunt:***@"),
        "{err}"
    );

    // A schema written by a newer Jaunt is not touched.
    let uri = pg.uri("jaunt", "sslmode=disable");
    connect(&uri).await.expect("first start");
    pg.psql(
        "jaunt",
        "UPDATE jaunt_meta SET value = 99 WHERE name = 'schema'",
    );
    let err = connect(&uri).await.err().expect("newer schema").to_string();
    assert!(err.contains("newer Jaunt (schema 99"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_database_see_one_state() {
    let pg = start(Vec::new()).await;
    let uri = pg.uri("jaunt", "sslmode=disable");
    // Both start at once: the schema is made once.
    let (a, b) = tokio::join!(connect(&uri), connect(&uri));
    let (a, b) = (a.expect("a"), b.expect("b"));
    a.create("/users/alice", b"1".to_vec(), None)
        .await
        .expect("create");
    let seen = b
        .get("/users/alice")
        .await
        .expect("get")
        .expect("b sees a's write");
    b.update_if("/users/alice", seen.revision, b"2".to_vec(), None)
        .await
        .expect("b updates");
    // a's revision is stale now.
    assert!(matches!(
        a.update_if("/users/alice", 1, b"3".to_vec(), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        b.create("/users/alice", b"x".to_vec(), None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    a.put("/gone", b"x".to_vec(), Some(1)).await.expect("put");
    // Purging from both at once removes each row once.
    let (pa, pb) = tokio::join!(a.purge_expired(), b.purge_expired());
    assert_eq!(pa.expect("purge") + pb.expect("purge"), 1);
}

/// Every live item's key, value and expiry.
async fn everything(b: &dyn Backend) -> Vec<(String, Vec<u8>, Option<i64>)> {
    b.list("")
        .await
        .expect("list")
        .into_iter()
        .map(|i| (i.key, i.value, i.expires))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_copies_to_postgres_and_back() {
    use jaunt_store::{Copied, SqliteBackend, copy_store};
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteBackend::open(&dir.path().join("jaunt.db")).expect("open");
    let later = jaunt_sys::clock::now() + 3600;
    for i in 0..700u32 {
        sqlite
            .put(&format!("/events/{i:05}"), i.to_le_bytes().to_vec(), None)
            .await
            .expect("put");
    }
    sqlite
        .put("/tokens/t", b"tok".to_vec(), Some(later))
        .await
        .expect("put");
    sqlite
        .put("/tokens/old", b"x".to_vec(), Some(1))
        .await
        .expect("put");
    sqlite
        .put("/recordings/data/s/1", vec![7; 3 << 20], None)
        .await
        .expect("put");
    // A snapshot is what a running cluster's copy reads.
    let snap = dir.path().join("snap.db");
    sqlite.snapshot(&snap).await.expect("snapshot");
    let source = SqliteBackend::open(&snap).expect("open snapshot");

    let pg = start(Vec::new()).await;
    let target = connect(&pg.uri("jaunt", "sslmode=disable"))
        .await
        .expect("connect");
    let mut reports = Vec::new();
    let done = copy_store(&source, &target, false, |c| reports.push(c))
        .await
        .expect("copy");
    assert_eq!(done.items, 702, "live items only");
    assert_eq!(done.bytes, 700 * 4 + 3 + (3 << 20));
    assert_eq!(reports.last(), Some(&done));
    assert!(reports.len() >= 3, "progress per page: {reports:?}");
    let copied = everything(&target).await;
    assert_eq!(copied, everything(&source).await);
    assert!(
        copied
            .iter()
            .any(|(k, _, e)| k == "/tokens/t" && *e == Some(later))
    );

    // Not over a store that holds items, unless asked.
    let err = copy_store(&source, &target, false, |_| {})
        .await
        .expect_err("not empty");
    assert!(matches!(err, StoreError::NotEmpty(702)), "{err}");
    target
        .put("/events/00001", b"changed".to_vec(), None)
        .await
        .expect("put");
    target
        .put("/only-there", b"kept".to_vec(), None)
        .await
        .expect("put");
    copy_store(&source, &target, true, |_| {})
        .await
        .expect("forced copy");
    assert_eq!(
        target
            .get("/events/00001")
            .await
            .expect("get")
            .map(|i| i.value),
        Some(1u32.to_le_bytes().to_vec())
    );
    assert!(target.get("/only-there").await.expect("get").is_some());

    // And back to a fresh SQLite file.
    let back = SqliteBackend::open(&dir.path().join("back.db")).expect("open");
    target.delete("/only-there").await.expect("delete");
    let done: Copied = copy_store(&target, &back, false, |_| {})
        .await
        .expect("copy back");
    assert_eq!(done.items, 702);
    assert_eq!(everything(&back).await, everything(&source).await);
}
