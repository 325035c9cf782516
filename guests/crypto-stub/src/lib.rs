//! The chapter's "crypto" functions (10.1.2.6), which are stubs there too: they perform no
//! real encryption. The key pair is derived from a fixed seed instead of `Math.random()`, so
//! that every run, and both versions of the library, give the same results.

/// A public/private key pair (`_generateKeyPair`).
pub fn generate_key_pair() -> (String, String) {
    // A fixed 64-bit LCG step from a fixed seed: deterministic stand-ins for random numbers.
    let a = 0x2545_f491_4f6c_dd1d_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = a.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    (format!("0.{}", a % 1_000_000_007), format!("0.{}", b % 1_000_000_007))
}

/// `_encrypt(k, s)`.
pub fn encrypt(key: &str, plaintext: &str) -> String {
    format!("encrypted-{key} {plaintext}")
}

/// `_decrypt(k, s)`.
pub fn decrypt(_key: &str, ciphertext: &str) -> String {
    match ciphertext.find(' ') {
        Some(i) => ciphertext[i + 1..].to_string(),
        None => String::new(),
    }
}
