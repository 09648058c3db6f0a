//! serve's outgoing chat connections (Slack Socket Mode, Discord Gateway) and the alert
//! channels it cannot post to: their state as `/healthz`, `/metrics` and `lifeboat
//! status` show it, and the reconnection backoff.

use std::time::Duration;

use crate::db::Db;
use crate::db::chat_channels::UnusableChannel;
use crate::db::chat_links::ChatLink;

/// One platform's connection, as its client reports it.
#[derive(Clone)]
pub struct Link {
    db: Db,
    platform: &'static str,
    mode: &'static str,
}

impl Link {
    pub fn new(db: Db, platform: &'static str, mode: &'static str) -> Link {
        Link { db, platform, mode }
    }

    pub fn platform(&self) -> &'static str {
        self.platform
    }

    pub async fn connecting(&self, detail: &str) {
        self.set("connecting", detail).await
    }

    pub async fn connected(&self, detail: &str) {
        tracing::info!("{} {} connected {detail}", self.platform, self.mode);
        self.set("connected", detail).await
    }

    pub async fn disconnected(&self, detail: &str) {
        tracing::warn!("{} {} disconnected: {detail}", self.platform, self.mode);
        self.set("disconnected", detail).await
    }

    /// The connection dropped (`why`): record it, wait out the backoff's next pause (or
    /// until `stop`), and record the next attempt. False when stopped meanwhile.
    pub async fn retry_after(
        &self,
        why: &str,
        backoff: &mut Backoff,
        stop: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let pause = backoff.pause();
        self.disconnected(&format!("{why}; retrying in {}s", pause.as_secs()))
            .await;
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        self.connecting("").await;
        true
    }

    pub async fn stopped(&self) {
        self.set("stopped", "lifeboat serve stopped").await
    }

    async fn set(&self, state: &'static str, detail: &str) {
        let (db, platform, mode, detail) = (
            self.db.clone(),
            self.platform,
            self.mode,
            detail.to_string(),
        );
        let saved =
            tokio::task::spawn_blocking(move || db.chat_link_set(platform, mode, state, &detail))
                .await;
        if let Ok(Err(e)) = saved {
            tracing::error!("recording the {platform} connection state: {e}");
        }
    }
}

/// Exponential reconnection delays: 1 s doubling to 60 s, each with up to a quarter more
/// at random so that many bots cut off together do not return in step.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(60);

    /// The pause before the next attempt.
    pub fn pause(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    /// A connection came up: the next failure starts from the shortest pause again.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The `lifeboat_chat_connected` samples: 1 per connected platform, 0 otherwise.
pub fn metric_samples(links: &[ChatLink]) -> Vec<(String, f64)> {
    links
        .iter()
        .map(|l| {
            (
                format!("{{platform=\"{}\",mode=\"{}\"}}", l.platform, l.mode),
                if l.connected() { 1.0 } else { 0.0 },
            )
        })
        .collect()
}

/// `/healthz`'s view: platform → mode, state, since, detail; and, for a platform with
/// alert channels lifeboat cannot post to, `unusable_channels` (channel, problem, since).
pub fn health(links: &[ChatLink], unusable: &[UnusableChannel]) -> serde_json::Value {
    let mut chat: serde_json::Map<String, serde_json::Value> = links
        .iter()
        .map(|l| {
            (
                l.platform.clone(),
                serde_json::json!({"mode": l.mode, "connected": l.connected(), "state": l.state, "since": l.since, "detail": l.detail}),
            )
        })
        .collect();
    for c in unusable {
        let platform = chat
            .entry(c.platform.clone())
            .or_insert_with(|| serde_json::json!({}));
        let entry =
            serde_json::json!({"channel": c.channel, "problem": c.problem, "since": c.since});
        match platform["unusable_channels"].as_array_mut() {
            Some(list) => list.push(entry),
            None => platform["unusable_channels"] = serde_json::json!([entry]),
        }
    }
    chat.into()
}

/// Lines for `lifeboat status`, one per alert channel lifeboat cannot post to.
pub fn unusable_lines(unusable: &[UnusableChannel]) -> Vec<String> {
    unusable
        .iter()
        .map(|c| {
            format!(
                "alert channel {} cannot be posted to since {}: {}",
                c.sink(),
                c.since,
                c.problem
            )
        })
        .collect()
}

/// Lines for `lifeboat status`, one per connection serve keeps (none in HTTP mode).
pub fn status_lines(links: &[ChatLink]) -> Vec<String> {
    links
        .iter()
        .map(|l| {
            let mode = if l.mode == "socket" {
                "Socket Mode"
            } else {
                "Gateway"
            };
            let detail = if l.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", l.detail)
            };
            format!(
                "{} {mode}: {} since {}{detail}",
                l.platform, l.state, l.since
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_channels_join_their_platform_in_the_health_view() {
        let link = ChatLink {
            platform: "slack".into(),
            mode: "socket".into(),
            state: "connected".into(),
            since: "t0".into(),
            detail: String::new(),
        };
        let gone = |platform: &str, channel: &str| UnusableChannel {
            platform: platform.into(),
            channel: channel.into(),
            problem: "channel_not_found".into(),
            since: "t1".into(),
        };
        let v = health(&[link], &[gone("slack", "C0"), gone("discord", "9")]);
        assert_eq!(v["slack"]["connected"], true);
        assert_eq!(v["slack"]["unusable_channels"][0]["channel"], "C0");
        assert_eq!(
            v["discord"]["unusable_channels"][0]["problem"],
            "channel_not_found"
        );
        assert_eq!(health(&[], &[]), serde_json::json!({}));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_starts_over_after_a_connection() {
        let mut b = Backoff::default();
        let first = b.pause();
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1250));
        let second = b.pause();
        assert!(second >= Duration::from_secs(2) && second <= Duration::from_millis(2500));
        for _ in 0..10 {
            b.pause();
        }
        let capped = b.pause();
        assert!(
            capped >= Backoff::MAX && capped <= Backoff::MAX.mul_f64(1.25),
            "{capped:?}"
        );
        b.reset();
        assert!(b.pause() <= Duration::from_millis(1250));
    }
}
