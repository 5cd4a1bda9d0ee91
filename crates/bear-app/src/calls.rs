//! Function calling, as OpenAI-style clients ask for it: the functions offered, how the model
//! must answer ([`ToolChoice`]), the schema that constrains a required call, and the model's
//! output read back as calls ([`Tools::reply`]).
//!
//! With `auto` the model is free, and its output is read in each family's format: Hermes and
//! Qwen `<tool_call>{…}</tool_call>` blocks, Mistral `[TOOL_CALLS] […]`, Llama 3's bare JSON
//! object (`parameters` or `arguments`, after an optional `<|python_tag|>`). Output that names
//! an unknown function or whose arguments are not a JSON object is returned as content, never
//! an error. With `required` or a named function, generation follows a grammar made from the
//! functions' schemas, so the output is always one valid call (unless `max_tokens` cuts it).

use bear_core::{FunctionSpec, Redacted, ToolCall};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The most functions one request may offer.
pub const MAX_TOOLS: usize = 128;

/// How the model must answer when functions are offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// Never call: the functions are not shown to the model.
    None,
    /// Call or answer, as the model chooses.
    #[default]
    Auto,
    /// Call one of the functions.
    Required,
    /// Call this function.
    Function(String),
}

/// The functions a request offers and how the model must use them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tools {
    /// The functions.
    pub functions: Vec<FunctionSpec>,
    /// How the model must answer.
    pub choice: ToolChoice,
    /// At most one call per reply (OpenAI's `parallel_tool_calls: false`); later calls in
    /// the output are dropped.
    pub one_call: bool,
}

/// The model's output read back: text, calls, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Text for the person; `None` when the output was only calls.
    pub content: Option<String>,
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

impl Tools {
    /// Whether the model sees the functions at all.
    pub fn offered(&self) -> bool {
        !self.functions.is_empty() && self.choice != ToolChoice::None
    }

