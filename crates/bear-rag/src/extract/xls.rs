//! Legacy Excel workbooks (`.xls`, BIFF5/BIFF8 in an OLE compound file), read with calamine's
//! `Xls`, laid out as `.xlsx` is (one page per sheet, rows naming their cells).
//!
//! Calamine reads every sheet into dense grids when it opens the book, sized by the sheet's
//! extreme cells, and reserves what a sheet's DIMENSIONS record declares: a few hundred bytes
//! could ask for gigabytes, and a failed allocation aborts the process (no panic to catch).
//! So the workbook stream is walked first, as calamine will walk it (records of type and
//! length; the globals, then each sheet at the offset its BoundSheet record names), and a
//! book whose grids would outgrow `rag.max_decompressed_bytes`, that is encrypted, or whose
//! offsets point outside the stream is refused before calamine sees it.

use std::io::{Cursor, Read};
use std::mem::size_of;

use calamine::{Cell, Data, Reader, Xls};

use super::sheet::Sheets;
use super::{DocMeta, Extracted, Limits, Refusal};

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let sheets = preflight(bytes, limits)?;
    if sheets > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: sheets,
            limit: limits.max_pages,
        });
    }
    let mut book: Xls<_> = Xls::new(Cursor::new(bytes)).map_err(|e| match e {
        calamine::XlsError::Password => Refusal::Protected,
        e => malformed(kind_of(&e)),
    })?;
    let meta = book.workbook_properties().unwrap_or_default();
    let names = book.sheet_names();
    let mut out = Sheets::new(limits);
    for name in &names {
        let range = book
            .worksheet_range(name)
            .map_err(|e| malformed(kind_of(&e)))?;
        out.begin(name);
        let (top, left) = range.start().unwrap_or_default();
        for (r, c, value) in range.used_cells() {
            out.cell(top + r as u32, left + c as u32, &value.to_string())?;
        }
        out.end();
    }
    Ok(Extracted {
        text: out.text,
        page_starts: out.page_starts,
        meta: DocMeta {
            title: meta.title,
            author: meta.creator,
            created: meta.created,
            modified: meta.modified,
            page_count: Some(names.len() as u32),
            ..DocMeta::default()
        },
        ocr_pages: Vec::new(),
    })
}

fn malformed(detail: &str) -> Refusal {
    Refusal::Malformed {
        format: "Excel workbook".into(),
        detail: detail.into(),
    }
}

/// What went wrong in calamine, without its message (which may quote cell text).
fn kind_of(e: &calamine::XlsError) -> &'static str {
    match e {
        calamine::XlsError::Io(_) | calamine::XlsError::Cfb(_) => "the compound file is damaged",
        calamine::XlsError::WorksheetNotFound(_) => "a listed sheet is missing",
        calamine::XlsError::Len { .. } | calamine::XlsError::EoStream(_) => "a record is cut short",
        _ => "an unexpected structure",
    }
}

/// Checks the workbook stream before calamine parses it; the number of sheets.
fn preflight(bytes: &[u8], limits: &Limits) -> Result<usize, Refusal> {
    let mut file = cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|_| malformed("not an OLE compound file"))?;
    let name = ["/Workbook", "/Book"]
        .into_iter()
        .find(|n| file.is_stream(n))
        .ok_or_else(|| malformed("an OLE file, but not an Excel workbook"))?;
    let mut stream = Vec::new();
    file.open_stream(name)
        .and_then(|s| s.take(limits.max_file_bytes).read_to_end(&mut stream))
        .map_err(|_| malformed("the workbook stream cannot be read"))?;
    let offsets = globals(&stream)?;
    let mut cost = 0u64;
    for at in &offsets {
        let sheet = stream
            .get(*at..)
            .ok_or_else(|| malformed("a sheet starts outside the workbook"))?;
        cost = cost.saturating_add(Grid::walk(sheet).bytes());
        if cost > limits.max_decompressed_bytes {
            return Err(Refusal::ZipBomb {
                detail: "its sheets span more cells than rag.max_decompressed_bytes allows".into(),
            });
        }
    }
    Ok(offsets.len())
}

/// The BIFF records of `stream`: (type, data), until it ends or a record is cut short
/// (calamine then reports the damage).
fn records(stream: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        let typ = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]);
        let len = usize::from(u16::from_le_bytes([*rest.get(2)?, *rest.get(3)?]));
        let data = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some((typ, data))
    })
}

const BOF: u16 = 0x0809;
const EOF: u16 = 0x000A;
const FILEPASS: u16 = 0x002F;
const BOUNDSHEET: u16 = 0x0085;
const DIMENSIONS: u16 = 0x0200;
const FORMULA: u16 = 0x0006;
const MULRK: u16 = 0x00BD;
/// Records holding one cell, its row and column in their first four bytes.
const CELLS: [u16; 7] = [0x0203, 0x0204, 0x00D6, 0x0205, 0x027E, 0x00FD, FORMULA];

