pub mod audit;
pub mod auth;
pub mod locks;
pub mod nodes;
pub mod resources;
pub mod status;
pub mod tokens;
pub mod users;
