//! Signed links to a recording's audio on local storage (`GET /api/recordings/url/:id`, the
//! original's playback URL): the audio route without a token, for an `<audio src>`, valid for
//! [`LINK_SECONDS`]. With S3 the storage's own presigned URL plays that part.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a signed link plays: an hour, like the original's presigned URLs.
pub const LINK_SECONDS: i64 = 3600;

type Mac256 = Hmac<Sha256>;

/// Signs and checks links with a key of its own, derived from the token secret: a link's
/// signature can never be taken for a token's, or the other way round.
pub struct LinkSigner {
    key: Vec<u8>,
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = <Mac256 as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"meet: signed recording links v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, recording_id: &str, track: Option<&str>, expires: i64) -> Mac256 {
        let mut mac = <Mac256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{recording_id}\n{}\n{expires}", track.unwrap_or("")).as_bytes());
        mac
    }

    /// The signature of a link to `recording_id` (its mix, or one speaker's `track`) that
    /// plays until `expires` (Unix seconds).
    pub fn sign(&self, recording_id: &str, track: Option<&str>, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac(recording_id, track, expires)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `signature` is this server's for that link and `now` (Unix seconds) is before
    /// it expires. Compared in constant time.
    pub fn verify(
        &self,
        recording_id: &str,
        track: Option<&str>,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        now < expires
            && self
                .mac(recording_id, track, expires)
                .verify_slice(&sig)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_plays_its_recording_until_it_expires() {
        let s = LinkSigner::new(b"secret");
        let sig = s.sign("rec1", None, 1_000);
        assert!(s.verify("rec1", None, 1_000, &sig, 999));
        assert!(!s.verify("rec1", None, 1_000, &sig, 1_000), "expired");
        assert!(
            !s.verify("rec2", None, 1_000, &sig, 999),
            "another recording"
        );
        assert!(
            !s.verify("rec1", Some("u1"), 1_000, &sig, 999),
            "a speaker's file"
        );
        assert!(!s.verify("rec1", None, 2_000, &sig, 999), "a later expiry");
        assert!(!s.verify("rec1", None, 1_000, "not base64!", 999));
        let other = LinkSigner::new(b"another secret");
        assert!(
            !other.verify("rec1", None, 1_000, &sig, 999),
            "another server"
        );
    }
}
