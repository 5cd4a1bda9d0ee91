//! XLSX and XLSM workbooks, read with calamine: one page per sheet (in workbook order), one
//! line per row that holds a value, each line starting with the sheet and cell range it
//! comes from (`[Damages!A2:C2]`), so a passage cited from it names where its numbers are.
//! The package passes `package`'s bomb checks and is inflated once against the budget before
//! calamine reads it, and cells are read one by one (never as a dense grid, which a sheet
//! with one cell at A1 and one at XFD1048576 would make 17 billion cells large): what a
//! workbook yields is bounded by the bytes it may inflate to.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

use super::package::{self, Kind};
use super::{DocMeta, Extracted, Limits, Refusal};

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let mut zip = package::open(bytes, Kind::Sheet, limits)?;
    package::inflate_all(&mut zip, Kind::Sheet, limits)?;
    let mut budget = limits.max_decompressed_bytes;
    let meta = package::properties(
        &mut zip,
        Kind::Sheet,
        "docProps/core.xml",
        &mut budget,
        limits,
    )?;
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| Kind::Sheet.malformed(format!("not a workbook ({})", kind_of(&e))))?;
    let names = book.sheet_names();
    if names.len() > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: names.len(),
            limit: limits.max_pages,
        });
    }
    let mut out = Sheets::new(limits);
    for name in &names {
        xlsx_sheet(&mut out, &mut book, name)?;
    }
    Ok(Extracted {
        text: out.text,
        page_starts: out.page_starts,
        meta: DocMeta {
            page_count: Some(names.len() as u32),
            ..meta
        },
        ocr_pages: Vec::new(),
    })
}

/// What went wrong in calamine, without its message (which may quote cell text).
fn kind_of(e: &calamine::XlsxError) -> &'static str {
    match e {
        calamine::XlsxError::Io(_) | calamine::XlsxError::Zip(_) => "the package cannot be read",
        calamine::XlsxError::Xml(_) | calamine::XlsxError::XmlAttr(_) => "malformed XML",
        calamine::XlsxError::WorksheetNotFound(_) => "a listed sheet is missing",
        _ => "an unexpected structure",
    }
}

/// A workbook's text as it is built, sheet by sheet and cell by cell (in row order).
pub(super) struct Sheets<'l> {
    limits: &'l Limits,
    secs: u64,
    pub(super) text: String,
    pub(super) page_starts: Vec<usize>,
    cells: u64,
    sheet: String,
    row: Option<u32>,
    values: Vec<(u32, String)>,
    /// Bytes of the pending row's values.
    pending: u64,
}

impl<'l> Sheets<'l> {
    pub(super) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            secs: limits.secs_left(),
            text: String::new(),
            page_starts: Vec::new(),
            cells: 0,
            sheet: String::new(),
            row: None,
            values: Vec::new(),
            pending: 0,
        }
    }

    /// Starts sheet `name` on a new page.
    pub(super) fn begin(&mut self, name: &str) {
        self.end();
        self.page_starts.push(self.text.len());
        self.text.push_str(&format!("## Sheet: {name}\n\n"));
        self.sheet = name.to_string();
    }

    /// Ends the current sheet, if one is open.
    pub(super) fn end(&mut self) {
        self.flush_row();
        if !self.sheet.is_empty() {
            self.text.push('\n');
            self.sheet.clear();
        }
    }

    /// A cell of the current sheet (0-based row and column); blank values are skipped.
    /// Refused once the text outgrows the inflation budget (repeated cells can multiply).
    pub(super) fn cell(&mut self, row: u32, col: u32, value: &str) -> Result<(), Refusal> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(());
        }
        self.cells += 1;
        if self.cells.is_multiple_of(4096) {
            self.limits.check_time(self.secs)?;
        }
        if self.row != Some(row) {
            self.flush_row();
            self.row = Some(row);
        }
        self.pending += value.len() as u64 + 3;
        self.values.push((col, value.to_string()));
        if self.text.len() as u64 + self.pending > self.limits.max_decompressed_bytes {
            return Err(Refusal::ZipBomb {
                detail: "its cells expand past rag.max_decompressed_bytes".into(),
            });
        }
        Ok(())
    }

    /// Writes the pending row as one line, `[Sheet!A2:C2] a | b | c`.
    fn flush_row(&mut self) {
        let (Some(r), Some(first), Some(last)) =
            (self.row, self.values.first(), self.values.last())
        else {
            self.row = None;
            self.pending = 0;
            return;
        };
        let range = format!(
            "{}!{}{}:{}{}",
            self.sheet,
            column(first.0),
            r + 1,
            column(last.0),
            r + 1
        );
        let cells: Vec<&str> = self.values.iter().map(|(_, v)| v.as_str()).collect();
        self.text
            .push_str(&format!("[{range}] {}\n", cells.join(" | ")));
        self.values.clear();
        self.pending = 0;
        self.row = None;
    }
}

/// Appends sheet `name` of an XLSX workbook, read cell by cell.
fn xlsx_sheet(
    out: &mut Sheets<'_>,
    book: &mut Xlsx<Cursor<&[u8]>>,
    name: &str,
) -> Result<(), Refusal> {
    out.begin(name);
    let bad =
        |e: calamine::XlsxError| Kind::Sheet.malformed(format!("sheet {name}: {}", kind_of(&e)));
    let mut reader = book.worksheet_cells_reader(name).map_err(bad)?;
    while let Some(cell) = reader.next_cell().map_err(bad)? {
        let (r, c) = cell.get_position();
        let value = Data::from(cell.get_value().clone()).to_string();
        out.cell(r, c, &value)?;
    }
    out.end();
    Ok(())
}

/// The letters of 0-based column `c`: 0 is A, 25 is Z, 26 is AA.
pub(super) fn column(c: u32) -> String {
    let mut n = c as u64 + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        out.push(b'A' + rem);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_in_a_spreadsheet() {
        assert_eq!(column(0), "A");
        assert_eq!(column(25), "Z");
        assert_eq!(column(26), "AA");
        assert_eq!(column(701), "ZZ");
        assert_eq!(column(16383), "XFD");
    }
}
