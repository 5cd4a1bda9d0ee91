//! The review grid (issue 27, point 4): a matter's documents against a set of questions or a
//! JSON schema's fields, one cell per document and column. A question's cell is a strict
//! answer from that document alone (kept only with a verified citation, whose page and passage
//! the cell carries); a field's cell is the value extracted under the schema and found in the
//! document's text (a value not found is null, with the reason). Exported as JSON or CSV.

use bear_core::CancellationToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{ExtractRequest, Extraction};
use crate::rag::{AskRequest, AskResponse, Refusal};
use crate::{App, Error, Result, Viewer};

/// The most questions one grid asks.
pub const MAX_GRID_QUESTIONS: usize = 20;
/// The most documents one grid reads.
pub const MAX_GRID_DOCUMENTS: usize = 100;

/// Documents against questions or schema fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GridRequest {
    /// The matter [default: `rag.default_collection`].
    #[serde(default)]
    pub collection: Option<String>,
    /// Questions, a column each (at most 20); give these or `schema`.
    #[serde(default)]
    pub questions: Vec<String>,
    /// A JSON schema whose fields are the columns; give this or `questions`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// The documents (ids or paths), a row each [default: every document of the matter, at
    /// most 100].
    #[serde(default)]
    pub documents: Vec<String>,
    /// Generator model id [default: `models.default_generator`].
    #[serde(default)]
    pub model: Option<String>,
    /// Most tokens per answer or per document's values [default: 256 for answers, 512 for
    /// values].
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// The filled grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grid {
    /// The matter.
    pub collection: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// A row per document, in the matter's order.
    pub rows: Vec<Row>,
}

/// One column: a question or a schema field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Column {
    /// `q1`, `q2`, ... for questions; the field's JSON pointer (`/landlord`) for a schema.
    pub key: String,
    /// The question, or the field's pointer.
    pub label: String,
}

/// One document's cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Row {
    /// The document.
    pub document_id: String,
    /// Its file's path.
    pub path: String,
    /// A cell per column, in the columns' order.
    pub cells: Vec<Cell>,
    /// Why the row has no values (a document too long for one extraction pass, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One document's answer to one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cell {
    /// The answer (text) or the value; null when nothing was verified or found.
    #[schema(value_type = Object)]
    pub value: Value,
    /// Whether the document supports it: a verified citation, or the value found in the text.
    pub verified: bool,
    /// The page it stands on, for paged formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The supporting passage of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Why the cell is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Grid {
    /// The grid as CSV: `document`, `path`, then each column's value and page.
    pub fn to_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["document".to_string(), "path".to_string()];
        for c in &self.columns {
            header.push(c.label.clone());
            header.push(format!("{} (page)", c.label));
        }
        w.write_record(&header).map_err(csv_error)?;
        for r in &self.rows {
            let mut record = vec![r.document_id.clone(), r.path.clone()];
            for c in &r.cells {
                record.push(match &c.value {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                });
                record.push(c.page.map(|p| p.to_string()).unwrap_or_default());
            }
            w.write_record(&record).map_err(csv_error)?;
        }
        let bytes = w.into_inner().map_err(|e| csv_error(e.into_error()))?;
        String::from_utf8(bytes).map_err(|_| Error::invalid("grid", "not UTF-8"))
    }
}

fn csv_error(e: impl std::fmt::Display) -> Error {
    Error::invalid("grid", format!("cannot be written as CSV: {e}"))
}

impl App {
    /// Fills a grid: every chosen document against every question or schema field.
    /// `progress` hears each finished row (done, all).
    pub async fn grid(
        &self,
        viewer: &Viewer,
        req: GridRequest,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<Grid> {
        let columns = columns(&req)?;
        let c = self.collection(viewer, req.collection.as_deref()).await?;
        let docs = match req.documents.is_empty() {
            true => c.documents().await?,
            false => {
                let mut docs = Vec::new();
                for d in &req.documents {
                    docs.push(crate::docs::find_document(&c, d).await?);
                }
                docs
            }
        };
        if docs.is_empty() {
            return Err(Error::invalid(
                "collection",
                "it has no documents; ingest some first",
            ));
        }
        if docs.len() > MAX_GRID_DOCUMENTS {
            return Err(Error::invalid(
                "documents",
                format!("more than {MAX_GRID_DOCUMENTS}; name the documents to compare"),
            ));
        }
        let name = c.meta().name.clone();
        let mut rows = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let mut row = Row {
                document_id: d.id.clone(),
                path: d.path.clone(),
                cells: Vec::new(),
                error: None,
            };
            match &req.schema {
                Some(schema) => {
                    let one = ExtractRequest {
                        schema: schema.clone(),
                        collection: Some(name.clone()),
                        document: Some(d.id.clone()),
                        model: req.model.clone(),
                        max_tokens: req.max_tokens,
                    };
                    let mut done = self.extract(viewer, one).await?;
                    let e = done.documents.pop();
                    row.error = e.as_ref().and_then(|e| e.error.clone());
                    row.cells = columns
                        .iter()
                        .map(|c| field_cell(e.as_ref(), &c.key))
                        .collect();
                }
                None => {
                    for q in &req.questions {
                        let ask = AskRequest {
                            question: q.clone(),
                            collection: Some(name.clone()),
                            document: Some(d.id.clone()),
                            model: req.model.clone(),
                            max_tokens: req.max_tokens,
                            strict: Some(true),
                            ..AskRequest::default()
                        };
                        let sink = Box::new(|_: &str| true);
                        let (a, _) = self
                            .answer(viewer, ask, sink, CancellationToken::new())
                            .await?;
                        row.cells.push(answer_cell(&a));
                    }
                }
            }
            rows.push(row);
            progress(i + 1, docs.len());
        }
        Ok(Grid {
            collection: name,
            columns,
            rows,
        })
    }
}

