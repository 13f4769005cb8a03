//! Ogg Opus files (RFC 7845) from Opus packets as they are, without transcoding.
//!
//! Granule positions count the samples actually written (48 kHz). Every file starts with one
//! 20 ms silence frame that the pre-skip removes: the decoder warms up on it, players skip it,
//! and the playback length (last granule − pre-skip) is exactly the audio written after it.
//! Gaps are written as silence frames. Pages close after about a second of audio, so a file
//! cut short (a crash) loses at most that.
//! The last packet is held back until the next one or [`OpusFile::finish`], so that the very
//! last page carries the end-of-stream flag.

use std::io::{self, Write};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// Samples per second of every Ogg Opus granule position.
pub const RATE: u64 = 48_000;
/// Audio per page before it is closed, in samples.
pub const PAGE_SAMPLES: u64 = RATE;
/// The pre-skip of every file meet writes: its first frame, silence.
pub const PRE_SKIP: u64 = 960;

/// Metadata of a file (OpusTags).
#[derive(Debug, Clone, Default)]
pub struct Tags {
    pub title: String,
    pub artist: String,
    /// More `KEY=value` comments.
    pub extra: Vec<(String, String)>,
}

pub struct OpusFile<W: Write> {
    out: PacketWriter<'static, W>,
    serial: u32,
    /// Granule position: samples written, the pre-skip frame and the held packet included.
    granule: u64,
    /// Granule at the end of the last closed page.
    page_start: u64,
    held: Option<Vec<u8>>,
    pages: u64,
}

/// Samples (at 48 kHz) an Opus packet holds, from its TOC byte (RFC 6716 §3.1); `None` for a
/// packet that is not valid Opus framing (empty, a code 3 packet without its count, over
/// 120 ms).
pub fn packet_samples(packet: &[u8]) -> Option<u64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames: u64 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    let samples = frame * frames;
    (frames > 0 && samples <= 5_760).then_some(samples)
}

/// A CELT silence frame of `samples` (120, 240, 480 or 960), mono: the TOC byte of that frame
/// size, then a range-coded "silence" flag.
fn silence_frame(samples: u64) -> [u8; 3] {
    let config: u8 = match samples {
        120 => 28,
        240 => 29,
        480 => 30,
        _ => 31,
    };
    [config << 3, 0xff, 0xfe]
}

impl<W: Write> OpusFile<W> {
    /// Starts a file: the OpusHead page, then the OpusTags page.
    pub fn create(out: W, serial: u32, tags: &Tags) -> io::Result<Self> {
        Self::start(out, serial, head(), comments(tags))
    }

