//! The SFU with real WebRTC peers: `webrtc`-crate participants signalling through
//! `socket.io-client`, and aiortc participants (Python) that send and decode real Opus.
//! Who hears whom under broadcast, private mode and mutes; renegotiation as people come and
//! go; bad signals; a peer that vanishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Class, metric_in as metric};
use crate::rtc::{Aiortc, Join, Participant};
use crate::sio::{AuthForm, Client, Kind};

/// A host, `n` students and a meeting.
async fn class(n: usize, tweak: impl FnOnce(&mut meet::config::Config)) -> Class {
    let names: Vec<String> = (0..n).map(|i| format!("student{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Class::start(&names, tweak).await
}

impl Class {
    async fn peer(&self, (id, token): &(String, String)) -> Participant {
        Participant::join(&self.server.base, token, &self.meeting, id).await
    }

    async fn switch(&self, mode: &str, with: Option<&str>) {
        self.server
            .post(
                "/api/meetings/switch-mode",
                &self.host.1,
                json!({"meetingId": self.meeting, "mode": mode, "participantId": with}),
            )
            .await
            .expect(200);
    }

    async fn metrics(&self) -> String {
        crate::common::metrics_text(&self.server.base)
            .await
            .expect("metrics")
    }
}

/// Waits until `cond` holds (checked every 50 ms), for at most `limit`.
async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Packets each listener got from each speaker, by user id.
fn counts(people: &[&Participant]) -> HashMap<(String, String), u64> {
    let mut out = HashMap::new();
    for listener in people {
        for speaker in people {
            out.insert(
                (listener.user.clone(), speaker.user.clone()),
                listener.packets_from(&speaker.user),
            );
        }
    }
    out
}

/// Over `wait`, which (listener, speaker) pairs got new packets.
async fn flowing(people: &[&Participant], wait: Duration) -> Vec<(String, String)> {
    let before = counts(people);
    tokio::time::sleep(wait).await;
    let after = counts(people);
    let mut pairs: Vec<(String, String)> = after
        .into_iter()
        .filter(|(k, v)| *v > before.get(k).copied().unwrap_or(0))
        .map(|(k, _)| k)
        .collect();
    pairs.sort();
    pairs
}

/// Waits (at most 10 s) for a window of 400 ms in which exactly the pairs `want` get packets:
/// a change of routing takes effect within the packets already on their way. The last window
/// seen, to compare with `want`.
async fn settles(people: &[&Participant], want: &[(String, String)]) -> Vec<(String, String)> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let got = flowing(people, Duration::from_millis(400)).await;
        if got == want || Instant::now() > end {
            return got;
        }
    }
}

