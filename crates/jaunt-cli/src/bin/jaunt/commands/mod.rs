pub mod configure;
pub mod start;
