pub mod configure;
pub mod start;
pub mod status;
