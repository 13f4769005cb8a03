//! A WebRTC participant written with the `webrtc` crate, signalling through a real
//! `socket.io-client` (Node): it sends Opus-sized RTP from its microphone track every 20 ms
//! and records, per speaker (the MediaStream id of each stream the server offers), how many
//! packets arrived, and on which SSRCs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemoteEvent;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCPeerConnectionState, RTCSessionDescription,
};

use meet::media::engine::{Bridge, PcEvent, local_track};

use crate::sio::{AuthForm, Client, Kind};

/// What one participant heard of one speaker.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    pub packets: u64,
    /// The SSRCs the packets came with (one per server stream).
    pub ssrcs: Vec<u32>,
}

enum Cmd {
    Call(String, Value, oneshot::Sender<Value>),
}

#[derive(Default)]
pub struct Net {
    pub dtx: AtomicBool,
    pub lose_every: AtomicUsize,
}

pub struct Participant {
    pub user: String,
    /// The `connection-ack` the socket got.
    pub ack: Value,
    pub sid: String,
    pc: Arc<dyn PeerConnection>,
    cmds: mpsc::UnboundedSender<Cmd>,
    heard: Arc<Mutex<HashMap<String, Heard>>>,
    /// Whether the microphone sends.
    pub talking: Arc<AtomicBool>,
    /// How the microphone's stream behaves: DTX (nothing sent, timestamps run on), and loss
    /// (every Nth packet never sent, its sequence number and timestamp used up; 0: none).
    pub net: Arc<Net>,
    /// Offers the server made, and the audio sections in the last one.
    pub offers: Arc<AtomicUsize>,
    pub sections: Arc<AtomicUsize>,
    /// The first offer, and the server's answer to it.
    pub offer: String,
    pub answer: String,
    pub state: Arc<Mutex<RTCPeerConnectionState>>,
    /// Socket events other than signalling: (name, data, arrival).
    events: Arc<Mutex<Vec<(String, Value, Instant)>>>,
    tasks: Vec<JoinHandle<()>>,
}

async fn build_pc(tx: mpsc::UnboundedSender<PcEvent>) -> Arc<dyn PeerConnection> {
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(meet::media::engine::media_engine().expect("engine"))
        .with_interceptor_registry(meet::media::engine::registry())
        .with_setting_engine(meet::media::engine::setting_engine(
            &meet::config::Config::for_tests(std::path::Path::new("/tmp")).media,
        ))
        .with_handler(Arc::new(Bridge(tx)))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .expect("client peer connection");
    Arc::new(pc)
}

async fn gathered(events: &mut mpsc::UnboundedReceiver<PcEvent>, stash: &mut Vec<PcEvent>) {
    let wait = async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, PcEvent::Gathered) {
                return;
            }
            stash.push(ev);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
}

/// How a participant joins (the default: candidates in the offer, the server reached where it
/// says).
#[derive(Debug, Clone, Copy, Default)]
pub struct Join {
    /// The offer goes without candidates and each candidate follows as its own `candidate`
    /// signal (half before the offer, half after the answer).
    pub trickle: bool,
    /// The server is reached at this address instead (a NAT or a proxy in front of it): every
    /// candidate in the server's descriptions is rewritten to it.
    pub through: Option<SocketAddr>,
}

/// `sdp` with every candidate's address and port rewritten to `through`, if given.
fn reach_through(sdp: &str, through: Option<SocketAddr>) -> String {
    let Some(addr) = through else {
        return sdp.to_owned();
    };
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    sdp.split_inclusive('\n')
        .map(|line| {
            let mut fields: Vec<&str> = line.trim_end().split(' ').collect();
            if !line.starts_with("a=candidate:") || fields.len() < 6 {
                return line.to_owned();
            }
            fields[4] = &ip;
            fields[5] = &port;
            format!("{}\r\n", fields.join(" "))
        })
        .collect()
}

impl Participant {
    /// Connects the socket, makes the first offer and applies the server's answer.
    pub async fn join(base: &str, token: &str, meeting: &str, user: &str) -> Self {
        Self::join_with(base, token, meeting, user, Join::default()).await
    }