    /// Starts a file with header packets read from another (a file being repaired): they are
    /// written as they are, then the pre-skip frame.
    pub fn create_with_headers(out: W, serial: u32, head: &[u8], tags: &[u8]) -> io::Result<Self> {
        if pre_skip(head) != Some(PRE_SKIP) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an OpusHead of meet's",
            ));
        }
        Self::start(out, serial, head.to_vec(), tags.to_vec())
    }

    /// The two header pages, then the pre-skip frame.
    fn start(out: W, serial: u32, head: Vec<u8>, tags: Vec<u8>) -> io::Result<Self> {
        let mut out = PacketWriter::new(out);
        out.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        out.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        let mut file = Self {
            out,
            serial,
            granule: 0,
            page_start: 0,
            held: None,
            pages: 2,
        };
        file.push(silence_frame(PRE_SKIP).to_vec(), PRE_SKIP)?;
        Ok(file)
    }

    /// Samples of audio written so far (after the pre-skip frame): where the next packet plays.
    pub fn position(&self) -> u64 {
        self.granule - PRE_SKIP
    }

    /// Pages written so far (closed ones, headers included).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Appends a packet; returns its samples, or `None` (and writes nothing) when it is not
    /// valid Opus framing.
    pub fn write(&mut self, packet: &[u8]) -> io::Result<Option<u64>> {
        let Some(samples) = packet_samples(packet) else {
            return Ok(None);
        };
        self.push(packet.to_vec(), samples)?;
        Ok(Some(samples))
    }

    /// Appends silence for `samples`, in frames of 20 ms down to 2.5 ms; returns the samples
    /// written (a rest under 2.5 ms is not written).
    pub fn silence(&mut self, samples: u64) -> io::Result<u64> {
        let mut left = samples;
        for size in [960, 480, 240, 120] {
            while left >= size {
                self.push(silence_frame(size).to_vec(), size)?;
                left -= size;
            }
        }
        Ok(samples - left)
    }

    fn push(&mut self, packet: Vec<u8>, samples: u64) -> io::Result<()> {
        if let Some(prev) = self.held.take() {
            // `granule` is the end of `prev` here.
            let end = if self.granule - self.page_start >= PAGE_SAMPLES {
                self.page_start = self.granule;
                self.pages += 1;
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.out
                .write_packet(prev, self.serial, end, self.granule)?;
        }
        self.granule += samples;
        self.held = Some(packet);
        Ok(())
    }

    /// Writes the last page (end of stream) and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(last) = self.held.take() {
            self.out.write_packet(
                last,
                self.serial,
                PacketWriteEndInfo::EndStream,
                self.granule,
            )?;
        }
        let mut out = self.out.into_inner();
        out.flush()?;
        Ok(out)
    }
}

/// The pre-skip an OpusHead packet declares.
pub fn pre_skip(head: &[u8]) -> Option<u64> {
    (head.len() >= 19 && head.starts_with(b"OpusHead"))
        .then(|| u64::from(u16::from_le_bytes([head[10], head[11]])))
}

