//! The floor under the SFU's CPU per forwarded packet: what the kernel alone costs to send
//! the same datagrams the same way, with no WebRTC at all. One thread sends what `meetings`
//! meetings of 50 where everyone speaks make the server send (every 20 ms, 50 packets to 49
//! listeners each: 122,500 datagrams a second of 130 bytes per meeting, SRTP-sized), by
//! `sendmmsg` of 32 to 50 loopback sockets per meeting; another thread drains them by
//! `recvmmsg` of 32, as cheaply as any load generator could. Each thread's CPU time (utime and
//! stime, from /proc/thread-self/stat) per datagram is printed: the sender's is the floor under
//! the server's cost per forwarded packet, and the two together the floor of the whole machine
//! (server and generator) per packet. On loopback the sender also pays for the delivery into
//! the receiving socket (the softirq runs in its context), as the server does in
//! `bench/sfu.sh`.
//!
//!   cargo run --release --example udp-floor -- [--seconds 10] [--listeners 50] [--meetings 1]

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use quinn_udp::{RecvMeta, UdpSocketState};

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
    let meetings = arg("--meetings", 1).max(1) as usize;
    let sockets: Vec<UdpSocket> = (0..listeners * meetings)
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
        std::thread::spawn(move || -> std::io::Result<(f64, f64)> {
            let mut states = Vec::new();
            for s in &sockets {
                s.set_nonblocking(true)?;
                let state = UdpSocketState::new(s.into())?;
                let _ = state.set_recv_buffer_size(s.into(), 4 << 20);
                states.push(state);
            }
            let mut bufs = vec![[0u8; 2048]; BATCH];
            let mut metas = [RecvMeta::default(); BATCH];
            let (u0, s0) = thread_cpu();
            while !stop.load(Relaxed) {
                let mut got = 0;
                for (s, state) in sockets.iter().zip(&states) {
                    loop {
                        let mut iovs: Vec<IoSliceMut<'_>> =
                            bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                        match state.recv(s.into(), &mut iovs, &mut metas) {
                            Ok(n) if n > 0 => {
                                got += metas[..n]
                                    .iter()
                                    .map(|m| (m.len / m.stride.max(1)) as u64)
                                    .sum::<u64>();
                            }
                            _ => break,
                        }
                    }
                }
                received.fetch_add(got, Relaxed);
                if got == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let (u1, s1) = thread_cpu();
            Ok((u1 - u0, s1 - s0))
        })
    };
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let fd = sender.as_raw_fd();
    let payload = [0x80u8; SIZE];
    // One 20 ms round: in each meeting, every speaker's packet to every other listener.
    let round: Vec<SocketAddr> = addrs
        .chunks(listeners)
        .flat_map(|meeting| {
            (0..meeting.len()).flat_map(move |s| {
                meeting
                    .iter()
                    .enumerate()
                    .filter(move |(l, _)| *l != s)
                    .map(|(_, a)| *a)
            })
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
    let (ru, rs) = drain.join().unwrap_or(Ok((0.0, 0.0)))?;
    let (user, system) = (u1 - u0, s1 - s0);
    let per = |cpu: f64| cpu * 1e6 / sent.max(1) as f64;
    let got = received.load(Relaxed);
    println!(
        "udp floor: {meetings}x{listeners}, {:.0} datagrams/s offered ({:.0} a second wanted) of {SIZE} bytes by sendmmsg of {BATCH}: \
         sending {:.2} µs of CPU each ({:.2} user, {:.2} system), {:.1} % of a core; \
         receiving (recvmmsg of {BATCH}) {:.2} µs each, {:.1} % of a core; \
         {got} received ({:.2} % lost), {failed} refused",
        sent as f64 / elapsed,
        round.len() as f64 * 50.0,
        per(user + system),
        per(user),
        per(system),
        (user + system) * 100.0 / elapsed,
        per(ru + rs),
        (ru + rs) * 100.0 / elapsed,
        100.0 * (sent.saturating_sub(got)) as f64 / sent.max(1) as f64,
    );
    Ok(())
}
