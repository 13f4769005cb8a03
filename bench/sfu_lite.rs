//! The generator's participants: sans-IO peer connections (`rtc`, the core the server runs
//! too), every one of a run on one thread. Each has its own UDP socket (the server tells its
//! clients apart by address); one `mio` loop waits on them all, reads what each has by
//! `recvmmsg` (quinn-udp), hands the datagrams to the connection, counts and times the RTP that
//! comes out, and paces the speakers from the same loop. Signalling stays async (Socket.IO for
//! meet, HTTP for Janus) and reaches the loop as commands.
//!
//! The `webrtc` crate's peers, which the generator used before, cost a driver task, channels
//! and one `recvmsg` per packet each: in 1x50:all they took a whole core and were what the
//! latency measured (bench/README.md).

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use quinn_udp::{RecvMeta, UdpSocketState};
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::oneshot;
use webrtc::peer_connection::{RTCPeerConnection, RTCSessionDescription};

use super::{Tally, now_ns, opus_like};

/// Datagrams read per `recvmmsg`.
const BATCH: usize = 32;
const MTU: usize = 2048;
/// Kernel receive buffer per socket: a participant of 1x50:all gets 2,450 packets a second.
const BUFFER: usize = 1 << 20;
/// The speakers' packet period.
const PERIOD: Duration = Duration::from_millis(20);
/// How often the latencies gathered on the loop are handed to the tally.
const FLUSH: Duration = Duration::from_millis(500);
const WAKER: Token = Token(usize::MAX);

type Reply<T> = oneshot::Sender<Result<T>>;

enum Cmd {
    New {
        bind: IpAddr,
        mic: bool,
        reply: Reply<usize>,
    },
    Offer {
        id: usize,
        reply: Reply<String>,
    },
    /// The other side's description: an offer (answered) or an answer.
    Remote {
        id: usize,
        sdp: String,
        offer: bool,
        reply: Reply<Option<String>>,
    },
    Connected {
        id: usize,
        reply: Reply<()>,
    },
    Speak {
        id: usize,
        listeners: u64,
        stop: Arc<AtomicU64>,
    },
    Close {
        id: usize,
    },
    Quit,
}

/// The loop's thread; it ends when this is dropped.
pub struct Lite {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    /// The loop thread's `stat` under /proc.
    stat: String,
}

/// One participant's connection on the loop.
#[derive(Clone)]
pub struct Peer {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
    id: usize,
}

fn send(tx: &Sender<Cmd>, waker: &Waker, cmd: Cmd) -> Result<()> {
    tx.send(cmd)
        .map_err(|_| anyhow!("the generator's loop has ended"))?;
    waker.wake().context("waking the generator's loop")
}

async fn call<T>(tx: &Sender<Cmd>, waker: &Waker, cmd: impl FnOnce(Reply<T>) -> Cmd) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    send(tx, waker, cmd(reply))?;
    answer
        .await
        .map_err(|_| anyhow!("the generator's loop has ended"))?
}

