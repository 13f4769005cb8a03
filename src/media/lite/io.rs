//! A shard's UDP socket: datagrams in by `recvmmsg` (quinn-udp, which also says which local
//! address each arrived at), out by `sendmmsg` (nix), both without `unsafe` of ours.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams taken per `recvmmsg`/`sendmmsg`.
pub const BATCH: usize = 32;
/// Largest datagram read: SRTP of Opus is far smaller; DTLS handshakes fit.
const MTU: usize = 2048;
/// Kernel buffers: a burst of a meeting of 50 fits.
const BUFFER: usize = 4 << 20;

/// One received datagram.
pub struct Datagram<'a> {
    pub from: SocketAddr,
    /// The local address it arrived at, when the kernel said (a wildcard bind).
    pub to: Option<IpAddr>,
    pub data: &'a [u8],
}

pub struct Socket {
    pub udp: UdpSocket,
    state: UdpSocketState,
    bufs: Box<[[u8; MTU]; BATCH]>,
    metas: [RecvMeta; BATCH],
    headers: MultiHeaders<SockaddrStorage>,
    /// Datagrams waiting for the next `flush`.
    queue: Vec<(SocketAddr, BytesMut)>,
    /// Datagrams the kernel refused (not WouldBlock): counted, never retried.
    pub send_errors: u64,
}

impl Socket {
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        // Larger buffers where the system allows; the defaults work, only burstier.
        let _ = state.set_recv_buffer_size((&socket).into(), BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), BUFFER);
        Ok(Self {
            udp: UdpSocket::from_std(socket)?,
            state,
            bufs: Box::new([[0; MTU]; BATCH]),
            metas: [RecvMeta::default(); BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
            queue: Vec::with_capacity(BATCH * 4),
            send_errors: 0,
        })
    }

    /// Reads what is there (up to a batch, never waits) and hands each datagram to `each`;
    /// how many were read.
    pub fn recv(&mut self, mut each: impl FnMut(Datagram<'_>)) -> io::Result<usize> {
        let n = {
            let mut iovs: [IoSliceMut<'_>; BATCH] =
                self.bufs.each_mut().map(|b| IoSliceMut::new(b));
            let (udp, state, metas) = (&self.udp, &self.state, &mut self.metas);
            match udp.try_io(Interest::READABLE, || {
                state.recv(udp.into(), &mut iovs, metas)
            }) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        };
        let mut count = 0;
        for (meta, buf) in self.metas.iter().zip(self.bufs.iter()).take(n) {
            let stride = meta.stride.max(1);
            // With GRO, one buffer holds several datagrams of one sender, `stride` apart.
            for data in buf[..meta.len].chunks(stride) {
                count += 1;
                each(Datagram {
                    from: meta.addr,
                    to: meta.dst_ip,
                    data,
                });
            }
        }
        Ok(count)
    }

    pub fn queue(&mut self, to: SocketAddr, data: BytesMut) {
        self.queue.push((to, data));
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Sends every queued datagram, a batch per `sendmmsg`; waits for room only when the
    /// kernel's buffer is full.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut at = 0;
        while at < self.queue.len() {
            let end = (at + BATCH).min(self.queue.len());
            let batch = &self.queue[at..end];
            let slices: Vec<[IoSlice<'_>; 1]> =
                batch.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = batch
                .iter()
                .map(|(to, _)| Some(SockaddrStorage::from(*to)))
                .collect();
            let fd = self.udp.as_raw_fd();
            let headers = &mut self.headers;
            let sent = self.udp.try_io(Interest::WRITABLE, || {
                sendmmsg(fd, headers, &slices, &addrs, [], MsgFlags::MSG_DONTWAIT)
                    .map(|r| r.count())
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    // The first datagram was refused: skip it rather than loop.
                    self.send_errors += 1;
                    at += 1;
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.udp.writable().await?;
                }
                Err(e) => {
                    // Unreachable destination and the like: that one datagram is lost.
                    tracing::trace!(error = %e, to = %self.queue[at].0, "datagram not sent");
                    self.send_errors += 1;
                    at += 1;
                }
            }
        }
        self.queue.clear();
        Ok(())
    }
}