    /// Checks the functions and the choice: names (unique, 1 to 64 of `a-zA-Z0-9_-`),
    /// parameters that are JSON schemas of objects llama.cpp can make a grammar of, and a
    /// named choice that is one of them. Errors name the function and the problem.
    pub fn check(&self) -> Result<()> {
        if self.functions.len() > MAX_TOOLS {
            return Err(Error::invalid(
                "tools",
                format!("at most {MAX_TOOLS} functions"),
            ));
        }
        for (i, f) in self.functions.iter().enumerate() {
            check_function(i, f)?;
            if self.functions[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::invalid(
                    format!("tools[{i}].function.name"),
                    format!("`{}` is offered twice", f.name),
                ));
            }
        }
        match &self.choice {
            ToolChoice::Function(name) if !self.functions.iter().any(|f| &f.name == name) => {
                Err(Error::invalid(
                    "tool_choice",
                    format!("names `{name}`, which is not among the tools"),
                ))
            }
            ToolChoice::Required | ToolChoice::Function(_) if self.functions.is_empty() => Err(
                Error::invalid("tool_choice", "asks for a call but no tools are given"),
            ),
            _ => Ok(()),
        }
    }

    /// The JSON schema the output must follow: one call of the named function, or of any of
    /// them with `required`; `None` leaves the model free.
    pub fn call_schema(&self) -> Option<String> {
        let of = |f: &FunctionSpec| {
            json!({"type": "object", "properties": {
                "name": {"const": f.name}, "arguments": f.parameters},
                "required": ["name", "arguments"], "additionalProperties": false})
        };
        let schema = match &self.choice {
            ToolChoice::Required => {
                json!({"anyOf": self.functions.iter().map(of).collect::<Vec<_>>()})
            }
            ToolChoice::Function(name) => of(self.functions.iter().find(|f| &f.name == name)?),
            ToolChoice::None | ToolChoice::Auto => return None,
        };
        Some(schema.to_string())
    }

    /// How much of `text`, an output still being generated, is content whatever comes next,
    /// so that a stream can send it at once: all of it without tools; none under `required`
    /// or a named function, or under `auto` while the output starts like a call (JSON, a
    /// `[TOOL_CALLS]`, `<|python_tag|>`, or nothing yet); else everything before the first
    /// `<tool_call>` or `[TOOL_CALLS]` and before a trailing part of one.
    pub fn settled(&self, text: &str) -> usize {
        if !self.offered() {
            return text.len();
        }
        let t = text.trim_start();
        let call_like = t.is_empty()
            || t.starts_with('{')
            || t.starts_with('[')
            || t.starts_with(PYTHON_TAG)
            || PYTHON_TAG.starts_with(t);
        if self.choice != ToolChoice::Auto || call_like {
            return 0;
        }
        let mut end = text.len();
        for marker in [HERMES_OPEN, MISTRAL_CALLS] {
            if let Some(i) = text.find(marker) {
                end = end.min(i);
            }
            if let Some(k) = (1..marker.len())
                .rev()
                .find(|&k| text.ends_with(&marker[..k]))
            {
                end = end.min(text.len() - k);
            }
        }
        end
    }

    /// The model's `text` read back as calls of the offered functions, or as content when it
    /// holds none (or a malformed one).
    pub fn reply(&self, text: &str) -> Reply {
        let as_text = || Reply {
            content: Some(text.to_string()),
            calls: Vec::new(),
        };
        if !self.offered() {
            return as_text();
        }
        let parsed = match self.choice {
            ToolChoice::Required | ToolChoice::Function(_) => serde_json::from_str(text.trim())
                .ok()
                .map(|v| (None, vec![v])),
            _ => hermes(text)
                .or_else(|| mistral(text))
                .or_else(|| bare_json(text)),
        };
        let Some((content, values)) = parsed else {
            return as_text();
        };
        match values
            .iter()
            .map(|v| self.call(v))
            .collect::<Option<Vec<_>>>()
        {
            Some(mut calls) if !calls.is_empty() => {
                if self.one_call {
                    calls.truncate(1);
                }
                Reply { content, calls }
            }
            _ => as_text(),
        }
    }

    /// One call read from `{"name": …, "arguments"|"parameters": {…}}`, if it names an
    /// offered function and its arguments are an object (or a string holding one).
    fn call(&self, v: &Value) -> Option<ToolCall> {
        let name = v.get("name")?.as_str()?;
        self.functions.iter().find(|f| f.name == name)?;
        let args = v.get("arguments").or_else(|| v.get("parameters"))?;
        let args = match args {
            Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
            other => other.clone(),
        };
        args.is_object().then(|| ToolCall {
            id: format!("call_{}", &uuid::Uuid::now_v7().simple().to_string()[8..]),
            name: name.to_string(),
            arguments: Redacted::new(args.to_string()),
        })
    }
}

fn check_function(i: usize, f: &FunctionSpec) -> Result<()> {
    let field = |what: &str| format!("tools[{i}].function.{what}");
    let good = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if f.name.is_empty() || f.name.len() > 64 || !f.name.chars().all(good) {
        return Err(Error::invalid(
            field("name"),
            "must be 1 to 64 letters, digits, _ or -",
        ));
    }
    if f.parameters.get("type").and_then(Value::as_str) != Some("object") {
        return Err(Error::invalid(
            field("parameters"),
            format!(
                "of `{}` must be a JSON schema with \"type\": \"object\"",
                f.name
            ),
        ));
    }
    let schema = f.parameters.to_string();
    if schema.len() > bear_core::MAX_JSON_SCHEMA_BYTES {
        return Err(Error::invalid(
            field("parameters"),
            format!("of `{}` is larger than 64 KiB", f.name),
        ));
    }
    bear_models::schema_grammar(&schema)
        .map_err(|e| Error::invalid(field("parameters"), format!("of `{}`: {e}", f.name)))?;
    Ok(())
}

/// Where a Hermes/Qwen call starts.
const HERMES_OPEN: &str = "<tool_call>";
/// Where Mistral's calls start.
const MISTRAL_CALLS: &str = "[TOOL_CALLS]";
/// What may open a Llama 3 call.
const PYTHON_TAG: &str = "<|python_tag|>";

