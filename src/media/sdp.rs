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
            let eol = if eol.is_empty() { "\r\n" } else { eol };
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
