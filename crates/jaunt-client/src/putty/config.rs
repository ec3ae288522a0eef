//! What `jsh puttyconfig` does, over any [`Store`]: choose the nodes a
//! session is made for, write the sessions with the cluster's host-CA
//! trust, list and remove the sessions Jaunt made. The command itself only
//! parses its flags, fetches the node list and prints.

use super::{
    Kind, Store, host_ca_lines, jaunt_sessions, remove_session, save_session, trust_host_cas,
};
use crate::home::Home;
use crate::profile::Profile;
use crate::{ClientError, Result};
use jaunt_putty::names::{HOST_CA_PREFIX, session_name};
use jaunt_putty::settings::{SessionSpec, get, proxy_command, session_cluster};
use jaunt_types::api::NodeInfo;
use jaunt_types::route::{parse_target, resolve};

/// The port a session stores when a node registered none (a tunnel node's
/// SSH server, reached through the proxy).
const DEFAULT_NODE_PORT: u16 = 3022;

/// One session to write: who logs in where.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub login: String,
    pub node: NodeInfo,
    pub port: u16,
}

/// A session Jaunt made, as `--list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub host: String,
    pub port: String,
    pub login: String,
    pub cluster: String,
}

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::Invalid(message.into())
}

/// The port a session stores for a node: its registered one, else 3022.
pub fn node_port(node: &NodeInfo) -> u16 {
    node.addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(DEFAULT_NODE_PORT)
}

/// `--all`: every node whose labels match all `key=value` filters.
pub fn choose_all(
    nodes: &[NodeInfo],
    filters: &[String],
    login: &str,
    port: Option<u16>,
) -> Result<Vec<Choice>> {
    let chosen: Vec<Choice> = nodes
        .iter()
        .filter(|n| {
            filters.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => n.labels.get(k).map(String::as_str) == Some(v),
                None => false,
            })
        })
        .map(|n| Choice {
            login: login.to_string(),
            node: n.clone(),
            port: port.unwrap_or_else(|| node_port(n)),
        })
        .collect();
    if chosen.is_empty() {
        return Err(invalid("no node you can reach matches; see 'jsh ls'"));
    }
    Ok(chosen)
}

/// One `[login@]host[:port]`; `port` (the flag) wins over the target's.
pub fn choose_one(
    nodes: &[NodeInfo],
    target: &str,
    default_login: Option<String>,
    port: Option<u16>,
    cluster: &str,
) -> Result<Choice> {
    let t = parse_target(target).map_err(invalid)?;
    let login = t
        .login
        .or(default_login)
        .ok_or_else(|| invalid("give the login as LOGIN@HOST"))?;
    jaunt_types::resources::validate_login(&login).map_err(invalid)?;
    let node = resolve(nodes, &t.host, None, cluster).map_err(|_| {
        invalid(format!(
            "{} is not a node you can reach; run 'jsh ls' to see them",
            t.host
        ))
    })?;
    Ok(Choice {
        login,
        port: port.or(t.port).unwrap_or_else(|| node_port(node)),
        node: node.clone(),
    })
}

/// Writes a session per choice, and trusts the cluster's host CA for their
/// nodes. `exe` is the `jsh` PuTTY runs. Returns each session's name and
/// whether it is new.
/// Writes the sessions for `choices`, nodes of the profile's cluster or,
/// with `leaf`, of that leaf cluster (through the same proxy, with the same
/// certificate; its host CA trusted as `JauntHostCA-<leaf>`).
pub fn write_sessions(
    store: &dyn Store,
    home: &Home,
    profile: &Profile,
    leaf: Option<&str>,
    choices: &[Choice],
    exe: &str,
) -> Result<Vec<(String, bool)>> {
    let cluster = leaf.unwrap_or(&profile.cluster);
    let ca_keys = host_ca_lines(home, cluster)?;
    if ca_keys.is_empty() {
        return Err(invalid(format!(
            "no host CA for cluster {cluster:?} in your known_hosts; run 'jsh login' again"
        )));
    }
    let hosts: Vec<String> = choices.iter().map(|c| c.node.name.clone()).collect();
    trust_host_cas(store, cluster, &ca_keys, &hosts)?;
    let proxy_host = profile.name();
    let (_, proxy_port) =
        jaunt_types::addr::split_host_port(&profile.web_proxy_addr, 3080).map_err(invalid)?;
    let command = proxy_command(exe, cluster, cfg!(windows));
    let mut written = Vec::new();
    for c in choices {
        let name = session_name(&c.login, &c.node.name, &proxy_host, leaf);
        let spec = SessionSpec {
            host: c.node.name.clone(),
            port: c.port,
            login: c.login.clone(),
            ppk_path: home
                .ppk_path(&proxy_host, &profile.user)
                .display()
                .to_string(),
            cert_path: home
                .ssh_cert_path(&proxy_host, &profile.user, &profile.cluster)
                .display()
                .to_string(),
            proxy_host: proxy_host.clone(),
            proxy_port,
            proxy_command: command.clone(),
            prefer_aes_gcm: crate::ciphers::aes_gcm_in_hardware(),
        };
        let added = save_session(store, &name, &spec)?;
        written.push((name, added));
    }
    Ok(written)
}

