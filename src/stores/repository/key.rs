//! The key file of a repository lifeboat creates. rustic_core 0.13 derives a new key's
//! encryption key with scrypt at fixed parameters (N = 2^17, r = 8: 128 MiB of memory
//! at every open); restic sizes its own at `init` to stay within 60 MiB (N = 2^15,
//! r = 8) and raises `p` for the time it takes. Every restic-format reader takes the
//! parameters from the key file, so lifeboat writes the key file itself: N = 2^15, r = 8,
//! p = 4 costs the same work as rustic_core's (4 × 2^15 = 2^17 rounds of the same size)
//! in a quarter of the memory, 32 MiB. The file is restic's format: the master key as
//! JSON, encrypted with AES-256-CTR and authenticated with Poly1305-AES under the 64
//! bytes scrypt derives from the password (32 for AES, 16 + 16 for the MAC), the whole
//! stored as JSON named by its SHA-256.

use std::io::Read;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::Aead;
use rustic_core::repofile::{KeyFile, MasterKey};
use rustic_core::{FileType, Id, RepositoryBackends};
use sha2::{Digest, Sha256};

/// scrypt's parameters for new keys: log2(N), r, p.
pub const LOG_N: u8 = 15;
pub const R: u32 = 8;
pub const P: u32 = 4;

fn random(n: usize) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading random bytes: {e}"))?;
    Ok(bytes)
}

/// The key file that opens `master` with `password`.
pub fn key_file(master: &MasterKey, password: &str, hostname: String) -> Result<KeyFile, String> {
    let salt = random(64)?;
    let params = scrypt::Params::new(LOG_N, R, P).map_err(|e| format!("scrypt: {e}"))?;
    let mut derived = [0u8; 64];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut derived)
        .map_err(|e| format!("scrypt: {e}"))?;
    let cipher = Aes256CtrPoly1305Aes::new(aes256ctr_poly1305aes::Key::from_slice(&derived));
    let nonce = random(16)?;
    let plain = serde_json::to_vec(master).map_err(|e| format!("the master key: {e}"))?;
    let sealed = cipher
        .encrypt(nonce.as_slice().into(), plain.as_slice())
        .map_err(|e| format!("encrypting the master key: {e}"))?;
    let mut data = nonce;
    data.extend_from_slice(&sealed);
    Ok(KeyFile {
        hostname: Some(hostname),
        username: None,
        created: Some(rustic_core::jiff::Zoned::now()),
        kdf: "scrypt".into(),
        n: 1 << LOG_N,
        r: R,
        p: P,
        data,
        salt,
    })
}

/// Store a key file for `master` under `password` in the repository at `backends`.
pub fn save(
    backends: &RepositoryBackends,
    master: &MasterKey,
    password: &str,
    hostname: String,
) -> Result<(), String> {
    let file = key_file(master, password, hostname)?;
    let json = serde_json::to_vec(&file).map_err(|e| format!("the key file: {e}"))?;
    let id: Id = hex::encode(Sha256::digest(&json))
        .parse()
        .map_err(|e| format!("the key file's id: {e}"))?;
    backends
        .repository()
        .write_bytes(FileType::Key, &id, false, json.into())
        .map_err(|e| super::one_line(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rustic_core's own key reading opens what is written here, and a wrong password
    /// does not.
    #[test]
    fn the_key_file_opens_with_its_password_only() {
        let master = MasterKey::new();
        let file = key_file(&master, "pw", "host".into()).unwrap();
        assert_eq!((file.n, file.r, file.p), (32768, 8, 4));
        assert!(file.key_from_password(&"pw").is_ok());
        assert!(file.key_from_password(&"other").is_err());
    }
}
