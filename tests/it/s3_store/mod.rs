//! S3 stores end to end against real S3-compatible servers on loopback, started and
//! stopped by each test: moto's, and rclone's (`<test>::moto`, `<test>::rclone`). Round
//! trips of both target kinds, a multipart backup over 100 MiB, retention, the connection
//! lost mid-upload and mid-download, cancellation, wrong credentials, a missing bucket,
//! and request bodies signed over plain HTTP on both; encryption and object lock (which
//! rclone's server does not have) and HTTPS with a private CA on moto.

mod forwarder;
mod network;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::moto::*;
use crate::common::*;
use rusqlite::Connection;

const TARGETS: &str = "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"offsite\"\nrestore_roots = [\"../restores\"]\n\n\
[targets.volume]\nkind = \"directory\"\npath = \"../data/volume\"\nstore = \"offsite\"\nrestore_roots = [\"../restores\"]\n";

crate::on_moto_and_rclone!(sqlite_and_directory_targets_round_trip_through_the_bucket);
fn sqlite_and_directory_targets_round_trip_through_the_bucket(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    s3.create_bucket("backups", false);
    let home = S3Home::new(&s3.url(), "backups", "", TARGETS);
    drop(make_app_db(&home.path("data/app.db"), 3000));
    let vol = home.path("data/volume");
    std::fs::create_dir_all(vol.join("sub")).unwrap();
    std::fs::write(vol.join("a.txt"), b"alpha").unwrap();
    std::fs::write(vol.join("sub/b.bin"), vec![9u8; 200_000]).unwrap();

    let db = home.json(&["backup", "app-db"]);
    assert_eq!(db["store"], "offsite");
    assert_eq!(db["status"], "complete");
    let dir = home.json(&["backup", "volume"]);

    // The objects are where the prefix says, the manifest beside the artifact.
    let keys: Vec<String> = s3.objects("backups").into_iter().map(|(k, _)| k).collect();
    let id = db["id"].as_str().unwrap();
    assert!(
        keys.contains(&format!("lifeboat/app-db/{id}.sqlite.zst")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("lifeboat/app-db/{id}.manifest.json")),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 4, "{keys:?}");

    let all = home.json(&["list"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    for target in ["app-db", "volume"] {
        let v = home.json(&["verify", target]);
        assert_eq!(v["ok"], true, "{v}");
    }

    let dest = home.path("restores/app.db");
    home.json(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    let restored = Connection::open(&dest).unwrap();
    assert_eq!(
        count(&restored, "repository") as u64,
        db["sqlite"]["tables"]["repository"].as_u64().unwrap()
    );
    let dest = home.path("restores/volume");
    home.json(&["restore", "volume", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(
        std::fs::read(dest.join("sub/b.bin")).unwrap(),
        vec![9u8; 200_000]
    );
    assert_eq!(dir["kind"], "directory");
    assert!(s3.open_uploads("backups").is_empty());
}

crate::on_moto_and_rclone!(a_backup_over_100_mib_goes_up_in_parts_and_comes_back_whole);
fn a_backup_over_100_mib_goes_up_in_parts_and_comes_back_whole(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    s3.create_bucket("big", false);
    let home = S3Home::new(&s3.url(), "big", "", TARGETS);
    make_big_db(&home.path("data/app.db"), 110); // incompressible: ~110 MiB stored
    let backup = home.json(&["backup", "app-db"]);
    let size = backup["size_bytes"].as_u64().unwrap();
    assert!(size > 100 << 20, "{size}");

    // A multipart object's ETag ends in "-<number of parts>" (on moto: rclone keeps files,
    // not parts, and gives every object the MD5 of its bytes as its ETag).
    let c = s3.client();
    let head = s3
        .rt
        .block_on(
            c.head_object()
                .bucket("big")
                .key(format!("lifeboat/{}", backup["artifact"].as_str().unwrap()))
                .send(),
        )
        .unwrap();
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    if kind == S3Kind::Moto {
        let parts: usize = etag.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(parts, (size as usize).div_ceil(8 << 20), "{etag}");
    }
    assert_eq!(head.content_length(), Some(size as i64));

    let v = home.json(&["verify", "app-db"]);
    assert_eq!(v["ok"], true, "{v}");
    let dest = home.path("restores/big.db");
    home.json(&["restore", "app-db", "--to", dest.to_str().unwrap(), "--yes"]);
    assert_eq!(count(&Connection::open(&dest).unwrap(), "blobs"), 110 * 16);
    assert!(s3.open_uploads("big").is_empty());
}

crate::on_moto_and_rclone!(prune_applies_retention_to_the_bucket);
fn prune_applies_retention_to_the_bucket(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    s3.create_bucket("keep", false);
    let targets = "[targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"offsite\"\nretention = { last = 2 }\n";
    let home = S3Home::new(&s3.url(), "keep", "", targets);
    let conn = make_app_db(&home.path("data/app.db"), 50);
    let mut ids = Vec::new();
    for _ in 0..3 {
        insert_rows(&conn, 5);
        ids.push(
            home.json(&["backup", "app-db"])["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let dry = home.ok(&["prune", "app-db", "--dry-run"]);
    assert!(dry.contains(&format!("remove  {}", ids[0])), "{dry}");
    assert_eq!(s3.objects("keep").len(), 6, "dry run removed nothing");

    home.ok(&["prune", "app-db"]);
    assert_eq!(home.ids("app-db"), vec![ids[2].clone(), ids[1].clone()]);
    let keys: Vec<String> = s3.objects("keep").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    let gone = format!("lifeboat/app-db/{}.", ids[0]);
    assert!(keys.iter().all(|k| !k.starts_with(&gone)), "{keys:?}");
    assert_eq!(home.json(&["verify", "app-db"])["ok"], true);
}

crate::on_moto_and_rclone!(a_missing_bucket_is_named);
fn a_missing_bucket_is_named(kind: S3Kind) {
    let s3 = S3Server::on(kind);
    let home = S3Home::new(&s3.url(), "no-such-bucket", "", TARGETS);
    drop(make_app_db(&home.path("data/app.db"), 10));
    let out = home.run(&["backup", "app-db"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("\"no-such-bucket\" does not exist"), "{err}");
    let out = home.run(&["list", "app-db"]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

/// Make an IAM user with full S3 rights and a bucket while moto does not yet check
/// signatures; returns the user's key pair. boto3 comes with moto.
fn iam_user_and_bucket(moto: &Moto, bucket: &str) -> (String, String) {
    let script = format!(
        r#"
import boto3, json
kw = dict(endpoint_url="{url}", region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="lifeboat")
iam.put_user_policy(UserName="lifeboat", PolicyName="s3", PolicyDocument=json.dumps(
    {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}]}}))
key = iam.create_access_key(UserName="lifeboat")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket="{bucket}")
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
        url = moto.url()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut parts = text.split_whitespace();
    (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    )
}

crate::on_moto_and_rclone!(wrong_or_missing_credentials_are_refused_with_the_bucket_named);
fn wrong_or_missing_credentials_are_refused_with_the_bucket_named(kind: S3Kind) {
    // moto checks signatures and IAM policies after its first four requests. (It also
    // refuses correctly signed requests whose query has a '/', such as every prefixed
    // listing lifeboat makes, getmoto/moto#5948; so the right key is shown to pass on
    // rclone only, which checks every request against its one key pair, test/test.)
    let (s3, key) = match kind {
        S3Kind::Moto => {
            let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
            let (key, _secret) = iam_user_and_bucket(&moto, "guarded");
            (moto, key)
        }
        S3Kind::Rclone => {
            let rclone = S3Server::on(kind);
            rclone.create_bucket("guarded", false);
            (rclone, "test".to_string())
        }
    };
    let mut home = S3Home::new(&s3.url(), "guarded", "", TARGETS);
    drop(make_app_db(&home.path("data/app.db"), 10));
    if kind == S3Kind::Rclone {
        home.json(&["backup", "app-db"]);
        assert_eq!(home.ids("app-db").len(), 1, "the right key gets in");
    }

    // A real key with the wrong secret.
    home.key = key;
    home.secret = "not-the-secret".into();
    let out = home.run(&["backup", "app-db"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(err.contains("s3://guarded/lifeboat/app-db/"), "{err}");

    // A key the server does not know.
    home.key = "AKIANOTAREALKEY00000".into();
    let out = home.run(&["list", "app-db"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("InvalidAccessKeyId"), "{err}");

    // No credentials anywhere in the chain.
    let mut cmd = home.command(&["backup", "app-db"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no usable AWS credentials"), "{err}");
    assert!(err.contains("s3://guarded/"), "{err}");
}

/// moto only: rclone's S3 server has neither object lock nor versioning (it accepts the
/// headers and keeps no retention), so it cannot hold backups a compromised bot cannot
/// delete; `docs/s3-and-gcp.md` says so.
#[test]
fn encryption_and_object_lock_settings_reach_every_object() {
    let moto = Moto::start();
    moto.create_bucket("locked", true);
    let extra = "sse = \"AES256\"\nobject_lock_mode = \"GOVERNANCE\"\nobject_lock_days = 2\n";
    let home = S3Home::new(&moto.url(), "locked", extra, TARGETS);
    drop(make_app_db(&home.path("data/app.db"), 100));
    let backup = home.json(&["backup", "app-db"]);
    let c = moto.client();
    for key in [
        backup["artifact"].as_str().unwrap().to_string(),
        format!("app-db/{}.manifest.json", backup["id"].as_str().unwrap()),
    ] {
        let head = moto
            .rt
            .block_on(
                c.head_object()
                    .bucket("locked")
                    .key(format!("lifeboat/{key}"))
                    .send(),
            )
            .unwrap();
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("AES256"),
            "{key}"
        );
        assert_eq!(
            head.object_lock_mode().map(|m| m.as_str()),
            Some("GOVERNANCE"),
            "{key}"
        );
        let until = head.object_lock_retain_until_date().unwrap().secs();
        let now = chrono::Utc::now().timestamp();
        assert!(
            until > now + 86_400 && until <= now + 2 * 86_400 + 60,
            "{key}"
        );
        // A locked version cannot be deleted early, not even by the bot's own credentials.
        let deleted = moto.rt.block_on(
            c.delete_object()
                .bucket("locked")
                .key(format!("lifeboat/{key}"))
                .set_version_id(head.version_id().map(str::to_string))
                .send(),
        );
        assert!(deleted.is_err(), "{key}: a locked version was deleted");
    }
    assert_eq!(home.json(&["verify", "app-db"])["ok"], true);
}

/// A private certificate authority and a server certificate for 127.0.0.1 signed by it,
/// made with the openssl CLI in `dir`: (CA certificate, server certificate, server key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}); run scripts/test.sh"));
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ext =
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("server.ext"), ext).unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lifeboat test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn an_https_endpoint_with_a_private_ca_is_refused_until_the_ca_is_trusted() {
    let scratch = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(&scratch.path().join("tls"));
    let moto = Moto::start_tls(&cert, &key);
    let url = format!("https://127.0.0.1:{}", moto.port);
    // The bucket, made over the same TLS (boto3 comes with moto).
    let script = format!(
        "import boto3; boto3.client('s3', endpoint_url='{url}', region_name='us-east-1', \
         aws_access_key_id='test', aws_secret_access_key='test', verify='{}').create_bucket(Bucket='tls')",
        ca.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let mut home = S3Home::new(&url, "tls", "", TARGETS);
    let vol = home.path("data/volume");
    std::fs::create_dir_all(&vol).unwrap();
    // Incompressible and over two parts, so parts go up concurrently over TLS.
    let mut noise = vec![0u8; 20 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(vol.join("noise.bin"), &noise).unwrap();

    // The server's certificate is not trusted: refused, saying why and what to do.
    let out = home.run(&["backup", "volume"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_contains_all(
        &err,
        &["s3://tls/lifeboat/", "not trusted", "SSL_CERT_FILE"],
    );

    // Trusted: the backup goes up in parts over TLS, verifies and comes back whole.
    home.trusted_ca = Some(ca);
    assert!(home.ids("volume").is_empty());
    let backup = home.json(&["backup", "volume"]);
    assert!(
        backup["size_bytes"].as_u64().unwrap() > 16 << 20,
        "{backup}"
    );
    let v = home.json(&["verify", "volume"]);
    assert_eq!(v["ok"], true, "{v}");
    let dest = home.path("restores/volume");
    home.json(&["restore", "volume", "--to", dest.to_str().unwrap(), "--yes"]);
    assert!(std::fs::read(dest.join("noise.bin")).unwrap() == noise);
}
