//! Password checks against argon2 hashes with bounded cost: at most a few run at once
//! (each needs the hash's memory, 19 MiB with the default parameters), and each runs in a
//! buffer kept for the next check, so a flood of wrong passwords keeps memory flat instead
//! of leaving a fresh allocation behind in every thread's malloc arena.

use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest a login waits for a free check before it is answered "busy, retry".
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The longest salt an argon2 hash carries (PHC strings allow 48 bytes, base64 64 chars).
const MAX_SALT: usize = 64;

/// Runs argon2 checks, a bounded number at a time, in reused memory.
pub struct Checker {
    slots: std::sync::Arc<Semaphore>,
    buffers: Mutex<Vec<Vec<Block>>>,
}

/// The right to run one check now; waiting for it is bounded by [`QUEUE_WAIT`].
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Checker {
    /// `at_once` checks may run together (at least one).
    pub fn new(at_once: usize) -> Checker {
        Checker {
            slots: std::sync::Arc::new(Semaphore::new(at_once.max(1))),
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// Half the cores: the other half stay free for health checks, chat and jobs.
    pub fn for_this_machine() -> Checker {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Checker::new(cores / 2)
    }

    /// Wait at most `wait` for a slot; `None` when every slot stayed busy.
    pub async fn slot(&self, wait: Duration) -> Option<Slot> {
        let slots = self.slots.clone();
        match tokio::time::timeout(wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Some(Slot(permit)),
            _ => None,
        }
    }

    /// Whether `password` matches the PHC-format argon2 `hash`. Blocking (tens of
    /// milliseconds); the caller holds a [`Slot`], which bounds the buffers kept.
    pub fn matches(&self, _slot: &Slot, hash: &str, password: &[u8]) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let Some(setup) = Setup::of(&parsed) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let mut salt_bytes = [0u8; MAX_SALT];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut buffer = self.buffers.lock().unwrap().pop().unwrap_or_default();
        let blocks = setup.params.block_count();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::new());
        }
        let mut out = vec![0u8; expected.len()];
        let hashed = Argon2::new(setup.algorithm, setup.version, setup.params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut buffer[..blocks]);
        self.buffers.lock().unwrap().push(buffer);
        hashed.is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
    }
}

/// What a PHC string says about how it was hashed.
struct Setup {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

impl Setup {
    fn of(hash: &PasswordHash) -> Option<Setup> {
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(hash).ok()?;
        Some(Setup {
            algorithm,
            version,
            params,
        })
    }
}

/// A hash with the default parameters that no login is ever granted by (its user does not
/// exist), so refusing an unknown user costs the same check as a wrong password. The salt
/// is fixed: nothing is protected by this hash.
pub fn unknown_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::from_b64("bm8tdXNlci1oYXMtdGhpcw").expect("a valid salt");
        Argon2::default()
            .hash_password(b"no user has this password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Debian's argon2 tool: `echo -n hunter2 | argon2 somesaltsomesalt -id -e`.
    const DEBIAN: &str = "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$bEfk4vKa91KZa+YyjM36bH00sw8j6SozTR0YtRaSljg";

    #[tokio::test]
    async fn checks_agree_with_other_argon2_implementations_and_reuse_one_buffer() {
        let checker = Checker::new(1);
        let slot = checker.slot(QUEUE_WAIT).await.unwrap();
        assert!(checker.matches(&slot, DEBIAN, b"hunter2"));
        assert!(!checker.matches(&slot, DEBIAN, b"hunter3"));
        let unknown = unknown_user_hash();
        assert!(checker.matches(&slot, unknown, b"no user has this password"));
        assert!(!checker.matches(&slot, unknown, b"hunter2"));
        assert!(!checker.matches(&slot, "not a hash", b"x"));
        assert!(!checker.matches(&slot, "$argon2id$v=19$m=4096,t=3,p=1$c29tZQ", b"x"));
        // Three checks of two sizes left one buffer, grown to the larger.
        let buffers = checker.buffers.lock().unwrap();
        assert_eq!(buffers.len(), 1);
        assert_eq!(buffers[0].len(), Params::DEFAULT.block_count());
    }

    #[tokio::test]
    async fn a_busy_checker_answers_none_once_the_wait_is_over() {
        tokio::time::pause();
        let checker = Checker::new(1);
        let held = checker.slot(QUEUE_WAIT).await.unwrap();
        assert!(checker.slot(QUEUE_WAIT).await.is_none());
        drop(held);
        assert!(checker.slot(QUEUE_WAIT).await.is_some());
    }
}
