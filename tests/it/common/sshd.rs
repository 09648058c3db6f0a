//! A real OpenSSH server on a loopback port for the tests of remote targets: throwaway
//! host and client keys in a temp dir, the test's own sshd_config, killed on drop. The
//! "remote host" is this machine, logged into as the user running the tests (root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// Generate an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) -> PathBuf {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) must be installed; scripts/test.sh installs it");
    assert!(status.success(), "ssh-keygen failed");
    path.to_path_buf()
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Start sshd with `extra` lines appended to its config.
    pub fn start_with(extra: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/test.sh does) — these tests do not skip"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"));
        keygen(&d.join("client_ed25519"));
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = super::ports::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nMaxSessions 64\nMaxStartups 64\n{extra}\n",
            d = d.display()
        );
        let cfg = d.join("sshd_config");
        std::fs::write(&cfg, config).unwrap();
        let check = Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "sshd -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut sshd = Sshd { dir, port, child };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A known_hosts file holding this server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        let key = std::fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap();
        std::fs::write(&path, format!("[127.0.0.1]:{} {key}", self.port)).unwrap();
        path
    }

    /// The TOML keys that point a target at this server.
    pub fn target_keys(&self) -> String {
        format!(
            "host = \"{}\"\nssh_identity = \"{}\"\nssh_known_hosts = \"{}\"\n",
            self.url(),
            self.client_key().display(),
            self.known_hosts().display()
        )
    }

    /// Kill the sshd processes serving connections (not the server, and not the commands
    /// they run): as if the network dropped.
    pub fn kill_connections(&self) -> usize {
        let pids: Vec<i32> = descendants(self.child.id() as i32)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sshd")
            })
            .collect();
        for pid in &pids {
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        pids.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose parent is `pid`, and theirs, from /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: split after it.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        if let Some(ppid) = after.split(' ').nth(1).and_then(|s| s.parse::<i32>().ok()) {
            parents.insert(p, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, pp)| **pp == parent) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}