/// The columns `req` asks for, refused when it gives both questions and a schema, or neither.
fn columns(req: &GridRequest) -> Result<Vec<Column>> {
    match (&req.schema, req.questions.is_empty()) {
        (Some(_), false) => Err(Error::invalid(
            "questions",
            "give questions or a schema, not both",
        )),
        (None, true) => Err(Error::invalid("questions", "give questions or a schema")),
        (None, false) => {
            if req.questions.len() > MAX_GRID_QUESTIONS {
                return Err(Error::invalid("questions", "at most 20"));
            }
            if req.questions.iter().any(|q| q.trim().is_empty()) {
                return Err(Error::invalid("questions", "a question is empty"));
            }
            Ok(req
                .questions
                .iter()
                .enumerate()
                .map(|(i, q)| Column {
                    key: format!("q{}", i + 1),
                    label: q.trim().to_string(),
                })
                .collect())
        }
        (Some(schema), true) => {
            let mut out = Vec::new();
            fields(schema, String::new(), &mut out);
            if out.is_empty() {
                return Err(Error::invalid("schema", "it names no properties to fill"));
            }
            Ok(out
                .into_iter()
                .map(|p| Column {
                    key: p.clone(),
                    label: p,
                })
                .collect())
        }
    }
}

/// The JSON pointers of a schema's fields: each property, nested objects' properties in turn
/// (an array is one field).
fn fields(schema: &Value, at: String, out: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in props {
        let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
        if v.get("properties").is_some_and(Value::is_object) {
            fields(v, here, out);
        } else {
            out.push(here);
        }
    }
}

fn field_cell(e: Option<&Extraction>, pointer: &str) -> Cell {
    let Some(e) = e else {
        return Cell::default();
    };
    if let Some(why) = &e.error {
        return Cell {
            reason: Some(why.clone()),
            ..Cell::default()
        };
    }
    let under = |p: &str| p == pointer || p.starts_with(&format!("{pointer}/"));
    let value = e
        .values
        .as_ref()
        .and_then(|v| v.pointer(pointer))
        .cloned()
        .unwrap_or(Value::Null);
    let found = e.found.iter().find(|l| under(&l.pointer));
    let dropped = e.dropped.iter().find(|l| under(&l.pointer));
    Cell {
        verified: found.is_some() && !value.is_null(),
        page: found.and_then(|l| l.page),
        quote: None,
        reason: match (value.is_null(), dropped) {
            (true, Some(l)) => l.reason.clone(),
            (true, None) => Some("the model gave no value".into()),
            _ => None,
        },
        value,
    }
}

fn answer_cell(a: &AskResponse) -> Cell {
    let verified = a.citations.iter().find(|c| c.verified && c.span.is_some());
    match (a.refusal, verified) {
        (None, Some(c)) => {
            let span = c.span.as_ref();
            Cell {
                value: Value::String(a.answer.clone()),
                verified: true,
                page: span.and_then(|s| s.page),
                quote: span.map(|s| s.text.clone()),
                reason: None,
            }
        }
        _ => Cell {
            reason: Some(
                match a.refusal {
                    Some(Refusal::NothingRelevant) => "nothing in this document answers it",
                    Some(Refusal::KeyTermsMissing) => {
                        "this document does not mention what the question asks about"
                    }
                    _ => "no statement of the answer could be verified against this document",
                }
                .into(),
            ),
            ..Cell::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_fields_are_pointers_and_bad_requests_name_the_field() {
        let req = GridRequest {
            schema: Some(json!({"type": "object", "properties": {
                "landlord": {"type": "string"},
                "rent": {"type": "object", "properties": {"amount": {}, "currency": {}}},
                "a/b": {"type": "array"}}})),
            ..GridRequest::default()
        };
        let keys: Vec<String> = columns(&req).unwrap().into_iter().map(|c| c.key).collect();
        assert_eq!(
            keys,
            ["/landlord", "/rent/amount", "/rent/currency", "/a~1b"],
            "the schema's order"
        );
        let both = GridRequest {
            questions: vec!["Who?".into()],
            ..req
        };
        assert_eq!(columns(&both).unwrap_err().field(), Some("questions"));
        let neither = GridRequest::default();
        assert_eq!(columns(&neither).unwrap_err().field(), Some("questions"));
        let empty = GridRequest {
            schema: Some(json!({"type": "object"})),
            ..GridRequest::default()
        };
        assert_eq!(columns(&empty).unwrap_err().field(), Some("schema"));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let grid = Grid {
            collection: "acme".into(),
            columns: vec![Column {
                key: "q1".into(),
                label: "Who is the landlord, and where?".into(),
            }],
            rows: vec![Row {
                document_id: "d1".into(),
                path: "/m/lease.pdf".into(),
                cells: vec![Cell {
                    value: json!("Canal Estates B.V., \"Amsterdam\" [1]"),
                    verified: true,
                    page: Some(2),
                    ..Cell::default()
                }],
                error: None,
            }],
        };
        let csv = grid.to_csv().unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[2], "Who is the landlord, and where?");
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "Canal Estates B.V., \"Amsterdam\" [1]");
        assert_eq!(&row[3], "2");
    }
}
