//! Relative paths in the config resolve against the config file's directory, except a
//! remote target's data paths, which are paths on that host and stay as written.

use std::path::{Component, Path, PathBuf};

use super::Config;

impl Config {
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let base = absolute(base);
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = normalize(&base.join(&*p));
            }
        };
        fix(&mut self.server.state);
        fix(&mut self.server.runbooks);
        if let Some(s) = self.server.scratch.as_mut() {
            fix(s);
        }
        for store in self.stores.values_mut() {
            if let Some(p) = store.path.as_mut() {
                fix(p);
            }
            // A repository location without a scheme (`s3:`…) is a local path.
            if let Some(loc) = store.location.as_mut()
                && !loc.contains(':')
            {
                let mut p = PathBuf::from(&*loc);
                fix(&mut p);
                *loc = p.to_string_lossy().into_owned();
            }
        }
        for target in self.targets.values_mut() {
            // A remote target's path and restore roots are paths on that host.
            if target.host.is_none() {
                if let Some(p) = target.path.as_mut() {
                    fix(p);
                }
                target.restore_roots.iter_mut().for_each(fix);
            }
            if let Some(p) = target.continuous_spool.as_mut() {
                fix(p);
            }
            if let Some(p) = target.ssh_identity.as_mut() {
                fix(p);
            }
            if let Some(p) = target.ssh_known_hosts.as_mut() {
                fix(p);
            }
            // The keys of `hooks.host` live on this machine, like the target's own.
            if let Some(h) = target.hooks.as_mut() {
                h.ssh_identity
                    .iter_mut()
                    .chain(h.ssh_known_hosts.iter_mut())
                    .for_each(fix);
            }
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Lexical normalization: drop `.` and fold `..` (no filesystem access).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse_test as parse;

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let c = parse("[stores.l]\nkind=\"local\"\npath=\"../var/backups\"\n").unwrap();
        assert_eq!(
            c.stores["l"].path.as_deref(),
            Some(Path::new("/etc/var/backups"))
        );
        assert_eq!(c.server.state, Path::new("/etc/var/lifeboat.db"));
    }

    #[test]
    fn repository_paths_resolve_but_urls_stay() {
        let c = parse(
            "[stores.a]\nkind=\"repository\"\nlocation=\"vault\"\npassword=\"${TOKEN}\"\n\
             [stores.b]\nkind=\"repository\"\nlocation=\"s3:http://127.0.0.1:9/b/p\"\npassword=\"${TOKEN}\"\n",
        )
        .unwrap();
        assert_eq!(
            c.stores["a"].location.as_deref(),
            Some("/etc/lifeboat/vault")
        );
        assert_eq!(
            c.stores["b"].location.as_deref(),
            Some("s3:http://127.0.0.1:9/b/p")
        );
    }
}
