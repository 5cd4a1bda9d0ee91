//! Content hashes and Ed25519 signatures (ring), for plugin manifests and other signed
//! artefacts. Private keys are PKCS#8 documents held in [`SecretBytes`].

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::secret::SecretBytes;
use crate::{Error, Result};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// A new Ed25519 key pair as a PKCS#8 document.
pub fn ed25519_generate() -> Result<SecretBytes> {
    let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| Error::Crypto("Ed25519 key generation"))?;
    Ok(SecretBytes::from_slice(doc.as_ref()))
}

/// The public key (32 bytes, hex) of a PKCS#8 Ed25519 key pair.
pub fn ed25519_public_hex(pkcs8: &SecretBytes) -> Result<String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.expose())
        .map_err(|_| Error::Crypto("Ed25519 PKCS#8 document"))?;
    Ok(hex::encode(pair.public_key().as_ref()))
}

/// Signs `message`; returns the 64-byte signature as hex.
pub fn ed25519_sign(pkcs8: &SecretBytes, message: &[u8]) -> Result<String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.expose())
        .map_err(|_| Error::Crypto("Ed25519 PKCS#8 document"))?;
    Ok(hex::encode(pair.sign(message).as_ref()))
}

/// Whether `signature_hex` is a valid signature of `message` by `public_hex`.
pub fn ed25519_verify(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Ok(public), Ok(sig)) = (hex::decode(public_hex), hex::decode(signature_hex)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = ed25519_generate().unwrap();
        let public = ed25519_public_hex(&k).unwrap();
        let sig = ed25519_sign(&k, b"plugin").unwrap();
        assert!(ed25519_verify(&public, b"plugin", &sig));
        assert!(!ed25519_verify(&public, b"plugim", &sig));
        assert!(!ed25519_verify(&public, b"plugin", "00"));
        assert!(!ed25519_verify("zz", b"plugin", &sig));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
