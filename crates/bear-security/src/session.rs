//! Browser sessions: a random token, kept by the browser in an HttpOnly cookie, stands for an
//! API key for a while. Only the SHA-256 of a session token is kept; each session has its own
//! CSRF token that state-changing requests must echo. A session ends at its expiry, at
//! sign-out, and when its key is revoked (`retain_keys`; callers also check the key on every
//! use).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::digest;

use crate::{Result, SecretBytes};

/// The most sessions kept at once; past it, expired ones go first, then the oldest.
const MAX_SESSIONS: usize = 10_000;

/// Prefix of session tokens (tells them from API keys in a log-free way).
const PREFIX: &str = "bss_";

/// Prefix of one-time login tokens.
const LOGIN_PREFIX: &str = "bsl_";

/// How long a one-time login link works.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);

struct Entry {
    key_id: String,
    csrf: String,
    created: Instant,
    expires: Instant,
}

/// The live sessions of one server.
pub struct Sessions {
    ttl: Duration,
    by_hash: Mutex<HashMap<[u8; 32], Entry>>,
    logins: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A session just made: its token (for the cookie) and CSRF token, shown once.
pub struct NewSession {
    /// The session token; only its hash is kept.
    pub token: String,
    /// The CSRF token state-changing requests carry.
    pub csrf: String,
    /// How long it lasts.
    pub ttl: Duration,
}

/// A live session as a request presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The API key it stands for.
    pub key_id: String,
    /// Its CSRF token.
    pub csrf: String,
    /// Time left.
    pub expires_in: Duration,
}

fn hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

fn random_hex() -> Result<String> {
    Ok(hex::encode(SecretBytes::random(32)?.expose()))
}

impl Sessions {
    /// Sessions lasting `ttl` from sign-in.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `key_id`.
    pub fn create(&self, key_id: &str) -> Result<NewSession> {
        let token = format!("{PREFIX}{}", random_hex()?);
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| e.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.created).map(|(h, _)| *h)
        {
            map.remove(&oldest);
        }
        map.insert(
            hash(&token),
            Entry {
                key_id: key_id.to_string(),
                csrf: csrf.clone(),
                created: now,
                expires: now + self.ttl,
            },
        );
        Ok(NewSession {
            token,
            csrf,
            ttl: self.ttl,
        })
    }

    /// The live session `token` stands for; an expired one is removed and is `None`.
    pub fn get(&self, token: &str) -> Option<Live> {
        if !token.starts_with(PREFIX) {
            return None;
        }
        let h = hash(token);
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.get(&h)?;
        if entry.expires <= now {
            map.remove(&h);
            return None;
        }
        Some(Live {
            key_id: entry.key_id.clone(),
            csrf: entry.csrf.clone(),
            expires_in: entry.expires - now,
        })
    }

    /// Ends session `token`; whether there was one.
    pub fn end(&self, token: &str) -> bool {
        self.lock().remove(&hash(token)).is_some()
    }

    /// Ends every session whose key `keep` does not accept (revoked keys).
    pub fn retain_keys(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|_, e| keep(&e.key_id));
    }

    /// A one-time login token for `key_id`, good for [`LOGIN_TTL`] (`bear ui`'s link).
    pub fn mint_login(&self, key_id: &str) -> Result<String> {
        let token = format!("{LOGIN_PREFIX}{}", random_hex()?);
        let now = Instant::now();
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.retain(|_, (_, expires)| *expires > now);
        logins.insert(hash(&token), (key_id.to_string(), now + LOGIN_TTL));
        Ok(token)
    }

    /// The key a login token was minted for, once: the token is spent whether or not it was
    /// still good.
    pub fn redeem_login(&self, token: &str) -> Option<String> {
        if !token.starts_with(LOGIN_PREFIX) {
            return None;
        }
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        let (key_id, expires) = logins.remove(&hash(token))?;
        (expires > Instant::now()).then_some(key_id)
    }

    /// Sessions alive or not yet swept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `presented` is the session's CSRF token. The SHA-256 digests are compared, so the
/// time taken says nothing about the token's bytes.
pub fn csrf_matches(live: &Live, presented: &str) -> bool {
    hash(&live.csrf) == hash(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_stands_for_its_key_until_it_ends_or_expires() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create("k1").unwrap();
        let live = s.get(&a.token).unwrap();
        assert_eq!(live.key_id, "k1");
        assert!(csrf_matches(&live, &a.csrf));
        assert!(!csrf_matches(&live, "0000"));
        assert!(s.get("bss_00").is_none() && s.get(&a.csrf).is_none());
        assert!(s.end(&a.token));
        assert!(s.get(&a.token).is_none());

        let b = s.create("k2").unwrap();
        let c = s.create("k3").unwrap();
        s.retain_keys(|k| k != "k2");
        assert!(s.get(&b.token).is_none() && s.get(&c.token).is_some());

        let link = s.mint_login("k3").unwrap();
        assert!(s.get(&link).is_none(), "a login token is not a session");
        assert_eq!(s.redeem_login(&link).as_deref(), Some("k3"));
        assert_eq!(s.redeem_login(&link), None, "once only");

        let short = Sessions::new(Duration::ZERO);
        let d = short.create("k1").unwrap();
        assert!(short.get(&d.token).is_none(), "expired at once");
        assert!(short.is_empty(), "and swept");
    }
}
