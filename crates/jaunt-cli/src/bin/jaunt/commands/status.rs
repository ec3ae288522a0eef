//! `jaunt status` inside a session: read from the session's environment.

use jaunt_cli::say;

pub fn run() -> anyhow::Result<()> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(session), Some(cluster), Some(host)) = (
        var("JAUNT_SESSION_ID"),
        var("JAUNT_CLUSTER_NAME"),
        var("JAUNT_HOST_UUID"),
    ) else {
        anyhow::bail!("You are not inside of a Jaunt SSH session");
    };
    let user = var("JAUNT_USER").unwrap_or_default();
    let login = var("USER").unwrap_or_default();
    let client = var("SSH_CLIENT").unwrap_or_default();
    let proxy = var("JAUNT_PROXY_ADDR").unwrap_or_default();
    say!("User ID     : {user}, logged in as {login} from {client}")?;
    say!("Cluster Name: {cluster}")?;
    say!("Host UUID   : {host}")?;
    say!("Session ID  : {session}")?;
    say!("Session URL : https://{proxy}/web/cluster/{cluster}/console/session/{session}")?;
    Ok(())
}
