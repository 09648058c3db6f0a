//! One replicator per target: a lease object in the store naming its holder (host and
//! pid), renewed while it ships. A second process refuses while the lease is current;
//! one that expired, or whose holder on this very host is no longer running, is taken
//! over. Object stores have no compare-and-swap here, so two processes starting in the
//! same instant could both write it: the lease is read back after writing and on every
//! renewal, and a replicator that finds another name there stops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{prefix, read, write};
use crate::error::{Error, Result};
use crate::stores::Store;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub host: String,
    pub pid: u32,
    pub renewed_at: String,
    pub expires_at: String,
}

impl Lease {
    pub fn holder(&self) -> String {
        format!("{} pid {}", self.host, self.pid)
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        crate::units::parse_time(&self.expires_at).is_none_or(|t| t <= now)
    }

    /// Whether the holder is a process on this host that has ended.
    fn holder_gone(&self, host: &str) -> bool {
        self.host == host && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

pub fn key(target: &str) -> String {
    format!("{}lease.json", prefix(target))
}

/// This host's name, as leases name it.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// How this process is named as a lease holder.
pub fn this_holder() -> String {
    format!("{} pid {}", this_host(), std::process::id())
}

/// The lease this process holds on a target's replication.
#[derive(Clone)]
pub struct Held {
    pub lease: Lease,
    ttl: Duration,
}

impl Held {
    pub fn holder(&self) -> String {
        self.lease.holder()
    }

    /// Take the lease, or refuse naming the replicator that holds it.
    pub fn take(store: &dyn Store, target: &str, ttl: Duration) -> Result<Held> {
        let host = this_host();
        let now = Utc::now();
        if let Some(other) = read::<Lease>(store, &key(target))?
            && other.pid != std::process::id()
            && !other.expired(now)
            && !other.holder_gone(&host)
        {
            return Err(Error::Busy(format!(
                "{target} is already being replicated by {} (its lease in {} runs until {}); one replicator per target",
                other.holder(),
                store.describe(),
                other.expires_at
            )));
        }
        let mut held = Held {
            lease: Lease {
                host,
                pid: std::process::id(),
                renewed_at: String::new(),
                expires_at: String::new(),
            },
            ttl,
        };
        held.renew(store, target)?;
        Ok(held)
    }

    /// Extend the lease; an error when another process holds it now.
    pub fn renew(&mut self, store: &dyn Store, target: &str) -> Result<()> {
        if let Some(found) = read::<Lease>(store, &key(target))?
            && (found.host != self.lease.host || found.pid != self.lease.pid)
            && !self.lease.renewed_at.is_empty()
        {
            return Err(Error::Busy(format!(
                "the replication lease of {target} was taken over by {}; this replicator stops",
                found.holder()
            )));
        }
        let now = Utc::now();
        self.lease.renewed_at = crate::units::time_text(now);
        self.lease.expires_at =
            crate::units::time_text(now + chrono::Duration::from_std(self.ttl).unwrap_or_default());
        write(store, &key(target), &self.lease)?;
        Ok(())
    }

    /// Give the lease up (a clean stop): the next replicator need not wait for it.
    pub fn release(self, store: &dyn Store, target: &str) {
        if let Ok(Some(found)) = read::<Lease>(store, &key(target))
            && found.pid == self.lease.pid
            && found.host == self.lease.host
        {
            let _ = store.delete(&key(target));
        }
    }
}
