//! A TCP forwarder on loopback whose cable can be cut: while cut, every open connection
//! is dropped and new ones are refused at once (a network outage between lifeboat and
//! its store); mended, it forwards again. It can also be slow, so that a transfer is
//! surely still running when the cable is cut.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Cutter {
    pub port: u16,
    cut: Arc<AtomicBool>,
    rate: Arc<AtomicU64>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Cutter {
    /// Forward at most `bytes_per_second` each way on each connection.
    pub fn slow(to: SocketAddr, bytes_per_second: u64) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(bytes_per_second));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, o, r) = (cut.clone(), open.clone(), rate.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    drop(client); // refused, as by a dead link
                    continue;
                }
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (a, b) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(a, b, c.clone(), r.clone());
                pump(server, client, c.clone(), r.clone());
            }
        });
        Cutter {
            port,
            cut,
            rate,
            open,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drop every connection and refuse new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Connect again, at full speed.
    pub fn mend(&self) {
        self.rate.store(u64::MAX, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>, rate: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if cut.load(Ordering::SeqCst) {
                break;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let rate = rate.load(Ordering::Relaxed);
                    if rate != u64::MAX {
                        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
