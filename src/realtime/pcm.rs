//! Mono PCM as clients send it (Float32 or Int16, little-endian) and as the relay forwards it
//! (Int16 LE), plus the loudness used for `active-speaker`.

use bytes::Bytes;

/// How the samples of an audio message are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    F32,
    S16,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None | Some("f32") => Some(Self::F32),
            Some("s16") => Some(Self::S16),
            Some(_) => None,
        }
    }

    fn sample_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::S16 => 2,
        }
    }
}

pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 8_000..=96_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmError {
    #[error("audioData is empty")]
    Empty,
    #[error("audioData is {len} bytes, not a whole number of {sample}-byte samples")]
    Partial { len: usize, sample: usize },
}

/// One sample of Float32 as Int16 the way the original (and Web Audio code generally) did it:
/// clip to [-1, 1], scale negatives by 32768 and positives by 32767, truncate toward zero.
/// NaN becomes silence.
pub fn f32_to_s16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    let s = f64::from(x.clamp(-1.0, 1.0));
    let scaled = if s < 0.0 { s * 32_768.0 } else { s * 32_767.0 };
    // In range by construction; `as` truncates toward zero.
    #[allow(clippy::cast_possible_truncation)]
    let v = scaled as i16;
    v
}

/// The message's samples as Int16 LE, and their level (0.0 silence … 1.0 full scale).
pub fn to_s16(data: &[u8], format: Format) -> Result<(Bytes, f32), PcmError> {
    let sample = format.sample_bytes();
    if data.is_empty() {
        return Err(PcmError::Empty);
    }
    if !data.len().is_multiple_of(sample) {
        return Err(PcmError::Partial {
            len: data.len(),
            sample,
        });
    }
    let mut out = Vec::with_capacity(data.len() / sample * 2);
    let mut energy = 0.0f64;
    let mut push = |v: i16| {
        energy += f64::from(v) * f64::from(v);
        out.extend_from_slice(&v.to_le_bytes());
    };
    match format {
        Format::F32 => {
            for c in data.chunks_exact(4) {
                push(f32_to_s16(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
        }
        Format::S16 => {
            for c in data.chunks_exact(2) {
                push(i16::from_le_bytes([c[0], c[1]]));
            }
        }
    }
    let samples = out.len() / 2;
    #[allow(clippy::cast_precision_loss)]
    let rms = (energy / samples as f64).sqrt() / 32_768.0;
    Ok((Bytes::from(out), level_from_rms(rms)))
}

/// Loudness on a 0–1 scale: -60 dBFS and below is 0, full scale is 1.
pub fn level_from_rms(rms: f64) -> f32 {
    if rms <= 0.0 {
        return 0.0;
    }
    crate::domain::speaker::level_from_dbfs(20.0 * rms.log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(samples: &[f32]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn float_to_int16_clips_and_scales_like_the_original() {
        assert_eq!(f32_to_s16(0.0), 0);
        assert_eq!(f32_to_s16(1.0), 32_767);
        assert_eq!(f32_to_s16(-1.0), -32_768);
        assert_eq!(f32_to_s16(1.5), 32_767, "clipped at +1.0");
        assert_eq!(f32_to_s16(-7.0), -32_768, "clipped at -1.0");
        assert_eq!(f32_to_s16(f32::INFINITY), 32_767);
        assert_eq!(f32_to_s16(f32::NEG_INFINITY), -32_768);
        assert_eq!(f32_to_s16(f32::NAN), 0);
        assert_eq!(f32_to_s16(0.5), 16_383, "0.5 × 32767 = 16383.5, truncated");
        assert_eq!(f32_to_s16(-0.5), -16_384);
        assert_eq!(f32_to_s16(-0.000_01), 0, "truncation toward zero");
    }

    #[test]
    fn messages_convert_to_int16_le() {
        let (out, _) = to_s16(&f32_bytes(&[1.0, -1.0, 0.25]), Format::F32).expect("valid");
        assert_eq!(&out[..], &[0xff, 0x7f, 0x00, 0x80, 0xff, 0x1f]);
        let s16 = [0x34, 0x12, 0xff, 0xff];
        let (out, _) = to_s16(&s16, Format::S16).expect("valid");
        assert_eq!(&out[..], &s16, "Int16 input passes through");
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(to_s16(&[], Format::F32), Err(PcmError::Empty));
        assert_eq!(
            to_s16(&[0; 6], Format::F32),
            Err(PcmError::Partial { len: 6, sample: 4 })
        );
        assert_eq!(
            to_s16(&[0; 3], Format::S16),
            Err(PcmError::Partial { len: 3, sample: 2 })
        );
        assert_eq!(Format::parse(Some("u8")), None);
        assert_eq!(Format::parse(None), Some(Format::F32));
    }

    #[test]
    fn levels() {
        let (_, silent) = to_s16(&f32_bytes(&[0.0; 480]), Format::F32).expect("valid");
        assert!(silent.abs() < f32::EPSILON);
        let (_, loud) = to_s16(&f32_bytes(&[1.0, -1.0].repeat(240)), Format::F32).expect("valid");
        assert!(loud > 0.99, "{loud}");
        let (_, quiet) =
            to_s16(&f32_bytes(&[0.01, -0.01].repeat(240)), Format::F32).expect("valid");
        assert!(
            (0.25..0.40).contains(&quiet),
            "-40 dBFS is about 0.33: {quiet}"
        );
    }
}
