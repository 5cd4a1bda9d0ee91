//! Structured extraction (issue 27, point 4): a JSON schema filled from each document of a
//! matter by schema-constrained generation (the output always parses), then every extracted
//! value checked against the document's text: a string must occur in it (white space and case
//! aside), a number must occur as written or with thousands separators; a value that does not
//! is dropped (set to null) and reported. One request and one response type for every front
//! end.

use bear_core::{CancellationToken, GenerationRequest, Prompt, SamplingParams, TextGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rag::Finish;
use crate::{App, Error, Result, Viewer};

/// The most documents one extraction reads.
pub const MAX_EXTRACT_DOCUMENTS: usize = 100;
/// The most generated tokens one document's values may take.
pub const MAX_EXTRACT_TOKENS: u32 = 2048;

const SYSTEM: &str = "You fill a JSON object from one legal document. Copy every value exactly \
as the document writes it. Answer with the JSON object only.";

/// Values to extract from documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractRequest {
    /// The JSON schema to fill (an object, at most 64 KiB).
    #[schema(value_type = Object)]
    pub schema: Value,
    /// The matter [default: `rag.default_collection`].
    #[serde(default)]
    pub collection: Option<String>,
    /// One document (its id or its file's path) [default: every document of the matter].
    #[serde(default)]
    pub document: Option<String>,
    /// Generator model id [default: `models.default_generator`].
    #[serde(default)]
    pub model: Option<String>,
    /// Most tokens per document, 1 to 2048 [default: 512].
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// What was extracted from each document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExtractResponse {
    /// The matter.
    pub collection: String,
    /// One entry per document, in the matter's order.
    pub documents: Vec<Extraction>,
}

/// One document's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Extraction {
    /// The document.
    pub document_id: String,
    /// Its file's path.
    pub path: String,
    /// The values found in the document (a dropped value is null); absent on an error.
    #[schema(value_type = Option<Object>)]
    pub values: Option<Value>,
    /// Whether the generated object validated against the schema before any value was
    /// dropped.
    pub valid: bool,
    /// Each value kept, with where the document says it.
    pub found: Vec<Located>,
    /// Each value dropped, with the reason.
    pub dropped: Vec<Located>,
    /// Why generation stopped.
    pub finish_reason: Option<Finish>,
    /// Why this document has no values (too long for one pass, or cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One extracted value and where it stands in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Located {
    /// The value's JSON pointer in the object (`/landlord`).
    pub pointer: String,
    /// The value as generated.
    #[schema(value_type = Object)]
    pub value: Value,
    /// The 1-based page of the passage holding it, for paged formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The passage's position in the document (a source's `ordinal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<u32>,
    /// Byte range of the value in that passage's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
    /// Why it was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A document's passages: (ordinal, page, restored text).
type Passages = [(u32, Option<u32>, String)];