fn pairs(of: &[(&Participant, &Participant)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = of
        .iter()
        .map(|(l, s)| (l.user.clone(), s.user.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_peers_hear_each_other_under_private_mode_and_mutes() {
    let c = class(2, |_| {}).await;
    let host = c.peer(&c.host).await;
    // Ana's candidates trickle (signals of their own, before and after her offer).
    let (ana_id, ana_token) = &c.students[0];
    let ana = Participant::join_with(
        &c.server.base,
        ana_token,
        &c.meeting,
        ana_id,
        Join {
            trickle: true,
            ..Join::default()
        },
    )
    .await;
    let ben = c.peer(&c.students[1]).await;
    let all = [&host, &ana, &ben];
    let everyone = pairs(&[
        (&host, &ana),
        (&host, &ben),
        (&ana, &host),
        (&ana, &ben),
        (&ben, &host),
        (&ben, &ana),
    ]);

    // Broadcast: each hears the two others (one stream each, by MediaStream id = user id),
    // never itself.
    assert!(
        until(Duration::from_secs(10), || all.iter().all(|l| all
            .iter()
            .all(|s| s.user == l.user || l.packets_from(&s.user) > 10)))
        .await,
        "not everyone hears everyone: {:?}",
        counts(&all)
    );
    assert_eq!(flowing(&all, Duration::from_millis(500)).await, everyone);
    for p in all {
        assert_eq!(p.packets_from(&p.user), 0, "{} hears itself", p.user);
        for (speaker, heard) in p.heard() {
            assert_eq!(heard.ssrcs.len(), 1, "{} → {speaker}: {heard:?}", p.user);
        }
        // The server's offer: the client's microphone section and one per other participant.
        assert!(p.offers.load(Relaxed) >= 1);
    }

    // The audio levels the clients stamp (−10 dBov ≈ 0.833) make an active speaker, announced
    // at most every 300 ms per meeting. (The host was in the meeting first: a change that
    // came before the others joined reached only the host.)
    assert!(
        until(Duration::from_secs(5), || !host
            .events("active-speaker")
            .is_empty())
        .await,
        "no active-speaker from the SFU's levels"
    );
    let announced = host.events("active-speaker");
    for (a, _) in &announced {
        let level = a["level"].as_f64().unwrap_or(0.0);
        assert!((0.5..0.84).contains(&level), "{a}");
        assert!(all.iter().any(|p| a["userId"] == p.user.as_str()), "{a}");
    }
    // How often it may be announced is the tracker's (`domain::speaker`'s unit tests, on a
    // clock of their own).

    // Private mode with ana: only host ↔ ana; ben hears no one and no one hears ben. No
    // renegotiation: the offers stay as they were.
    let offers: Vec<usize> = all.iter().map(|p| p.offers.load(Relaxed)).collect();
    c.switch("private", Some(&ana.user)).await;
    let private = pairs(&[(&host, &ana), (&ana, &host)]);
    assert_eq!(settles(&all, &private).await, private);
    // The active speaker within the pair: each falls silent in turn, so the other is the
    // loudest (the first may be so already; the second is a change for sure), and only the
    // pair hears of it: ben, outside, gets no `active-speaker`.
    let since = Instant::now();
    let announced = |p: &Participant, from: Option<Instant>| {
        p.events("active-speaker")
            .into_iter()
            .filter(|(_, t)| from.is_none_or(|f| *t >= f))
            .map(|(v, _)| v["userId"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<String>>()
    };
    for (quiet, loud) in [(&host, &ana), (&ana, &host)] {
        quiet.talking.store(false, Relaxed);
        assert!(
            until(Duration::from_secs(5), || announced(quiet, None)
                .last()
                .is_some_and(|u| *u == loud.user))
            .await,
            "{} is not the active speaker for {} once {} is silent: {:?}",
            loud.user,
            quiet.user,
            quiet.user,
            announced(quiet, None)
        );
        quiet.talking.store(true, Relaxed);
    }
    assert!(
        !announced(&ana, Some(since)).is_empty(),
        "no announcement reached the pair"
    );
    assert_eq!(
        announced(&ben, Some(since)),
        Vec::<String>::new(),
        "ben is outside the private talk"
    );
    // Back to broadcast: everything flows again.
    c.switch("broadcast", None).await;
    assert_eq!(settles(&all, &everyone).await, everyone);
    let after: Vec<usize> = all.iter().map(|p| p.offers.load(Relaxed)).collect();
    assert_eq!(offers, after, "mode switches renegotiated");

    // A server-side mute stops ana's packets at every listener; the others still flow.
    let ack = host
        .call("mute-participant", json!({"userId": ana.user}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let muted = pairs(&[(&host, &ben), (&ana, &host), (&ana, &ben), (&ben, &host)]);
    assert_eq!(settles(&all, &muted).await, muted);
    let ack = host
        .call("unmute-participant", json!({"userId": ana.user}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(settles(&all, &everyone).await, everyone);

    // A connection takes at most 32 remote candidates.
    for i in 0..33u16 {
        let c = format!("candidate:{i} 1 udp 1 127.0.0.1 {} typ host", 10_000 + i);
        let ack = host
            .call(
                "webrtc-signal",
                json!({"signal": {"type": "candidate", "candidate": {"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0}}}),
            )
            .await;
        if i < 32 {
            assert_eq!(ack["ok"], true, "candidate {i}: {ack}");
        } else {
            assert_eq!(ack["code"], "bad_request", "candidate {i}: {ack}");
        }
    }

    // Stats: per participant and for the server.
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 3.0);
    assert!(metric(&m, "meet_sfu_forwarded_packets_total") > 300.0);
    for p in all {
        let label = format!("{{meeting=\"{}\",user=\"{}\"}}", c.meeting, p.user);
        let v = |name: &str| metric(&m, &format!("{name}{label}"));
        assert!(v("meet_sfu_participant_packets_in_total") > 100.0, "{m}");
        assert!(v("meet_sfu_participant_bytes_out_total") > 10_000.0, "{m}");
        // The clients stamp −10 dBov: (60 − 10) / 60 ≈ 0.833 on the relay's scale.
        let level = v("meet_sfu_participant_audio_level");
        assert!((0.83..0.84).contains(&level), "level {level}");
    }

    for p in [host, ana, ben] {
        p.leave().await;
    }
    let mut closed = false;
    for _ in 0..50 {
        let m = c.metrics().await;
        if metric(&m, "meet_sfu_peers") == 0.0 && metric(&m, "meet_sfu_udp_ports_leased") == 0.0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "peers or ports left after everyone left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_peers_renegotiate_as_people_join_and_leave() {
    let c = class(10, |_| {}).await;
    let mut people = vec![c.peer(&c.host).await];
    for s in &c.students[..9] {
        people.push(c.peer(s).await);
    }
    let hears_all = |people: &[Participant]| {
        people.iter().all(|l| {
            people
                .iter()
                .all(|s| s.user == l.user || l.packets_from(&s.user) > 5)
        })
    };
    assert!(
        until(Duration::from_secs(20), || hears_all(&people)).await,
        "ten peers do not all hear each other"
    );
    // Everyone's last offer: their microphone and nine speakers.
    for p in &people {
        assert_eq!(p.sections.load(Relaxed), 10, "{}", p.user);
    }

    // Three leave (their sockets close): the others get an offer without their streams, and
    // nothing more of them.
    let offers_before: Vec<usize> = people.iter().map(|p| p.offers.load(Relaxed)).collect();
    let gone: Vec<Participant> = people.drain(7..).collect();
    let gone_ids: Vec<String> = gone.iter().map(|p| p.user.clone()).collect();
    for p in gone {
        p.leave().await;
    }
    assert!(
        until(Duration::from_secs(10), || people
            .iter()
            .zip(&offers_before)
            .all(|(p, before)| p.offers.load(Relaxed) > *before))
        .await,
        "no renegotiation after three left"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot: Vec<Vec<u64>> = people
        .iter()
        .map(|p| gone_ids.iter().map(|g| p.packets_from(g)).collect())
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (p, before) in people.iter().zip(&snapshot) {
        let now: Vec<u64> = gone_ids.iter().map(|g| p.packets_from(g)).collect();
        assert_eq!(&now, before, "{} still hears someone who left", p.user);
    }
    let remaining: Vec<&Participant> = people.iter().collect();
    let flows = flowing(&remaining, Duration::from_millis(500)).await;
    assert_eq!(
        flows.len(),
        7 * 6,
        "the seven still hear each other: {flows:?}"
    );

    // A tenth person joins: everyone is offered their stream, and hears them.
    let late = c.peer(&c.students[9]).await;
    assert!(
        until(Duration::from_secs(10), || people
            .iter()
            .all(|p| p.packets_from(&late.user) > 5)
            && people.iter().all(|p| late.packets_from(&p.user) > 5))
        .await,
        "the late joiner is not heard both ways"
    );
    // The late joiner's stream took a departed speaker's m-line: no offer grew.
    for p in &people {
        assert_eq!(p.sections.load(Relaxed), 10, "{}", p.user);
    }
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 8.0);
    late.leave().await;
    for p in people {
        p.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signals_get_error_acknowledgements() {
    let c = class(1, |_| {}).await;
    let mut s = Client::spawn(Kind::NodeWebsocket).await;
    s.connect(&c.server.base, AuthForm::Object, &c.students[0].1, None)
        .await
        .expect("connects");
    let offer = json!({"signal": {"type": "offer", "sdp": "v=0\r\n"}});
    // Not in a meeting yet.
    let ack = s.call("webrtc-signal", offer.clone()).await;
    assert_eq!(ack["code"], "forbidden", "{ack}");
    let joined = s
        .call("join-meeting", json!({"meetingId": c.meeting}))
        .await;
    assert_eq!(joined["ok"], true, "{joined}");

    let one_section =
        json!({"signal": {"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}});
    let two_sections = json!({"signal": {"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}});
    let data_channel = json!({"signal": {"type": "offer", "sdp": "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"}});
    let cases = [
        (offer, "validation_failed"),
        (two_sections, "validation_failed"),
        (data_channel, "validation_failed"),
        (one_section.clone(), "bad_request"),
        (
            json!({"signal": {"type": "offer", "sdp": ""}}),
            "validation_failed",
        ),
        (
            json!({"signal": {"type": "offer", "sdp": "x".repeat(200_000)}}),
            "payload_too_large",
        ),
        (json!({"signal": {"type": "rollback"}}), "bad_request"),
        (json!({"signal": "offer"}), "bad_request"),
        (json!({}), "bad_request"),
        (
            json!({"signal": {"type": "answer", "sdp": "v=0\r\n"}}),
            "no_peer_connection",
        ),
        (
            json!({"signal": {"type": "candidate", "candidate": {"candidate": "x".repeat(2000)}}}),
            "validation_failed",
        ),
    ];
    for (data, code) in cases {
        let ack = s.call("webrtc-signal", data.clone()).await;
        assert_eq!(ack["ok"], false, "{data}: {ack}");
        assert_eq!(ack["code"], code, "{ack}");
        assert!(ack["message"].is_string(), "{ack}");
    }
    // A candidate before the offer is kept for it.
    let ack = s
        .call(
            "webrtc-signal",
            json!({"signal": {"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    // Offers (each would open a connection and a UDP port) have a budget per socket: a burst
    // of 5, then one per 5 s.
    let mut fresh = Client::spawn(Kind::NodeWebsocket).await;
    fresh
        .connect(
            &c.server.base,
            AuthForm::Object,
            &c.students[0].1,
            Some(&c.meeting),
        )
        .await
        .expect("connects");
    let garbage = one_section;
    for i in 0..5 {
        let ack = fresh.call("webrtc-signal", garbage.clone()).await;
        assert_eq!(ack["code"], "bad_request", "offer {i}: {ack}");
    }
    let ack = fresh.call("webrtc-signal", garbage).await;
    assert_eq!(ack["code"], "rate_limited", "{ack}");
    // Other signals have their own, larger budget.
    let ack = fresh
        .call(
            "webrtc-signal",
            json!({"signal": {"type": "candidate", "candidate": {"candidate": ""}}}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    // The server is still well: no peer was left behind.
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 0.0);
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 0.0);
}

/// Who each aiortc listener hears right now: speaker → dominant frequency, for the speakers
/// whose decoded audio over the last 0.5 s is loud (RMS > 500 on the Int16 scale) and fresh.
async fn tones(listener: &mut Aiortc) -> HashMap<String, f64> {
    let stats = listener.stats().await;
    let mut out = HashMap::new();
    if let Some(users) = stats.as_object() {
        for (user, s) in users {
            let fresh = s["since_audible"].as_f64().is_some_and(|t| t < 0.3);
            if fresh && s["rms"].as_f64().unwrap_or(0.0) > 500.0 {
                out.insert(user.clone(), s["freq"].as_f64().unwrap_or(0.0));
            }
        }
    }
    out
}

/// Waits until every listener hears exactly `expected[listener]` (speaker → tone, ±20 Hz).
async fn hear_exactly(
    people: &mut [&mut Aiortc],
    expected: &HashMap<String, Vec<(String, f64)>>,
    limit: Duration,
) {
    let end = Instant::now() + limit;
    loop {
        let mut wrong = Vec::new();
        for p in people.iter_mut() {
            let got = tones(p).await;
            let want = &expected[&p.user];
            let ok = got.len() == want.len()
                && want
                    .iter()
                    .all(|(s, hz)| got.get(s).is_some_and(|f| (f - hz).abs() <= 20.0));
            if !ok {
                wrong.push(format!("{} hears {got:?}, wants {want:?}", p.user));
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(Instant::now() < end, "{}", wrong.join("; "));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_peers_hear_each_others_tone_and_private_mode_isolates() {
    let c = class(2, |_| {}).await;
    let base = &c.server.base;
    let (host_id, ana_id, ben_id) = (&c.host.0, &c.students[0].0, &c.students[1].0);
    let mut host = Aiortc::join(base, &c.host.1, &c.meeting, host_id, 440).await;
    let mut ana = Aiortc::join(base, &c.students[0].1, &c.meeting, ana_id, 660).await;
    let mut ben = Aiortc::join(base, &c.students[1].1, &c.meeting, ben_id, 880).await;
    let tone = |id: &String, hz: f64| (id.clone(), hz);
    let expect =
        |pairs: [(&String, Vec<(String, f64)>); 3]| -> HashMap<String, Vec<(String, f64)>> {
            pairs.into_iter().map(|(k, v)| (k.clone(), v)).collect()
        };
    let broadcast = expect([
        (host_id, vec![tone(ana_id, 660.0), tone(ben_id, 880.0)]),
        (ana_id, vec![tone(host_id, 440.0), tone(ben_id, 880.0)]),
        (ben_id, vec![tone(host_id, 440.0), tone(ana_id, 660.0)]),
    ]);
    // Broadcast: each decodes the two others' tones (real Opus, forwarded untouched).
    hear_exactly(
        &mut [&mut host, &mut ana, &mut ben],
        &broadcast,
        Duration::from_secs(20),
    )
    .await;

    // Private mode with ana: host and ana hear each other only; ben hears nothing.
    c.switch("private", Some(ana_id)).await;
    let private = expect([
        (host_id, vec![tone(ana_id, 660.0)]),
        (ana_id, vec![tone(host_id, 440.0)]),
        (ben_id, vec![]),
    ]);
    hear_exactly(
        &mut [&mut host, &mut ana, &mut ben],
        &private,
        Duration::from_secs(5),
    )
    .await;
    // And it holds: ben's counters do not move at all.
    ben.reset().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let quiet = ben.stats().await;
    for (speaker, s) in quiet.as_object().into_iter().flatten() {
        assert_eq!(
            s["frames"], 0,
            "ben got frames of {speaker} in private mode: {s}"
        );
    }

    // Back to broadcast: everyone again.
    c.switch("broadcast", None).await;
    hear_exactly(
        &mut [&mut host, &mut ana, &mut ben],
        &broadcast,
        Duration::from_secs(5),
    )
    .await;

    // A muted ben is heard by no one; the others still are.
    let mut mute = json!({"cmd": "emit", "event": "mute-participant", "data": {"userId": ben_id}});
    host.client.send(mute.take()).await;
    let muted = expect([
        (host_id, vec![tone(ana_id, 660.0)]),
        (ana_id, vec![tone(host_id, 440.0)]),
        (ben_id, vec![tone(host_id, 440.0), tone(ana_id, 660.0)]),
    ]);
    hear_exactly(
        &mut [&mut host, &mut ana, &mut ben],
        &muted,
        Duration::from_secs(5),
    )
    .await;

    for p in [host, ana, ben] {
        p.quit().await;
    }
}

/// A server offer left unanswered closes its connection after `media.answer_timeout_ms`, and
/// only that one: the others go on hearing each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_offer_left_unanswered_closes_its_connection() {
    let c = class(2, |config| {
        config.media.answer_timeout = Duration::from_millis(1500);
    })
    .await;
    let base = &c.server.base;
    let (host_id, ana_id, ben_id) = (&c.host.0, &c.students[0].0, &c.students[1].0);
    let mut host = Aiortc::join(base, &c.host.1, &c.meeting, host_id, 440).await;
    let mut ana = Aiortc::join(base, &c.students[0].1, &c.meeting, ana_id, 660).await;
    let pair =
        |a: &String, hz_a: f64, b: &String, hz_b: f64| -> HashMap<String, Vec<(String, f64)>> {
            HashMap::from([
                (a.clone(), vec![(b.clone(), hz_b)]),
                (b.clone(), vec![(a.clone(), hz_a)]),
            ])
        };
    hear_exactly(
        &mut [&mut host, &mut ana],
        &pair(host_id, 440.0, ana_id, 660.0),
        Duration::from_secs(20),
    )
    .await;

    // Ana stops answering; ben's arrival makes the server offer her his stream.
    ana.client
        .send(json!({"cmd": "answers", "on": false}))
        .await;
    let mut ben = Aiortc::join(base, &c.students[1].1, &c.meeting, ben_id, 880).await;
    ana.client
        .wait_for(|v| v["ev"] == "reoffer_ignored", Duration::from_secs(20))
        .await
        .expect("the server offered ana ben's stream");
    assert!(
        until_metric(&c, "meet_sfu_peers", 2.0, Duration::from_secs(20)).await,
        "ana's connection is still open long after the answer timeout"
    );
    // The host and ben hear each other, and the host no longer hears ana.
    hear_exactly(
        &mut [&mut host, &mut ben],
        &pair(host_id, 440.0, ben_id, 880.0),
        Duration::from_secs(20),
    )
    .await;
    for p in [host, ana, ben] {
        p.quit().await;
    }
}

/// Waits until the server's metric `name` is `value`, for at most `limit`.
async fn until_metric(c: &Class, name: &str, value: f64, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if metric(&c.metrics().await, name) == value {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_is_closed_by_the_ice_timeout_and_its_port_freed() {
    let c = class(1, |config| {
        config.media.ice_disconnected_timeout = Duration::from_millis(500);
        config.media.ice_failed_timeout = Duration::from_millis(1000);
        config.media.ice_keepalive_interval = Duration::from_millis(200);
    })
    .await;
    let ana_token = &c.students[0].1;
    let mut ana = Client::spawn_with(
        Kind::Aiortc,
        &[&c.server.base, ana_token, &c.meeting, "440"],
    )
    .await;
    ana.wait_for(|v| v["ev"] == "ready", Duration::from_secs(10))
        .await
        .expect("ready");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = metric(&c.metrics().await, "meet_runtime_alive_tasks");
    ana.send(json!({"cmd": "offer"})).await;
    let answered = ana
        .wait_for(|v| v["ev"] == "answered", Duration::from_secs(20))
        .await
        .expect("answered");
    let sdp = answered["sdp"].as_str().unwrap_or_default();
    let port: u16 = sdp
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .and_then(|l| l.split(' ').nth(5))
        .and_then(|p| p.parse().ok())
        .expect("a host candidate in the answer");
    ana.wait_for(
        |v| v["ev"] == "pcstate" && v["state"] == "connected",
        Duration::from_secs(10),
    )
    .await
    .expect("connected");
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 1.0);
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 1.0);
    // The engine's one port carries the connection (and would carry every other one).
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "the peer's port {port} is not held"
    );

    // The client freezes: no ICE, no DTLS, no goodbye. Its socket stays open.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &ana.pid().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let start = Instant::now();
    let mut closed = None;
    while start.elapsed() < Duration::from_secs(15) {
        let m = c.metrics().await;
        if metric(&m, "meet_sfu_peers") == 0.0 {
            closed = Some((start.elapsed(), m));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, m) = closed.expect("the vanished peer is still open after 15 s");
    eprintln!("vanished peer closed after {took:?}");
    // Closed as failed (its ICE checks timed out), not as a goodbye.
    assert_eq!(metric(&m, "meet_sfu_peers_failed_total"), 1.0);
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 0.0);
    // Nothing of it remains (the socket's tasks remain: it is still connected), and its port
    // is no longer in use by any connection.
    let tasks_now = || async { metric(&c.metrics().await, "meet_runtime_alive_tasks") };
    let mut tasks = f64::MAX;
    for _ in 0..30 {
        tasks = tasks_now().await;
        if tasks <= before + 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tasks <= before + 1.0,
        "tasks: {before} before the peer, {tasks} after its end"
    );
    // The meeting ends: nothing of it remains.
    c.end_meeting().await;
    let mut tasks = f64::MAX;
    for _ in 0..30 {
        tasks = tasks_now().await;
        if tasks <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tasks <= before,
        "tasks: {before} before the peer, {tasks} after the end"
    );
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &ana.pid().to_string()])
        .status();
    ana.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_candidates_announce_the_configured_public_address() {
    let c = class(1, |config| {
        config.media.public_ip = Some("203.0.113.7".parse().expect("ip"));
    })
    .await;
    let (ana_id, ana_token) = &c.students[0];
    let ana = Aiortc::join(&c.server.base, ana_token, &c.meeting, ana_id, 440).await;
    let candidates: Vec<&str> = ana
        .answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "{}", ana.answer);
    for line in &candidates {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[4], "203.0.113.7", "{line}");
        assert_eq!(fields[7], "host", "{line}");
    }
    // The port is still the one the server bound on its own address.
    let port: u16 = candidates[0]
        .split(' ')
        .nth(5)
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_err());
    // And Opus asks for FEC and DTX.
    assert!(
        ana.answer.contains("useinbandfec=1;usedtx=1"),
        "{}",
        ana.answer
    );
    ana.quit().await;
}

/// A STUN binding request naming `username`, with a MESSAGE-INTEGRITY made without the
/// connection's password (20 bytes of zeros).
fn forged_binding(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut attr = |kind: u16, value: &[u8]| {
        attrs.extend_from_slice(&kind.to_be_bytes());
        attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    attr(0x0006, username.as_bytes());
    attr(0x0008, &[0; 20]);
    let mut m = Vec::new();
    m.extend_from_slice(&0x0001u16.to_be_bytes());
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&attrs);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_dropped_and_counted_and_forged_checks_ignored() {
    let c = class(2, |_| {}).await;
    let ana = c.peer(&c.students[0]).await;
    let ben = c.peer(&c.students[1]).await;
    assert!(
        until(Duration::from_secs(10), || ana.packets_from(&ben.user) > 5
            && ben.packets_from(&ana.user) > 5)
        .await,
        "two peers on one port do not hear each other"
    );
    let sdp = ana.answer.clone();
    let port = candidate_port(&sdp);
    let ufrag = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_owned();
    // Both connections share that one port.
    assert!(
        ben.answer.contains(&format!(" {port} typ host")),
        "{}",
        ben.answer
    );
    let before = metric(&c.metrics().await, "meet_sfu_unknown_datagrams_total");

    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // RTP-looking bytes, a DTLS-looking record, and a check naming nobody: all nobody's.
    for datagram in [
        vec![0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7],
        vec![22, 254, 253, 0, 0],
        forged_binding("nobody:evil"),
    ] {
        stranger
            .send_to(&datagram, ("127.0.0.1", port))
            .await
            .expect("send");
    }
    // A check naming ana's connection with a wrong MESSAGE-INTEGRITY: no answer, and what
    // comes from that address next is still nobody's.
    stranger
        .send_to(
            &forged_binding(&format!("{ufrag}:evil")),
            ("127.0.0.1", port),
        )
        .await
        .expect("send");
    let mut buf = [0u8; 1500];
    let answered =
        tokio::time::timeout(Duration::from_millis(500), stranger.recv_from(&mut buf)).await;
    assert!(answered.is_err(), "a forged check was answered");
    stranger
        .send_to(
            &[0x80, 111, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7],
            ("127.0.0.1", port),
        )
        .await
        .expect("send");
    let counted =
        || async { metric(&c.metrics().await, "meet_sfu_unknown_datagrams_total") - before };
    let mut dropped = 0.0;
    for _ in 0..50 {
        dropped = counted().await;
        if dropped >= 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dropped, 4.0, "strangers' datagrams dropped and counted");
    // The two still hear each other.
    let flows = flowing(&[&ana, &ben], Duration::from_millis(500)).await;
    assert_eq!(flows.len(), 2, "{flows:?}");
    ana.leave().await;
    ben.leave().await;
}

/// Ana and the host in the class's meeting (heard both ways), and ben alone in a second
/// meeting of the same host.
async fn two_meetings(c: &Class) -> (Participant, Participant, Participant) {
    let second = c.server.meeting(&c.host.1, "Second class").await;
    let ana = c.peer(&c.students[0]).await;
    let host = c.peer(&c.host).await;
    let ben = Participant::join(&c.server.base, &c.students[1].1, &second, &c.students[1].0).await;
    assert!(
        until(Duration::from_secs(10), || ana.packets_from(&host.user) > 5
            && host.packets_from(&ana.user) > 5)
        .await,
        "the first meeting's two do not hear each other"
    );
    (ana, host, ben)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_meetings_go_on_two_shards() {
    let c = class(2, |config| {
        config.media.shard_ports = vec![0, 0];
    })
    .await;
    let (ana, host, ben) = two_meetings(&c).await;
    let port = candidate_port;
    // Each meeting on a shard (and its port) of its own; one meeting never spans two.
    assert_eq!(port(&ana.answer), port(&host.answer));
    assert_ne!(port(&ana.answer), port(&ben.answer));
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 2.0);
    // Nobody hears across meetings.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ben.packets_from(&ana.user), 0);
    assert_eq!(ana.packets_from(&ben.user), 0);
    ana.leave().await;
    host.leave().await;
    ben.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_share_one_port_and_pass_each_other_what_is_theirs() {
    let c = class(2, |config| config.media.shards = 2).await;
    let (ana, host, ben) = two_meetings(&c).await;
    // One port for all, two meetings on two shards.
    let port = candidate_port(&ana.answer);
    assert_eq!(candidate_port(&host.answer), port);
    assert_eq!(candidate_port(&ben.answer), port);
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 2.0);
    let before = metric(&m, "meet_sfu_handed_over_datagrams_total");

    // The kernel gives each source address to one of the two shards' sockets, whatever its
    // meeting: checks for ana's connection from 32 addresses are answered, each of them (on
    // one socket, half would be lost), by her shard.
    let ufrag = sdp_value(&ana.answer, "a=ice-ufrag:");
    let pwd = sdp_value(&ana.answer, "a=ice-pwd:");
    let theirs = sdp_value(&ana.offer, "a=ice-ufrag:");
    let mut answered = 0;
    for _ in 0..32 {
        let probe = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let check = signed_binding(&format!("{ufrag}:{theirs}"), &pwd);
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            probe
                .send_to(&check, ("127.0.0.1", port))
                .await
                .expect("send");
            let reply =
                tokio::time::timeout(Duration::from_millis(500), probe.recv_from(&mut buf)).await;
            if let Ok(Ok((n, _))) = reply
                && n >= 20
                && buf[0..2] == [0x01, 0x01]
                && buf[8..20] == check[8..20]
            {
                answered += 1;
                break;
            }
        }
    }
    assert_eq!(answered, 32, "checks answered through a shared port");
    let m = c.metrics().await;
    let handed = metric(&m, "meet_sfu_handed_over_datagrams_total") - before;
    assert!(handed > 0.0, "no datagram was passed between the shards");
    assert_eq!(metric(&m, "meet_sfu_handoff_lost_datagrams_total"), 0.0);
    // The meetings still hear within and not across.
    let flows = flowing(&[&ana, &host], Duration::from_millis(500)).await;
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert_eq!(ben.packets_from(&ana.user), 0);
    assert_eq!(ana.packets_from(&ben.user), 0);
    ana.leave().await;
    host.leave().await;
    ben.leave().await;
}

/// The value of the first `prefix` line of an SDP.
fn sdp_value(sdp: &str, prefix: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {sdp}"))
        .to_owned()
}

/// A binding request an ICE client sends: USERNAME, PRIORITY, ICE-CONTROLLING,
/// MESSAGE-INTEGRITY with `pwd` and FINGERPRINT (made by the `rtc` core's STUN).
fn signed_binding(username: &str, pwd: &str) -> Vec<u8> {
    use ::rtc::stun::{attributes::ATTR_USERNAME, fingerprint::FINGERPRINT};
    use ::rtc::stun::{integrity::MessageIntegrity, message::*, textattrs::Username};
    let crypto = ::rtc::crypto::default_provider().expect("crypto");
    let mut m = Message::new();
    m.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(ATTR_USERNAME, username.to_owned())),
        Box::new(::rtc::ice::attributes::control::AttrControlling(7)),
        Box::new(::rtc::ice::attributes::priority::PriorityAttr(1)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            crypto.crypto(),
        )),
        Box::new(FINGERPRINT),
    ])
    .expect("a binding request");
    m.raw
}

/// The port of the first candidate in `sdp`.
fn candidate_port(sdp: &str) -> u16 {
    sdp.lines()
        .find(|l| l.starts_with("a=candidate:"))
        .and_then(|l| l.split(' ').nth(5))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host candidate in {sdp}"))
}

/// A NAT in front of the server for one client: the client sends to `front`, the NAT forwards
/// from one outside port, and from another once `moved` is set (it rebinds: the first
/// mapping is gone, what still comes to it is dropped). `back_in[i]`: datagrams the server
/// sent to outside port `i`.
struct Nat {
    front: std::net::SocketAddr,
    moved: Arc<AtomicBool>,
    back_in: Arc<[AtomicU64; 2]>,
    _tasks: tokio::task::JoinSet<()>,
}

impl Nat {
    async fn start(server: std::net::SocketAddr) -> Self {
        let bind = || async {
            Arc::new(
                tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind"),
            )
        };
        let front = bind().await;
        let backs = [bind().await, bind().await];
        let client = Arc::new(Mutex::new(None));
        let moved = Arc::new(AtomicBool::new(false));
        let back_in: Arc<[AtomicU64; 2]> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, back) in backs.iter().enumerate() {
            let (back, front, client, back_in, moved) = (
                Arc::clone(back),
                Arc::clone(&front),
                Arc::clone(&client),
                Arc::clone(&back_in),
                Arc::clone(&moved),
            );
            tasks.spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, _)) = back.recv_from(&mut buf).await {
                    back_in[i].fetch_add(1, Relaxed);
                    if usize::from(moved.load(Relaxed)) != i {
                        continue;
                    }
                    let to = *client.lock().expect("client");
                    if let Some(to) = to {
                        let _ = front.send_to(&buf[..n], to).await;
                    }
                }
            });
        }
        let addr = front.local_addr().expect("addr");
        let is_moved = Arc::clone(&moved);
        tasks.spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().expect("client") = Some(from);
                let back = &backs[usize::from(is_moved.load(Relaxed))];
                let _ = back.send_to(&buf[..n], server).await;
            }
        });
        Self {
            front: addr,
            moved,
            back_in,
            _tasks: tasks,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_source_port_changes_is_still_heard() {
    // A connection whose selected pair's address falls silent fails after these two, 3 s (the
    // rebinding below must not be one). The client checks every 2 s: the first check from the
    // new port comes within them.
    let c = class(2, |config| {
        config.media.ice_disconnected_timeout = Duration::from_millis(1500);
        config.media.ice_failed_timeout = Duration::from_millis(1500);
    })
    .await;
    let ben = c.peer(&c.students[1]).await;
    let port = candidate_port(&ben.answer);
    let nat = Nat::start(([127, 0, 0, 1], port).into()).await;
    let (ana_id, ana_token) = &c.students[0];
    let how = Join {
        through: Some(nat.front),
        ..Join::default()
    };
    let ana = Participant::join_with(&c.server.base, ana_token, &c.meeting, ana_id, how).await;
    assert!(
        until(Duration::from_secs(10), || ana.packets_from(&ben.user) > 10
            && ben.packets_from(&ana.user) > 10)
        .await,
        "the two do not hear each other through the NAT"
    );
    let unknown = metric(&c.metrics().await, "meet_sfu_unknown_datagrams_total");
    // The NAT rebinds: ana's packets now come from another port. SRTP from there is nobody's
    // until her next consent check from it is answered; then the server learns the address.
    nat.moved.store(true, Relaxed);
    let (heard, moved_at) = (ben.packets_from(&ana.user), Instant::now());
    assert!(
        until(Duration::from_secs(15), || ben.packets_from(&ana.user)
            > heard + 50)
        .await,
        "ana is not heard after her port moved"
    );
    let took = moved_at.elapsed();
    // The server answers at the new port, and ana still hears ben.
    assert!(
        nat.back_in[1].load(Relaxed) > 0,
        "nothing sent to the new port"
    );
    let hears = ana.packets_from(&ben.user);
    assert!(
        until(Duration::from_secs(5), || ana.packets_from(&ben.user)
            > hears + 20)
        .await,
        "ana no longer hears ben"
    );
    // Long past the ICE timeouts, both still hear each other on the one connection: the old
    // address's silence did not end it.
    let dropped = metric(&c.metrics().await, "meet_sfu_unknown_datagrams_total") - unknown;
    let (heard, hears) = (ben.packets_from(&ana.user), ana.packets_from(&ben.user));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        until(Duration::from_secs(5), || ben.packets_from(&ana.user)
            > heard + 100
            && ana.packets_from(&ben.user) > hears + 100)
        .await,
        "the connection did not outlive the old address: ben heard {} more, ana {} more",
        ben.packets_from(&ana.user) - heard,
        ana.packets_from(&ben.user) - hears
    );
    assert_eq!(metric(&c.metrics().await, "meet_sfu_peers"), 2.0);
    eprintln!(
        "rebinding: 50 packets of ana heard {took:?} after the move; {dropped} datagrams from the new port dropped before it was learned"
    );
    ana.leave().await;
    ben.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_kept_by_its_media_between_checks() {
    // These peers check their pair every 2 s (the webrtc crate's keepalive); the server ends
    // a connection silent for 1 s. Only the media they send all the time keeps them.
    let c = class(1, |config| {
        config.media.ice_disconnected_timeout = Duration::from_millis(500);
        config.media.ice_failed_timeout = Duration::from_millis(500);
    })
    .await;
    let host = c.peer(&c.host).await;
    let ana = c.peer(&c.students[0]).await;
    assert!(
        until(Duration::from_secs(10), || host.packets_from(&ana.user)
            > 10
            && ana.packets_from(&host.user) > 10)
        .await,
        "the two do not hear each other"
    );
    // 250 packets: 5 s of audio, several check intervals.
    let (heard, hears) = (host.packets_from(&ana.user), ana.packets_from(&host.user));
    assert!(
        until(Duration::from_secs(15), || host.packets_from(&ana.user)
            > heard + 250
            && ana.packets_from(&host.user) > hears + 250)
        .await,
        "a connection was ended between checks: the host heard {} more, ana {} more",
        host.packets_from(&ana.user) - heard,
        ana.packets_from(&host.user) - hears
    );
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 2.0);
    assert_eq!(metric(&m, "meet_sfu_peers_failed_total"), 0.0);
    host.leave().await;
    ana.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_peers_share_one_port() {
    // 50 webrtc-crate clients of a debug build in this one process, with the server's default
    // timeouts.
    let c = class(49, |_| {}).await;
    let everyone: Vec<&(String, String)> =
        std::iter::once(&c.host).chain(c.students.iter()).collect();
    // Three speak, the rest listen from the moment they join: 50 talking would make the
    // SFU send 122,500 packets a second to these debug-build clients, which then stop reading
    // their sockets (a test of the clients, not of the port).
    let started = Instant::now();
    let mut people = Vec::new();
    for p in everyone {
        let peer = c.peer(p).await;
        if people.len() >= 3 {
            peer.talking.store(false, Relaxed);
        }
        people.push(peer);
    }
    eprintln!("50 joined in {:?}", started.elapsed());
    let port = candidate_port(&people[0].answer);
    for p in &people {
        assert_eq!(candidate_port(&p.answer), port, "{}", p.answer);
    }
    let m = c.metrics().await;
    assert_eq!(metric(&m, "meet_sfu_peers"), 50.0);
    assert_eq!(metric(&m, "meet_sfu_udp_ports_leased"), 1.0);
    let speakers: Vec<&str> = people[..3].iter().map(|p| p.user.as_str()).collect();
    let all_hear = |floor: &HashMap<(String, String), u64>| {
        people.iter().all(|l| {
            speakers.iter().filter(|s| **s != l.user).all(|s| {
                let before = floor.get(&(l.user.clone(), (*s).to_owned())).copied();
                l.packets_from(s) > before.unwrap_or(0) + 10
            })
        })
    };
    assert!(
        until(Duration::from_secs(60), || all_hear(&HashMap::new())).await,
        "not every one of 50 hears the three speakers"
    );
    eprintln!(
        "all hear the three speakers {:?} after the first join",
        started.elapsed()
    );
    // And keeps hearing them.
    let refs: Vec<&Participant> = people.iter().collect();
    let floor = counts(&refs);
    let kept = until(Duration::from_secs(10), || all_hear(&floor)).await;
    if !kept {
        // Who stopped hearing whom, and in what state their connections are.
        let stalled: Vec<String> = people
            .iter()
            .flat_map(|l| speakers.iter().map(move |s| (l, *s)))
            .filter(|(l, s)| l.user != *s)
            .filter_map(|(l, s)| {
                let before = floor.get(&(l.user.clone(), s.to_owned())).copied();
                let now = l.packets_from(s);
                (now <= before.unwrap_or(0) + 10).then(|| {
                    format!(
                        "{} hears {s}: {before:?} then {now}, connection {:?}, {} offers answered, signalling {}",
                        l.user,
                        l.connection_state(),
                        l.offers.load(Relaxed),
                        l.signalling()
                    )
                })
            })
            .collect();
        let m = c.metrics().await;
        panic!(
            "the three speakers stopped reaching everyone: {} peers, {} failed, {} unknown datagrams, {} dropped packets\n{}",
            metric(&m, "meet_sfu_peers"),
            metric(&m, "meet_sfu_peers_failed_total"),
            metric(&m, "meet_sfu_unknown_datagrams_total"),
            metric(&m, "meet_sfu_dropped_packets_total"),
            stalled.join("\n")
        );
    }
    for p in people {
        p.leave().await;
    }
}

/// The dominant frequency of Int16 LE PCM at 48 kHz, from its zero crossings.
fn frequency(pcm: &[u8]) -> f64 {
    let s: Vec<i16> = pcm
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (s.len() as f64 / 48_000.0)
}

/// Who a relay client heard since it last looked: speaker → (frames, frequency of the last).
fn relay_heard(client: &mut Client) -> HashMap<String, (usize, f64)> {
    let mut out: HashMap<String, (usize, f64)> = HashMap::new();
    client.drain_events("audio-broadcast", |data| {
        let user = data["userId"].as_str().unwrap_or_default().to_owned();
        let hz = frequency(&crate::sio::bin(&data["audioData"]));
        let e = out.entry(user).or_default();
        e.0 += 1;
        e.1 = hz;
    });
    out
}

/// A relay participant (python-socketio sending an 880 Hz tone as Int16 PCM) and two aiortc
/// peers meet: the peers decode the relay speaker from the stream the bridge adds to their
/// connections, the relay client gets the peers' audio decoded to PCM, and private mode and
/// mutes hold across the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_webrtc_participants_hear_each_other_through_the_bridge() {
    let c = class(2, |_| {}).await;
    let base = &c.server.base;
    let (host_id, ana_id, ben_id) = (&c.host.0, &c.students[0].0, &c.students[1].0);
    let mut host = Aiortc::join(base, &c.host.1, &c.meeting, host_id, 440).await;
    let mut ana = Aiortc::join(base, &c.students[0].1, &c.meeting, ana_id, 660).await;
    let mut ben = Client::spawn(Kind::Python).await;
    ben.connect(base, AuthForm::Object, &c.students[1].1, Some(&c.meeting))
        .await
        .expect("ben connects");
    let mut at = 0usize;
    // Ben speaks in 100 ms bursts between looks, so that what is checked is fresh.
    async fn speak(ben: &mut Client, at: &mut usize) {
        for _ in 0..5 {
            let frame = crate::sio::to_bin(&crate::sio::tone_pcm(880.0, 48_000.0, *at, 960));
            *at += 960;
            ben.emit(
                "broadcast-audio",
                json!({"audioData": frame, "format": "s16", "sampleRate": 48_000}),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let hears = |got: &HashMap<String, f64>, who: &String, hz: f64| {
        got.get(who).is_some_and(|f| (f - hz).abs() <= 20.0)
    };

    // Broadcast: the peers hear ben's tone, and ben hears both peers' tones.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        speak(&mut ben, &mut at).await;
        let (h, a) = (tones(&mut host).await, tones(&mut ana).await);
        let r = relay_heard(&mut ben);
        let relay_ok = |who: &String, hz: f64| {
            r.get(who)
                .is_some_and(|(n, f)| *n > 2 && (f - hz).abs() <= 30.0)
        };
        if hears(&h, ben_id, 880.0)
            && hears(&a, ben_id, 880.0)
            && relay_ok(host_id, 440.0)
            && relay_ok(ana_id, 660.0)
        {
            break;
        }
        assert!(Instant::now() < end, "host {h:?}, ana {a:?}, ben {r:?}");
    }

    // Private mode with ben: the host and ben hear each other only; ana hears neither.
    c.switch("private", Some(ben_id)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay_heard(&mut ben);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        speak(&mut ben, &mut at).await;
        let (h, a) = (tones(&mut host).await, tones(&mut ana).await);
        let r = relay_heard(&mut ben);
        if hears(&h, ben_id, 880.0)
            && !h.contains_key(ana_id)
            && a.is_empty()
            && r.contains_key(host_id)
            && !r.contains_key(ana_id)
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "private: host {h:?}, ana {a:?}, ben {r:?}"
        );
    }

    // Back to broadcast, then ben muted by the host: nobody hears ben, ben hears both.
    c.switch("broadcast", None).await;
    let mut mute = json!({"cmd": "emit", "event": "mute-participant", "data": {"userId": ben_id}});
    host.client.send(mute.take()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay_heard(&mut ben);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        speak(&mut ben, &mut at).await;
        let (h, a) = (tones(&mut host).await, tones(&mut ana).await);
        let r = relay_heard(&mut ben);
        if !h.contains_key(ben_id)
            && !a.contains_key(ben_id)
            && r.contains_key(host_id)
            && r.contains_key(ana_id)
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "muted: host {h:?}, ana {a:?}, ben {r:?}"
        );
    }
    let m = c.metrics().await;
    let (to_webrtc, to_relay) = (
        metric(&m, "meet_bridge_packets_to_webrtc_total"),
        metric(&m, "meet_bridge_packets_to_relay_total"),
    );
    assert!(
        to_webrtc >= 10.0 && to_relay >= 50.0,
        "{to_webrtc} {to_relay}"
    );
    for p in [host, ana] {
        p.quit().await;
    }
}