/// The workbook globals: refused if encrypted; the offset of each sheet.
fn globals(stream: &[u8]) -> Result<Vec<usize>, Refusal> {
    let mut offsets = Vec::new();
    for (typ, data) in records(stream) {
        match typ {
            FILEPASS => return Err(Refusal::Protected),
            BOUNDSHEET if data.len() >= 4 => {
                offsets.push(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize);
            }
            EOF => break,
            _ => {}
        }
    }
    Ok(offsets)
}

/// The extent of one sheet's cells and formulas, and what its DIMENSIONS record reserves.
#[derive(Default)]
struct Grid {
    cells: Span,
    formulas: Span,
    reserved: u64,
}

impl Grid {
    /// Walks a sheet's records as calamine does: nested substreams (charts) are skipped, and
    /// the sheet ends at its EOF.
    fn walk(sheet: &[u8]) -> Self {
        let mut grid = Self::default();
        let (mut seen_bof, mut depth) = (false, 0usize);
        for (typ, data) in records(sheet) {
            if depth > 0 {
                match typ {
                    BOF => depth += 1,
                    EOF => depth -= 1,
                    _ => {}
                }
                continue;
            }
            match typ {
                BOF if seen_bof => depth += 1,
                BOF => seen_bof = true,
                EOF => break,
                DIMENSIONS => grid.reserved = grid.reserved.max(declared(data)),
                MULRK if data.len() >= 6 => {
                    let (row, first) = (le16(data, 0), le16(data, 2));
                    grid.cells.add(row, first.max(le16(data, data.len() - 2)));
                    grid.cells.add(row, first);
                }
                t if CELLS.contains(&t) && data.len() >= 4 => {
                    let (row, col) = (le16(data, 0), le16(data, 2));
                    grid.cells.add(row, col);
                    if t == FORMULA {
                        grid.formulas.add(row, col);
                    }
                }
                _ => {}
            }
        }
        grid
    }

    /// The bytes calamine allocates for this sheet.
    fn bytes(&self) -> u64 {
        let cell = size_of::<Cell<Data>>() as u64;
        self.reserved
            .saturating_mul(cell)
            .saturating_add(self.cells.area().saturating_mul(size_of::<Data>() as u64))
            .saturating_add(
                self.formulas
                    .area()
                    .saturating_mul(size_of::<String>() as u64),
            )
    }
}

/// The cells a DIMENSIONS record declares (rows × columns), as calamine reads it.
fn declared(data: &[u8]) -> u64 {
    let (first, last, cols) = match data.len() {
        10 => (
            u64::from(le16(data, 0)),
            u64::from(le16(data, 2)),
            u64::from(le16(data, 6)),
        ),
        14 | 16 => (
            u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])),
            u64::from(u32::from_le_bytes([data[4], data[5], data[6], data[7]])),
            u64::from(le16(data, 10)),
        ),
        _ => return 0,
    };
    if last == 0 || cols == 0 {
        return 1;
    }
    // A first row past the last makes calamine's row count wrap: count it as all rows.
    let rows = if first < last { last - first } else { 1 << 32 };
    rows.saturating_mul(cols)
}

fn le16(data: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([data[at], data[at + 1]]))
}

/// The rows and columns a set of cells spans.
#[derive(Default)]
struct Span(Option<((u32, u32), (u32, u32))>);

impl Span {
    fn add(&mut self, row: u32, col: u32) {
        let ((r0, r1), (c0, c1)) = self.0.unwrap_or(((row, row), (col, col)));
        self.0 = Some(((r0.min(row), r1.max(row)), (c0.min(col), c1.max(col))));
    }

    /// Cells in the dense grid over the span.
    fn area(&self) -> u64 {
        self.0.map_or(0, |((r0, r1), (c0, c1))| {
            u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_counts_the_dense_grid_over_its_cells() {
        let mut s = Span::default();
        assert_eq!(s.area(), 0);
        s.add(0, 0);
        assert_eq!(s.area(), 1);
        s.add(65535, 255);
        assert_eq!(s.area(), 65536 * 256);
    }

    #[test]
    fn dimensions_are_read_as_calamine_reads_them() {
        // BIFF8: rows 0..10 (last is one past), columns 0..3.
        let mut d = Vec::new();
        d.extend(0u32.to_le_bytes());
        d.extend(10u32.to_le_bytes());
        d.extend(0u16.to_le_bytes());
        d.extend(3u16.to_le_bytes());
        d.extend(0u16.to_le_bytes());
        assert_eq!(declared(&d), 30);
        // A first row past the last.
        d[0..4].copy_from_slice(&20u32.to_le_bytes());
        assert_eq!(declared(&d), 3 << 32);
        // An empty sheet declares nothing; calamine reserves one cell.
        assert_eq!(declared(&[0; 14]), 1);
    }
}
