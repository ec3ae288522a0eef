//! Jaunt's shared vocabulary: the resources the cluster stores (users, roles,
//! tokens), the messages `jsh` and `jctl` exchange with it, and small value
//! types (durations, secrets). Everything here is plain data: no I/O.

pub mod addr;
pub mod admin;
pub mod api;
pub mod asciicast;
pub mod audit;
pub mod duration;
pub mod resources;
pub mod rotation;
pub mod route;
pub mod secret;
pub mod timefmt;
pub mod trust;

pub use duration::Ttl;
pub use secret::Secret;