/// Hermes/Qwen: `<tool_call>{…}</tool_call>` blocks (the last may be cut off), text around
/// them kept as content.
fn hermes(text: &str) -> Option<(Option<String>, Vec<Value>)> {
    const OPEN: &str = HERMES_OPEN;
    const CLOSE: &str = "</tool_call>";
    let first = text.find(OPEN)?;
    let mut content = text[..first].to_string();
    let mut calls = Vec::new();
    let mut rest = &text[first..];
    while let Some(start) = rest.find(OPEN) {
        content.push_str(&rest[..start]);
        let body = &rest[start + OPEN.len()..];
        let (json, after) = body.split_once(CLOSE).unwrap_or((body, ""));
        calls.push(serde_json::from_str(json.trim()).ok()?);
        rest = after;
    }
    content.push_str(rest);
    Some((non_empty(content), calls))
}

/// Mistral: `[TOOL_CALLS]` and a JSON array of calls.
fn mistral(text: &str) -> Option<(Option<String>, Vec<Value>)> {
    let (before, calls) = text.split_once(MISTRAL_CALLS)?;
    let calls: Vec<Value> = serde_json::from_str(calls.trim()).ok()?;
    Some((non_empty(before.to_string()), calls))
}

/// Llama 3: the whole output one JSON call (or an array of them), after an optional
/// `<|python_tag|>`.
fn bare_json(text: &str) -> Option<(Option<String>, Vec<Value>)> {
    let t = text.trim();
    let t = t.strip_prefix(PYTHON_TAG).unwrap_or(t).trim();
    match serde_json::from_str::<Value>(t).ok()? {
        Value::Array(calls) => Some((None, calls)),
        call @ Value::Object(_) => Some((None, vec![call])),
        _ => None,
    }
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(choice: ToolChoice) -> Tools {
        Tools {
            functions: vec![
                FunctionSpec {
                    name: "get_weather".into(),
                    description: "Weather in a city".into(),
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                },
                FunctionSpec {
                    name: "find_clause".into(),
                    description: String::new(),
                    parameters: json!({"type": "object", "properties": {"topic": {"type": "string"}}}),
                },
            ],
            choice,
            one_call: false,
        }
    }

    fn names(r: &Reply) -> Vec<(&str, Value)> {
        r.calls
            .iter()
            .map(|c| {
                let args = serde_json::from_str(c.arguments.expose()).unwrap();
                (c.name.as_str(), args)
            })
            .collect()
    }

    #[test]
    fn each_familys_format_is_read_back_as_calls() {
        let t = tools(ToolChoice::Auto);
        let hermes = t.reply("Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Utrecht\"}}\n</tool_call>\n<tool_call>{\"name\": \"find_clause\", \"arguments\": {\"topic\": \"rent\"}}");
        assert_eq!(hermes.content.as_deref(), Some("Let me look."));
        assert_eq!(
            names(&hermes),
            [
                ("get_weather", json!({"city": "Utrecht"})),
                ("find_clause", json!({"topic": "rent"}))
            ]
        );
        let one = Tools {
            one_call: true,
            ..t.clone()
        };
        let first = one.reply(&format!(
            "<tool_call>{}</tool_call><tool_call>{}</tool_call>",
            r#"{"name": "get_weather", "arguments": {"city": "Utrecht"}}"#,
            r#"{"name": "find_clause", "arguments": {"topic": "rent"}}"#
        ));
        assert_eq!(
            names(&first),
            [("get_weather", json!({"city": "Utrecht"}))],
            "parallel_tool_calls: false keeps the first call"
        );
        let mistral = t.reply(
            "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Gent\"}}]",
        );
        assert_eq!(mistral.content, None);
        assert_eq!(names(&mistral), [("get_weather", json!({"city": "Gent"}))]);
        let llama = t.reply(
            "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Lyon\"}}",
        );
        assert_eq!(names(&llama), [("get_weather", json!({"city": "Lyon"}))]);
        let stringly = t.reply(r#"{"name": "get_weather", "arguments": "{\"city\": \"Bonn\"}"}"#);
        assert_eq!(names(&stringly), [("get_weather", json!({"city": "Bonn"}))]);
        let ids: Vec<_> = hermes.calls.iter().map(|c| c.id.clone()).collect();
        assert!(ids[0].starts_with("call_") && ids[0] != ids[1], "{ids:?}");
    }

    /// While streaming, text is sent as soon as it cannot be (the start of) a call.
    #[test]
    fn settled_text_stops_before_anything_that_may_be_a_call() {
        let auto = tools(ToolChoice::Auto);
        for held in ["", "  ", "{\"name\"", "[TOOL_CA", "<|python", "[1, 2"] {
            assert_eq!(auto.settled(held), 0, "{held:?}");
        }
        let text = "The notice period is three months. ";
        assert_eq!(auto.settled(text), text.len());
        assert_eq!(auto.settled(&format!("{text}<tool_")), text.len());
        assert_eq!(
            auto.settled(&format!("{text}<tool_call>{{\"na")),
            text.len()
        );
        assert_eq!(auto.settled(&format!("{text}[TOOL_CALLS] [")), text.len());
        assert_eq!(auto.settled("See <b>bold</b> text"), 20, "not a marker");
        assert_eq!(tools(ToolChoice::Required).settled(text), 0);
        assert_eq!(tools(ToolChoice::None).settled(text), text.len());
    }

    #[test]
    fn malformed_or_unknown_calls_come_back_as_content() {
        let t = tools(ToolChoice::Auto);
        for text in [
            "The rent is EUR 4,250 per month.",
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": ",
            "<tool_call>{\"name\": \"delete_everything\", \"arguments\": {}}</tool_call>",
            "{\"name\": \"get_weather\", \"arguments\": [1, 2]}",
            "[TOOL_CALLS] not json",
            "{\"just\": \"json\"}",
            "",
        ] {
            let r = t.reply(text);
            assert!(r.calls.is_empty(), "{text}");
            assert_eq!(r.content.as_deref(), Some(text));
        }
        let none = tools(ToolChoice::None);
        assert!(!none.offered());
        assert!(
            none.reply("<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>")
                .calls
                .is_empty()
        );
    }

    #[test]
    fn a_required_call_is_a_schema_over_the_functions_and_reads_back_whole() {
        let t = tools(ToolChoice::Required);
        let schema: Value = serde_json::from_str(&t.call_schema().unwrap()).unwrap();
        assert_eq!(schema["anyOf"].as_array().unwrap().len(), 2);
        assert_eq!(
            schema["anyOf"][0]["properties"]["name"]["const"],
            "get_weather"
        );
        bear_models::schema_grammar(&schema.to_string()).unwrap();
        let named = tools(ToolChoice::Function("find_clause".into()));
        let schema: Value = serde_json::from_str(&named.call_schema().unwrap()).unwrap();
        assert_eq!(schema["properties"]["name"]["const"], "find_clause");
        let r = named.reply("{\"name\": \"find_clause\", \"arguments\": {\"topic\": \"notice\"}}");
        assert_eq!(names(&r), [("find_clause", json!({"topic": "notice"}))]);
        assert_eq!(tools(ToolChoice::Auto).call_schema(), None);
    }

    #[test]
    fn bad_functions_and_choices_are_refused_naming_the_problem() {
        let field = |t: Tools| match t.check() {
            Err(Error::InvalidRequest { field, message }) => format!("{field}: {message}"),
            other => panic!("{other:?}"),
        };
        let mut t = tools(ToolChoice::Function("nope".into()));
        assert!(field(t.clone()).starts_with("tool_choice: names `nope`"));
        t.choice = ToolChoice::Auto;
        t.functions[1].name = "get_weather".into();
        assert!(field(t.clone()).contains("offered twice"));
        t.functions[1].name = "has space".into();
        assert!(field(t.clone()).starts_with("tools[1].function.name"));
        t.functions[1].name = "ok".into();
        t.functions[1].parameters = json!({"type": "string"});
        assert!(field(t.clone()).starts_with("tools[1].function.parameters"));
        t.functions[1].parameters =
            json!({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}});
        assert!(field(t.clone()).contains("grammar"), "{}", field(t.clone()));
        let empty = Tools {
            functions: Vec::new(),
            choice: ToolChoice::Required,
            one_call: false,
        };
        assert!(field(empty).contains("no tools"));
        tools(ToolChoice::Required).check().unwrap();
    }
}
