//! Building the S3 client: region, retries, timeouts and endpoint from the store's config,
//! and whether upload bodies must be signed.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::Client;

use crate::config::StoreConfig;

pub(super) async fn client_for(cfg: StoreConfig) -> Client {
    let region = RegionProviderChain::first_try(cfg.region.map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    // Standard retries (throttling, 5xx, broken connections) with exponential backoff.
    let retry = RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(10));
    // A connection that stalls must fail (and be retried) rather than hang the job.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
    if cfg.endpoint.is_some() {
        // S3-compatible servers rarely resolve bucket names as host names.
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

/// Whether a request body must be covered by the SigV4 signature (a SHA-256 of every
/// uploaded byte, on top of the backup's own). Over HTTPS, TLS already keeps the bytes
/// from being changed on the way, and each part still carries a CRC32 in a signed header
/// that S3 checks on arrival, so the hash is skipped there, as the AWS CLI does: about
/// a sixth of an upload's CPU. Over plain HTTP (an S3-compatible server on a LAN) nothing
/// else protects the body, so it stays signed. No endpoint means AWS itself: HTTPS.
pub(super) fn payload_needs_signature(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|url| {
        !url.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_endpoints_sign_upload_bodies() {
        assert!(!payload_needs_signature(None), "AWS itself is HTTPS");
        assert!(!payload_needs_signature(Some("https://s3.example.net")));
        assert!(!payload_needs_signature(Some("HTTPS://minio.lan:9000")));
        assert!(payload_needs_signature(Some("http://127.0.0.1:9000")));
        assert!(payload_needs_signature(Some("http://https.example")));
        assert!(
            payload_needs_signature(Some("minio.lan:9000")),
            "no scheme: not known to be TLS"
        );
    }
}
