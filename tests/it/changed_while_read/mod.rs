//! Copies that changed while read: a directory target's files modified, deleted and created
//! exactly while the backup reads them (on this host and over SSH), the backup kept and
//! flagged (`on_change = "warn"`) or refused (`"fail"`), status, the one alert, and the
//! restore plans and drills that name the newest consistent backup; and seed 001's DuckDB
//! volume checkpointing during the read.
//!
//! Deterministic by construction: the backup runs in this process through the library with
//! a `Progress` whose first bytes of the reading phase run the change, so it happens after
//! the tree was listed and the first file opened, before the copy ends; nothing waits on
//! the clock.

mod alerts;
mod local;
mod seed_001;
mod ssh;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lifeboat::app::App;
use lifeboat::progress::{Cancel, JobContext, Progress};
use lifeboat::stores::manifest::Manifest;

use crate::common::*;

/// lifeboat in this process, on `home`'s config and state.
pub fn open_app(home: &Home) -> App {
    let path = home.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |name: &str| {
        secrets()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let config = lifeboat::config::Config::parse(
        &text,
        &path.display().to_string(),
        path.parent().unwrap(),
        &env,
    )
    .expect("config loads");
    App::open(config).expect("state opens").0
}

type Change = Box<dyn FnOnce() + Send>;

/// Progress that runs one change at the first bytes read while archiving once `after`
/// bytes have been read.
struct DuringRead {
    archiving: AtomicBool,
    after: u64,
    read: AtomicU64,
    change: Mutex<Option<Change>>,
    ran: AtomicBool,
}

impl Progress for DuringRead {
    fn phase(&self, name: &str) {
        self.archiving
            .store(name.starts_with("archiving"), Ordering::SeqCst);
    }
    fn total(&self, _: Option<u64>) {}
    fn advance(&self, bytes: u64) {
        if !self.archiving.load(Ordering::SeqCst) {
            return;
        }
        if self.read.fetch_add(bytes, Ordering::SeqCst) + bytes <= self.after {
            return;
        }
        let change = self.change.lock().unwrap().take();
        if let Some(change) = change {
            change();
            self.ran.store(true, Ordering::SeqCst);
        }
    }
}

/// Back `target` up in this process, running `change` while its files are being read.
pub fn backup_changing(
    app: &App,
    target: &str,
    change: impl FnOnce() + Send + 'static,
) -> lifeboat::error::Result<Manifest> {
    backup_changing_after(app, target, 0, change)
}

/// The same, with the change run at the first read past the first `after` bytes of file
/// content (on this host the walk reads files in name order: a known file is being read).
pub fn backup_changing_after(
    app: &App,
    target: &str,
    after: u64,
    change: impl FnOnce() + Send + 'static,
) -> lifeboat::error::Result<Manifest> {
    let progress = Arc::new(DuringRead {
        archiving: AtomicBool::new(false),
        after,
        read: AtomicU64::new(0),
        change: Mutex::new(Some(Box::new(change))),
        ran: AtomicBool::new(false),
    });
    let ctx = JobContext {
        progress: progress.clone(),
        cancel: Cancel::new(),
    };
    let done = lifeboat::actions::backup::run(app, target, "cli:test", &ctx);
    assert!(
        progress.ran.load(Ordering::SeqCst),
        "the change ran during the read"
    );
    done
}

/// A volume's tree: `a.bin` (the first file read, large enough for several reads),
/// `b.txt`, and `state/` (listed after them).
pub fn make_volume(root: &Path) {
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::write(root.join("a.bin"), vec![3u8; 3 << 20]).unwrap();
    std::fs::write(root.join("b.txt"), "b\n").unwrap();
    std::fs::write(root.join("state/app.log"), "started\n").unwrap();
}

/// Append to a file, as a writer does.
pub fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// The paths a manifest flags, asserting it is kept, complete and inconsistent.
pub fn flagged(m: &Manifest) -> Vec<String> {
    assert_eq!(m.status, "complete");
    assert_eq!(m.consistent, Some(false), "{m:?}");
    m.changed_paths().to_vec()
}