impl App {
    /// Fills `req.schema` from one document or every document of a matter.
    pub async fn extract(&self, viewer: &Viewer, req: ExtractRequest) -> Result<ExtractResponse> {
        let schema = checked_schema(&req.schema)?;
        let max_tokens = req.max_tokens.unwrap_or(512);
        if !(1..=MAX_EXTRACT_TOKENS).contains(&max_tokens) {
            return Err(Error::invalid("max_tokens", "from 1 to 2048"));
        }
        let model = self.generator_id(req.model.as_deref())?;
        let c = self.collection(viewer, req.collection.as_deref()).await?;
        let docs = match &req.document {
            Some(which) => vec![crate::docs::find_document(&c, which).await?],
            None => c.documents().await?,
        };
        if docs.len() > MAX_EXTRACT_DOCUMENTS {
            return Err(Error::invalid(
                "document",
                format!("the matter has more than {MAX_EXTRACT_DOCUMENTS} documents; name one"),
            ));
        }
        let scrubber = self.scrubber_of(&c)?;
        let budget = self.config().config.models.context_length as usize;
        let mut out = Vec::new();
        for doc in docs {
            let chunks = c.document_chunks(&doc.id).await?;
            let prompt_text: String = chunks
                .iter()
                .map(|h| h.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let passages: Vec<(u32, Option<u32>, String)> = chunks
                .iter()
                .map(|h| Ok((h.ordinal, h.page, scrubber.restore(&h.text)?)))
                .collect::<Result<_>>()?;
            let mut e = Extraction {
                document_id: doc.id.clone(),
                path: doc.path.clone(),
                values: None,
                valid: false,
                found: Vec::new(),
                dropped: Vec::new(),
                finish_reason: None,
                error: None,
            };
            // A rough count (a token is three bytes or more), with the answer and a margin.
            let need = (prompt_text.len() + schema.len()) / 3 + max_tokens as usize + 128;
            if need > budget {
                e.error = Some(format!(
                    "the document needs about {need} tokens of context, more than \
                     models.context_length ({budget}); it cannot be read in one pass"
                ));
                out.push(e);
                continue;
            }
            let request = GenerationRequest {
                model: model.clone(),
                prompt: Prompt::system_and_user(
                    SYSTEM.into(),
                    format!("Document:\n{prompt_text}\n\nFill this JSON schema from it:\n{schema}"),
                ),
                params: SamplingParams {
                    max_tokens,
                    temperature: 0.0,
                    json_schema: Some(schema.clone()),
                    ..SamplingParams::default()
                },
            };
            let g = self
                .models()
                .generate(request, Box::new(|_: &str| true), CancellationToken::new())
                .await?;
            e.finish_reason = Some(g.finish_reason.into());
            let text = scrubber.restore(g.text.expose())?;
            match serde_json::from_str::<Value>(&text) {
                Ok(values) => {
                    e.valid = jsonschema::validator_for(&req.schema)
                        .map(|v| v.is_valid(&values))
                        .unwrap_or(false);
                    e.values = Some(locate(values, &passages, &mut e.found, &mut e.dropped));
                }
                Err(_) => {
                    e.error = Some(format!(
                        "the values were cut short after {} tokens; raise max_tokens",
                        g.completion_tokens
                    ));
                }
            }
            out.push(e);
        }
        Ok(ExtractResponse {
            collection: c.meta().name.clone(),
            documents: out,
        })
    }
}

/// The schema as text, refused when it is not an object, too large, or not a JSON schema.
fn checked_schema(schema: &Value) -> Result<String> {
    if !schema.is_object() {
        return Err(Error::invalid("schema", "must be a JSON object"));
    }
    let text = schema.to_string();
    if text.len() > bear_core::MAX_JSON_SCHEMA_BYTES {
        return Err(Error::invalid("schema", "larger than 64 KiB"));
    }
    jsonschema::validator_for(schema)
        .map_err(|e| Error::invalid("schema", format!("not a valid JSON schema: {e}")))?;
    Ok(text)
}

/// `values` with every leaf that does not occur in the passages set to null; each leaf is
/// reported in `found` (with its passage) or `dropped` (with the reason).
fn locate(
    mut values: Value,
    passages: &Passages,
    found: &mut Vec<Located>,
    dropped: &mut Vec<Located>,
) -> Value {
    let mut leaves = Vec::new();
    leaves_of(&values, String::new(), &mut leaves);
    for (pointer, value) in leaves {
        let at = passages
            .iter()
            .find_map(|(ordinal, page, text)| occurs(&value, text).map(|s| (*ordinal, *page, s)));
        let mut l = Located {
            pointer: pointer.clone(),
            value: value.clone(),
            page: None,
            ordinal: None,
            span: None,
            reason: None,
        };
        match at {
            Some((ordinal, page, span)) => {
                (l.ordinal, l.page, l.span) = (Some(ordinal), page, Some(span));
                found.push(l);
            }
            None => {
                l.reason = Some(match value {
                    Value::Bool(_) => "a yes/no value cannot be found in the text".into(),
                    _ => "the value does not occur in the document".into(),
                });
                if let Some(slot) = values.pointer_mut(&pointer) {
                    *slot = Value::Null;
                }
                dropped.push(l);
            }
        }
    }
    values
}

/// The string, number and boolean leaves of `v`, with their JSON pointers (nulls are left).
fn leaves_of(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                leaves_of(x, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves_of(x, format!("{at}/{i}"), out);
            }
        }
        Value::Null => {}
        leaf => out.push((at, leaf.clone())),
    }
}

