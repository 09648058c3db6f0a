//! Slowing down a client that keeps failing to log in: after a few free failures each
//! further one doubles how long its address must wait (up to a minute) before the next
//! password is even checked. Addresses are IPv4 addresses or IPv6 /64 networks (one host
//! usually holds a whole /64). The table is bounded: a flood from many addresses cannot
//! grow it without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have before it must wait.
const FREE_FAILURES: u32 = 5;
/// The first wait; each further failure doubles it.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// An address that has not failed for this long starts over.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// At most this many addresses are remembered.
const MAX_CLIENTS: usize = 10_000;

#[derive(Default)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Record>>,
}

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

/// What a failure did to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Still within its free failures.
    Counted,
    /// It now waits this long (the first time it has to wait, or longer than before).
    MustWait(Duration),
}

impl Throttle {
    /// How long `addr` must still wait before a password of its is checked.
    pub fn wait(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap();
        let until = clients.get(&key(addr))?.until?;
        (until > now).then(|| until - now)
    }

    /// Count a failed login from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) -> Failed {
        let mut clients = self.clients.lock().unwrap();
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS {
                // Keep those that must wait; the rest start over.
                clients.retain(|_, r| r.until.is_some_and(|u| u > now));
            }
        }
        let record = clients.entry(key(addr)).or_insert(Record {
            failures: 0,
            last: now,
            until: None,
        });
        if now.duration_since(record.last) >= FORGET_AFTER {
            *record = Record {
                failures: 0,
                last: now,
                until: None,
            };
        }
        record.failures += 1;
        record.last = now;
        if record.failures <= FREE_FAILURES {
            return Failed::Counted;
        }
        let doublings = (record.failures - FREE_FAILURES - 1).min(16);
        let wait = FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT);
        record.until = Some(now + wait);
        Failed::MustWait(wait)
    }

    /// A successful login from `addr`: it starts over.
    pub fn succeeded(&self, addr: IpAddr) {
        self.clients.lock().unwrap().remove(&key(addr));
    }
}

/// The unit a client is counted by.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(network.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_few_failures_are_free_then_the_wait_doubles_up_to_a_minute() {
        let t = Throttle::default();
        let start = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.failed(a, start), Failed::Counted);
        }
        assert_eq!(t.wait(a, start), None);
        assert_eq!(t.failed(a, start), Failed::MustWait(Duration::from_secs(1)));
        assert_eq!(t.failed(a, start), Failed::MustWait(Duration::from_secs(2)));
        assert_eq!(t.failed(a, start), Failed::MustWait(Duration::from_secs(4)));
        assert_eq!(t.wait(a, start), Some(Duration::from_secs(4)));
        assert_eq!(
            t.wait(a, start + Duration::from_secs(3)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(t.wait(a, start + Duration::from_secs(4)), None);
        for _ in 0..20 {
            t.failed(a, start);
        }
        assert_eq!(t.wait(a, start), Some(MAX_WAIT));
        // Another address is not held up; a success starts over.
        assert_eq!(t.wait(ip("192.0.2.8"), start), None);
        t.succeeded(a);
        assert_eq!(t.wait(a, start), None);
        assert_eq!(t.failed(a, start), Failed::Counted);
    }

    #[test]
    fn quiet_addresses_start_over_and_ipv6_counts_by_network() {
        let t = Throttle::default();
        let start = Instant::now();
        let a = ip("2001:db8:1:2::10");
        for _ in 0..=FREE_FAILURES {
            t.failed(a, start);
        }
        // Another host of the same /64 waits too; another network does not.
        assert!(t.wait(ip("2001:db8:1:2::99"), start).is_some());
        assert!(t.wait(ip("2001:db8:1:3::10"), start).is_none());
        let later = start + FORGET_AFTER;
        assert_eq!(t.failed(a, later), Failed::Counted);
        // IPv4 seen through an IPv6 socket is the same client as plain IPv4.
        let v4 = ip("198.51.100.1");
        for _ in 0..=FREE_FAILURES {
            t.failed(ip("::ffff:198.51.100.1"), start);
        }
        assert!(t.wait(v4, start).is_some());
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::default();
        let start = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 500) {
            t.failed(IpAddr::V4(i.into()), start);
        }
        assert!(t.clients.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
