//! Randomness for secrets, salts and ids: the operating system's CSPRNG, directly.

/// Fills `buffer` from the operating system's CSPRNG.
///
/// # Panics
/// When the OS has no randomness to give, which leaves nothing safe to do.
pub fn fill_random(buffer: &mut [u8]) {
    #[expect(
        clippy::expect_used,
        reason = "without OS randomness no secret can be made"
    )]
    getrandom::fill(buffer).expect("the operating system's random number generator failed");
}
