//! Text generation: the request, its sampling parameters, the result, and [`TextGenerator`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Redacted, Result};
use crate::id::ModelId;
use tokio_util::sync::CancellationToken;

/// The largest `max_tokens` any request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 32_768;

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions for the model.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// The result of a tool the model called.
    Tool,
}

/// One chat message. Its content is user text, so it is redacted in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    #[serde(with = "redacted_string")]
    pub content: Redacted<String>,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of `role` saying `content`, calling no tool.
    pub fn new(role: ChatRole, content: String) -> Self {
        Self {
            role,
            content: Redacted::new(content),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model called: its name and its arguments as JSON text (the model's output, so
/// redacted in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which the tool's answer names.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    #[serde(with = "redacted_string")]
    pub arguments: Redacted<String>,
}

/// A function the model may call: its name, what it does, and its parameters' JSON schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// Its parameters: a JSON schema of an object.
    pub parameters: serde_json::Value,
}

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// A raw prompt, passed to the model as is.
    Text(#[serde(with = "redacted_string")] Redacted<String>),
    /// Chat messages, rendered with the model's own chat template.
    Chat(Vec<ChatMessage>),
    /// Chat messages and the tools the model may call, rendered with the model's own chat
    /// template.
    ChatTools {
        /// The conversation.
        messages: Vec<ChatMessage>,
        /// The functions offered.
        tools: Vec<FunctionSpec>,
    },
}

impl Prompt {
    /// A chat of one system message and one user message.
    pub fn system_and_user(system: String, user: String) -> Self {
        Self::Chat(vec![
            ChatMessage::new(ChatRole::System, system),
            ChatMessage::new(ChatRole::User, user),
        ])
    }

    /// Whether there is nothing to generate from.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Text(t) => t.expose().trim().is_empty(),
            Self::Chat(m) | Self::ChatTools { messages: m, .. } => m
                .iter()
                .all(|m| m.content.expose().trim().is_empty() && m.tool_calls.is_empty()),
        }
    }
}

/// Sampling parameters. With `temperature == 0` or a fixed `seed`, output is reproducible for
/// a prompt decoded the same way; a prompt whose prefix comes from a model's prompt cache is
/// decoded in other batches, and a decode on fewer threads sums in another order, either of
/// which may change the wording (`models.prompt_cache_bytes = 0`, `parallel = 1` and
/// `adapt_threads = false` keep every run word for word).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Upper bound on generated tokens, 1..=[`MAX_TOKENS_LIMIT`].
    pub max_tokens: u32,
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f32,
    /// Keep the k most likely tokens; 0 disables.
    pub top_k: u32,
    /// Penalty for repeated tokens; 1.0 disables.
    pub repeat_penalty: f32,
    /// Subtracted from the logit of every token already generated, in [-2, 2]; 0 disables.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated, in [-2, 2]; 0
    /// disables.
    pub frequency_penalty: f32,
    /// RNG seed; `None` picks one per request.
    pub seed: Option<u64>,
    /// Generation stops before any of these strings; they never appear in the output.
    pub stop: Vec<String>,
    /// Constrain the output to JSON valid under this JSON schema (its text, at most
    /// [`MAX_JSON_SCHEMA_BYTES`]): generation follows a grammar made from it, so what is
    /// produced always parses, unless `max_tokens` cuts it short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<String>,
    /// Report each generated token's log probability and the `k` most likely tokens at its
    /// position (0 to [`MAX_TOP_LOGPROBS`]); `None` reports none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u8>,
}

/// The largest JSON schema a request may constrain its output with.
pub const MAX_JSON_SCHEMA_BYTES: usize = 64 * 1024;

/// The most alternatives a token's log probability may come with (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            repeat_penalty: 1.1,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            stop: Vec::new(),
            json_schema: None,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    /// Checks every parameter's range; the error names the parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::backend(ErrorKind::InvalidRequest, m));
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS_LIMIT {
            return bad("max_tokens must be between 1 and 32768");
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty must be a number > 0");
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(Error::backend(
                    ErrorKind::InvalidRequest,
                    format!("{name} must be a number from -2 to 2"),
                ));
            }
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop sequences must not be empty strings");
        }
        if self.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return bad("top_logprobs must be between 0 and 20");
        }
        if let Some(schema) = &self.json_schema {
            if schema.len() > MAX_JSON_SCHEMA_BYTES {
                return bad("json_schema is larger than 64 KiB");
            }
            match serde_json::from_str::<serde_json::Value>(schema) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => return bad("json_schema must be a JSON object"),
                Err(_) => return bad("json_schema is not valid JSON"),
            }
        }
        Ok(())
    }
}

