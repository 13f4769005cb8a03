//! Small, pure edits of SDP text: announcing a public address in host candidates (the crate's
//! own 1:1 NAT setting does nothing), asking for Opus FEC and DTX, and reading what the
//! client negotiated.

use std::net::IpAddr;

/// Replaces the address of every host candidate (`a=candidate:` lines) with `public`.
pub fn announce(sdp: &str, public: IpAddr) -> String {
    map_lines(sdp, |line| {
        line.strip_prefix("a=")
            .filter(|c| c.starts_with("candidate:"))
            .map(|c| format!("a={}", candidate_with_address(c, public)))
    })
}

/// One candidate string (`candidate:…`) with its address replaced when it is a host candidate.
pub fn candidate_with_address(candidate: &str, public: IpAddr) -> String {
    let fields: Vec<&str> = candidate.split(' ').collect();
    let is_host = fields
        .iter()
        .position(|f| *f == "typ")
        .and_then(|i| fields.get(i + 1))
        .is_some_and(|t| *t == "host");
    if fields.len() < 8 || !is_host {
        return candidate.to_owned();
    }
    let address = public.to_string();
    let mut out: Vec<&str> = fields.clone();
    out[4] = &address;
    out.join(" ")
}

/// Makes every Opus payload type ask for in-band FEC and DTX: in an SDP these say what the
/// receiver wants the sender to do.
pub fn prefer_fec_and_dtx(sdp: &str) -> String {
    let opus: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=rtpmap:"))
        .filter_map(|r| {
            let (pt, codec) = r.split_once(' ')?;
            codec
                .to_ascii_lowercase()
                .starts_with("opus/")
                .then(|| pt.to_owned())
        })
        .collect();
    if opus.is_empty() {
        return sdp.to_owned();
    }
    let has_fmtp = |pt: &str| sdp.lines().any(|l| l.starts_with(&format!("a=fmtp:{pt} ")));
    let wanted = ["useinbandfec=1", "usedtx=1"];
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        if let Some(rest) = body.strip_prefix("a=fmtp:")
            && let Some((pt, params)) = rest.split_once(' ')
            && opus.iter().any(|p| p == pt)
        {
            let mut params: Vec<String> = params
                .split(';')
                .map(|p| p.trim().to_owned())
                .filter(|p| {
                    !p.is_empty() && !p.starts_with("useinbandfec=") && !p.starts_with("usedtx=")
                })
                .collect();
            params.extend(wanted.iter().map(|w| (*w).to_owned()));
            out.push_str(&format!("a=fmtp:{pt} {}{eol}", params.join(";")));
            continue;
        }
        out.push_str(line);
        if let Some(rest) = body.strip_prefix("a=rtpmap:")
            && let Some((pt, _)) = rest.split_once(' ')
            && opus.iter().any(|p| p == pt)
            && !has_fmtp(pt)
        {
            // The last line may have no line end (or a lone CR, which ends no line): it gets
            // one before the new line.
            let eol = if eol.ends_with('\n') {
                eol
            } else {
                out.push_str("\r\n");
                "\r\n"
            };
            out.push_str(&format!("a=fmtp:{pt} {}{eol}", wanted.join(";")));
        }
    }
    out
}

/// The id negotiated for extension `uri` (`a=extmap:<id>[/<direction>] <uri>`).
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (id, rest) = l.trim_end().strip_prefix("a=extmap:")?.split_once(' ')?;
        let found = rest.split(' ').next() == Some(uri);
        found.then(|| id.split('/').next()?.parse().ok()).flatten()
    })
}

/// The first `a=mid:` of a description.
pub fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:").map(str::to_owned))
}

/// How many audio sections a description has.
pub fn audio_sections(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=audio ")).count()
}