/// Removes the session for `[login@]host`; returns its name.
pub fn remove(
    store: &dyn Store,
    target: &str,
    default_login: Option<String>,
    proxy_host: &str,
    leaf: Option<&str>,
) -> Result<String> {
    let t = parse_target(target).map_err(invalid)?;
    let login = t
        .login
        .or(default_login)
        .ok_or_else(|| invalid("give the login as LOGIN@HOST"))?;
    let name = session_name(&login, &t.host, proxy_host, leaf);
    match remove_session(store, &name)? {
        true => Ok(name),
        false => Err(invalid(format!(
            "no PuTTY session {name:?} made by jsh (see 'jsh puttyconfig --list')"
        ))),
    }
}

/// What `--remove --all` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub sessions: Vec<String>,
    pub host_cas: Vec<String>,
}

/// Removes every session Jaunt made and every host-CA entry it wrote
/// (`JauntHostCA-...`): what uninstalling jsh leaves in PuTTY is then only
/// what the user made.
pub fn remove_all(store: &dyn Store) -> Result<Removed> {
    let mut removed = Removed::default();
    for (name, _) in jaunt_sessions(store)? {
        remove_session(store, &name)?;
        removed.sessions.push(name);
    }
    for name in store.names(Kind::HostCa)? {
        if name.starts_with(HOST_CA_PREFIX) {
            store.delete(Kind::HostCa, &name)?;
            removed.host_cas.push(name);
        }
    }
    Ok(removed)
}

/// The sessions Jaunt made, for `--list`.
pub fn list(store: &dyn Store) -> Result<Vec<Listed>> {
    Ok(jaunt_sessions(store)?
        .into_iter()
        .map(|(name, lines)| {
            let field = |key| get(&lines, key).unwrap_or("").to_string();
            Listed {
                host: field("HostName"),
                port: field("PortNumber"),
                login: field("UserName"),
                cluster: session_cluster(&lines).unwrap_or("").to_string(),
                name,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::putty::PuttyDir;

    fn node(name: &str, addr: Option<&str>, env: &str) -> NodeInfo {
        NodeInfo {
            uuid: format!("uuid-{name}"),
            name: name.into(),
            labels: [("env".to_string(), env.to_string())].into(),
            addr: addr.map(str::to_string),
            last_seen: 0,
            sub_kind: None,
        }
    }

    #[test]
    fn ports_and_choices() {
        let nodes = [
            node("web", Some("10.0.0.1:22"), "prod"),
            node("db", None, "dev"),
        ];
        assert_eq!(node_port(&nodes[0]), 22);
        assert_eq!(node_port(&nodes[1]), DEFAULT_NODE_PORT);

        let all = choose_all(&nodes, &["env=prod".into()], "alice", None).expect("one");
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].node.name.as_str(), all[0].port), ("web", 22));
        assert!(choose_all(&nodes, &["env=qa".into()], "alice", None).is_err());
        assert!(choose_all(&nodes, &["env".into()], "alice", None).is_err());

        let one = choose_one(&nodes, "bob@db:2222", None, None, "c").expect("db");
        assert_eq!((one.login.as_str(), one.port), ("bob", 2222));
        let flag = choose_one(&nodes, "bob@db:2222", None, Some(22), "c").expect("db");
        assert_eq!(flag.port, 22, "the flag wins");
        let err = choose_one(&nodes, "nosuch", Some("bob".into()), None, "c").expect_err("none");
        assert!(
            err.to_string().contains("not a node you can reach"),
            "{err}"
        );
        assert!(
            choose_one(&nodes, "db", None, None, "c").is_err(),
            "no login"
        );
    }

    #[test]
    fn written_sessions_are_listed_and_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = Home::new(dir.path().join("jsh"));
        home.set_host_cas(
            "proxy.example.com",
            "example",
            &[
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHW1f8CsiktqDULBwXwhSRlA/ASOAxX0gZMLRbOU5YV"
                    .into(),
            ],
        )
        .expect("known_hosts");
        let profile = Profile {
            web_proxy_addr: "proxy.example.com:3080".into(),
            user: "alice".into(),
            cluster: "example".into(),
            ca_pin: None,
            roles: vec![],
            logins: vec![],
            valid_until: 0,
        };
        let store = PuttyDir::at(&dir.path().join("putty"));
        let choice = Choice {
            login: "root".into(),
            node: node("web", None, "prod"),
            port: 3022,
        };
        let written = write_sessions(
            &store,
            &home,
            &profile,
            None,
            std::slice::from_ref(&choice),
            "/bin/jsh",
        )
        .expect("write");
        let name = "root@web [proxy:proxy.example.com]".to_string();
        assert_eq!(written, [(name.clone(), true)]);
        let again =
            write_sessions(&store, &home, &profile, None, &[choice], "/bin/jsh").expect("write");
        assert_eq!(again, [(name.clone(), false)]);
        assert_eq!(
            list(&store).expect("list"),
            [Listed {
                name: name.clone(),
                host: "web".into(),
                port: "3022".into(),
                login: "root".into(),
                cluster: "example".into(),
            }]
        );
        let err = remove(&store, "nobody@web", None, "proxy.example.com", None).expect_err("none");
        assert!(err.to_string().contains("no PuTTY session"), "{err}");
        assert_eq!(
            remove(&store, "root@web", None, "proxy.example.com", None).expect("removed"),
            name
        );
        // The host-CA entry the session needed goes with --remove --all.
        assert_eq!(
            remove_all(&store).expect("removed"),
            Removed {
                sessions: Vec::new(),
                host_cas: vec!["JauntHostCA-example".into()],
            }
        );
        assert_eq!(remove_all(&store).expect("none left"), Removed::default());
    }
}
