//! Who may look at the status page: HTTP Basic logins checked against `[web] users`'
//! argon2 hashes, or `Authorization: Bearer <token>` (`[web] token`, or the one lifeboat
//! generated; a browser brings it in the address or a cookie, see `link`). Verified credentials are
//! remembered briefly (by a SHA-256 of the header) so each page view does not pay for an
//! argon2 verification. Wrong passwords cannot take the bot down: the checks are bounded
//! (`password`) and a client that keeps failing must wait (`throttle`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::password::{self, Checker};
use super::throttle::{Failed, Throttle};
use crate::config::WebConfig;

/// How long a verified login is remembered.
const REMEMBER: Duration = Duration::from_secs(300);
/// At most this many remembered logins (the cache is emptied when full).
const REMEMBER_MAX: usize = 256;
/// What a login that found every check busy is told to wait.
const BUSY_RETRY: Duration = Duration::from_secs(1);

pub struct Auth {
    users: BTreeMap<String, String>,
    token: Option<String>,
    remembered: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    checker: Arc<Checker>,
    throttle: Throttle,
}

/// How a login attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The actor (`web:<user>` or `web:token`) the header proves.
    Allowed(String),
    /// Wrong or missing credentials (401).
    Refused(Refused),
    /// Not checked: the client must wait this long first, or every check was busy (429).
    Wait(Duration),
}

/// A request that gets no page: who it claimed to be, if anyone, and whether this
/// failure made its address wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub claimed: Option<String>,
    pub now_waits: Option<Duration>,
}

impl Refused {
    fn nobody() -> Refused {
        Refused {
            claimed: None,
            now_waits: None,
        }
    }
}

/// What a header asks to be checked.
enum Credentials {
    Token(String),
    Password { user: String, password: String },
}

impl Auth {
    /// The logins of `cfg`; `generated` is the token lifeboat made (`generate_token`).
    pub fn new(cfg: &WebConfig, generated: Option<String>) -> Auth {
        Auth::with(
            cfg.users.clone(),
            cfg.token
                .as_ref()
                .map(|t| t.expose().to_string())
                .or(generated),
            Checker::for_this_machine(),
        )
    }

    fn with(users: BTreeMap<String, String>, token: Option<String>, checker: Checker) -> Auth {
        Auth {
            users,
            token,
            remembered: Mutex::new(HashMap::new()),
            checker: Arc::new(checker),
            throttle: Throttle::default(),
        }
    }

    /// Check the `Authorization` header of a request from `peer` (unknown in tests that
    /// call the router directly).
    pub async fn login(&self, header: Option<&str>, peer: Option<IpAddr>) -> Login {
        let header = header.unwrap_or_default().trim();
        let key: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        if let Some((actor, at)) = self.remembered.lock().unwrap().get(&key)
            && at.elapsed() < REMEMBER
        {
            return Login::Allowed(actor.clone());
        }
        if let Some(wait) = peer.and_then(|p| self.throttle.wait(p, Instant::now())) {
            return Login::Wait(wait);
        }
        let verdict = match parse(header) {
            // A browser always asks once without credentials (to get the challenge): no
            // failure to count.
            None => return Login::Refused(Refused::nobody()),
            Some(Credentials::Token(token)) => self.token_matches(&token),
            Some(Credentials::Password { user, password }) => {
                match self.password_matches(user, password).await {
                    Some(verdict) => verdict,
                    None => return Login::Wait(BUSY_RETRY),
                }
            }
        };
        match verdict {
            Ok(actor) => {
                if let Some(p) = peer {
                    self.throttle.succeeded(p);
                }
                self.remember(key, &actor);
                Login::Allowed(actor)
            }
            Err(mut refused) => {
                if let Some(p) = peer
                    && let Failed::MustWait(wait) = self.throttle.failed(p, Instant::now())
                {
                    refused.now_waits = Some(wait);
                }
                Login::Refused(refused)
            }
        }
    }

