//! Floods against a real `serve`: wrong passwords, wrong tokens and bad chat signatures
//! from many addresses at once, and connections that never finish their request with the
//! open-file limit at systemd's usual 1,024. The bot must keep its memory, its descriptors
//! and its answers: every bad attempt refused, health checks and signed commands served,
//! the right password still let in.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::fakes::*;
use crate::common::*;

const PASSWORD: &str = "the-right-password";
const TOKEN: &str = "flood-test-token-0123456789abcdef";
/// What "a few hundred MiB" allows serve at most, during and after a flood.
const RSS_LIMIT_KIB: u64 = 300 * 1024;

/// A TCP connection to `to` from the loopback address `from` (all of 127/8 is loopback on
/// Linux), so one test can be many clients.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        panic!("serve listens on IPv4 in tests")
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, bound and connected with properly sized addresses; the fd
    // is owned by the TcpStream from then on (or closed on error).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// One HTTP/1.1 request from `from`; the response's status code.
fn request(from: Ipv4Addr, to: SocketAddr, head: &str, body: &str) -> u16 {
    let answer = exchange(from, to, head, body);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// One HTTP/1.1 request from `from`; the whole response as text.
fn exchange(from: Ipv4Addr, to: SocketAddr, head: &str, body: &str) -> String {
    let mut s = connect_from(from, to).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let text = format!(
        "{head}\r\nHost: lifeboat\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A field of `/proc/<pid>/status` in KiB (VmRSS now, VmHWM the peak).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A home whose `serve` has the status page (one login, a token), Slack and Discord.
/// `api` stands in for the chat platforms' APIs (on a port the system chose), though
/// nothing in these tests posts.
fn flood_home(api: &FakeApi) -> Home {
    let home = Home::new();
    let hash = home.hash_password(PASSWORD);
    let base = &api.base;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate = \"../var/lifeboat.db\"\n\n\
         [access]\nviewers = [\"slack:U0VIEW\"]\n\n\
         [slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\napi_url = \"{base}/api/\"\n\n\
         [discord]\npublic_key = \"${{DISCORD_PUBLIC_KEY}}\"\nbot_token = \"${{DISCORD_BOT_TOKEN}}\"\napplication_id = \"4242\"\napi_url = \"{base}/api/v10\"\n\n\
         [web]\nenabled = true\ntoken = \"${{WEB_TOKEN}}\"\n[web.users]\nalice = \"{hash}\"\n\n\
         [stores.local]\nkind = \"local\"\npath = \"../backups\"\n\n\
         [targets.app-db]\nkind = \"sqlite\"\npath = \"../data/app.db\"\nstore = \"local\"\n"
    );
    std::fs::write(home.config_path(), text).unwrap();
    drop(make_app_db(&home.path("data/app.db"), 10));
    home
}

/// `lifeboat serve` for a [`flood_home`].
fn serve_command(home: &Home) -> std::process::Command {
    let mut cmd = home.command(&["serve"]);
    cmd.env("WEB_TOKEN", TOKEN);
    cmd
}

/// Latencies of `/healthz` and of a signed slash command, sampled while a flood runs.
#[derive(Default)]
struct Probes {
    health: Vec<Duration>,
    command: Vec<Duration>,
    rss_max_kib: u64,
}

impl Probes {
    fn report(&self, what: &str) {
        let q = |v: &[Duration], p: f64| {
            let mut v = v.to_vec();
            v.sort();
            v.get(((v.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or_default()
        };
        eprintln!(
            "{what}: /healthz p50 {:?} p99 {:?} max {:?} ({} probes); slash command max {:?}; serve RSS max {} MiB",
            q(&self.health, 0.5),
            q(&self.health, 0.99),
            q(&self.health, 1.0),
            self.health.len(),
            q(&self.command, 1.0),
            self.rss_max_kib / 1024
        );
    }
}

/// Run `clients` threads doing `attempt(client, n)` until `secs` pass (at most 5,000
/// attempts each), probing serve all the while; returns the status codes seen.
fn flood(
    serve: &Serve,
    clients: usize,
    secs: u64,
    attempt: impl Fn(usize, usize) -> u16 + Sync,
) -> (Vec<u16>, Probes) {
    let pid = serve.child.id();
    let stop = AtomicBool::new(false);
    let codes = Mutex::new(Vec::new());
    let probes = Mutex::new(Probes::default());
    let to: SocketAddr = serve.addr.parse().unwrap();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (stop, codes, attempt) = (&stop, &codes, &attempt);
            s.spawn(move || {
                let mut mine = Vec::new();
                for n in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    mine.push(attempt(c, n));
                }
                codes.lock().unwrap().extend(mine);
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let code = request(Ipv4Addr::new(127, 0, 0, 1), to, "GET /healthz HTTP/1.1", "");
                assert_eq!(code, 200, "/healthz during the flood");
                let took = t.elapsed();
                let mut p = probes.lock().unwrap();
                p.health.push(took);
                p.rss_max_kib = p.rss_max_kib.max(proc_kib(pid, "VmRSS:"));
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (code, body) = slack_command(serve, "U0VIEW", "C0OPS", "/backup", "help");
                assert_eq!(code, 200, "a signed command during the flood: {body}");
                probes.lock().unwrap().command.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    (codes.into_inner().unwrap(), probes.into_inner().unwrap())
}

/// The `n`th address of client `c` out of 127.1.0.0/16 (a fresh one per attempt when
/// `fresh`, as a flood from many hosts would be).
fn addr_of(c: usize, n: usize, fresh: bool) -> Ipv4Addr {
    let k = if fresh { c * 5_000 + n } else { c };
    Ipv4Addr::new(127, 1 + (k >> 16) as u8, (k >> 8) as u8, k as u8)
}

fn assert_refused_and_quick(what: &str, codes: &[u16], probes: &Probes, allowed: &[u16]) {
    probes.report(what);
    assert!(!codes.is_empty());
    let odd: Vec<&u16> = codes.iter().filter(|c| !allowed.contains(c)).collect();
    assert!(odd.is_empty(), "{what}: unexpected answers {odd:?}");
    assert!(
        probes.rss_max_kib < RSS_LIMIT_KIB,
        "{what}: serve grew to {} MiB",
        probes.rss_max_kib / 1024
    );
    assert!(!probes.health.is_empty() && !probes.command.is_empty());
    // Slack gives a command 3 s to be acknowledged; no probe may come near that.
    let slowest = probes.command.iter().chain(&probes.health).max().unwrap();
    assert!(
        *slowest < Duration::from_secs(3),
        "{what}: a probe took {slowest:?}"
    );
}

#[test]
fn wrong_password_floods_are_refused_with_memory_flat_and_the_bot_answering() {
    let api = FakeApi::start();
    let home = flood_home(&api);
    let serve = Serve::from_command(serve_command(&home));
    let pid = serve.child.id();
    let to: SocketAddr = serve.addr.parse().unwrap();
    let wrong = basic("alice", "not-the-password");
    let mallory = basic("mallory", PASSWORD);

    // 32 clients, each from its own address: throttled after a few failures each.
    let (codes, probes) = flood(&serve, 32, 5, |c, n| {
        let auth = if n % 2 == 0 { &wrong } else { &mallory };
        let head = format!("GET / HTTP/1.1\r\nAuthorization: {auth}");
        request(addr_of(c, n, false), to, &head, "")
    });
    assert_refused_and_quick("32 clients, wrong passwords", &codes, &probes, &[401, 429]);
    assert!(codes.contains(&401) && codes.contains(&429), "{codes:?}");
    // A client made to wait is told for how long.
    let head = format!("GET / HTTP/1.1\r\nAuthorization: {wrong}");
    let answer = (0..10)
        .map(|_| exchange(addr_of(0, 0, false), to, &head, ""))
        .find(|a| !a.starts_with("HTTP/1.1 401"))
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{answer}"
    );

    // 64 clients, a fresh address per attempt: every attempt wants an argon2 check.
    let (codes, probes) = flood(&serve, 64, 5, |c, n| {
        let head = format!("GET / HTTP/1.1\r\nAuthorization: {wrong}");
        request(addr_of(c + 100, n, true), to, &head, "")
    });
    assert_refused_and_quick("64 clients, fresh addresses", &codes, &probes, &[401, 429]);
    let checked = codes.iter().filter(|c| **c == 401).count();
    eprintln!("{checked} of {} attempts were checked", codes.len());
    assert!(checked > 0);

    // Wrong bearer tokens and bad Slack and Discord signatures: cheap to refuse.
    let (codes, probes) = flood(&serve, 32, 4, |c, n| {
        let from = addr_of(c + 200, n, false);
        match n % 3 {
            0 => request(
                from,
                to,
                "GET / HTTP/1.1\r\nAuthorization: Bearer not-the-token",
                "",
            ),
            1 => {
                let body = "command=%2Fbackup&text=help&user_id=U0VIEW&channel_id=C0OPS";
                let head = format!(
                    "POST /slack/commands HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {}\r\nX-Slack-Signature: v0={}",
                    now(),
                    "0".repeat(64)
                );
                request(from, to, &head, body)
            }
            _ => {
                let body = r#"{"type":1}"#;
                let head = format!(
                    "POST /discord/interactions HTTP/1.1\r\nContent-Type: application/json\r\nX-Signature-Ed25519: {}\r\nX-Signature-Timestamp: {}",
                    "0".repeat(128),
                    now()
                );
                request(from, to, &head, body)
            }
        }
    });
    assert_refused_and_quick("tokens and signatures", &codes, &probes, &[401, 429]);

    // Afterwards: memory given back or kept flat, and the right password gets in.
    let after = proc_kib(pid, "VmRSS:");
    let peak = proc_kib(pid, "VmHWM:");
    eprintln!(
        "serve RSS after the floods {} MiB, peak {} MiB",
        after / 1024,
        peak / 1024
    );
    assert!(peak < RSS_LIMIT_KIB, "serve peaked at {} MiB", peak / 1024);
    let head = format!(
        "GET / HTTP/1.1\r\nAuthorization: {}",
        basic("alice", PASSWORD)
    );
    assert_eq!(request(Ipv4Addr::new(127, 9, 9, 9), to, &head, ""), 200);
    serve.stop();
}

/// Raise this test process's own soft open-file limit (it opens over a thousand sockets).
fn allow_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        assert!(lim.rlim_max >= n, "this test needs {n} open files");
        lim.rlim_cur = lim.rlim_cur.max(n);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// serve started under `prlimit` with the given soft and hard open-file limits.
fn serve_with_file_limit(home: &Home, soft: u64, hard: u64) -> Serve {
    let probe = serve_command(home);
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg(probe.get_program())
        .args(probe.get_args());
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    Serve::from_command(cmd)
}

fn soft_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn serve_raises_its_soft_file_limit_where_the_hard_one_allows() {
    let api = FakeApi::start();
    let home = flood_home(&api);
    let serve = serve_with_file_limit(&home, 1024, 4096);
    assert_eq!(soft_file_limit(serve.child.id()), 4096);
    serve.stop();
}

/// Whether serve closes `conn` (EOF or reset, after whatever it answers) within two
/// minutes: far longer than any header deadline, so only a connection kept for ever fails.
fn let_go(conn: &mut TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn half_sent_requests_are_timed_out_and_never_cost_the_bot_its_descriptors() {
    allow_files(4096);
    let api = FakeApi::start();
    let home = flood_home(&api);
    let serve = serve_with_file_limit(&home, 1024, 1024);
    let pid = serve.child.id();
    assert_eq!(soft_file_limit(pid), 1024);
    let to: SocketAddr = serve.addr.parse().unwrap();

    // 1,100 connections that send half a request line and then nothing.
    let mut held = Vec::new();
    let t0 = Instant::now();
    for i in 0..1_100usize {
        let from = Ipv4Addr::new(127, 2, (i >> 8) as u8, i as u8);
        let mut s = connect_from(from, to).expect("the kernel's backlog takes them all");
        s.write_all(b"GET /heal").unwrap();
        held.push(s);
    }
    let fds_now = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    eprintln!(
        "opened 1,100 in {:?}; serve holds {fds_now} descriptors",
        t0.elapsed()
    );
    // serve never holds more descriptors than its limit allows for, so it can still open
    // its state database: /healthz (which reads it) answers while they are all held.
    let started = Instant::now();
    let code = request(Ipv4Addr::new(127, 0, 0, 1), to, "GET /healthz HTTP/1.1", "");
    eprintln!(
        "/healthz answered {code} after {:?} with 1,100 held",
        started.elapsed()
    );
    assert_eq!(code, 200);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(fds < 1024, "serve has {fds} descriptors open");

    // Every held connection is closed by serve (headers never came), none kept forever.
    let closed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for chunk in held.chunks_mut(100) {
            let closed = &closed;
            s.spawn(move || {
                for conn in chunk {
                    if let_go(conn) {
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(closed.load(Ordering::Relaxed), 1_100);
    let log = serve.log_text();
    for bad in ["Too many open files", "unable to open database file"] {
        assert!(!log.contains(bad), "serve logged {bad:?}:\n{log}");
    }
    assert_eq!(serve.get("/healthz").0, 200);
    serve.stop();
}
