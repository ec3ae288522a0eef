//! The cipher Jaunt's clients ask for first. The client of an SSH
//! connection picks its cipher, and OpenSSH and PuTTY pick ChaCha20-Poly1305
//! or AES-CTR by default. Where the CPU has AES and carry-less multiply
//! instructions, AES-GCM is several times cheaper at every end that does
//! the work (the client, a Jaunt node, and the proxy, which decrypts and
//! encrypts again for agentless nodes), so `jsh ssh`, `jsh config` and
//! `jsh puttyconfig` put it first there. The lists only reorder what each
//! client offers by default: nothing weaker is added.

/// OpenSSH's default ciphers with AES-GCM first.
pub const OPENSSH_AES_GCM_FIRST: &str = "aes256-gcm@openssh.com,aes128-gcm@openssh.com,\
chacha20-poly1305@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr";

/// Whether this CPU runs AES-GCM in hardware (checked once per process).
pub fn aes_gcm_in_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The `Ciphers` value for an OpenSSH client, when it should differ from
/// OpenSSH's default.
pub fn openssh_ciphers(aes_gcm_in_hardware: bool) -> Option<&'static str> {
    aes_gcm_in_hardware.then_some(OPENSSH_AES_GCM_FIRST)
}

/// The cipher order of `jsh`'s own SSH client (russh).
pub fn russh_ciphers(aes_gcm_in_hardware: bool) -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    match aes_gcm_in_hardware {
        true => &[
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ],
        false => &[
            CHACHA20_POLY1305,
            AES_256_GCM,
            AES_256_CTR,
            AES_192_CTR,
            AES_128_CTR,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_aes_keeps_the_clients_defaults() {
        assert_eq!(openssh_ciphers(false), None);
        assert_eq!(russh_ciphers(false)[0], russh::cipher::CHACHA20_POLY1305);
    }

    #[test]
    fn hardware_aes_puts_gcm_first_and_keeps_the_rest() {
        let list: Vec<&str> = openssh_ciphers(true).expect("a list").split(',').collect();
        assert_eq!(list[0], "aes256-gcm@openssh.com");
        // The same set as OpenSSH's default, reordered.
        let mut sorted = list.clone();
        sorted.sort();
        let mut default = vec![
            "chacha20-poly1305@openssh.com",
            "aes128-ctr",
            "aes192-ctr",
            "aes256-ctr",
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
        ];
        default.sort();
        assert_eq!(sorted, default);
        assert_eq!(russh_ciphers(true)[0], russh::cipher::AES_256_GCM);
        let mut a = russh_ciphers(true).to_vec();
        let mut b = russh_ciphers(false).to_vec();
        a.sort_by_key(|n| n.as_ref().to_string());
        b.sort_by_key(|n| n.as_ref().to_string());
        assert_eq!(a, b);
    }
}