    fn token_matches(&self, offered: &str) -> Result<String, Refused> {
        let token = self.token.as_deref().ok_or(Refused::nobody())?;
        if bool::from(token.as_bytes().ct_eq(offered.as_bytes())) {
            Ok("web:token".into())
        } else {
            Err(Refused::nobody())
        }
    }

    /// `None` when no check came free in time.
    async fn password_matches(
        &self,
        user: String,
        password: String,
    ) -> Option<Result<String, Refused>> {
        let refused = Refused {
            claimed: Some(user.chars().take(64).collect()),
            now_waits: None,
        };
        let known = self.users.get(&user).cloned();
        let slot = self.checker.slot(password::QUEUE_WAIT).await?;
        let checker = self.checker.clone();
        let matched = tokio::task::spawn_blocking(move || {
            // An unknown user costs the same verification as a known one.
            let hash = known.as_deref().unwrap_or(password::unknown_user_hash());
            let matched = checker.matches(&slot, hash, password.as_bytes());
            matched && known.is_some()
        })
        .await
        .unwrap_or(false);
        Some(if matched {
            Ok(format!("web:{user}"))
        } else {
            Err(refused)
        })
    }

    fn remember(&self, key: [u8; 32], actor: &str) {
        let mut remembered = self.remembered.lock().unwrap();
        if remembered.len() >= REMEMBER_MAX {
            remembered.clear();
        }
        remembered.insert(key, (actor.to_string(), Instant::now()));
    }
}

/// The credentials an `Authorization` header carries, if it is one we take.
fn parse(header: &str) -> Option<Credentials> {
    let (scheme, value) = header.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Token(value.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials::Password {
        user: user.to_string(),
        password: password.to_string(),
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
        Auth::with(
            users,
            Some("0123456789abcdef-token".into()),
            Checker::new(1),
        )
    }

    fn refused(login: Login) -> Refused {
        match login {
            Login::Refused(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn basic_logins_are_checked_against_argon2_hashes() {
        let a = auth();
        let alice = basic("alice", "hunter2");
        let allowed = Login::Allowed("web:alice".into());
        assert_eq!(a.login(Some(&alice), None).await, allowed);
        // Remembered, and still only for the same header.
        assert_eq!(a.login(Some(&alice), None).await, allowed);
        let wrong = refused(a.login(Some(&basic("alice", "hunter3")), None).await);
        assert_eq!(wrong.claimed.as_deref(), Some("alice"));
        refused(
            a.login(Some(&basic("mallory", "no user has this password")), None)
                .await,
        );
        refused(a.login(Some("Basic !!!notbase64"), None).await);
        refused(a.login(None, None).await);
    }

    #[tokio::test]
    async fn the_bearer_token_is_compared_whole() {
        let a = auth();
        assert_eq!(
            a.login(Some("Bearer 0123456789abcdef-token"), None).await,
            Login::Allowed("web:token".into())
        );
        refused(a.login(Some("Bearer 0123456789abcdef"), None).await);
        refused(a.login(Some("Bearer "), None).await);
        let none = Auth {
            token: None,
            ..auth()
        };
        refused(none.login(Some("Bearer "), None).await);
    }

    #[tokio::test]
    async fn a_client_that_keeps_failing_waits_without_its_passwords_being_checked() {
        let a = auth();
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        let wrong = basic("alice", "guess");
        let mut first_wait = None;
        for _ in 0..10 {
            match a.login(Some(&wrong), Some(peer)).await {
                Login::Refused(r) if r.now_waits.is_some() => {
                    first_wait = r.now_waits;
                    break;
                }
                Login::Refused(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(first_wait, Some(Duration::from_secs(1)));
        // While it waits even the right password is not checked; others get in.
        let right = basic("alice", "hunter2");
        assert!(matches!(
            a.login(Some(&right), Some(peer)).await,
            Login::Wait(_)
        ));
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            a.login(Some(&right), Some(other)).await,
            Login::Allowed("web:alice".into())
        );
    }
}