/// OpusHead: version 1, mono, the pre-skip, 48 kHz input, no gain, mapping family 0.
fn head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(1);
    h.extend_from_slice(&u16::try_from(PRE_SKIP).unwrap_or(0).to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// OpusTags: the vendor string, then TITLE, ARTIST and the extra comments.
fn comments(tags: &Tags) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut list = vec![
        format!("TITLE={}", tags.title),
        format!("ARTIST={}", tags.artist),
    ];
    list.extend(tags.extra.iter().map(|(k, v)| format!("{k}={v}")));
    let mut t = b"OpusTags".to_vec();
    put(&mut t, concat!("meet ", env!("CARGO_PKG_VERSION")));
    t.extend_from_slice(&u32::try_from(list.len()).unwrap_or(0).to_le_bytes());
    for c in &list {
        put(&mut t, c);
    }
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every packet of an Ogg file with its page granule, and whether it ended the stream.
    pub(crate) fn read_back(bytes: &[u8]) -> Vec<ogg::Packet> {
        let mut r = ogg::PacketReader::new(std::io::Cursor::new(bytes.to_vec()));
        let mut out = Vec::new();
        while let Some(p) = r.read_packet().expect("valid ogg") {
            out.push(p);
        }
        out
    }

    #[test]
    fn packet_durations_from_the_toc() {
        assert_eq!(packet_samples(&[0xf8, 1, 2]), Some(960), "CELT 20 ms");
        assert_eq!(packet_samples(&[0x08]), Some(960), "SILK NB 20 ms");
        assert_eq!(packet_samples(&[0x18]), Some(2880), "SILK 60 ms");
        assert_eq!(
            packet_samples(&[0x78 | 1]),
            Some(1920),
            "hybrid 20 ms, two frames"
        );
        assert_eq!(packet_samples(&[0xe0 | 3, 5]), Some(600), "CELT 2.5 ms × 5");
        assert_eq!(
            packet_samples(&[0x18 | 3, 3]),
            None,
            "180 ms is over the limit"
        );
        assert_eq!(
            packet_samples(&[0xf8 | 3]),
            None,
            "code 3 without its count"
        );
        assert_eq!(packet_samples(&[0xf8 | 3, 0]), None, "no frames");
        assert_eq!(packet_samples(&[]), None);
    }

    #[test]
    fn headers_granules_pages_and_the_end_of_stream() {
        let tags = Tags {
            title: "Algebra".into(),
            artist: "ana".into(),
            extra: vec![("MEET_START".into(), "2026-03-10T09:05:00Z".into())],
        };
        let mut f = OpusFile::create(Vec::new(), 7, &tags).expect("create");
        assert_eq!(f.position(), 0);
        for _ in 0..120 {
            assert_eq!(f.write(&[0xfc, 1, 2, 3]).expect("write"), Some(960));
        }
        assert_eq!(f.write(&[]).expect("write"), None, "not Opus: skipped");
        assert_eq!(
            f.silence(960 * 10 + 480 + 120 + 50).expect("silence"),
            10_200
        );
        assert_eq!(f.position(), 120 * 960 + 10_200);
        let bytes = f.finish().expect("finish");
        let packets = read_back(&bytes);
        assert_eq!(&packets[0].data[..8], b"OpusHead");
        assert_eq!(packets[0].data.len(), 19);
        assert_eq!(pre_skip(&packets[0].data), Some(960));
        assert!(packets[0].last_in_page() && packets[0].first_in_stream());
        assert_eq!(&packets[1].data[..8], b"OpusTags");
        let tags = String::from_utf8_lossy(&packets[1].data);
        assert!(tags.contains("TITLE=Algebra") && tags.contains("ARTIST=ana"));
        assert!(tags.contains("MEET_START=2026-03-10T09:05:00Z"));
        assert_eq!(packets[2].data, [0xf8, 0xff, 0xfe], "the pre-skip frame");
        let audio = &packets[3..];
        assert_eq!(audio.len(), 120 + 10 + 1 + 1);
        let last = audio.last().expect("packets");
        assert!(last.last_in_stream());
        let end = 960 + 120 * 960 + 10_200;
        assert_eq!(last.absgp_page(), end);
        // Pages close at each second of granule: 48,000, 96,000, then the rest.
        let page_ends: Vec<u64> = packets[2..]
            .iter()
            .filter(|p| p.last_in_page())
            .map(ogg::Packet::absgp_page)
            .collect();
        assert_eq!(page_ends, [48_000, 96_000, end]);
        assert_eq!(audio[120].data, [0xf8, 0xff, 0xfe], "20 ms silence");
        assert_eq!(audio[131].data, [0xe0, 0xff, 0xfe], "2.5 ms silence");
    }

    #[test]
    fn an_empty_file_is_its_pre_skip_and_ends_its_stream() {
        let bytes = OpusFile::create(Vec::new(), 1, &Tags::default())
            .expect("create")
            .finish()
            .expect("finish");
        let packets = read_back(&bytes);
        assert_eq!(packets.len(), 3);
        assert!(packets[2].last_in_stream());
        assert_eq!(packets[2].absgp_page(), PRE_SKIP);
    }
}

#[cfg(test)]
pub(crate) mod fuzz {
    //! The muxer against an independent reading of what it writes (tests/fuzz/README.md).
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing;

    /// What a test asks of the muxer.
    #[derive(Debug, Clone)]
    pub(crate) enum Op {
        Packet(Vec<u8>),
        Silence(u64),
    }

