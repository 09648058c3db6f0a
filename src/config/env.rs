//! Settings from the environment: `${NAME}` interpolation in string values, the rule
//! that secrets are only ever written as `${NAME}`, and `Secret`, which never prints.

use std::fmt;

use serde::Deserialize;

/// A secret value: printed as `***` everywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Every secret value a config of this process has held (after interpolation), so output
/// lifeboat keeps or posts from commands it runs (hooks) can be masked whatever section the
/// secret came from.
static SEEN_SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        // The first parsing pass sees the `${NAME}` text itself: not a secret yet.
        if !value.is_empty() && !value.contains("${") {
            let mut seen = SEEN_SECRETS.lock().unwrap_or_else(|p| p.into_inner());
            if !seen.contains(&value) {
                seen.push(value.clone());
            }
        }
        Ok(Secret(value))
    }
}

/// The secret values of every config this process has loaded.
pub fn known_secret_values() -> Vec<String> {
    SEEN_SECRETS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Keys whose values are secrets and must come from `${...}`.
const SECRET_KEYS: &[&str] = &[
    "signing_secret",
    "app_token",
    "bot_token",
    "public_key",
    "token",
    "alertmanager_token",
    "password",
    // Monitor URLs: whoever has one can report for lifeboat.
    "url",
    "ping_url",
];

/// The process environment, for `Config::load`.
pub(super) fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The dotted key of `k` inside the table at `path` ("" = the top level).
fn child_key(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Refuses a secret key written as a literal, naming the key but never the value.
pub(super) fn check_secrets_from_env(value: &toml::Value, path: &str) -> Result<(), String> {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = child_key(path, k);
                if let toml::Value::String(s) = v
                    && SECRET_KEYS.contains(&k.as_str())
                    && !s.contains("${")
                {
                    return Err(format!(
                        "{p}: secrets must come from the environment, write it as \"${{SOME_VARIABLE}}\""
                    ));
                }
                check_secrets_from_env(v, &p)?;
            }
            Ok(())
        }
        toml::Value::Array(a) => a.iter().try_for_each(|v| check_secrets_from_env(v, path)),
        _ => Ok(()),
    }
}

/// Replace every `${NAME}` in string values with the variable's value.
pub(super) fn interpolate(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => {
            *s = expand(s, env)
                .map_err(|var| format!("{path}: environment variable {var} is not set"))?;
            Ok(())
        }
        toml::Value::Table(t) => t
            .iter_mut()
            .try_for_each(|(k, v)| interpolate(v, &child_key(path, k), env)),
        toml::Value::Array(a) => a.iter_mut().try_for_each(|v| interpolate(v, path, env)),
        _ => Ok(()),
    }
}

/// Expand `${NAME}` references; returns the name of the first missing variable.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_test as parse, test_env as env};

    #[test]
    fn missing_env_var_is_named() {
        let e = parse("[hooks]\nalertmanager_token = \"${NOPE_NOT_SET}\"\n").unwrap_err();
        assert!(e.to_string().contains("NOPE_NOT_SET"), "{e}");
        assert!(e.to_string().contains("hooks.alertmanager_token"), "{e}");
    }

    #[test]
    fn secret_literal_is_refused_and_never_echoed() {
        let e = parse("[hooks]\nalertmanager_token = \"hunter2\"\n").unwrap_err();
        assert!(e.to_string().contains("environment"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = parse("[hooks]\nalertmanager_token = \"${TOKEN}\"\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"));
    }

    #[test]
    fn expand_handles_text_around() {
        assert_eq!(expand("a${TOKEN}b", &env).unwrap(), "as3cr3tb");
        assert_eq!(expand("${X}", &env).unwrap_err(), "X");
    }
}
