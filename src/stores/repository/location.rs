//! Where a repository is, written as restic writes it: a local path, or
//! `s3:<endpoint>/<bucket>[/<prefix>]`. The same string works with `restic -r`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustic_backend::{LocalBackend, OpenDALBackend};
use rustic_core::{RepositoryBackends, WriteBackend};

use super::flat::WithoutDirectories;

/// A location that cannot be used: written wrongly, or refused by its backend.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Backend(#[source] Box<rustic_core::RusticError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 {
        /// `http(s)://host[:port]`; restic's bare `s3:host/bucket` means https.
        endpoint: String,
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
}

impl Location {
    pub fn parse(text: &str) -> Result<Location, LocationError> {
        let Some(rest) = text.strip_prefix("s3:") else {
            if let Some((scheme, _)) = text.split_once(':')
                && !scheme.contains('/')
            {
                return Err(LocationError::Invalid(format!(
                    "repository location {text:?}: only local paths and s3:… are supported, not {scheme}:"
                )));
            }
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let (scheme, hostpath) = match rest.split_once("://") {
            Some((s @ ("http" | "https"), hp)) => (s, hp),
            Some((other, _)) => {
                return Err(LocationError::Invalid(format!(
                    "repository location {text:?}: the endpoint must be http:// or https://, not {other}://"
                )));
            }
            None => ("https", rest),
        };
        let mut parts = hostpath.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let bucket = parts.next().unwrap_or_default();
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        if host.is_empty() || bucket.is_empty() {
            return Err(LocationError::Invalid(format!(
                "repository location {text:?}: expected s3:https://host/bucket[/prefix]"
            )));
        }
        if prefix.split('/').any(|p| p == "..") {
            return Err(LocationError::Invalid(format!(
                "repository location {text:?}: the prefix may not contain `..`"
            )));
        }
        Ok(Location::S3 {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The backend rustic_core reads and writes through. S3 credentials and region come
    /// from the usual AWS variables, as for restic.
    pub fn backends(&self) -> Result<RepositoryBackends, LocationError> {
        let be: Arc<dyn WriteBackend> = match self {
            Location::Local(path) => Arc::new(
                LocalBackend::new(path.to_string_lossy(), BTreeMap::new())
                    .map_err(LocationError::Backend)?,
            ),
            Location::S3 {
                endpoint,
                bucket,
                prefix,
            } => {
                let mut options = BTreeMap::from([
                    ("bucket".to_string(), bucket.clone()),
                    ("root".to_string(), format!("/{prefix}")),
                    ("endpoint".to_string(), endpoint.clone()),
                    ("region".to_string(), region()),
                ]);
                for (var, key) in [
                    ("AWS_ACCESS_KEY_ID", "access_key_id"),
                    ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                    ("AWS_SESSION_TOKEN", "session_token"),
                ] {
                    if let Ok(v) = std::env::var(var) {
                        options.insert(key.to_string(), v);
                    }
                }
                let opendal = OpenDALBackend::new("s3", options).map_err(LocationError::Backend)?;
                // restic writes no directory markers on S3, and some servers break on them.
                Arc::new(WithoutDirectories(Arc::new(opendal)))
            }
        };
        Ok(RepositoryBackends::new(be, None))
    }
}

fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "us-east-1".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_s3_urls() {
        assert_eq!(
            Location::parse("/srv/vault").unwrap(),
            Location::Local("/srv/vault".into())
        );
        assert_eq!(
            Location::parse("s3:http://127.0.0.1:9000/acme/lifeboat/").unwrap(),
            Location::S3 {
                endpoint: "http://127.0.0.1:9000".into(),
                bucket: "acme".into(),
                prefix: "lifeboat".into()
            }
        );
        assert_eq!(
            Location::parse("s3:s3.amazonaws.com/acme").unwrap(),
            Location::S3 {
                endpoint: "https://s3.amazonaws.com".into(),
                bucket: "acme".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_open() {
        for bad in [
            "s3:http://host",
            "s3:ftp://host/b",
            "sftp:host:/srv",
            "s3:https://h/b/../x",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
