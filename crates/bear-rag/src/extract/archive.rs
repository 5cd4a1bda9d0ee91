//! ZIP archives read as folders: each file inside in a format BEAR reads is a document of its
//! own at its path below the archive (`bundle.zip/exhibits/lease.pdf`), e-mails and archives
//! inside recursively; the archive's own document lists the files it holds. One budget of
//! inflated bytes (`rag.max_decompressed_bytes`) covers the archive and everything inside it
//! however deep, so an archive of archives cannot multiply it; a file BEAR does not read, or
//! one encrypted, is reported alone and the rest go in.

use std::path::Path;

use super::mail::{MAX_DEPTH, Part, join, push_part};
use super::package::{self, Kind, read_entry};
use super::{DocMeta, Extracted, Format, Limits, Refusal, extract};

/// The documents of the archive `bytes`: its list of files, then each file's.
pub(super) fn parts(bytes: &[u8], limits: &Limits) -> Result<Vec<Part>, Refusal> {
    let mut walk = Walk {
        limits,
        budget: limits.max_decompressed_bytes,
        parts: Vec::new(),
    };
    walk.archive(bytes, "", 0)?;
    Ok(walk.parts)
}

/// The documents of an archive attached to an e-mail, at `at`, within the e-mail's limits.
pub(super) fn parts_at(bytes: &[u8], at: &str, depth: usize, limits: &Limits) -> Vec<Part> {
    let mut walk = Walk {
        limits,
        budget: limits.max_decompressed_bytes,
        parts: Vec::new(),
    };
    if let Err(reason) = walk.archive(bytes, at, depth) {
        walk.parts.truncate(0);
        walk.parts.push(Part {
            locator: at.to_string(),
            format: Format::Zip,
            extracted: Err(reason),
        });
    }
    walk.parts
}

/// One file of an archive: its raw name (to read it by) and its path as a locator.
struct Entry {
    raw: String,
    path: String,
    encrypted: bool,
}

struct Walk<'l> {
    limits: &'l Limits,
    budget: u64,
    parts: Vec<Part>,
}

impl Walk<'_> {
    fn push(&mut self, part: Part) -> Result<(), Refusal> {
        push_part(&mut self.parts, part)
    }

    /// The archive in `bytes` at `at`: its list, then its files.
    fn archive(&mut self, bytes: &[u8], at: &str, depth: usize) -> Result<(), Refusal> {
        let mut zip = package::open(bytes, Kind::Zip, self.limits)?;
        let entries = entries(&mut zip)?;
        self.push(Part {
            locator: at.to_string(),
            format: Format::Zip,
            extracted: Ok(listing(&entries)),
        })?;
        for e in &entries {
            self.limits.check_time(self.limits.secs_left())?;
            let locator = join(at, &e.path);
            if e.encrypted {
                self.push(Part::refused(locator, Format::Zip, Refusal::Protected))?;
                continue;
            }
            let Some(format) = Format::from_path(Path::new(&e.path)) else {
                let extension = Path::new(&e.path)
                    .extension()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.push(Part::refused(
                    locator,
                    Format::Text,
                    Refusal::UnsupportedFormat { extension },
                ))?;
                continue;
            };
            let data =
                read_entry(&mut zip, Kind::Zip, &e.raw, &mut self.budget)?.unwrap_or_default();
            self.file(&data, format, locator, depth)?;
        }
        Ok(())
    }

    /// One file of an archive, of `format`, at `locator`.
    fn file(
        &mut self,
        data: &[u8],
        format: Format,
        locator: String,
        depth: usize,
    ) -> Result<(), Refusal> {
        match format {
            Format::Zip | Format::Eml | Format::Mbox if depth + 1 >= MAX_DEPTH => self.push(
                Part::refused(locator, format, Refusal::TooDeep { limit: MAX_DEPTH }),
            ),
            Format::Zip => match self.archive(data, &locator, depth + 1) {
                Err(
                    e @ (Refusal::ZipBomb { .. }
                    | Refusal::TooManyParts { .. }
                    | Refusal::Timeout { .. }),
                ) => Err(e),
                Err(other) => self.push(Part::refused(locator, format, other)),
                Ok(()) => Ok(()),
            },
            Format::Eml | Format::Mbox | Format::Msg => {
                match super::parts(data, format, self.limits) {
                    Ok(parts) => parts.into_iter().try_for_each(|p| {
                        self.push(Part {
                            locator: join(&locator, &p.locator),
                            ..p
                        })
                    }),
                    Err(e) => self.push(Part::refused(locator, format, e)),
                }
            }
            _ => {
                let extracted = extract(data, format, self.limits);
                self.push(Part {
                    locator,
                    format,
                    extracted,
                })
            }
        }
    }
}

/// The files of an archive in its order: no folders, no paths leaving the archive, none of
/// the files systems add (`__MACOSX/`, `.DS_Store`, other dot files).
fn entries(zip: &mut package::Archive<'_>) -> Result<Vec<Entry>, Refusal> {
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| Kind::Zip.malformed(format!("entry {i}: {e}")))?;
        if f.is_dir() {
            continue;
        }
        let Some(path) = f.enclosed_name() else {
            continue;
        };
        let parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.iter().any(|p| p.starts_with('.') || p == "__MACOSX") {
            continue;
        }
        let raw = f
            .name()
            .map_err(|e| Kind::Zip.malformed(format!("entry {i}: {e}")))?
            .into_owned();
        out.push(Entry {
            raw,
            path: parts.join("/"),
            encrypted: f.encrypted(),
        });
    }
    Ok(out)
}

/// The archive's own document: the files it holds, one per line.
fn listing(entries: &[Entry]) -> Extracted {
    let mut text = format!("ZIP archive of {} file(s):\n", entries.len());
    for e in entries {
        text.push_str("- ");
        text.push_str(&e.path);
        text.push('\n');
    }
    Extracted {
        text,
        page_starts: Vec::new(),
        meta: DocMeta::default(),
        ocr_pages: Vec::new(),
    }
}
