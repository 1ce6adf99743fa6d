//! A TCP proxy on a loopback port in front of a real server, for fault tests of the stores: it
//! forwards, refuses (every connection cut, new ones closed at once: a database that is down),
//! or black-holes (connections stay open and nothing moves: a database that hangs).

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

const FORWARD: u8 = 0;
const REFUSE: u8 = 1;
const BLACKHOLE: u8 = 2;
const STOPPED: u8 = 3;

const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    streams: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn mode(&self) -> u8 {
        self.mode.load(Ordering::Acquire)
    }

    fn cut_all(&self) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for s in streams.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A proxy to `upstream` on a free loopback port; stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl TcpProxy {
    /// Starts forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared::default());
        let accept = Arc::clone(&shared);
        thread::spawn(move || accept_loop(&listener, upstream, &accept));
        Self { port, shared }
    }

    /// Forward again.
    pub fn restore(&self) {
        self.shared.mode.store(FORWARD, Ordering::Release);
    }

    /// Cut every connection and close new ones at once.
    pub fn refuse(&self) {
        self.shared.mode.store(REFUSE, Ordering::Release);
        self.shared.cut_all();
    }

    /// Keep connections open but move no byte, in either direction.
    pub fn blackhole(&self) {
        self.shared.mode.store(BLACKHOLE, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.mode.store(STOPPED, Ordering::Release);
        self.shared.cut_all();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    let mut held = Vec::new(); // black-holed connections, kept open
    loop {
        match shared.mode() {
            STOPPED => return,
            BLACKHOLE => {}
            _ => held.clear(),
        }
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => return,
        };
        match shared.mode() {
            FORWARD => {}
            BLACKHOLE => {
                held.push(client);
                continue;
            }
            _ => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let pairs = [
            (client.try_clone(), server.try_clone()),
            (server.try_clone(), client.try_clone()),
        ];
        {
            let mut streams = shared
                .streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            streams.extend([client, server]);
        }
        for pair in pairs {
            if let (Ok(from), Ok(to)) = pair {
                let shared = Arc::clone(shared);
                thread::spawn(move || pump(from, to, &shared));
            }
        }
    }
}

/// Copies bytes one way while forwarding; holds them (reads nothing) while black-holed.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match shared.mode() {
            FORWARD => {}
            BLACKHOLE => {
                thread::sleep(POLL);
                continue;
            }
            _ => break,
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
