//! A TCP proxy on loopback that can cut its link the way a network does: bytes stop
//! flowing both ways while every connection stays open (nothing is refused or reset, so a
//! client learns of it only by waiting), and flow again, in order, when the link heals.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Bytes forwarded, both ways.
    moved: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to 127.0.0.1:<target>.
    pub fn start(target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (cut, stop, moved) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let flags = (cut.clone(), stop.clone(), moved.clone());
        std::thread::spawn(move || accept(listener, target, flags));
        Ok(Proxy {
            port,
            cut,
            stop,
            moved,
        })
    }

    /// Stops (true) or restores (false) the flow on every connection, old and new.
    pub fn cut(&self, on: bool) {
        self.cut.store(on, Ordering::SeqCst);
    }

    pub fn moved(&self) -> u64 {
        self.moved.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

type Flags = (Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicU64>);

fn accept(listener: TcpListener, target: u16, flags: Flags) {
    while !flags.1.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let flags = flags.clone();
                        std::thread::spawn(move || pump(from, to, flags));
                    }
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Copies one direction; while the link is cut it neither reads nor writes, so what was
/// sent waits in the kernel's buffers (as on a link that drops packets TCP will resend).
fn pump(mut from: TcpStream, mut to: TcpStream, (cut, stop, moved): Flags) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    let wait_while_cut = || {
        while cut.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    while !stop.load(Ordering::SeqCst) {
        wait_while_cut();
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        wait_while_cut();
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        moved.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown(Shutdown::Write);
}
