//! The status page's generated token (`[web] generate_token = true`, the built-in
//! config's login): 32 random bytes made at first start, kept in the state directory
//! readable by lifeboat's user alone, reused at every later start, and offered once in
//! the start-up log as an address to open (as Jupyter does).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file beside the state database.
pub const FILE_NAME: &str = "web-token";

/// Where the token of the state database at `state` is kept.
pub fn path(state: &Path) -> PathBuf {
    state.parent().unwrap_or(Path::new(".")).join(FILE_NAME)
}

/// The token in `path`, made first if there is none.
pub fn load_or_create(path: &Path) -> Result<String, String> {
    match read(path) {
        Ok(token) => return Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    }
    let token = fresh().map_err(|e| format!("reading /dev/urandom: {e}"))?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    // Written whole under a private name, then linked into place: another process
    // starting at the same moment reads either no file or the whole token, and the
    // first link wins.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = write_private(&tmp, &token);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path).map_err(|e| format!("reading {}: {e}", path.display()))
        }
        Err(e) => Err(format!("writing {}: {e}", path.display())),
    }
}

/// The token kept in `path`; a file others could read is made private first.
fn read(path: &Path) -> std::io::Result<String> {
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by other users; made it private (mode 600)",
            path.display()
        );
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    let token = fs::read_to_string(path)?.trim().to_string();
    if token.len() < 32 {
        return Err(std::io::Error::other(
            "the token is shorter than 32 characters; delete the file to have a new one made",
        ));
    }
    Ok(token)
}

/// 32 bytes from the OS's random source, as 64 hex digits.
fn fresh() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{token}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(&dir.path().join("lifeboat.db"));
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first, "kept across starts");
        let other = tempfile::tempdir().unwrap();
        let second = load_or_create(&super::path(&other.path().join("x.db"))).unwrap();
        assert_ne!(first, second);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), first);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "made private again");
    }
}