/// Where `value` occurs in `text`: a string case-insensitively with white space runs as one
/// space; a number as written, or with its digits grouped by `,`, `.`, space or `'`.
fn occurs(value: &Value, text: &str) -> Option<[usize; 2]> {
    match value {
        Value::String(s) if !s.trim().is_empty() => find_loose(s.trim(), text),
        Value::Number(n) => find_number(&n.to_string(), text),
        _ => None,
    }
}

fn find_loose(needle: &str, text: &str) -> Option<[usize; 2]> {
    let want: Vec<char> = needle
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .collect();
    let hay: Vec<(usize, char)> = text.char_indices().collect();
    'start: for i in 0..hay.len() {
        let (mut j, mut k) = (i, 0);
        while k < want.len() {
            let Some(&(_, c)) = hay.get(j) else {
                continue 'start;
            };
            if want[k] == ' ' && c.is_whitespace() {
                while hay.get(j).is_some_and(|(_, c)| c.is_whitespace()) {
                    j += 1;
                }
                k += 1;
                continue;
            }
            if !c
                .to_lowercase()
                .eq(std::iter::once(want[k]).flat_map(char::to_lowercase))
            {
                continue 'start;
            }
            j += 1;
            k += 1;
        }
        let end = hay.get(j).map_or(text.len(), |&(at, _)| at);
        return Some([hay[i].0, end]);
    }
    None
}

/// `number` (as JSON writes it) in `text`: digit runs whose separators are dropped must equal
/// its digits, and a fraction must keep its digits after the point.
fn find_number(number: &str, text: &str) -> Option<[usize; 2]> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || (matches!(b[j], b',' | b'.' | b' ' | b'\'')
                    && b.get(j + 1).is_some_and(u8::is_ascii_digit)))
        {
            j += 1;
        }
        let run: String = text[i..j].chars().filter(char::is_ascii_digit).collect();
        if run == digits {
            return Some([i, j]);
        }
        i = j.max(i + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = "The rent is EUR 4,250 per month. The Landlord is Canal Estates  B.V.";

    #[test]
    fn values_found_keep_their_span_and_the_rest_are_dropped() {
        let passages = vec![(0, Some(2), TEXT.to_string())];
        let (mut found, mut dropped) = (Vec::new(), Vec::new());
        let out = locate(
            json!({"rent": 4250, "landlord": "canal estates b.v.", "tenant": "Acme Ltd",
                   "deposit": 12000, "signed": true, "notes": [null]}),
            &passages,
            &mut found,
            &mut dropped,
        );
        assert_eq!(
            out,
            json!({"rent": 4250, "landlord": "canal estates b.v.", "tenant": null,
                   "deposit": null, "signed": null, "notes": [null]})
        );
        let rent = found.iter().find(|l| l.pointer == "/rent").unwrap();
        let [s, e] = rent.span.unwrap();
        assert_eq!((&TEXT[s..e], rent.page), ("4,250", Some(2)));
        let landlord = found.iter().find(|l| l.pointer == "/landlord").unwrap();
        let [s, e] = landlord.span.unwrap();
        assert_eq!(&TEXT[s..e], "Canal Estates  B.V.");
        let mut gone: Vec<&str> = dropped.iter().map(|l| l.pointer.as_str()).collect();
        gone.sort_unstable();
        assert_eq!(gone, ["/deposit", "/signed", "/tenant"]);
    }

    #[test]
    fn numbers_match_whole_digit_runs_only() {
        assert_eq!(find_number("4.5", "a rate of 4.5 percent"), Some([10, 13]));
        assert_eq!(find_number("250", "EUR 4,250"), None);
        assert_eq!(find_number("4250", "EUR 4 250 net"), Some([4, 9]));
        assert_eq!(find_number("7", ""), None);
    }

    #[test]
    fn bad_schemas_name_the_problem() {
        for (bad, says) in [
            (json!([1]), "must be a JSON object"),
            (json!({"type": "strang"}), "not a valid JSON schema"),
        ] {
            let e = checked_schema(&bad).unwrap_err();
            assert_eq!(e.field(), Some("schema"));
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
