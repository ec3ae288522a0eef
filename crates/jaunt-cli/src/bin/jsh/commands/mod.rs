pub mod config;
pub mod login;
pub mod logout;
pub mod ls;
pub mod proxy;
pub mod signup;
pub mod ssh;
pub mod status;
