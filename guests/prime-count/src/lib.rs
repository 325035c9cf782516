//! Counting primes by trial division: the work of the delegation examples (10.1.2.5), shared
//! by the `core` and `primes-task` guests and by the benchmarks' native baseline, so that both
//! sides of a comparison run the same algorithm.

/// Whether `n` is prime, by trial division by 2 and the odd numbers up to its square root.
///
/// Numbers below 2^32 are divided in 32 bits. LLVM's x86-64 code does that by itself (it
/// checks at run time whether both operands fit and then uses the much cheaper 32-bit
/// divide); Cranelift, which compiles the guests, does not, so the choice is made here, for
/// both, by the type.
pub fn is_prime(n: u64) -> bool {
    match u32::try_from(n) {
        Ok(n) => is_prime_u32(n),
        Err(_) => is_prime_u64(n),
    }
}

#[allow(
    clippy::manual_is_multiple_of,
    reason = "the benchmark kernel: `%` exactly as written, no zero check for the compiler to prove away"
)]
fn is_prime_u32(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d: u32 = 3;
    // The square in 64 bits: `d * d` passes `u32::MAX` for the largest `n`.
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[allow(
    clippy::manual_is_multiple_of,
    reason = "the benchmark kernel: `%` exactly as written, no zero check for the compiler to prove away"
)]
fn is_prime_u64(n: u64) -> bool {
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d: u64 = 3;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// The number of primes in `from..to`.
pub fn count(from: u64, to: u64) -> u64 {
    (from..to).filter(|&n| is_prime(n)).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers() {
        let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert_eq!(count(0, 5_000_000), 348_513);
    }

    #[test]
    fn both_sides_of_2_pow_32() {
        // The largest prime below 2^32, and the smallest above it.
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(4_294_967_295));
        assert!(is_prime(4_294_967_311));
        assert!(!is_prime(4_294_967_297)); // 641 × 6,700,417
        assert!(!is_prime(65_537 * 65_537));
    }
}
