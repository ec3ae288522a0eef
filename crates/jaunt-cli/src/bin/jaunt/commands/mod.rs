pub mod configure;
pub mod install;
pub mod start;
pub mod status;
