//! `[web]`: the read-only status page of `serve` — off unless enabled, and only for the
//! listed users (argon2 password hashes) or the holder of a bearer token: one from the
//! environment, or one lifeboat generates and keeps in its state directory.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// The page is served only when this is true.
    #[serde(default)]
    pub enabled: bool,
    /// Login name → argon2 password hash in PHC form (`$argon2id$v=19$m=…`), checked on
    /// HTTP Basic logins. `lifeboat web hash-password` makes one.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// A bearer token (from the environment) for scripts and dashboards.
    pub token: Option<Secret>,
    /// Generate a token at first start, keep it in the state directory (`web-token`)
    /// and print the page's address with it at start: the built-in config's login.
    #[serde(default)]
    pub generate_token: bool,
}

impl WebConfig {
    /// Whether this section holds something that is not an argon2 hash (checked even
    /// while the page is off), or enables a page nobody can log in to.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && self.users.is_empty() && self.token.is_none() && !self.generate_token {
            return Err(
                "web.enabled: the status page needs a login: add `[web] users` \
                 (name = argon2 hash), `token = \"${SOME_VARIABLE}\"` or `generate_token = true`"
                    .into(),
            );
        }
        if self.token.is_some() && self.generate_token {
            return Err("web.generate_token: the config sets `token` too; keep one of them".into());
        }
        for (name, hash) in &self.users {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                return Err(format!(
                    "web.users.{name}: a login name cannot be empty or contain ':'"
                ));
            }
            check_hash(hash).map_err(|why| format!("web.users.{name}: {why}"))?;
        }
        if let Some(t) = &self.token
            && t.expose().len() < 16
        {
            return Err("web.token: use at least 16 characters".into());
        }
        Ok(())
    }
}

/// A PHC string of one of the argon2 variants, with the parameters it needs.
fn check_hash(hash: &str) -> Result<(), String> {
    let how = "make one with `lifeboat web hash-password`";
    let parsed = argon2::PasswordHash::new(hash)
        .map_err(|e| format!("not a password hash in PHC form ({e}); {how}"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "{} is not an argon2 hash; {how}",
            parsed.algorithm.as_str()
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(format!("the hash has no salt or no output; {how}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // `echo -n hunter2 | argon2 somesaltsomesalt -id -e` (Debian's argon2 tool).
    const HASH: &str = "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$bEfk4vKa91KZa+YyjM36bH00sw8j6SozTR0YtRaSljg";

    fn web(users: &[(&str, &str)], token: Option<&str>) -> WebConfig {
        WebConfig {
            enabled: true,
            users: users
                .iter()
                .map(|(n, h)| (n.to_string(), h.to_string()))
                .collect(),
            token: token.map(|t| Secret(t.to_string())),
            generate_token: false,
        }
    }

    #[test]
    fn an_enabled_page_needs_a_login() {
        let e = web(&[], None).validate().unwrap_err();
        assert!(e.contains("web.enabled") && e.contains("users"), "{e}");
        assert!(web(&[], Some("0123456789abcdef")).validate().is_ok());
        assert!(web(&[("alice", HASH)], None).validate().is_ok());
        let generated = WebConfig {
            generate_token: true,
            ..web(&[], None)
        };
        assert!(generated.validate().is_ok());
        let both = WebConfig {
            generate_token: true,
            ..web(&[], Some("0123456789abcdef"))
        };
        assert!(both.validate().unwrap_err().contains("web.generate_token"));
        let off = WebConfig::default();
        assert!(off.validate().is_ok(), "a disabled page needs nothing");
        let off_but_wrong = WebConfig {
            enabled: false,
            ..web(&[("alice", "hunter2")], None)
        };
        assert!(
            off_but_wrong.validate().is_err(),
            "hashes are checked while off too"
        );
    }

    #[test]
    fn only_argon2_hashes_are_taken() {
        let e = web(&[("alice", "hunter2")], None).validate().unwrap_err();
        assert!(
            e.contains("web.users.alice") && e.contains("hash-password"),
            "{e}"
        );
        let bcrypt = "$2b$12$abcdefghijklmnopqrstuuWm3Cq1qHJS6PpSzSg1Qd6lmf7lbB6l2";
        let e = web(&[("bob", bcrypt)], None).validate().unwrap_err();
        assert!(e.contains("web.users.bob"), "{e}");
        let e = web(&[("a:b", HASH)], None).validate().unwrap_err();
        assert!(e.contains("':'"), "{e}");
        let e = web(&[], Some("short")).validate().unwrap_err();
        assert!(e.contains("web.token"), "{e}");
    }
}
