//! PuTTY's formats: PPK key files (PuTTY will not load an OpenSSH private
//! key), saved-session and host-CA names and values, Validity strings.
//! Pure: text in, text out; the client crate reads and writes the files.
//!
//! Architecture Invariant: this is the only crate that knows PuTTY's formats.

pub mod names;
mod ppk;
pub mod regfile;
pub mod settings;
pub mod validity;

pub use ppk::{PpkError, to_ppk_v3};
