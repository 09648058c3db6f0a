//! Loopback ports for the servers the tests start (moto, rclone, sshd), which take a port
//! number rather than a listening socket. A port is chosen by binding port 0 and letting
//! go, so two tests of this binary could be handed the same one: each port is handed out
//! once per process, and a server that exits before it listens (its port was taken in
//! between) is started again on another.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A loopback port no other test of this process was handed.
pub fn free_port() -> u16 {
    static HANDED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(port)
        {
            return port;
        }
    }
}

/// Start a server with `spawn(port)` and wait until it accepts connections; a server that
/// exits first is started again on another port.
pub fn serve_on_free_port(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    const TRIES: usize = 5;
    for _ in 0..TRIES {
        let port = free_port();
        let mut child = spawn(port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} to accept connections"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{what} exited before listening, on {TRIES} free ports in a row");
}
