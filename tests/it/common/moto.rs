//! An S3 server on loopback for the tests, started and stopped by each test: moto's, or
//! rclone's (`rclone.rs`); and a lifeboat home whose store `offsite` is a bucket in it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;

use super::Home;
use super::ports::serve_on_free_port;

/// Which S3 server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    Moto,
    Rclone,
}

/// An S3 server's child process on a free loopback port; killed when dropped.
pub struct S3Server {
    pub child: Child,
    pub port: u16,
    pub rt: tokio::runtime::Runtime,
    pub kind: S3Kind,
    /// rclone's buckets: the folders of this directory.
    pub root: Option<tempfile::TempDir>,
}

/// Most tests run on moto only.
pub type Moto = S3Server;

impl S3Server {
    /// A server of this kind (the tests of both kinds use the credentials test/test).
    pub fn on(kind: S3Kind) -> S3Server {
        match kind {
            S3Kind::Moto => Moto::start(),
            S3Kind::Rclone => super::rclone::start(),
        }
    }

    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        Moto::spawn(&[], env)
    }

    /// Serving HTTPS only, with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> Moto {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        Moto::spawn(&["-s", "-c", cert, "-k", key], &[])
    }

    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Moto {
        let (child, port) = serve_on_free_port("moto_server", |port| {
            Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .args(args)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start moto_server ({e}); these tests need it: run scripts/test.sh, or pip install 'moto[server]==5.1.22'"
                    )
                })
        });
        Moto {
            child,
            port,
            rt: tokio::runtime::Runtime::new().unwrap(),
            kind: S3Kind::Moto,
            root: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// An S3 client of the test itself, to look at the bucket behind lifeboat's back.
    pub fn client(&self) -> Client {
        let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        Client::from_conf(conf)
    }

    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        assert!(
            !(object_lock && self.kind == S3Kind::Rclone),
            "rclone's S3 server has no object lock (it ignores the setting)"
        );
        let c = self.client();
        self.rt
            .block_on(
                c.create_bucket()
                    .bucket(name)
                    .object_lock_enabled_for_bucket(object_lock)
                    .send(),
            )
            .unwrap();
    }

    /// (key, size) of every object in the bucket.
    pub fn objects(&self, bucket: &str) -> Vec<(String, i64)> {
        let c = self.client();
        let out = self
            .rt
            .block_on(c.list_objects_v2().bucket(bucket).send())
            .unwrap();
        out.contents()
            .iter()
            .map(|o| (o.key().unwrap().to_string(), o.size().unwrap_or(0)))
            .collect()
    }

    /// Multipart uploads still open in the bucket.
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let c = self.client();
        let out = match self
            .rt
            .block_on(c.list_multipart_uploads().bucket(bucket).send())
        {
            Ok(out) => out,
            // rclone's answer when none are open.
            Err(e) if e.code() == Some("NoSuchUpload") => return Vec::new(),
            Err(e) => panic!("listing the open uploads: {e:?}"),
        };
        out.uploads()
            .iter()
            .map(|u| u.key().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment lifeboat runs with: test credentials and nothing from this machine
/// (empty AWS config files, no instance metadata).
pub fn aws_env(cmd: &mut Command, home: &Home, key: &str, secret: &str) {
    let empty = home.path("config/aws-empty");
    std::fs::write(&empty, "").unwrap();
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

/// A lifeboat home whose store `offsite` is the bucket at `endpoint`.
pub struct S3Home {
    pub home: Home,
    pub key: String,
    pub secret: String,
    /// The CA certificates lifeboat trusts (`SSL_CERT_FILE`); `None`: the system's.
    pub trusted_ca: Option<PathBuf>,
}

impl S3Home {
    pub fn new(endpoint: &str, bucket: &str, store_extra: &str, targets: &str) -> S3Home {
        let home = Home::new();
        home.write_config(&format!(
            "[stores.offsite]\nkind = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"lifeboat/\"\nendpoint = \"{endpoint}\"\n{store_extra}\n{targets}"
        ));
        S3Home {
            home,
            key: "test".into(),
            secret: "test".into(),
            trusted_ca: None,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.home.command(args);
        aws_env(&mut cmd, &self.home, &self.key, &self.secret);
        match &self.trusted_ca {
            Some(ca) => cmd.env("SSL_CERT_FILE", ca),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        cmd
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        super::succeeded(args, self.run(args))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        super::json_of(args, |a| self.ok(a))
    }

    pub fn ids(&self, target: &str) -> Vec<String> {
        self.json(&["list", target])
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.home.path(rel)
    }
}
