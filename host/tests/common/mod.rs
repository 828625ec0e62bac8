//! Helpers shared by the host integration tests.

/// Deterministic pseudo-random bytes (xorshift64), e.g. an `h·w·3` RGB image.
pub fn random_image(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}
