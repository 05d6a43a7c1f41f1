//! [`ReplayGuard`]: the nonces a receiver accepted recently, so that a captured request is
//! refused when it is sent again.
//!
//! A nonce only needs remembering while its timestamp is still inside the accepted skew
//! window; after that the timestamp check refuses the request anyway. Memory is therefore
//! bounded by the request rate times the window, and capped: when the cap is reached with no
//! expired entry to drop, requests are refused (`ResourceExhausted`) rather than forgetting a
//! nonce that could still be replayed.

use std::collections::HashMap;

/// Nonces seen within the window, with the time (unix ms) after which each may be forgotten.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: HashMap<u128, u64>,
    capacity: usize,
    /// Size at which expired entries are next swept (amortizes the sweep over inserts).
    sweep_at: usize,
}

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// The nonce was accepted before and has not expired.
    Replayed,
    /// The guard is full of unexpired nonces.
    Full,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity: capacity.max(1),
            sweep_at: 1024.min(capacity.max(1)),
        }
    }

    /// Records `nonce`, valid until `expires_ms`; refuses it if seen before.
    pub fn check_and_insert(
        &mut self,
        nonce: u128,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), ReplayRefusal> {
        if let Some(&expiry) = self.seen.get(&nonce)
            && expiry >= now_ms
        {
            return Err(ReplayRefusal::Replayed);
        }
        if self.seen.len() >= self.sweep_at {
            self.seen.retain(|_, expiry| *expiry >= now_ms);
            self.sweep_at = (self.seen.len() * 2).max(1024).min(self.capacity);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayRefusal::Full);
        }
        self.seen.insert(nonce, expires_ms);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_nonce_twice_until_it_expires() {
        let mut guard = ReplayGuard::new(10);
        assert_eq!(guard.check_and_insert(7, 1_000, 0), Ok(()));
        assert_eq!(
            guard.check_and_insert(7, 1_000, 500),
            Err(ReplayRefusal::Replayed)
        );
        // Once expired, the timestamp check refuses it; the guard may forget it.
        assert_eq!(guard.check_and_insert(7, 3_000, 2_000), Ok(()));
    }

    #[test]
    fn sweeps_expired_nonces_and_refuses_when_full() {
        let mut guard = ReplayGuard::new(2);
        assert_eq!(guard.check_and_insert(1, 100, 0), Ok(()));
        assert_eq!(guard.check_and_insert(2, 100, 0), Ok(()));
        assert_eq!(guard.check_and_insert(3, 100, 0), Err(ReplayRefusal::Full));
        // After the first two expired, there is room again.
        assert_eq!(guard.check_and_insert(3, 500, 200), Ok(()));
        assert_eq!(guard.len(), 1);
    }
}
