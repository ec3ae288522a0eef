//! Parsing and validation of what administrators write: the daemon's YAML
//! configuration merged with its command-line flags, and resource files for
//! `jctl create`. Text in, typed values or a precise error out (file, line,
//! key); loading has no side effects and unknown keys are errors.

mod configure;
mod daemon;
mod resources;
pub mod sshd;
pub mod storage;
pub mod systemd;

pub use configure::configure_template;
pub use daemon::{
    Config, DEFAULT_PORT, FileConfig, LogFormat, NodeSettings, Recordings, RecordingsSection,
    Service, parse_labels,
};
pub use jaunt_types::addr::split_host_port;
pub use resources::{Resource, parse_resources};
pub use storage::{Storage, StorageSection};

/// A mistake in a file or flag, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A YAML error: the message names the key and the line.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// A value that parsed but is not acceptable.
    #[error("{source_name}: {key}: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(source: &str, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            source_name: source.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

pub(crate) fn yaml_error(file: &str, e: serde_yaml_ng::Error) -> ConfigError {
    ConfigError::Syntax {
        file: file.to_string(),
        message: e.to_string(),
    }
}
