//! Reading an Ogg Opus file that is still being written: the complete pages so far, their
//! audio packets with their places on the timeline. The mixer follows the speakers' files
//! this way while they grow, and the same reader finds where a file cut short by a crash
//! stops being whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use ogg::reading::{BasePacketReader, PageParser};

use super::ogg::{packet_samples, pre_skip};

/// An audio packet and the sample it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub pos: u64,
    pub packet: Vec<u8>,
}

pub struct Tail {
    file: File,
    /// Bytes read from the file that do not make a complete page yet.
    buf: Vec<u8>,
    /// Bytes of complete, valid pages so far.
    whole: u64,
    reader: BasePacketReader,
    /// Packets seen, the two header packets included.
    packets: u64,
    /// Samples of the audio packets seen, after the pre-skip.
    pos: u64,
    /// Samples still to skip at the start (the OpusHead's pre-skip).
    skip: u64,
    ended: bool,
    /// The file has bytes that are not a valid page: nothing after them is read.
    broken: bool,
    /// The OpusHead and OpusTags packets, and the stream's serial, once read.
    headers: Option<(Vec<u8>, Vec<u8>, u32)>,
    head: Option<Vec<u8>>,
}

const HEADER: usize = 27;

impl Tail {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            buf: Vec::new(),
            whole: 0,
            reader: BasePacketReader::new(),
            packets: 0,
            pos: 0,
            skip: 0,
            ended: false,
            broken: false,
            headers: None,
            head: None,
        })
    }

    /// Samples of audio read so far: the position the next packet starts at.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The end-of-stream page was read: the file is complete.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes of the file that are whole pages, from its start.
    pub fn whole_bytes(&self) -> u64 {
        self.whole
    }

    /// Whether a part that is not a valid page was found (a file cut short mid-page is not
    /// broken: its last page is just not complete yet).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// The OpusHead and OpusTags packets and the stream serial, once their pages are read.
    pub fn headers(&self) -> Option<(&[u8], &[u8], u32)> {
        self.headers
            .as_ref()
            .map(|(h, t, serial)| (h.as_slice(), t.as_slice(), *serial))
    }

    /// The audio packets of the pages completed since the last call.
    pub fn poll(&mut self) -> io::Result<Vec<Placed>> {
        if self.broken || self.ended {
            return Ok(Vec::new());
        }
        self.file
            .seek(SeekFrom::Start(self.whole + self.buf.len() as u64))?;
        self.file.read_to_end(&mut self.buf)?;
        let mut out = Vec::new();
        loop {
            match self.next_page() {
                Ok(Some(())) => {}
                Ok(None) => break,
                Err(()) => {
                    self.broken = true;
                    break;
                }
            }
            while let Some(p) = self.reader.read_packet() {
                self.packets += 1;
                if p.last_in_stream() {
                    self.ended = true;
                }
                if self.packets == 1 {
                    self.skip = pre_skip(&p.data).unwrap_or(0);
                    self.head = Some(p.data);
                    continue;
                }
                if self.packets == 2 {
                    let serial = p.stream_serial();
                    if let Some(head) = self.head.take() {
                        self.headers = Some((head, p.data, serial));
                    }
                    continue;
                }
                if let Some(n) = packet_samples(&p.data) {
                    if self.skip > 0 {
                        // The pre-skip frames (meet's files: one silence frame of exactly it).
                        self.skip = self.skip.saturating_sub(n);
                        continue;
                    }
                    out.push(Placed {
                        pos: self.pos,
                        packet: p.data,
                    });
                    self.pos += n;
                }
            }
            if self.ended {
                break;
            }
        }
        Ok(out)
    }

    /// Parses one complete page off `buf` into the packet reader: `None` when the page is not
    /// all there yet, `Err` when the bytes are not a valid page.
    fn next_page(&mut self) -> Result<Option<()>, ()> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        if &self.buf[..4] != b"OggS" {
            return Err(());
        }
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&self.buf[..HEADER]);
        let (mut parser, segments) = PageParser::new(header).map_err(|_| ())?;
        if self.buf.len() < HEADER + segments {
            return Ok(None);
        }
        let body = parser.parse_segments(self.buf[HEADER..HEADER + segments].to_vec());
        let len = HEADER + segments + body;
        if self.buf.len() < len {
            return Ok(None);
        }
        let page = parser
            .parse_packet_data(self.buf[HEADER + segments..len].to_vec())
            .map_err(|_| ())?;
        self.reader.push_page(page).map_err(|_| ())?;
        self.buf.drain(..len);
        self.whole += len as u64;
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::ogg::{OpusFile, Tags};
    use super::*;

    #[test]
    fn follows_a_growing_file_page_by_page_and_stops_at_a_torn_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.ogg");
        let file = File::create(&path).expect("create");
        let mut f = OpusFile::create(file, 3, &Tags::default()).expect("opus");
        let mut tail = Tail::open(&path).expect("open");
        assert_eq!(tail.poll().expect("poll"), []);
        for _ in 0..48 {
            f.write(&[0xfc, 1]).expect("write");
        }
        assert_eq!(
            tail.poll().expect("poll"),
            [],
            "the first page is not closed yet"
        );
        for _ in 0..10 {
            f.write(&[0xfc, 2]).expect("write");
        }
        let first = tail.poll().expect("poll");
        assert_eq!(
            first.len(),
            49,
            "one page: a second with the pre-skip frame"
        );
        assert_eq!((first[0].pos, first[1].pos), (0, 960));
        assert_eq!(tail.position(), 47_040);
        f.finish().expect("finish");
        let rest = tail.poll().expect("poll");
        assert_eq!(rest.len(), 9);
        assert_eq!(rest[0].pos, 47_040);
        assert!(tail.ended());
        let len = tail.whole_bytes();
        assert_eq!(len, std::fs::metadata(&path).expect("meta").len());

        // Half a page of garbage after a valid page: the reader stops before it.
        let torn = dir.path().join("b.ogg");
        let whole = std::fs::read(&path).expect("read");
        let mut t = File::create(&torn).expect("create");
        t.write_all(&whole[..whole.len() - 10]).expect("write");
        let mut tail = Tail::open(&torn).expect("open");
        assert_eq!(tail.poll().expect("poll").len(), 49);
        assert!(
            !tail.ended() && !tail.broken(),
            "the last page is incomplete, not broken"
        );
        t.write_all(b"OggX and more than a page header's worth")
            .expect("write");
        assert_eq!(tail.poll().expect("poll").len(), 0);
        assert!(tail.broken());
    }
}