    pub async fn join_with(base: &str, token: &str, meeting: &str, user: &str, how: Join) -> Self {
        let trickle = how.trickle;
        let mut sio = Client::spawn(Kind::NodeWebsocket).await;
        let connected = sio
            .connect(base, AuthForm::Object, token, Some(meeting))
            .await
            .expect("socket connects");
        let sid = sio.sid.clone();
        let (tx, mut events) = mpsc::unbounded_channel();
        let pc = build_pc(tx).await;

        let ssrc = rand::random::<u32>() | 1;
        let mic = Arc::new(local_track(
            format!("mic-{user}"),
            format!("mic-{user}"),
            ssrc,
        ));
        let sender = pc
            .add_track(Arc::clone(&mic) as Arc<dyn TrackLocal>)
            .await
            .expect("mic track");
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer).await.expect("local offer");
        let mut stash = Vec::new();
        gathered(&mut events, &mut stash).await;
        let offer = pc.local_description().await.expect("offer sdp").sdp;
        let (offer, candidates): (Vec<&str>, Vec<&str>) = offer
            .split_inclusive('\n')
            .partition(|l| !(trickle && l.starts_with("a=candidate:")));
        let offer: String = offer.concat();
        let mid = offer
            .lines()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .unwrap_or("0")
            .trim()
            .to_owned();
        let candidate = |line: &str| {
            let c = line.trim().trim_start_matches("a=");
            json!({"signal": {"type": "candidate", "candidate": {"candidate": c, "sdpMid": mid, "sdpMLineIndex": 0}}})
        };
        let (early, late) = candidates.split_at(candidates.len() / 2);
        for line in early {
            let ack = sio.call("webrtc-signal", candidate(line)).await;
            assert_eq!(ack["ok"], true, "early candidate refused: {ack}");
        }
        let ack = sio
            .call(
                "webrtc-signal",
                json!({"signal": {"type": "offer", "sdp": offer}}),
            )
            .await;
        assert_eq!(ack["ok"], true, "offer refused: {ack}");
        for line in late {
            let ack = sio.call("webrtc-signal", candidate(line)).await;
            assert_eq!(ack["ok"], true, "candidate refused: {ack}");
        }
        if trickle {
            assert!(!candidates.is_empty(), "no candidate to trickle");
            assert!(!offer.contains("a=candidate:"));
        }
        assert_eq!(ack["signal"]["type"], "answer");
        let answer = ack["signal"]["sdp"]
            .as_str()
            .expect("answer sdp")
            .to_owned();
        let applied = reach_through(&answer, how.through);
        pc.set_remote_description(RTCSessionDescription::answer(applied).expect("answer"))
            .await
            .expect("apply answer");
        let params = sender.get_parameters().await.expect("sender parameters");
        let pt = params.rtp_parameters.codecs[0].payload_type;
        let level_id = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|h| h.uri == AUDIO_LEVEL_URI)
            .map(|h| h.id as u8);

        let heard = Arc::new(Mutex::new(HashMap::new()));
        let talking = Arc::new(AtomicBool::new(true));
        let net = Arc::new(Net::default());
        let offers = Arc::new(AtomicUsize::new(0));
        let sections = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(RTCPeerConnectionState::New));
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let socket_events = Arc::new(Mutex::new(Vec::new()));
        let tasks = vec![
            tokio::spawn(signalling(
                sio,
                Arc::clone(&pc),
                cmd_rx,
                Arc::clone(&offers),
                Arc::clone(&sections),
                Arc::clone(&socket_events),
                how.through,
            )),
            tokio::spawn(receive(
                events,
                stash,
                Arc::clone(&heard),
                Arc::clone(&state),
            )),
            tokio::spawn(speak(
                mic,
                ssrc,
                pt,
                level_id,
                Arc::clone(&talking),
                Arc::clone(&net),
            )),
        ];
        Self {
            user: user.to_owned(),
            ack: connected,
            sid,
            pc,
            cmds,
            heard,
            talking,
            net,
            offers,
            sections,
            offer,
            answer,
            state,
            events: socket_events,
            tasks,
        }
    }

    /// Emits a socket event and returns its acknowledgement.
    pub async fn call(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Cmd::Call(event.to_owned(), data, tx));
        rx.await.unwrap_or(Value::Null)
    }

    /// What was heard of each speaker so far.
    pub fn heard(&self) -> HashMap<String, Heard> {
        self.heard.lock().expect("heard").clone()
    }

    pub fn packets_from(&self, user: &str) -> u64 {
        self.heard().get(user).map_or(0, |h| h.packets)
    }

    /// The socket events `name` received so far, with their arrival times.
    pub fn events(&self, name: &str) -> Vec<(Value, Instant)> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, v, t)| (v.clone(), *t))
            .collect()
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.lock().expect("state")
    }

    /// Whether its socket is still answering the server's offers (the task ends when the
    /// socket closes or an offer could not be answered).
    pub fn signalling(&self) -> bool {
        !self.tasks[0].is_finished()
    }

    /// Closes the connection and the socket properly.
    pub async fn leave(self) {
        // The tasks first: a re-offer arriving while the connection closes is no failure.
        // One that failed before (an answer refused, an offer that could not be applied)
        // fails the test here.
        for t in self.tasks {
            t.abort();
            if let Err(e) = t.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        let _ = self.pc.close().await;
    }
}

