//! IMDSv2 session tokens: random, remembered until their TTL passes. Expired tokens are
//! forgotten whenever the store is used (issue or lookup), so it holds only live tokens plus
//! those that expired since the last request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tokens handed out and when each stops being accepted.
#[derive(Debug, Default)]
pub struct TokenStore {
    expiries: Mutex<HashMap<String, Instant>>,
}

impl TokenStore {
    /// A new random token valid for `ttl` from `now`; forgets the tokens that have expired.
    pub fn issue(&self, ttl: Duration, now: Instant) -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut expiries = self.expiries.lock().expect("token store lock");
        expiries.retain(|_, expiry| *expiry > now);
        expiries.insert(token.clone(), now + ttl);
        Ok(token)
    }

    /// Whether `token` was issued here and has not expired at `now`; forgets the tokens that
    /// have expired (a client may read for hours without asking for a new token).
    pub fn is_valid(&self, token: &str, now: Instant) -> bool {
        let mut expiries = self.expiries.lock().expect("token store lock");
        expiries.retain(|_, expiry| *expiry > now);
        expiries.contains_key(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_until_its_ttl_passes() {
        let store = TokenStore::default();
        let start = Instant::now();
        let token = store.issue(Duration::from_secs(60), start).unwrap();
        assert!(store.is_valid(&token, start));
        assert!(store.is_valid(&token, start + Duration::from_secs(59)));
        assert!(!store.is_valid(&token, start + Duration::from_secs(60)));
        assert!(!store.is_valid("made-up", start));
    }

    #[test]
    fn tokens_are_distinct_and_expired_ones_are_forgotten() {
        let store = TokenStore::default();
        let start = Instant::now();
        let first = store.issue(Duration::from_secs(1), start).unwrap();
        let second = store
            .issue(Duration::from_secs(60), start + Duration::from_secs(2))
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(store.expiries.lock().unwrap().len(), 1);
    }

    #[test]
    fn expired_tokens_are_forgotten_when_a_token_is_checked() {
        let store = TokenStore::default();
        let start = Instant::now();
        let kept = store.issue(Duration::from_secs(600), start).unwrap();
        for _ in 0..3 {
            store.issue(Duration::from_secs(1), start).unwrap();
        }
        assert_eq!(store.expiries.lock().unwrap().len(), 4);
        assert!(store.is_valid(&kept, start + Duration::from_secs(5)));
        assert_eq!(store.expiries.lock().unwrap().len(), 1);
    }
}
