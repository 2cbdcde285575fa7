//! Random identifiers from the operating system's CSPRNG, in `[A-Za-z0-9]` — the alphabet
//! WeCom allows in an OAuth `state` — for login states and the fake's tokens and codes.

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random alphanumeric characters, uniformly distributed.
pub fn alphanumeric(len: usize) -> String {
    // Bytes at or above the largest multiple of 62 are discarded, so no character is favoured.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        rand::fill(&mut buffer);
        for b in buffer.iter().filter(|b| **b < limit) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn alphanumeric_of_the_length_asked() {
        let text = super::alphanumeric(100);
        assert_eq!(text.len(), 100);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(text, super::alphanumeric(100));
    }
}