fn map_lines(sdp: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        match f(body) {
            Some(new) => {
                out.push_str(&new);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=0\r\n\
        a=candidate:1 1 udp 2130706431 10.0.0.5 40001 typ host\r\n\
        a=candidate:2 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 10.0.0.5 rport 40001\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n\
        a=mid:1\r\n\
        a=rtpmap:96 OPUS/48000/2\r\n";

    #[test]
    fn host_candidates_announce_the_public_address() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap_or_else(|e| panic!("{e}"));
        let out = announce(ANSWER, ip);
        assert!(out.contains("a=candidate:1 1 udp 2130706431 203.0.113.7 40001 typ host\r\n"));
        assert!(out.contains("198.51.100.1 40001 typ srflx raddr 10.0.0.5"));
        assert_eq!(
            out.len(),
            ANSWER.len() + "203.0.113.7".len() - "10.0.0.5".len()
        );
        assert_eq!(
            candidate_with_address("candidate:1 1 udp 1 ::1 9 typ host", ip),
            "candidate:1 1 udp 1 203.0.113.7 9 typ host"
        );
        assert_eq!(candidate_with_address("garbage", ip), "garbage");
    }

    #[test]
    fn opus_asks_for_fec_and_dtx() {
        let out = prefer_fec_and_dtx(ANSWER);
        assert!(out.contains("a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n"));
        assert!(out.contains("a=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 useinbandfec=1;usedtx=1\r\n"));
        assert_eq!(prefer_fec_and_dtx("v=0\r\n"), "v=0\r\n");
    }

    #[test]
    fn reads_extmap_mid_and_sections() {
        assert_eq!(
            extmap_id(ANSWER, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            Some(1)
        );
        assert_eq!(extmap_id("a=extmap:3/sendrecv urn:x\r\n", "urn:x"), Some(3));
        assert_eq!(extmap_id(ANSWER, "urn:other"), None);
        assert_eq!(first_mid(ANSWER).as_deref(), Some("0"));
        assert_eq!(audio_sections(ANSWER), 2);
    }
}

#[cfg(test)]
mod fuzz {
    //! The SDP edits on any text and on real descriptions (tests/fuzz/README.md).
    use std::io::Cursor;

    use proptest::prelude::*;
    use rtc::sdp::SessionDescription;

    use super::*;
    use crate::fuzzing;

    fn parse(sdp: &str) -> Option<SessionDescription> {
        SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).ok()
    }

    fn seeds() -> Vec<String> {
        fuzzing::text_seeds("sdp")
    }

    /// Lines as `split_inclusive` cuts them, without those starting with `drop`.
    fn lines_without<'a>(sdp: &'a str, drop: &str) -> Vec<&'a str> {
        sdp.split_inclusive('\n')
            .map(|l| l.trim_end_matches(['\r', '\n']))
            .filter(|l| !l.starts_with(drop))
            .collect()
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => fuzzing::mutated_text(seeds(), 8),
            1 => "(a=(rtpmap|fmtp|candidate|extmap|mid):[0-9a-zA-Z /;:=.-]{0,30}(\r\n|\n|\r)?){0,8}",
            1 => "\\PC{0,80}",
        ]
    }

    /// What holds of the edits of any text.
    fn edits_hold(sdp: &str, public: IpAddr) -> Result<(), TestCaseError> {
        let announced = announce(sdp, public);
        prop_assert_eq!(
            lines_without(&announced, "a=candidate:"),
            lines_without(sdp, "a=candidate:"),
            "only candidate lines change"
        );
        prop_assert_eq!(
            announced.split_inclusive('\n').count(),
            sdp.split_inclusive('\n').count()
        );
        prop_assert_eq!(
            announce(&announced, public),
            announced.clone(),
            "idempotent"
        );
        let fec = prefer_fec_and_dtx(sdp);
        prop_assert_eq!(
            lines_without(&fec, "a=fmtp:"),
            lines_without(sdp, "a=fmtp:"),
            "only fmtp lines change or are added"
        );
        prop_assert_eq!(prefer_fec_and_dtx(&fec), fec.clone(), "idempotent");
        let _ = extmap_id(sdp, "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
        let _ = first_mid(sdp);
        prop_assert!(audio_sections(sdp) <= sdp.lines().count());
        // A description the parser reads stays one it reads.
        if parse(sdp).is_some() {
            prop_assert!(
                parse(&announced).is_some(),
                "announce broke:\n{}",
                announced
            );
            prop_assert!(parse(&fec).is_some(), "prefer_fec_and_dtx broke:\n{}", fec);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(fuzzing::config(5_000))]

        #[test]
        fn fuzz_sdp_any_text(sdp in text(), public in ip()) {
            edits_hold(&sdp, public)?;
        }

        /// One candidate string: the address of a host candidate replaced, nothing else.
        #[test]
        fn fuzz_sdp_candidate(
            candidate in prop_oneof![
                "candidate:[0-9]{1,10} [12] (udp|tcp) [0-9]{1,10} [0-9a-f.:]{1,39} [0-9]{1,5} typ (host|srflx|relay)( [a-z]{1,8} [0-9a-z.]{1,8}){0,3}",
                "[ -~]{0,60}",
            ],
            public in ip(),
        ) {
            let out = candidate_with_address(&candidate, public);
            let (a, b): (Vec<&str>, Vec<&str>) = (candidate.split(' ').collect(), out.split(' ').collect());
            prop_assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if i != 4 {
                    prop_assert_eq!(x, y);
                }
            }
            if a.len() >= 8 && a.get(7) == Some(&"host") && a[6] == "typ" {
                prop_assert_eq!(b[4], public.to_string());
            }
        }

        /// The edits of real descriptions: still parsed, the host candidates on the public
        /// address, every Opus payload type asking for FEC and DTX, the rest as it was.
        #[test]
        fn fuzz_sdp_real_descriptions(i in 0..3usize, public in ip()) {
            let seeds = seeds();
            let sdp = &seeds[i % seeds.len()];
            let before = parse(sdp).expect("the seeds are real descriptions");
            let edited = prefer_fec_and_dtx(&announce(sdp, public));
            let after = parse(&edited).expect("still a description");
            prop_assert_eq!(before.media_descriptions.len(), after.media_descriptions.len());
            for (m, n) in before.media_descriptions.iter().zip(&after.media_descriptions) {
                prop_assert_eq!(&m.media_name.formats, &n.media_name.formats);
                for pt in &n.media_name.formats {
                    let Ok(pt) = pt.parse::<u8>() else { continue };
                    let Ok(codec) = after.get_codec_for_payload_type(pt) else { continue };
                    if codec.name.eq_ignore_ascii_case("opus") {
                        prop_assert!(
                            codec.fmtp.contains("useinbandfec=1") && codec.fmtp.contains("usedtx=1"),
                            "{}: {}", pt, codec.fmtp
                        );
                        prop_assert!(!codec.fmtp.contains("useinbandfec=0"));
                    }
                }
            }
            for line in edited.lines().filter_map(|l| l.strip_prefix("a=candidate:")) {
                let f: Vec<&str> = line.split(' ').collect();
                if f.get(7) == Some(&"host") {
                    prop_assert_eq!(f[4], public.to_string());
                }
            }
            prop_assert_eq!(audio_sections(&edited), audio_sections(sdp));
            prop_assert_eq!(first_mid(&edited), first_mid(sdp));
            prop_assert_eq!(
                extmap_id(&edited, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                Some(1)
            );
            edits_hold(sdp, public)?;
        }
    }

    /// Found by `fuzz_sdp_any_text` (the server offer seed cut after `a=rtpmap:96 OPUS/`):
    /// an Opus `a=rtpmap` on the last line, without a line end, had its new `a=fmtp` glued
    /// to it (`…OPUS/a=fmtp:96 …`), changing the rtpmap line.
    #[test]
    fn fuzz_regression_rtpmap_on_the_last_line() {
        let seed = &seeds()[2];
        let cut = seed.find("OPUS/").expect("server offer") + "OPUS/".len();
        let found = seed[..cut].replacen("v=0", "w=0", 1);
        edits_hold(&found, IpAddr::from([0, 0, 0, 0])).expect("the edits hold");
        // Its second find: the same line ending in a lone CR (the seed without its `v=0` line
        // and its last LF).
        let found = seed
            .strip_prefix("v=0\r\no=- 8032178462011528901 ")
            .and_then(|s| {
                s.strip_suffix("\na=sendonly\r\na=msid:ana1 ana1-audio\r\na=ssrc:5 cname:ana1\r\n")
            })
            .expect("server offer");
        let found = format!("1 {found}");
        assert!(found.starts_with("1 1 IN IP4") && found.ends_with("OPUS/48000/2\r"));
        edits_hold(&found, IpAddr::from([0, 0, 0, 0])).expect("the edits hold");
        assert_eq!(
            prefer_fec_and_dtx("a=rtpmap:96 OPUS/48000/2\r"),
            "a=rtpmap:96 OPUS/48000/2\r\r\na=fmtp:96 useinbandfec=1;usedtx=1\r\n"
        );
        assert_eq!(
            prefer_fec_and_dtx("v=0\r\na=rtpmap:111 opus/48000/2"),
            "v=0\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1;usedtx=1\r\n"
        );
    }
}
