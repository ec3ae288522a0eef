//! PuTTY's formats. PuTTY will not load an OpenSSH private key, so `jsh
//! login` also writes the user's key as a PPK file.
//!
//! Architecture Invariant: this is the only crate that knows PuTTY's formats.

mod ppk;

pub use ppk::{PpkError, to_ppk_v3};
