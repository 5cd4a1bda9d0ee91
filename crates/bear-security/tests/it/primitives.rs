//! The primitives bear-security builds on: ring AES-256-GCM and SHA-256, zeroize, memsec.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroize;

#[test]
fn sha256_matches_the_fips_vector() {
    let d = ring::digest::digest(&ring::digest::SHA256, b"abc");
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn aes_gcm_round_trips_and_detects_tampering() {
    let rng = SystemRandom::new();
    let mut key_bytes = [0u8; 32];
    rng.fill(&mut key_bytes).unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).unwrap());
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce).unwrap();

    let mut sealed = b"privileged and confidential".to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(b"doc-1"),
        &mut sealed,
    )
    .unwrap();

    let mut copy = sealed.clone();
    let opened = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"doc-1"),
            &mut copy,
        )
        .unwrap();
    assert_eq!(opened, b"privileged and confidential");

    // A flipped byte, or the wrong record id as AAD, is refused.
    let mut tampered = sealed.clone();
    tampered[3] ^= 1;
    assert!(
        key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"doc-1"),
            &mut tampered
        )
        .is_err()
    );
    let mut other = sealed;
    assert!(
        key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"doc-2"),
            &mut other
        )
        .is_err()
    );
    key_bytes.zeroize();
    assert_eq!(key_bytes, [0u8; 32]);
}

#[test]
#[allow(unsafe_code)]
fn memsec_locks_and_zeroes_a_buffer() {
    let mut secret = vec![0xA5u8; 4096];
    // SAFETY: the pointer and length describe `secret`, which outlives both calls.
    let locked = unsafe { memsec::mlock(secret.as_mut_ptr(), secret.len()) };
    // mlock may be refused by RLIMIT_MEMLOCK; zeroing must work either way.
    // SAFETY: as above.
    unsafe { memsec::memzero(secret.as_mut_ptr(), secret.len()) };
    if locked {
        // SAFETY: as above; unlocking also zeroes.
        assert!(unsafe { memsec::munlock(secret.as_mut_ptr(), secret.len()) });
    }
    assert!(secret.iter().all(|b| *b == 0));
}
