//! ODS (OpenDocument spreadsheet): `content.xml` read as a stream, one page per table, each
//! row with a value one line naming its sheet and cell range, as for XLSX (`sheet::Sheets`).
//! Not through calamine: its ODS reader builds each sheet as a dense grid, which a file with
//! one cell at A1 and one a million rows and columns away would make too large to allocate.
//! Repeated rows and cells (`number-rows-repeated`, `number-columns-repeated`) are expanded
//! only where they hold a value, within the inflation budget.

use quick_xml::events::{BytesStart, Event};

use super::package::{self, Depth, Kind, entity, read_entry, xml_reader};
use super::sheet::Sheets;
use super::{DocMeta, Extracted, Limits, Refusal};

const CONTENT: &str = "content.xml";

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let mut zip = package::open(bytes, Kind::Sheet, limits)?;
    let mut budget = limits.max_decompressed_bytes;
    let content = read_entry(&mut zip, Kind::Sheet, CONTENT, &mut budget)?
        .ok_or_else(|| Kind::Sheet.malformed("no content.xml: not an OpenDocument file"))?;
    let meta = package::properties(&mut zip, Kind::Sheet, "meta.xml", &mut budget, limits)?;
    let mut out = Sheets::new(limits);
    let tables = Tables::default().read(&content, &mut out, limits)?;
    out.end();
    Ok(Extracted {
        text: out.text,
        page_starts: out.page_starts,
        meta: DocMeta {
            page_count: Some(tables),
            ..meta
        },
        ocr_pages: Vec::new(),
    })
}

fn repeat(e: &BytesStart<'_>, key: &str) -> u64 {
    package::attr(e, key)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

fn name(e: &BytesStart<'_>) -> String {
    package::attr(e, "table:name").unwrap_or_default()
}

/// Where the reader is in the tables.
#[derive(Default)]
struct Tables {
    tables: u32,
    row: u64,
    rows_repeated: u64,
    col: u64,
    cols_repeated: u64,
    /// The current row's cells with a value: (column, repeats, text).
    cells: Vec<(u64, u64, String)>,
    in_cell: bool,
    text: String,
}

impl Tables {
    /// Reads `xml` into `out`; how many tables it held.
    fn read(mut self, xml: &[u8], out: &mut Sheets<'_>, limits: &Limits) -> Result<u32, Refusal> {
        let mut r = xml_reader(xml);
        let mut depth = Depth::new(limits);
        loop {
            match r.read_event().map_err(|_| Kind::Sheet.bad_xml(CONTENT))? {
                Event::DocType(_) => return Err(Refusal::XmlEntities),
                Event::Start(e) => {
                    depth.open()?;
                    self.start(&e, out, limits)?;
                }
                Event::Empty(e) => self.empty(&e),
                Event::End(e) => {
                    depth.close();
                    self.end(e.name().as_ref(), out)?;
                }
                Event::Text(t) if self.in_cell => self.text.push_str(&t.xml10_content()),
                Event::GeneralRef(g) if self.in_cell => {
                    self.text.push_str(&entity(&g, Kind::Sheet, CONTENT)?)
                }
                Event::GeneralRef(g) => {
                    entity(&g, Kind::Sheet, CONTENT)?;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(self.tables)
    }

    fn start(
        &mut self,
        e: &BytesStart<'_>,
        out: &mut Sheets<'_>,
        limits: &Limits,
    ) -> Result<(), Refusal> {
        match e.name().as_ref() {
            "table:table" => {
                self.tables += 1;
                if self.tables as usize > limits.max_pages {
                    return Err(Refusal::TooManyPages {
                        pages: self.tables as usize,
                        limit: limits.max_pages,
                    });
                }
                out.begin(&name(e));
                self.row = 0;
            }
            "table:table-row" => {
                self.rows_repeated = repeat(e, "table:number-rows-repeated");
                self.col = 0;
                self.cells.clear();
            }
            "table:table-cell" | "table:covered-table-cell" => {
                self.cols_repeated = repeat(e, "table:number-columns-repeated");
                self.in_cell = true;
                self.text.clear();
            }
            "text:p" if self.in_cell && !self.text.is_empty() => self.text.push(' '),
            _ => {}
        }
        Ok(())
    }

    fn empty(&mut self, e: &BytesStart<'_>) {
        match e.name().as_ref() {
            "table:table-cell" | "table:covered-table-cell" => {
                self.col = self
                    .col
                    .saturating_add(repeat(e, "table:number-columns-repeated"));
            }
            "table:table-row" => {
                self.row = self
                    .row
                    .saturating_add(repeat(e, "table:number-rows-repeated"));
            }
            "text:s" if self.in_cell => self.text.push(' '),
            "text:tab" | "text:line-break" if self.in_cell => self.text.push(' '),
            _ => {}
        }
    }

    fn end(&mut self, tag: &str, out: &mut Sheets<'_>) -> Result<(), Refusal> {
        match tag {
            "table:table-cell" | "table:covered-table-cell" => {
                self.in_cell = false;
                let text = std::mem::take(&mut self.text);
                if !text.trim().is_empty() {
                    self.cells.push((self.col, self.cols_repeated, text));
                }
                self.col = self.col.saturating_add(self.cols_repeated);
            }
            "table:table-row" => {
                if !self.cells.is_empty() {
                    for r in 0..self.rows_repeated {
                        self.emit_row(self.row.saturating_add(r), out)?;
                    }
                }
                self.row = self.row.saturating_add(self.rows_repeated);
            }
            "table:table" => out.end(),
            _ => {}
        }
        Ok(())
    }

    fn emit_row(&self, row: u64, out: &mut Sheets<'_>) -> Result<(), Refusal> {
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        for (col, repeats, text) in &self.cells {
            for k in 0..*repeats {
                let c = u32::try_from(col.saturating_add(k)).unwrap_or(u32::MAX);
                out.cell(row, c, text)?;
            }
        }
        Ok(())
    }
}
