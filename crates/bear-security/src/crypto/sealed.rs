//! The sealed record file format: `BEARSEAL`, version, collection, records whose AAD binds
//! collection, id and position, and a sealed end record with the count.

use super::*;

fn record_aad(collection: &str, index: u64, id: &str) -> Vec<u8> {
    format!("bear-seal-v1\0{collection}\0{index}\0{id}").into_bytes()
}

/// Writes records to a sealed file for `collection`, atomically.
pub fn write_sealed<'a>(
    path: &Path,
    keyring: &mut Keyring,
    collection: &str,
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<()> {
    if collection.len() > 255 {
        return Err(Error::Setting {
            key: "collection".into(),
            expected: "a name of at most 255 bytes".into(),
        });
    }
    let mut out = Vec::new();
    out.extend_from_slice(SEAL_MAGIC);
    out.push(SEAL_VERSION);
    out.push(collection.len() as u8);
    out.extend_from_slice(collection.as_bytes());
    let mut count = 0u64;
    for (id, plain) in records {
        if id.len() > u16::MAX as usize {
            return Err(Error::Setting {
                key: "record id".into(),
                expected: "at most 65535 bytes".into(),
            });
        }
        let (key_id, sealed) =
            keyring.seal(collection, &record_aad(collection, count, id), plain)?;
        out.push(TAG_RECORD);
        out.extend_from_slice(&key_id.to_le_bytes());
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(&sealed);
        count += 1;
    }
    let (key_id, sealed) = keyring.seal(
        collection,
        &record_aad(collection, count, "\0end"),
        &count.to_le_bytes(),
    )?;
    out.push(TAG_END);
    out.extend_from_slice(&key_id.to_le_bytes());
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed);
    write_atomic(path, &out, true)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::Integrity {
                what: self.path.display().to_string(),
                reason: format!("the file is truncated at byte {}", self.buf.len()),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
}

/// Reads and authenticates every record of a sealed file. Any modification, truncation,
/// reordering, or a file of another collection gives a typed error; nothing is returned
/// unless the whole file authenticates.
pub fn read_sealed(
    path: &Path,
    keyring: &Keyring,
    collection: &str,
) -> Result<Vec<(String, SecretBytes)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    parse_sealed(&bytes, path, keyring, collection)
}

/// [`read_sealed`] over bytes already in memory (`path` names them in errors).
pub fn parse_sealed(
    bytes: &[u8],
    path: &Path,
    keyring: &Keyring,
    collection: &str,
) -> Result<Vec<(String, SecretBytes)>> {
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        path,
    };
    if r.take(8).ok() != Some(SEAL_MAGIC.as_slice()) {
        return Err(Error::format(path, "not a BEAR sealed file (bad magic)"));
    }
    let version = r.u8()?;
    if version != SEAL_VERSION {
        return Err(Error::format(
            path,
            format!("sealed file version {version} is not supported"),
        ));
    }
    let n = r.u8()? as usize;
    if r.take(n)? != collection.as_bytes() {
        return Err(Error::Integrity {
            what: path.display().to_string(),
            reason: "the file belongs to another collection".into(),
        });
    }
    let what = path.display().to_string();
    let mut out = Vec::new();
    loop {
        let tag = r.u8()?;
        let key_id = r.u32()?;
        match tag {
            TAG_RECORD => {
                let id_len = r.u16()? as usize;
                let id = std::str::from_utf8(r.take(id_len)?)
                    .map_err(|_| Error::Integrity {
                        what: what.clone(),
                        reason: "a record id is not UTF-8".into(),
                    })?
                    .to_string();
                let len = u64::from(r.u32()?);
                if len > MAX_RECORD {
                    return Err(Error::Integrity {
                        what,
                        reason: "a record length is out of range".into(),
                    });
                }
                let sealed = r.take(len as usize)?;
                let aad = record_aad(collection, out.len() as u64, &id);
                let plain = keyring.open_sealed(collection, key_id, &aad, sealed, &what)?;
                out.push((id, plain));
            }
            TAG_END => {
                let len = r.u32()? as usize;
                let sealed = r.take(len)?;
                let aad = record_aad(collection, out.len() as u64, "\0end");
                let plain = keyring.open_sealed(collection, key_id, &aad, sealed, &what)?;
                if plain.expose() != (out.len() as u64).to_le_bytes() || r.pos != bytes.len() {
                    return Err(Error::Integrity {
                        what,
                        reason: "the record count or file end does not match".into(),
                    });
                }
                return Ok(out);
            }
            _ => {
                return Err(Error::Integrity {
                    what,
                    reason: format!("unknown record tag at byte {}", r.pos - 5),
                });
            }
        }
    }
}