/// A generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    /// The model to use.
    pub model: ModelId,
    /// The input.
    pub prompt: Prompt,
    /// How to sample.
    #[serde(default)]
    pub params: SamplingParams,
}

impl GenerationRequest {
    /// Checks the prompt and the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.prompt.is_empty() {
            return Err(Error::backend(
                ErrorKind::InvalidRequest,
                "the prompt is empty",
            ));
        }
        self.params.validate()
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced its end-of-generation token.
    Stop,
    /// A stop sequence matched.
    StopSequence,
    /// `max_tokens` was reached.
    Length,
    /// The caller cancelled or dropped the stream.
    Cancelled,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text, without any stop sequence.
    #[serde(with = "redacted_string")]
    pub text: Redacted<String>,
    /// Tokens in the rendered prompt.
    pub prompt_tokens: u32,
    /// Of those, the ones whose KV state came from the prompt cache (not decoded again).
    #[serde(default)]
    pub prompt_cached_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Wall time from request to last token.
    pub elapsed: Duration,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Each generated token's log probability, when the request asked for them
    /// ([`SamplingParams::logprobs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
}

/// A generated token's log probability under the model, and the most likely tokens at its
/// position (each with an empty `top`). `Debug` shows only the numbers: the text is the user's.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (its bytes, lossily decoded: a token may hold part of a character).
    pub token: String,
    /// The token's bytes.
    pub bytes: Vec<u8>,
    /// Natural log of its probability.
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TokenLogprob>,
}

impl std::fmt::Debug for TokenLogprob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLogprob")
            .field("logprob", &self.logprob)
            .field("top", &self.top.len())
            .finish_non_exhaustive()
    }
}

impl Generation {
    /// Completion tokens per second of wall time.
    pub fn tokens_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            f64::from(self.completion_tokens) / secs
        } else {
            0.0
        }
    }
}

/// Receives generated text as it is produced.
pub trait TokenSink: Send {
    /// Called with each new piece of text, in order. Returning `false` cancels the generation
    /// within one token, exactly as cancelling the token would.
    fn on_text(&mut self, piece: &str) -> bool;

    /// Called with a generated token's log probability, before the text it is part of, when
    /// the request asked for them; ignored unless a sink wants them.
    fn on_logprob(&mut self, _logprob: &TokenLogprob) {}
}

impl<F: FnMut(&str) -> bool + Send> TokenSink for F {
    fn on_text(&mut self, piece: &str) -> bool {
        self(piece)
    }
}

/// A backend that generates text from a prompt.
///
/// Implemented by bear-models' `LlamaCppGenerator`. Called by bear-agents (workflow
/// `llm_generation` steps), bear-rag (answers) and bear-api.
///
/// Callers may assume:
/// - the request is validated first: a bad one fails with [`ErrorKind::InvalidRequest`] before
///   any model work;
/// - `sink` receives pieces in order, and their concatenation equals the returned text;
/// - once `cancel` fires or `sink` returns `false`, at most one more token is decoded and the
///   result has [`FinishReason::Cancelled`];
/// - the call is safe from many tasks at once; requests to one model queue fairly.
#[async_trait::async_trait]
pub trait TextGenerator: Send + Sync {
    /// Generates a completion, streaming its text to `sink`.
    async fn generate(
        &self,
        request: GenerationRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<Generation>;
}

/// Serde for `Redacted<String>`: the wire format is the plain string.
pub(crate) mod redacted_string {
    use crate::error::Redacted;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Redacted<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.expose())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Redacted<String>, D::Error> {
        String::deserialize(d).map(Redacted::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut SamplingParams), ok: bool) {
        let mut p = SamplingParams::default();
        edit(&mut p);
        assert_eq!(p.validate().is_ok(), ok, "{p:?}");
    }

    #[test]
    fn sampling_ranges() {
        check(|_| {}, true);
        check(|p| p.max_tokens = 0, false);
        check(|p| p.max_tokens = MAX_TOKENS_LIMIT + 1, false);
        check(|p| p.temperature = -0.1, false);
        check(|p| p.temperature = f32::NAN, false);
        check(|p| p.temperature = 0.0, true);
        check(|p| p.top_p = 0.0, false);
        check(|p| p.top_p = 1.0, true);
        check(|p| p.top_p = 1.01, false);
        check(|p| p.stop = vec![String::new()], false);
    }

    #[test]
    fn empty_prompt_is_rejected_and_never_printed() {
        let req = GenerationRequest {
            model: ModelId::new("m").unwrap(),
            prompt: Prompt::Text(Redacted::new("   ".into())),
            params: SamplingParams::default(),
        };
        let err = req.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        let secret = GenerationRequest {
            prompt: Prompt::Text(Redacted::new("client Jane Roe".into())),
            ..req
        };
        assert!(!format!("{secret:?}").contains("Jane"));
    }
}
