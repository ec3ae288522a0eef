//! Login and logout. The key pair is made here and only the public half and
//! a CSR are sent; the proxy returns certificates, which are written beside
//! the keys in the layout `home` describes.

use crate::home::{Home, Mode};
use crate::profile::{Profile, proxy_host};
use crate::{ClientError, Result};
use jaunt_ca::ssh_key::{self, Algorithm, Certificate, LineEnding, PrivateKey};
use jaunt_sys::clock::now;
use jaunt_transport::{ApiClient, ClientCert, Trust};
use jaunt_types::api::{LoginRequest, LoginResponse, PATH_LOGIN};
use jaunt_types::timefmt::format_unix;
use jaunt_types::{Secret, Ttl};

pub struct LoginParams {
    /// Normalized `host:port`.
    pub proxy: String,
    pub user: String,
    pub password: Secret<String>,
    pub otp: Option<Secret<String>>,
    pub ttl: Option<Ttl>,
    /// Remembered in the profile when given.
    pub ca_pin: Option<String>,
}

/// How to trust `proxy`: the given pin, else the profile's; plus the cluster
/// CA saved at the last login to it.
pub fn trust_for(
    home: &Home,
    proxy: &str,
    ca_pin: Option<String>,
    insecure: bool,
) -> Result<Trust> {
    let name = proxy_host(proxy);
    let profile = home.load_profile(&name)?;
    let ca_pin = ca_pin.or_else(|| profile.as_ref().and_then(|p| p.ca_pin.clone()));
    let cluster_ca_pem = match &profile {
        Some(p) => home.read_to_string(&home.ca_path(&name, &p.cluster))?,
        None => None,
    };
    Ok(Trust {
        ca_pin,
        cluster_ca_pem,
        insecure,
    })
}

/// Logs in and writes keys, certificates, known_hosts and the profile.
pub async fn login(home: &Home, client: &ApiClient, params: LoginParams) -> Result<Profile> {
    let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
    let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    key.set_comment(params.user.as_str());
    let (csr_pem, tls_key_pem) = jaunt_ca::generate_client_csr(&params.user)
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    let resp: LoginResponse = client
        .post(
            PATH_LOGIN,
            &LoginRequest {
                user: params.user.clone(),
                password: params.password,
                otp: params.otp,
                ssh_public_key: public.clone(),
                tls_csr_pem: csr_pem,
                ttl_secs: params.ttl.map(|t| t.as_secs()),
            },
        )
        .await?;
    let cert = Certificate::from_openssh(&resp.ssh_cert)
        .map_err(|e| ClientError::Protocol(format!("SSH certificate: {e}")))?;
    if cert.public_key() != key.public_key().key_data() {
        return Err(ClientError::Protocol(
            "the proxy returned a certificate for another key".into(),
        ));
    }
    let name = proxy_host(&params.proxy);
    let user = &params.user;
    let cluster = &resp.cluster_name;
    jaunt_types::resources::validate_name(cluster)
        .map_err(|e| ClientError::Protocol(format!("cluster name: {e}")))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| ClientError::Invalid(e.to_string()))?;
    let ppk = jaunt_putty::to_ppk_v3(&key).map_err(|e| ClientError::Invalid(e.to_string()))?;
    home.write(
        &home.key_path(&name, user),
        private.as_bytes(),
        Mode::Private,
    )?;
    home.write(
        &home.pub_path(&name, user),
        format!("{public}\n").as_bytes(),
        Mode::Public,
    )?;
    home.write(
        &home.ppk_path(&name, user),
        ppk.expose().as_bytes(),
        Mode::Private,
    )?;
    home.write(
        &home.ssh_cert_path(&name, user, cluster),
        format!("{}\n", resp.ssh_cert.trim()).as_bytes(),
        Mode::Public,
    )?;
    home.write(
        &home.tls_key_path(&name, user),
        tls_key_pem.expose().as_bytes(),
        Mode::Private,
    )?;
    home.write(
        &home.tls_cert_path(&name, user),
        resp.tls_cert_pem.as_bytes(),
        Mode::Public,
    )?;
    home.write(
        &home.ca_path(&name, cluster),
        resp.tls_ca_pem.as_bytes(),
        Mode::Public,
    )?;
    home.set_host_cas(&name, cluster, &resp.host_ca_keys)?;
    let profile = Profile {
        web_proxy_addr: params.proxy.clone(),
        user: user.clone(),
        cluster: cluster.clone(),
        ca_pin: params.ca_pin,
        roles: resp.roles,
        logins: resp.logins,
        valid_until: resp.valid_until,
    };
    home.save_profile(&profile, true)?;
    Ok(profile)
}