/// Answers the server's offers and runs the test's socket calls, in order.
async fn signalling(
    mut sio: Client,
    pc: Arc<dyn PeerConnection>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    offers: Arc<AtomicUsize>,
    sections: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<(String, Value, Instant)>>>,
    through: Option<SocketAddr>,
) {
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Call(event, data, reply)) => {
                    let ack = sio.call(&event, data).await;
                    let _ = reply.send(ack);
                }
                None => return,
            },
            line = sio.next_line() => {
                let Some(line) = line else { return };
                if line["ev"] != "event" {
                    continue;
                }
                if line["name"] != "webrtc-signal" {
                    let name = line["name"].as_str().unwrap_or_default().to_owned();
                    events.lock().expect("events").push((name, line["data"].clone(), Instant::now()));
                    continue;
                }
                let signal = &line["data"]["signal"];
                if signal["type"] != "offer" {
                    continue; // the answer event (applied from the ack) and candidates
                }
                let sdp = reach_through(signal["sdp"].as_str().unwrap_or_default(), through);
                sections.store(sdp.matches("m=audio ").count(), Relaxed);
                let offer = RTCSessionDescription::offer(sdp).expect("server offer");
                pc.set_remote_description(offer).await.expect("apply server offer");
                let answer = pc.create_answer(None).await.expect("answer");
                pc.set_local_description(answer).await.expect("local answer");
                let sdp = pc.local_description().await.expect("answer sdp").sdp;
                let ack = sio
                    .call("webrtc-signal", json!({"signal": {"type": "answer", "sdp": sdp}}))
                    .await;
                assert_eq!(ack["ok"], true, "answer refused: {ack}");
                offers.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Reads every stream the server sends, counting packets per speaker (MediaStream id).
async fn receive(
    mut events: mpsc::UnboundedReceiver<PcEvent>,
    stash: Vec<PcEvent>,
    heard: Arc<Mutex<HashMap<String, Heard>>>,
    state: Arc<Mutex<RTCPeerConnectionState>>,
) {
    let mut pending = stash.into_iter();
    loop {
        let ev = match pending.next() {
            Some(ev) => ev,
            None => match events.recv().await {
                Some(ev) => ev,
                None => return,
            },
        };
        match ev {
            PcEvent::State(s) => *state.lock().expect("state") = s,
            PcEvent::Track(track) => {
                let heard = Arc::clone(&heard);
                tokio::spawn(async move {
                    let speaker = track.stream_id().await;
                    while let Some(ev) = track.poll().await {
                        if let TrackRemoteEvent::OnRtpPacket(p) = ev {
                            let mut all = heard.lock().expect("heard");
                            let h = all.entry(speaker.clone()).or_default();
                            h.packets += 1;
                            if !h.ssrcs.contains(&p.header.ssrc) {
                                h.ssrcs.push(p.header.ssrc);
                            }
                        }
                    }
                });
            }
            PcEvent::Gathered | PcEvent::Candidate(_) => {}
        }
    }
}

/// The microphone: a 100-byte "Opus" packet every 20 ms (the SFU never decodes), with a loud
/// audio level.
async fn speak(
    mic: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    level_id: Option<u8>,
    talking: Arc<AtomicBool>,
    net: Arc<Net>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts) = (rand::random::<u16>(), rand::random::<u32>());
    let mut n = 0usize;
    loop {
        tick.tick().await;
        if !talking.load(Relaxed) {
            continue;
        }
        if net.dtx.load(Relaxed) {
            ts = ts.wrapping_add(960);
            continue;
        }
        n += 1;
        let every = net.lose_every.load(Relaxed);
        if every > 0 && n.is_multiple_of(every) {
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
            continue;
        }
        let mut header = rtp::Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        };
        if let Some(id) = level_id {
            let _ = header.set_extension(id, Bytes::from_static(&[0x80 | 10]));
        }
        let packet = rtp::Packet {
            header,
            payload: Bytes::from(vec![0xf8; 100]),
        };
        if mic.write_rtp(packet).await.is_err() {
            return;
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(960);
    }
}

/// An aiortc participant (`tests/clients/rtc_py.py`): python-socketio for signalling, a real
/// Opus encoder sending a sine tone, and per speaker the decoded audio's dominant frequency.
pub struct Aiortc {
    pub user: String,
    pub client: Client,
    /// The server's answer to the first offer.
    pub answer: String,
}

impl Aiortc {
    pub async fn join(base: &str, token: &str, meeting: &str, user: &str, tone_hz: u32) -> Self {
        let tone = tone_hz.to_string();
        let mut client = Client::spawn_with(Kind::Aiortc, &[base, token, meeting, &tone]).await;
        client
            .wait_for(|v| v["ev"] == "ready", crate::sio::WAIT)
            .await
            .unwrap_or_else(|| panic!("aiortc client of {user} not ready"));
        client.send(json!({"cmd": "offer"})).await;
        let answered = client
            .wait_for(
                |v| v["ev"] == "answered" || v["ev"] == "offer_refused",
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|| panic!("no answer for {user}"));
        assert_eq!(answered["ev"], "answered", "{answered}");
        Self {
            user: user.to_owned(),
            answer: answered["sdp"].as_str().unwrap_or_default().to_owned(),
            client,
        }
    }

    /// Per speaker: `{frames, audible_frames, rms, freq, since_audible}` over the last 0.5 s.
    pub async fn stats(&mut self) -> Value {
        self.client.send(json!({"cmd": "stats"})).await;
        self.client
            .wait_for(|v| v["ev"] == "stats", crate::sio::WAIT)
            .await
            .map(|v| v["users"].clone())
            .filter(Value::is_object)
            .expect("the aiortc client gave no stats")
    }

    pub async fn reset(&mut self) {
        self.client.send(json!({"cmd": "reset"})).await;
    }

    pub async fn quit(mut self) {
        self.client.send(json!({"cmd": "quit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.next_line()).await;
    }
}
