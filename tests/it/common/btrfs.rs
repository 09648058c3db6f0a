//! A real btrfs filesystem for a test: an image file on a loop device (`mkfs.btrfs` from
//! btrfs-progs, `losetup`), mounted on a private directory; unmounted and detached when
//! dropped, also when the test fails. Needs root, as the test command runs.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Btrfs {
    /// Holds the image and the mount point.
    dir: tempfile::TempDir,
    /// Where the filesystem is mounted.
    pub mount: PathBuf,
    device: String,
}

/// Run a command that must succeed; its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (from btrfs-progs / util-linux): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Btrfs {
    /// A fresh filesystem of `mb` MiB (at least 200: btrfs's own minimum is near 110).
    pub fn new(mb: u64) -> Btrfs {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test makes a btrfs on a loop device and must run as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("btrfs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(mb << 20)
            .unwrap();
        run("mkfs.btrfs", &["-q", image.to_str().unwrap()]);
        let device = run("losetup", &["-f", "--show", image.to_str().unwrap()])
            .trim()
            .to_string();
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let fs = Btrfs { dir, mount, device };
        run("mount", &[&fs.device, fs.mount.to_str().unwrap()]);
        fs
    }

    /// Make the subvolume `rel` (below the mount point); its path.
    pub fn subvolume(&self, rel: &str) -> PathBuf {
        let path = self.mount.join(rel);
        run("btrfs", &["subvolume", "create", path.to_str().unwrap()]);
        path
    }

    /// Every subvolume of the filesystem, as paths relative to the mount point, as
    /// `btrfs subvolume list` sees them.
    pub fn subvolumes(&self) -> Vec<String> {
        let listed = run(
            "btrfs",
            &["subvolume", "list", self.mount.to_str().unwrap()],
        );
        let mut paths: Vec<String> = listed
            .lines()
            .filter_map(|l| l.split(" path ").nth(1))
            .map(str::to_string)
            .collect();
        paths.sort();
        paths
    }

    /// A read-only snapshot of `from` at `to`, made with the `btrfs` program.
    pub fn snapshot(&self, from: &Path, to: &Path) {
        run(
            "btrfs",
            &[
                "subvolume",
                "snapshot",
                "-r",
                from.to_str().unwrap(),
                to.to_str().unwrap(),
            ],
        );
    }

    /// The image's directory (not on the btrfs itself).
    pub fn outside(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        // Lazily, so a process a failed test left inside does not keep the device attached.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