/// The profile a command acts on: `--proxy`'s, else the current one.
pub fn active_profile(home: &Home, proxy: Option<&str>) -> Result<Profile> {
    match proxy {
        Some(p) => {
            let addr = crate::profile::normalize_proxy(p).map_err(ClientError::Invalid)?;
            home.load_profile(&proxy_host(&addr))?.ok_or_else(|| {
                ClientError::Invalid(format!(
                    "you are not logged in to {addr}: run 'jsh login --proxy={addr}'"
                ))
            })
        }
        None => home.current_profile()?.ok_or(ClientError::NoProxy),
    }
}

/// What the certificate on disk says, for `jsh status`.
#[derive(Debug, Clone)]
pub struct CertState {
    pub principals: Vec<String>,
    /// The OpenSSH permissions; Jaunt's own extensions (the roles and
    /// logins a leaf cluster maps) are not shown, as the reference product
    /// shows only the permissions.
    pub extensions: Vec<String>,
    pub valid_before: i64,
}

pub fn cert_state(home: &Home, profile: &Profile) -> Result<CertState> {
    let path = home.ssh_cert_path(&profile.name(), &profile.user, &profile.cluster);
    let text = home
        .read_to_string(&path)?
        .ok_or_else(|| ClientError::File {
            path: path.clone(),
            reason: "missing; run 'jsh login' again".into(),
        })?;
    let cert = Certificate::from_openssh(text.trim()).map_err(|e| crate::file_err(&path, e))?;
    Ok(CertState {
        principals: cert.valid_principals().to_vec(),
        extensions: cert
            .extensions()
            .keys()
            .filter(|k| ![jaunt_ca::EXT_ROLES, jaunt_ca::EXT_LOGINS].contains(&k.as_str()))
            .cloned()
            .collect(),
        valid_before: cert.valid_before() as i64,
    })
}

/// The command that logs this profile in again.
pub fn relogin_command(profile: &Profile) -> String {
    format!(
        "jsh login --proxy={} --user={}",
        profile.web_proxy_addr, profile.user
    )
}

/// An error if the profile's certificate has expired, naming the fix.
pub fn require_valid(home: &Home, profile: &Profile) -> Result<CertState> {
    let state = cert_state(home, profile)?;
    if state.valid_before <= now() {
        return Err(ClientError::Invalid(format!(
            "your certificate for {}@{} expired at {}; run '{}' to log in again",
            profile.user,
            profile.web_proxy_addr,
            format_unix(state.valid_before),
            relogin_command(profile)
        )));
    }
    Ok(state)
}

/// The saved TLS client certificate of a profile.
pub fn client_cert(home: &Home, profile: &Profile) -> Result<ClientCert> {
    let name = profile.name();
    let read = |path: std::path::PathBuf| -> Result<String> {
        home.read_to_string(&path)?
            .ok_or_else(|| ClientError::File {
                path,
                reason: "missing; run 'jsh login' again".into(),
            })
    };
    Ok(ClientCert {
        cert_pem: read(home.tls_cert_path(&name, &profile.user))?,
        key_pem: read(home.tls_key_path(&name, &profile.user))?,
    })
}

/// The profile a command acts on (`--proxy`'s or the current one), checked
/// unexpired, with an API client that presents its certificate.
pub fn logged_in_client(home: &Home, proxy: Option<&str>) -> Result<(Profile, ApiClient)> {
    let profile = active_profile(home, proxy)?;
    require_valid(home, &profile)?;
    let trust = trust_for(home, &profile.web_proxy_addr, None, false)?;
    let client = ApiClient::new(
        &profile.web_proxy_addr,
        &trust,
        Some(&client_cert(home, &profile)?),
    )?;
    Ok((profile, client))
}
