pub mod configure;
pub mod install;
pub mod join;
pub mod start;
pub mod status;
pub mod storage;
