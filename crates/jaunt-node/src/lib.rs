//! The node service: it joins the cluster with a token, presents a host
//! certificate, accepts only user certificates from the cluster's user CA
//! whose roles allow the login here, and runs sessions as OS users.
//!
//! Architecture Invariant: only this crate runs processes as other users,
//! and only its `os::spawn` module contains unsafe code.

pub mod agent;
pub mod agent_forward;
pub mod audit;
pub mod context;
mod launch;
pub mod os;
pub mod port_forward;
pub mod recording;
pub mod server;
pub mod session;
pub mod sftp;

pub use agent::{LOGIN_GRACE, Node, NodeConfig, NodeError, start};