impl Lite {
    /// Starts the loop; what its participants receive in the tally's window is counted there.
    pub fn start(config: meet::config::MediaConfig, tally: Arc<Tally>) -> Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        let mut core = Core {
            poll,
            rx,
            config,
            tally,
            conns: Vec::new(),
            bufs: vec![[0; MTU]; BATCH],
            metas: [RecvMeta::default(); BATCH],
            ready: Vec::new(),
            latencies: Vec::with_capacity(1 << 16),
            flushed: Instant::now(),
            payload: BytesMut::with_capacity(1 << 16),
        };
        let (tid_tx, tid) = channel();
        let thread = std::thread::Builder::new()
            .name("generator".to_owned())
            .spawn(move || {
                let _ = tid_tx.send(std::fs::read_link("/proc/thread-self"));
                core.run()
            })?;
        let stat = format!("/proc/{}/stat", tid.recv()??.display());
        Ok(Self {
            tx,
            waker,
            thread: Some(thread),
            stat,
        })
    }

    /// CPU seconds the loop's thread has used.
    pub fn cpu_seconds(&self) -> f64 {
        super::cpu_seconds(&self.stat)
    }

    /// A new connection with its socket bound to `bind` (port chosen by the kernel), with a
    /// microphone track when `mic`.
    pub async fn peer(&self, bind: IpAddr, mic: bool) -> Result<Peer> {
        let id = call(&self.tx, &self.waker, |reply| Cmd::New { bind, mic, reply }).await?;
        Ok(Peer {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
            id,
        })
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        let _ = send(&self.tx, &self.waker, Cmd::Quit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Peer {
    /// Its offer (set as its local description).
    pub async fn offer(&self) -> Result<String> {
        let id = self.id;
        call(&self.tx, &self.waker, |reply| Cmd::Offer { id, reply }).await
    }

    /// Applies the other side's offer; its answer.
    pub async fn answer(&self, offer: String) -> Result<String> {
        let id = self.id;
        call(&self.tx, &self.waker, |reply| Cmd::Remote {
            id,
            sdp: offer,
            offer: true,
            reply,
        })
        .await?
        .context("no answer made")
    }

    /// Applies the other side's answer to its offer.
    pub async fn accept(&self, answer: String) -> Result<()> {
        let id = self.id;
        call(&self.tx, &self.waker, |reply| Cmd::Remote {
            id,
            sdp: answer,
            offer: false,
            reply,
        })
        .await
        .map(drop)
    }

    /// Waits (at most `within`) for ICE and DTLS to be done.
    pub async fn connected(&self, within: Duration) -> Result<()> {
        let id = self.id;
        tokio::time::timeout(
            within,
            call(&self.tx, &self.waker, |reply| Cmd::Connected { id, reply }),
        )
        .await
        .with_context(|| format!("not connected within {within:?}"))?
    }

    /// Speaks until `stop` is set: an Opus-sized packet every 20 ms, at its own phase.
    pub fn speak(&self, listeners: u64, stop: Arc<AtomicU64>) {
        let _ = send(
            &self.tx,
            &self.waker,
            Cmd::Speak {
                id: self.id,
                listeners,
                stop,
            },
        );
    }

    /// Closes it, as a closed tab does.
    pub fn close(&self) {
        let _ = send(&self.tx, &self.waker, Cmd::Close { id: self.id });
    }
}

struct Mic {
    sender: RTCRtpSenderId,
    ssrc: u32,
    payload_type: u8,
}

struct Speaking {
    next: Instant,
    seq: u16,
    timestamp: u32,
    listeners: u64,
    stop: Arc<AtomicU64>,
}

struct Conn {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    mic: Option<Mic>,
    speaking: Option<Speaking>,
    connected: bool,
    failed: bool,
    waiting: Vec<Reply<()>>,
    /// The core's next timer.
    wake: Option<Instant>,
}

struct Core {
    poll: Poll,
    rx: Receiver<Cmd>,
    config: meet::config::MediaConfig,
    tally: Arc<Tally>,
    conns: Vec<Option<Conn>>,
    bufs: Vec<[u8; MTU]>,
    metas: [RecvMeta; BATCH],
    ready: Vec<Token>,
    /// Latencies (µs) measured since the last flush to the tally.
    latencies: Vec<u32>,
    flushed: Instant,
    payload: BytesMut,
}

impl Core {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .next_wake()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                eprintln!("the generator's loop failed: {e}");
                return;
            }
            self.ready.clear();
            self.ready.extend(events.iter().map(|e| e.token()));
            for i in 0..self.ready.len() {
                let token = self.ready[i];
                if token == WAKER {
                    if !self.commands() {
                        self.flush();
                        return;
                    }
                } else {
                    self.read(token.0);
                }
            }
            self.due(Instant::now());
            if self.flushed.elapsed() >= FLUSH {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if let Ok(mut all) = self.tally.latencies_us.lock() {
            all.append(&mut self.latencies);
        }
        self.flushed = Instant::now();
    }

    fn next_wake(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flatten()
            .flat_map(|c| [c.wake, c.speaking.as_ref().map(|s| s.next)])
            .flatten()
            .min()
    }

    /// Handles every waiting command; false once the loop is to end.
    fn commands(&mut self) -> bool {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            };
            let now = Instant::now();
            match cmd {
                Cmd::New { bind, mic, reply } => {
                    let _ = reply.send(self.open(bind, mic, now));
                }
                Cmd::Offer { id, reply } => {
                    let _ = reply.send(self.offer(id, now));
                    self.drain(id);
                }
                Cmd::Remote {
                    id,
                    sdp,
                    offer,
                    reply,
                } => {
                    let _ = reply.send(self.remote(id, sdp, offer, now));
                    self.drain(id);
                }
                Cmd::Connected { id, reply } => match self.conn(id) {
                    Ok(c) if c.connected => {
                        let _ = reply.send(Ok(()));
                    }
                    Ok(c) if c.failed => {
                        let _ = reply.send(Err(anyhow!("ICE or DTLS failed")));
                    }
                    Ok(c) => c.waiting.push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Cmd::Speak {
                    id,
                    listeners,
                    stop,
                } => {
                    if let Ok(c) = self.conn(id) {
                        let phase = Duration::from_micros(rand::random_range(0..20_000));
                        // Each speaker at its own phase of the period, as real microphones
                        // are: all in step, they would arrive as one burst every 20 ms.
                        c.speaking = Some(Speaking {
                            next: now + phase,
                            seq: rand::random(),
                            timestamp: rand::random(),
                            listeners,
                            stop,
                        });
                    }
                }
                Cmd::Close { id } => {
                    if let Some(Some(mut c)) = self.conns.get_mut(id).map(Option::take) {
                        let _ = c.pc.close();
                        let _ = self.poll.registry().deregister(&mut c.socket);
                    }
                }
                Cmd::Quit => return false,
            }
        }
    }

    fn conn(&mut self, id: usize) -> Result<&mut Conn> {
        self.conns
            .get_mut(id)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("connection {id} is closed"))
    }

    fn open(&mut self, bind: IpAddr, mic: bool, now: Instant) -> Result<usize> {
        let std = std::net::UdpSocket::bind(SocketAddr::new(bind, 0))?;
        std.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std).into())?;
        let _ = state.set_recv_buffer_size((&std).into(), BUFFER);
        let local = std.local_addr()?;
        let mut socket = UdpSocket::from_std(std);
        let settings = meet::media::engine::settings(&self.config)
            .with_include_loopback_candidate(true)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(meet::media::engine::media_engine()?)
            .with_setting_engine(settings)
            .with_interceptor_registry(meet::media::engine::registry())
            .build(now)?;
        pc.add_local_candidate(meet::media::lite::host_candidate(local).map_err(|e| anyhow!(e))?)?;
        let mic = if mic {
            let ssrc = rand::random::<u32>() | 1;
            let sender = pc.add_track(meet::media::lite::audio_track("mic", "mic", ssrc))?;
            Some(Mic {
                sender,
                ssrc,
                payload_type: 0,
            })
        } else {
            None
        };
        let id = self
            .conns
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
        self.poll
            .registry()
            .register(&mut socket, Token(id), Interest::READABLE)?;
        self.conns[id] = Some(Conn {
            pc,
            socket,
            state,
            local,
            mic,
            speaking: None,
            connected: false,
            failed: false,
            waiting: Vec::new(),
            wake: None,
        });
        Ok(id)
    }

    fn offer(&mut self, id: usize, now: Instant) -> Result<String> {
        let c = self.conn(id)?;
        let offer = c.pc.create_offer(None)?;
        c.pc.set_local_description(now, offer)?;
        Ok(c.pc
            .local_description()
            .context("no local description")?
            .sdp)
    }

    fn remote(
        &mut self,
        id: usize,
        sdp: String,
        offer: bool,
        now: Instant,
    ) -> Result<Option<String>> {
        let c = self.conn(id)?;
        let description = if offer {
            RTCSessionDescription::offer(sdp)?
        } else {
            RTCSessionDescription::answer(sdp)?
        };
        c.pc.set_remote_description(now, description)?;
        // The payload type the other side took for the microphone's Opus.
        if let Some(mic) = &mut c.mic
            && let Some(mut sender) = c.pc.rtp_sender(mic.sender)
            && let Some(codec) = sender.get_parameters().rtp_parameters.codecs.first()
        {
            mic.payload_type = codec.payload_type;
        }
        if !offer {
            return Ok(None);
        }
        let answer = c.pc.create_answer(None)?;
        c.pc.set_local_description(now, answer)?;
        Ok(Some(
            c.pc.local_description()
                .context("no local description")?
                .sdp,
        ))
    }

    /// Reads everything the connection's socket holds.
    fn read(&mut self, id: usize) {
        loop {
            let Some(Some(c)) = self.conns.get_mut(id) else {
                return;
            };
            let n = {
                let mut iovs: Vec<IoSliceMut<'_>> =
                    self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                match c.state.recv((&c.socket).into(), &mut iovs, &mut self.metas) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) => {
                        eprintln!("a generator socket failed: {e}");
                        return;
                    }
                }
            };
            let now = Instant::now();
            for (meta, buf) in self.metas.iter().zip(&self.bufs).take(n) {
                // With GRO, one buffer holds several datagrams of one sender, `stride` apart.
                for data in buf[..meta.len].chunks(meta.stride.max(1)) {
                    let _ = c.pc.handle_read(TaggedBytesMut {
                        now,
                        transport: TransportContext {
                            local_addr: c.local,
                            peer_addr: meta.addr,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(data),
                    });
                }
            }
            self.drain(id);
        }
    }

    /// Timers due and packets to speak; only the connections touched are drained.
    fn due(&mut self, now: Instant) {
        for id in 0..self.conns.len() {
            let Some(Some(c)) = self.conns.get_mut(id) else {
                continue;
            };
            let mut touched = false;
            if c.wake.is_some_and(|t| t <= now) {
                let _ = c.pc.handle_timeout(now);
                touched = true;
            }
            if c.speaking
                .as_ref()
                .is_some_and(|s| s.stop.load(Relaxed) != 0)
            {
                c.speaking = None;
            }
            if let (Some(s), Some(mic)) = (&mut c.speaking, &c.mic) {
                while s.next <= now {
                    touched = true;
                    s.next += PERIOD;
                    let sent = now_ns();
                    let packet = rtp::Packet {
                        header: rtp::Header {
                            version: 2,
                            payload_type: mic.payload_type,
                            sequence_number: s.seq,
                            timestamp: s.timestamp,
                            ssrc: mic.ssrc,
                            ..Default::default()
                        },
                        payload: opus_like(sent, s.seq, &mut self.payload),
                    };
                    s.seq = s.seq.wrapping_add(1);
                    s.timestamp = s.timestamp.wrapping_add(960);
                    let written =
                        c.pc.rtp_sender(mic.sender)
                            .is_some_and(|mut sender| sender.write_rtp(now, packet).is_ok());
                    if written && self.tally.in_window(sent) {
                        self.tally.sent.fetch_add(1, Relaxed);
                        self.tally.expected.fetch_add(s.listeners, Relaxed);
                    }
                }
            }
            if touched {
                self.drain(id);
            }
        }
    }

    /// What the connection has for us: RTP counted, its state, datagrams sent, its next timer.
    fn drain(&mut self, id: usize) {
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        while let Some(msg) = c.pc.poll_read() {
            let RTCMessage::RtpPacket(_, packet) = msg.message else {
                continue;
            };
            let Some(stamp) = packet.payload.get(1..9) else {
                continue;
            };
            let sent = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
            if self.tally.in_window(sent) {
                self.tally.received.fetch_add(1, Relaxed);
                let now = now_ns();
                self.latencies
                    .push((now.saturating_sub(sent) / 1000) as u32);
            }
        }
        while let Some(ev) = c.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = ev {
                match state {
                    RTCPeerConnectionState::Connected => c.connected = true,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        c.failed = true
                    }
                    _ => {}
                }
                if c.connected || c.failed {
                    for reply in c.waiting.drain(..) {
                        let _ = reply.send(if c.connected {
                            Ok(())
                        } else {
                            Err(anyhow!("ICE or DTLS failed"))
                        });
                    }
                }
            }
        }
        while let Some(out) = c.pc.poll_write() {
            // One datagram per call: a participant sends 50 packets a second, plus reports.
            match c.socket.send_to(&out.message, out.transport.peer_addr) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => eprintln!("a generator datagram was not sent: {e}"),
            }
        }
        c.wake = c.pc.poll_timeout();
    }
}

/// The machine's own address (the one its default route leaves by), for peers that must not
/// be on loopback (Janus gathers no loopback candidate). Nothing is sent.
pub fn own_address() -> Result<IpAddr> {
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    probe
        .connect((Ipv4Addr::new(192, 0, 2, 1), 9))
        .context("no route to find this machine's address by")?;
    let ip = probe.local_addr()?.ip();
    if ip.is_unspecified() {
        bail!("this machine has no address but loopback");
    }
    Ok(ip)
}