    /// Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, no final xor), bit by bit.
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = 0u32;
        for &b in bytes {
            c ^= u32::from(b) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04c1_1db7
                } else {
                    c << 1
                };
            }
        }
        c
    }

    /// One page as RFC 3533 lays it out.
    #[derive(Debug)]
    pub(crate) struct Page {
        pub flags: u8,
        pub granule: u64,
        pub serial: u32,
        pub sequence: u32,
        /// The packets (or their parts) on it, and whether each ends on it.
        pub parts: Vec<(Vec<u8>, bool)>,
    }

    /// Every page of a file, checked: capture pattern, version, CRC, lacing, nothing after.
    pub(crate) fn pages(bytes: &[u8]) -> Result<Vec<Page>, String> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let b = &bytes[at..];
            if b.len() < 27 || &b[..4] != b"OggS" || b[4] != 0 {
                return Err(format!("no page header at {at}"));
            }
            let segments = usize::from(b[26]);
            let lacing = b.get(27..27 + segments).ok_or("short lacing table")?;
            let body: usize = lacing.iter().map(|&l| usize::from(l)).sum();
            let len = 27 + segments + body;
            let page = b.get(..len).ok_or("short page")?;
            let mut zeroed = page.to_vec();
            zeroed[22..26].fill(0);
            let stored = u32::from_le_bytes([b[22], b[23], b[24], b[25]]);
            if crc(&zeroed) != stored {
                return Err(format!("bad CRC on the page at {at}"));
            }
            let mut parts = Vec::new();
            let mut data = &page[27 + segments..];
            let mut part = Vec::new();
            for &l in lacing {
                let (seg, rest) = data.split_at(usize::from(l));
                part.extend_from_slice(seg);
                data = rest;
                if l < 255 {
                    parts.push((std::mem::take(&mut part), true));
                }
            }
            if !part.is_empty() || lacing.last() == Some(&255) {
                parts.push((part, false));
            }
            let u64_at = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[i..i + 8]);
                u64::from_le_bytes(w)
            };
            let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            out.push(Page {
                flags: b[5],
                granule: u64_at(6),
                serial: u32_at(14),
                sequence: u32_at(18),
                parts,
            });
            at += len;
        }
        Ok(out)
    }

    /// The packets a file written with `ops` must hold, after the two headers.
    pub(crate) fn expected(ops: &[Op]) -> Vec<Vec<u8>> {
        let mut out = vec![silence_frame(PRE_SKIP).to_vec()];
        for op in ops {
            match op {
                Op::Packet(p) if packet_samples(p).is_some() => out.push(p.clone()),
                Op::Packet(_) => {}
                Op::Silence(n) => {
                    let mut left = *n;
                    for size in [960, 480, 240, 120] {
                        while left >= size {
                            out.push(silence_frame(size).to_vec());
                            left -= size;
                        }
                    }
                }
            }
        }
        out
    }

    /// Checks a file against the packets it must hold: every page whole with a right CRC, in
    /// sequence, one stream from its first page (BOS) to its last (EOS), the packets back,
    /// and each page's granule the samples of the packets ended by then.
    pub(crate) fn check(bytes: &[u8], serial: u32, audio: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let pages = pages(bytes).map_err(TestCaseError::fail)?;
        prop_assert!(pages.len() >= 3);
        let mut packets: Vec<Vec<u8>> = Vec::new();
        let mut open: Vec<u8> = Vec::new();
        let mut samples = 0u64;
        let mut last_granule = 0u64;
        for (i, page) in pages.iter().enumerate() {
            prop_assert_eq!(page.serial, serial);
            prop_assert_eq!(page.sequence as usize, i);
            prop_assert_eq!(page.flags & 0x02 != 0, i == 0, "BOS on the first page only");
            prop_assert_eq!(
                page.flags & 0x04 != 0,
                i == pages.len() - 1,
                "EOS on the last only"
            );
            prop_assert_eq!(page.flags & 0x01 != 0, !open.is_empty(), "continued flag");
            let mut ended = false;
            for (data, done) in &page.parts {
                open.extend_from_slice(data);
                if *done {
                    let p = std::mem::take(&mut open);
                    if packets.len() >= 2 {
                        samples += packet_samples(&p).expect("only Opus is written");
                    }
                    packets.push(p);
                    ended = true;
                }
            }
            if ended {
                prop_assert_eq!(page.granule, samples, "granule of page {}", i);
                prop_assert!(page.granule >= last_granule, "granules never go back");
                last_granule = page.granule;
            } else {
                prop_assert_eq!(page.granule, u64::MAX, "a page ending no packet has none");
            }
        }
        prop_assert!(open.is_empty(), "no packet left open");
        prop_assert_eq!(&packets[0], &head());
        prop_assert!(packets[1].starts_with(b"OpusTags"));
        prop_assert_eq!(&packets[2..], audio);
        Ok(())
    }

    /// A packet: a seed (real Opus), a valid TOC with random bytes, or anything.
    pub(crate) fn packet() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => fuzzing::mutated(fuzzing::seeds("ogg"), 2),
            4 => (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(toc, count, rest)| [vec![toc, count], rest].concat()),
            1 => prop::collection::vec(any::<u8>(), 0..4),
            1 => (any::<u8>(), 255usize..2_000).prop_map(|(toc, n)| [vec![toc & !3], vec![7; n]].concat()),
        ]
    }

    pub(crate) fn ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                8 => packet().prop_map(Op::Packet),
                1 => prop_oneof![0u64..2_000, 0u64..200_000].prop_map(Op::Silence),
            ],
            0..n,
        )
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_500))]

        /// What the muxer writes reads back page by page, CRCs right, granules the samples
        /// written, the packets as they were given; the position is the audio after the
        /// pre-skip; an invalid packet writes nothing.
        #[test]
        fn fuzz_ogg_reads_back(ops in ops(120), serial in any::<u32>()) {
            let mut f = OpusFile::create(Vec::new(), serial, &Tags {
                title: "t".into(),
                artist: "a".into(),
                extra: vec![("K".into(), "v".into())],
            }).expect("create");
            let mut position = 0;
            for op in &ops {
                match op {
                    Op::Packet(p) => {
                        let n = f.write(p).expect("write");
                        prop_assert_eq!(n, packet_samples(p));
                        position += n.unwrap_or(0);
                    }
                    Op::Silence(n) => {
                        let written = f.silence(*n).expect("silence");
                        prop_assert!(written <= *n && *n - written < 120);
                        position += written;
                    }
                }
                prop_assert_eq!(f.position(), position);
            }
            let bytes = f.finish().expect("finish");
            let audio = expected(&ops);
            check(&bytes, serial, &audio)?;
            // And the ogg crate reads the same packets, the last one ending the stream.
            let back = tests::read_back(&bytes);
            prop_assert_eq!(back.len(), audio.len() + 2);
            let last = back.last().expect("packets");
            prop_assert!(last.last_in_stream());
            prop_assert_eq!(last.absgp_page(), PRE_SKIP + position);
        }

        /// Any bytes: `packet_samples` answers within Opus's limits, from the TOC alone.
        #[test]
        fn fuzz_ogg_packet_samples(p in prop::collection::vec(any::<u8>(), 0..4)) {
            if let Some(n) = packet_samples(&p) {
                prop_assert!((120..=5_760).contains(&n) && n.is_multiple_of(120));
                prop_assert!(!p.is_empty());
            }
        }
    }

    /// Real Opus packets (opus-rs at 16 and 64 kbit/s: SILK and CELT) as the muxer's seeds.
    #[test]
    #[ignore = "writes tests/fuzz/corpus/ogg once"]
    fn write_seeds() {
        use opus_rs::{Application, OpusEncoder};
        for (name, app, rate) in [
            ("silk", Application::Voip, 16_000),
            ("celt", Application::Audio, 64_000),
        ] {
            let mut enc = OpusEncoder::new(48_000, 1, app).expect("encoder");
            enc.bitrate_bps = rate;
            for p in 0..3usize {
                let pcm: Vec<f32> = (0..960)
                    .map(|i| {
                        let t = (p * 960 + i) as f32 / 48_000.0;
                        0.4 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    })
                    .collect();
                let mut out = vec![0u8; 1500];
                let n = enc.encode(&pcm, 960, &mut out).expect("encode");
                fuzzing::write_seed("ogg", &format!("{name}-{p}.opus"), &out[..n]);
            }
        }
        fuzzing::write_seed("ogg", "silence.opus", &silence_frame(960));
    }
}
