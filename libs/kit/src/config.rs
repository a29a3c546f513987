//! Configuration from the environment (12-factor), with defaults in code.
use std::{net::SocketAddr, time::Duration};

/// Why a setting could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A variable's value, if set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A parsed variable, or the default when unset.
pub fn parse<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError { name: name.into(), problem: e.to_string() }),
    }
}

/// A duration in milliseconds, or the default when unset.
pub fn millis(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let ms = parse::<u64>(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))?;
    Ok(Duration::from_millis(ms))
}

/// `value` of `name` if it is at least `min`.
pub fn at_least(name: &str, value: Duration, min: Duration) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(ConfigError { name: name.into(), problem: format!("at least {} ms", min.as_millis()) });
    }
    Ok(value)
}

/// A listen address, or the default when unset.
pub fn addr(name: &str, default: SocketAddr) -> Result<SocketAddr, ConfigError> {
    parse(name, default)
}

/// The process exit for a service binary's result: errors are printed for people (`<binary>: <error>`), not as
/// debug output.
pub fn exit_code(binary: &str, result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
