//! Counting primes by trial division: the work of the delegation examples (10.1.2.5), shared
//! by the `core` and `primes-task` guests and by the benchmarks' native baseline, so that both
//! sides of a comparison run the same algorithm.

/// Whether `n` is prime, by trial division by 2 and the odd numbers up to its square root.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
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
