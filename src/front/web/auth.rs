//! Who may look at the status page: HTTP Basic logins checked against `[web] users`'
//! argon2 hashes, or `Authorization: Bearer <[web] token>`. Verified credentials are
//! remembered briefly (by a SHA-256 of the header) so each page view does not pay for an
//! argon2 verification.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::WebConfig;

/// How long a verified login is remembered.
const REMEMBER: Duration = Duration::from_secs(300);
/// At most this many remembered logins (the cache is emptied when full).
const REMEMBER_MAX: usize = 256;

pub struct Auth {
    users: BTreeMap<String, String>,
    token: Option<String>,
    remembered: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

/// A request that gets no page: who it claimed to be, if anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub claimed: Option<String>,
}

impl Auth {
    pub fn new(cfg: &WebConfig) -> Auth {
        Auth {
            users: cfg.users.clone(),
            token: cfg.token.as_ref().map(|t| t.expose().to_string()),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// The actor (`web:<user>` or `web:token`) an `Authorization` header proves, or why
    /// not. Blocking: an argon2 verification takes tens of milliseconds.
    pub fn check(&self, header: Option<&str>) -> Result<String, Refused> {
        let header = header.unwrap_or_default().trim();
        let key: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        if let Some((actor, at)) = self.remembered.lock().unwrap().get(&key)
            && at.elapsed() < REMEMBER
        {
            return Ok(actor.clone());
        }
        let actor = self.verify(header)?;
        let mut remembered = self.remembered.lock().unwrap();
        if remembered.len() >= REMEMBER_MAX {
            remembered.clear();
        }
        remembered.insert(key, (actor.clone(), Instant::now()));
        Ok(actor)
    }

    fn verify(&self, header: &str) -> Result<String, Refused> {
        let nobody = Refused { claimed: None };
        let (scheme, value) = header.split_once(' ').ok_or(nobody.clone())?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = self.token.as_deref().ok_or(nobody.clone())?;
            let same: bool = token.as_bytes().ct_eq(value.as_bytes()).into();
            return if same {
                Ok("web:token".into())
            } else {
                Err(nobody)
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(nobody);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(nobody.clone())?;
        let (user, password) = decoded.split_once(':').ok_or(nobody)?;
        let refused = Refused {
            claimed: Some(user.chars().take(64).collect()),
        };
        // An unknown user costs the same verification as a known one.
        let hash = self
            .users
            .get(user)
            .map_or(unknown_user_hash(), |h| h.as_str());
        let parsed = PasswordHash::new(hash).map_err(|_| refused.clone())?;
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if ok && self.users.contains_key(user) {
            Ok(format!("web:{user}"))
        } else {
            Err(refused)
        }
    }
}

/// A hash no password is checked against successfully (its user does not exist), with
/// the default parameters so refusing an unknown user takes as long as a wrong password.
fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::password::hash_password("no user has this password").unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn auth() -> Auth {
        let mut users = BTreeMap::new();
        // Made by Debian's argon2 tool: `echo -n hunter2 | argon2 somesaltsomesalt -id -e`.
        users.insert(
            "alice".to_string(),
            "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$bEfk4vKa91KZa+YyjM36bH00sw8j6SozTR0YtRaSljg"
                .to_string(),
        );
        Auth {
            users,
            token: Some("0123456789abcdef-token".into()),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn basic_logins_are_checked_against_argon2_hashes() {
        let a = auth();
        assert_eq!(
            a.check(Some(&basic("alice", "hunter2"))),
            Ok("web:alice".into())
        );
        // Remembered, and still only for the same header.
        assert_eq!(
            a.check(Some(&basic("alice", "hunter2"))),
            Ok("web:alice".into())
        );
        let wrong = a.check(Some(&basic("alice", "hunter3"))).unwrap_err();
        assert_eq!(wrong.claimed.as_deref(), Some("alice"));
        assert!(a.check(Some(&basic("mallory", "hunter2"))).is_err());
        assert!(a.check(Some("Basic !!!notbase64")).is_err());
        assert!(a.check(None).is_err());
    }

    #[test]
    fn the_bearer_token_is_compared_whole() {
        let a = auth();
        assert_eq!(
            a.check(Some("Bearer 0123456789abcdef-token")),
            Ok("web:token".into())
        );
        assert!(a.check(Some("Bearer 0123456789abcdef")).is_err());
        assert!(a.check(Some("Bearer ")).is_err());
        let none = Auth {
            token: None,
            ..auth()
        };
        assert!(none.check(Some("Bearer ")).is_err());
    }
}
