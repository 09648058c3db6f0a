//! What the store, its writers and its readers share: the client, bucket and prefix, the
//! encryption and object-lock settings of every write, and errors that name bucket and key.

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use bytes::Bytes;

use super::super::StoreError;
use crate::config::StoreConfig;

/// Encryption and retention applied to every object written.
#[derive(Debug, Clone, Default)]
pub(super) struct WriteSettings {
    pub(super) sse: Option<ServerSideEncryption>,
    pub(super) sse_kms_key_id: Option<String>,
    pub(super) lock: Option<(ObjectLockMode, u32)>,
}

/// What the writer, the reader and their background tasks share.
pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) describe: String,
    pub(super) settings: WriteSettings,
    /// Whether uploads carry the SHA-256 of their bytes in the request signature (see
    /// [`super::client::payload_needs_signature`]).
    pub(super) sign_payload: bool,
}

impl WriteSettings {
    pub(super) fn from_config(cfg: &StoreConfig) -> WriteSettings {
        WriteSettings {
            sse: cfg.sse.as_deref().map(ServerSideEncryption::from),
            sse_kms_key_id: cfg.sse_kms_key_id.clone(),
            lock: cfg
                .object_lock_mode
                .as_deref()
                .map(ObjectLockMode::from)
                .zip(cfg.object_lock_days),
        }
    }
}

impl Shared {
    pub(super) fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    /// Turn an SDK error into a message that says what was tried on which object, and
    /// what to do about the usual causes.
    pub(super) fn error<E>(&self, action: &str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let url = self.url(key);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().unwrap_or_default().to_string();
        let message = err.message().unwrap_or_default().to_string();
        let detail = if code.is_empty() {
            DisplayErrorContext(&err).to_string()
        } else {
            format!("{code}: {message}")
        };
        // Only a connection that never got an answer can have failed on the certificate.
        let untrusted = status
            .is_none()
            .then(|| untrusted_certificate(&err))
            .flatten();
        let text = match (code.as_str(), status) {
            ("NoSuchBucket", _) => format!(
                "{}: the bucket {:?} does not exist (check `bucket`, `region` and `endpoint`)",
                self.describe, self.bucket
            ),
            ("NoSuchKey", _) | ("NotFound", _) | (_, Some(404)) if !key.is_empty() => {
                return StoreError::NotFound {
                    store: self.describe.clone(),
                    key: key.into(),
                };
            }
            (
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "AllAccessDisabled",
                _,
            )
            | (_, Some(401 | 403)) => format!(
                "{}: access denied {action} {url} ({detail}); check the AWS credentials and the bucket's policy",
                self.describe
            ),
            _ if let Some(reason) = untrusted.as_deref() => format!(
                "{}: {action} {url}: the server's TLS certificate is not trusted ({reason}); if the endpoint uses a private certificate authority, add it to the system's trusted certificates or point SSL_CERT_FILE at a PEM bundle that includes it",
                self.describe
            ),
            _ if status.is_none() && is_credentials_problem(&err) => format!(
                "{}: no usable AWS credentials {action} {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the host an instance role ({})",
                self.describe,
                DisplayErrorContext(&err)
            ),
            _ if status.is_none() => format!(
                "{}: {action} {url} failed after retries: {}",
                self.describe,
                DisplayErrorContext(&err)
            ),
            _ => format!("{}: {action} {url} failed: {detail}", self.describe),
        };
        StoreError::Other(text)
    }

    pub(super) fn put_request(
        &self,
        key: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<(), StoreError>> {
        let s = &self.settings;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .set_server_side_encryption(s.sse.clone())
            .set_ssekms_key_id(s.sse_kms_key_id.clone())
            .set_object_lock_mode(s.lock.as_ref().map(|(m, _)| m.clone()))
            .set_object_lock_retain_until_date(s.lock.as_ref().map(|(_, d)| retain_until(*d)));
        let sign = self.sign_payload;
        async move {
            let sent = if sign {
                req.send().await
            } else {
                req.customize().disable_payload_signing().send().await
            };
            sent.map(|_| ()).map_err(|e| self.error("writing", key, e))
        }
    }
}

/// The TLS library's reason when the connection failed because the server's certificate
/// was refused (unknown issuer, expired, wrong name), e.g. "invalid peer certificate:
/// UnknownIssuer". The reason is only reachable as text through the SDK's error layers.
fn untrusted_certificate<E: std::error::Error + 'static>(err: &SdkError<E>) -> Option<String> {
    let text = DisplayErrorContext(err).to_string();
    let start = text.find("invalid peer certificate")?;
    let reason = &text[start..];
    Some(reason[..reason.find(" (").unwrap_or(reason.len())].to_string())
}

fn is_credentials_problem<E: std::error::Error + 'static>(err: &SdkError<E>) -> bool {
    let text = DisplayErrorContext(err).to_string().to_lowercase();
    text.contains("credential")
}

/// The retain-until date of an object written now.
pub(super) fn retain_until(days: u32) -> DateTime {
    let until = chrono::Utc::now() + chrono::Duration::days(days.into());
    DateTime::from_secs(until.timestamp())
}

#[cfg(test)]
impl Shared {
    /// What a store of the bucket `b` (prefix `p/`) at `url` shares, with test credentials.
    pub(super) fn for_tests(name: &str, url: &str) -> Shared {
        let creds = aws_sdk_s3::config::Credentials::new("k", "s", None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(url)
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        Shared {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: "b".into(),
            prefix: "p/".into(),
            describe: format!("s3 store {name:?}"),
            settings: WriteSettings::default(),
            sign_payload: true,
        }
    }
}
