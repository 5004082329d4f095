//! Secrets Fracta makes itself: per-agent gateway tokens, session passwords and capability
//! tokens, and their digests. The bottom of the engine: it imports nothing of ours.

use std::io::Read;

/// A fresh random token: 256 bits from the operating system's random source, as hex. Fails
/// (rather than falling back to anything predictable) when that source cannot be read.
pub fn new_token() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read the OS random source /dev/urandom for a token: {e}"),
            )
        })?;
    Ok(hex(&buf))
}

/// The SHA-256 of `s`, as lowercase hex (what a process is handed instead of a token).
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(s.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let a = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_token().unwrap());
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
