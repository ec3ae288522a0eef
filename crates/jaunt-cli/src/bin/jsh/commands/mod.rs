pub mod login;
pub mod logout;
pub mod signup;
pub mod status;
