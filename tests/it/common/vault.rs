//! A lifeboat home whose store `vault` is a restic-format repository, and the real
//! `restic` beside it, for the repository tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::moto::aws_env;
use super::{Home, json_of, stderr, stdout, succeeded};

pub const PASSWORD: &str = "correct horse battery staple";

/// A lifeboat home with a repository store `vault` at `location` and the given targets.
pub struct Vault {
    pub home: Home,
    pub location: String,
    pub password: String,
    /// Extra environment (S3 credentials) for lifeboat and restic alike.
    pub s3: bool,
}

impl Vault {
    pub fn local(targets: &str) -> Vault {
        let home = Home::new();
        let location = home.path("vault").to_string_lossy().into_owned();
        Vault::with(home, location, targets, false)
    }

    pub fn with(home: Home, location: String, targets: &str, s3: bool) -> Vault {
        home.write_config(&format!(
            "[stores.vault]\nkind = \"repository\"\nlocation = \"{location}\"\n\
             password = \"${{LIFEBOAT_REPO_PASSWORD}}\"\n\n{targets}"
        ));
        Vault {
            home,
            location,
            password: PASSWORD.into(),
            s3,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.home.command(args);
        cmd.env("LIFEBOAT_REPO_PASSWORD", &self.password);
        if self.s3 {
            aws_env(&mut cmd, &self.home, "test", "test");
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json_of(args, |a| self.ok(a))
    }

    pub fn backup(&self, target: &str) -> serde_json::Value {
        self.json(&["backup", target])
    }

    /// The real restic on this repository.
    pub fn restic(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(&self.location)
            .arg("--no-cache")
            .args(args)
            .env("RESTIC_PASSWORD", &self.password);
        if self.s3 {
            aws_env(&mut cmd, &self.home, "test", "test");
        }
        cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run restic ({e}); these tests need it: run scripts/test.sh (apt: restic)"
            )
        })
    }

    pub fn restic_ok(&self, args: &[&str]) -> String {
        let out = self.restic(args);
        assert!(
            out.status.success(),
            "restic {args:?} failed:\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path(rel)
    }
}

pub fn sqlite_target(name: &str, file: &str) -> String {
    format!("[targets.{name}]\nkind = \"sqlite\"\npath = \"../data/{file}\"\nstore = \"vault\"\n\n")
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every file under `dir` with its SHA-256, for "nothing changed" comparisons.
pub fn tree_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), sha256_file(&p));
            }
        }
    }
    out
}

/// The largest pack file of a local repository.
pub fn largest_pack(repo: &Path) -> PathBuf {
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for sub in std::fs::read_dir(repo.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            packs.push((f.metadata().unwrap().len(), f.path()));
        }
    }
    packs.sort();
    packs.pop().expect("the repository has packs").1
}

pub fn count_packs(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("data"))
        .map(|d| {
            d.flatten()
                .map(|s| std::fs::read_dir(s.path()).map(|f| f.count()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}
