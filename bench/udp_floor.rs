//! The floor under the SFU's CPU per forwarded packet: what the kernel alone costs to send
//! the same datagrams the same way, with no WebRTC at all. One thread sends what a meeting of
//! 50 where everyone speaks makes the server send (every 20 ms, 50 packets to 49 listeners
//! each: 122,500 datagrams a second of 130 bytes, SRTP-sized), by `sendmmsg` of 32 to 50
//! loopback sockets that another thread drains; its own CPU time (utime and stime, from
//! /proc/thread-self/stat) per datagram is the floor. On loopback the sender also pays for
//! the delivery into the receiving socket (the softirq runs in its context), as the server
//! does in `bench/sfu.sh`.
//!
//!   cargo run --release --example udp-floor -- [--seconds 10] [--listeners 50]

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

const BATCH: usize = 32;
const SIZE: usize = 130;

/// This thread's CPU seconds: (user, system).
fn thread_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 (1-based, the state being field 3).
    let tick = 100.0; // USER_HZ on Linux
    (
        f.get(11).copied().unwrap_or(0.0) / tick,
        f.get(12).copied().unwrap_or(0.0) / tick,
    )
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let seconds = arg("--seconds", 10);
    let listeners = arg("--listeners", 50) as usize;
    let speakers = listeners;
    let sockets: Vec<UdpSocket> = (0..listeners)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
        std::thread::spawn(move || {
            for s in &sockets {
                let _ = s.set_nonblocking(true);
            }
            let mut buf = [0u8; 2048];
            while !stop.load(Relaxed) {
                let mut got = 0;
                for s in &sockets {
                    while s.recv(&mut buf).is_ok() {
                        got += 1;
                    }
                }
                received.fetch_add(got, Relaxed);
                if got == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let fd = sender.as_raw_fd();
    let payload = [0x80u8; SIZE];
    // One 20 ms round: every speaker's packet to every other listener.
    let round: Vec<SocketAddr> = (0..speakers)
        .flat_map(|s| {
            addrs
                .iter()
                .enumerate()
                .filter(move |(l, _)| *l != s)
                .map(|(_, a)| *a)
        })
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let (mut sent, mut failed) = (0u64, 0u64);
    let start = Instant::now();
    let (u0, s0) = thread_cpu();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        for chunk in round.chunks(BATCH) {
            let slices: Vec<[IoSlice<'_>; 1]> =
                chunk.iter().map(|_| [IoSlice::new(&payload)]).collect();
            let to: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|a| Some(SockaddrStorage::from(*a)))
                .collect();
            match sendmmsg(fd, &mut headers, &slices, &to, [], MsgFlags::empty()) {
                Ok(r) => sent += r.count() as u64,
                Err(_) => failed += chunk.len() as u64,
            }
        }
        next += Duration::from_millis(20);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let (u1, s1) = thread_cpu();
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Relaxed);
    let _ = drain.join();
    let (user, system) = (u1 - u0, s1 - s0);
    println!(
        "udp floor: {listeners} listeners, {:.0} datagrams/s of {SIZE} bytes by sendmmsg of {BATCH}: \
         {:.2} µs of CPU each ({:.2} user, {:.2} system), {:.1} % of a core; \
         {} received, {} refused",
        sent as f64 / elapsed,
        (user + system) * 1e6 / sent.max(1) as f64,
        user * 1e6 / sent.max(1) as f64,
        system * 1e6 / sent.max(1) as f64,
        (user + system) * 100.0 / elapsed,
        received.load(Relaxed),
        failed,
    );
    Ok(())
}
