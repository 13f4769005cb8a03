//! RTP header work on the forward path: reading the RFC 6464 audio level, and making a
//! packet fit one subscriber's leg (its SSRC, its payload type, no foreign extensions).

use rtc::rtp::header::Header;

/// The audio level of a packet in −dBov (0 loudest, 127 silence), from extension `id`.
pub fn audio_level(header: &Header, id: u8) -> Option<u8> {
    if !header.extension {
        return None;
    }
    header
        .extensions
        .iter()
        .find(|e| e.id == id)
        .and_then(|e| e.payload.first())
        .map(|b| b & 0x7f)
}

/// A −dBov level on meet's loudness scale (the relay's too): −60 dB → 0, 0 dB → 1.
pub fn loudness(level: u8) -> f32 {
    crate::domain::speaker::level_from_dbfs(-f64::from(level.min(127)))
}

/// Removes every header extension: the ids are the publisher's, not the subscriber's. The
/// vector keeps its capacity and clones of the header then allocate nothing.
pub fn strip_extensions(header: &mut Header) {
    header.extension = false;
    header.extensions.clear();
    header.extension_profile = 0;
    header.extensions_padding = 0;
}

/// Readdresses a (stripped) header to one subscriber's leg.
pub fn retarget(header: &mut Header, ssrc: u32, payload_type: u8) {
    header.ssrc = ssrc;
    header.payload_type = payload_type;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn header_with_level(id: u8, byte: u8) -> Header {
        let mut h = Header {
            version: 2,
            payload_type: 96,
            ssrc: 7,
            ..Default::default()
        };
        h.set_extension(id, Bytes::from(vec![byte]))
            .unwrap_or_else(|e| panic!("{e}"));
        h
    }

    #[test]
    fn reads_the_level_and_ignores_the_voice_bit() {
        let h = header_with_level(2, 0x80 | 30);
        assert_eq!(audio_level(&h, 2), Some(30));
        assert_eq!(audio_level(&h, 1), None);
        assert_eq!(audio_level(&Header::default(), 2), None);
    }

    #[test]
    fn levels_use_the_relays_scale() {
        assert!((loudness(0) - 1.0).abs() < 1e-6);
        assert!((loudness(30) - 0.5).abs() < 1e-6);
        assert_eq!(loudness(60), 0.0);
        assert_eq!(loudness(127), 0.0);
        assert_eq!(loudness(200), 0.0);
    }

    #[test]
    fn a_retargeted_header_carries_the_leg_and_no_extension() {
        let mut h = header_with_level(1, 10);
        h.sequence_number = 4242;
        h.timestamp = 99;
        h.marker = true;
        strip_extensions(&mut h);
        retarget(&mut h, 1234, 111);
        assert_eq!((h.ssrc, h.payload_type), (1234, 111));
        assert_eq!((h.sequence_number, h.timestamp, h.marker), (4242, 99, true));
        assert!(!h.extension && h.extensions.is_empty() && h.get_extension(1).is_none());
        let copy = h.clone();
        assert_eq!(copy, h);
    }
}
