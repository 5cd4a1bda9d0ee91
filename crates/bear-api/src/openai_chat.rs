//! `POST /v1/chat/completions` as today's OpenAI clients use it: text or content-part
//! messages (`system`/`developer`, `user`, `assistant` with `tool_calls`, `tool`), `tools` and
//! `tool_choice` (read back by bear-app's [`calls`](bear_app::calls)), `response_format`
//! (`json_object`, `json_schema`) through constrained generation, `n` choices (generated one
//! after another), penalties, and streamed chunks with tool-call deltas and
//! `stream_options.include_usage`. While functions are offered, each choice's text is held
//! until it ends, so that a call is never streamed as content.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use bear_app::calls::{Reply, ToolChoice, Tools};
use bear_app::generate::{ChatRequest, MAX_CHOICES, Turn};
use bear_core::{
    CancellationToken, ChatRole, FunctionSpec, Generation, GenerationRequest, Redacted,
    TokenLogprob, ToolCall,
};
use bear_security::access::Permission;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::models::{CancelOnDrop, Piece, app, model_id, spawn_generation_under};
use crate::openai::{OpenAiSampling, Usage, created, finish, openai_defaults, usage};
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ChatBody {
    #[serde(flatten)]
    sampling: OpenAiSampling,
    messages: Vec<OpenAiMessage>,
    /// Functions the model may call.
    #[serde(default)]
    tools: Vec<OpenAiTool>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name": …}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    tool_choice: Option<Value>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {"schema": …}}`.
    #[serde(default)]
    response_format: Option<ResponseFormat>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// Choices to generate, 1 to [`MAX_CHOICES`].
    #[serde(default)]
    n: Option<u32>,
    /// Report each token's log probability.
    #[serde(default)]
    logprobs: Option<bool>,
    /// With `logprobs`, the most likely tokens at each position, 0 to 20.
    #[serde(default)]
    top_logprobs: Option<u8>,
    /// `false`: at most one call per reply.
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct OpenAiMessage {
    #[schema(example = "user")]
    role: String,
    /// A string, content parts (`{"type": "text", "text": …}`), or null beside tool calls.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Vec<OpenAiToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct OpenAiToolCall {
    id: String,
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: FunctionCall,
}

/// A call's function: its name and its arguments as JSON text.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub(crate) struct FunctionCall {
    name: String,
    arguments: String,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct OpenAiTool {
    #[serde(rename = "type")]
    kind: String,
    function: FunctionDef,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct FunctionDef {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "no_parameters")]
    #[schema(value_type = Object)]
    parameters: Value,
}

fn no_parameters() -> Value {
    json!({"type": "object", "properties": {}})
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    json_schema: Option<Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A chat completion (`/v1/chat/completions` without `stream`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChatCompletion {
    /// `chatcmpl-…`.
    id: String,
    /// Always `chat.completion`.
    object: &'static str,
    /// Unix seconds.
    created: u64,
    /// The model.
    model: String,
    /// `n` choices.
    choices: Vec<ChatChoice>,
    /// Token counts, summed over the choices.
    usage: Usage,
}

/// One choice of a [`ChatCompletion`].
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChatChoice {
    /// Its place, from 0.
    index: u32,
    /// The assistant's message.
    message: AssistantMessage,
    /// `stop`, `length` or `tool_calls`.
    finish_reason: &'static str,
    /// With `logprobs`: `{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}`.
    #[schema(value_type = Option<Object>)]
    logprobs: Option<Value>,
}

/// The assistant's reply.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AssistantMessage {
    /// Always `assistant`.
    role: &'static str,
    /// The text; null when the reply is only calls.
    content: Option<String>,
    /// The functions called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OpenAiToolCall>,
}

impl ChatBody {
    /// bear-app's conversation, tools and sampling for this body; errors name the field.
    fn chat_request(&self, model: &str) -> Api<ChatRequest> {
        let logprobs = self.logprobs == Some(true);
        if self.top_logprobs.is_some() && !logprobs {
            return Err(invalid("top_logprobs", "requires logprobs: true"));
        }
        let mut sampling = self.sampling.sampling();
        sampling.json_schema = self.response_schema()?;
        sampling.logprobs = logprobs.then(|| self.top_logprobs.unwrap_or(0));
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| turn(i, m))
            .collect::<Api<Vec<_>>>()?;
        Ok(ChatRequest {
            model: Some(model.to_string()),
            messages,
            sampling,
            tools: self.tools()?,
        })
    }

    fn tools(&self) -> Api<Tools> {
        let functions = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| match t.kind.as_str() {
                "function" => Ok(FunctionSpec {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    parameters: t.function.parameters.clone(),
                }),
                _ => Err(invalid(&format!("tools[{i}].type"), "must be \"function\"")),
            })
            .collect::<Api<Vec<_>>>()?;
        let choice = match &self.tool_choice {
            None => ToolChoice::Auto,
            Some(Value::String(s)) if s == "none" => ToolChoice::None,
            Some(Value::String(s)) if s == "auto" => ToolChoice::Auto,
            Some(Value::String(s)) if s == "required" => ToolChoice::Required,
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => ToolChoice::Function(name.to_string()),
                None => {
                    return Err(invalid(
                        "tool_choice",
                        "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                    ));
                }
            },
        };
        Ok(Tools {
            functions,
            choice,
            one_call: self.parallel_tool_calls == Some(false),
        })
    }

    fn response_schema(&self) -> Api<Option<Value>> {
        let Some(f) = &self.response_format else {
            return Ok(None);
        };
        match f.kind.as_str() {
            "text" => Ok(None),
            "json_object" => Ok(Some(json!({"type": "object"}))),
            "json_schema" => match f.json_schema.as_ref().and_then(|j| j.get("schema")) {
                Some(schema) => Ok(Some(schema.clone())),
                None => Err(invalid(
                    "response_format.json_schema.schema",
                    "is required for json_schema",
                )),
            },
            _ => Err(invalid(
                "response_format.type",
                "must be text, json_object or json_schema",
            )),
        }
    }

    fn choices(&self) -> Api<u32> {
        match self.n.unwrap_or(1) {
            n @ 1..=MAX_CHOICES => Ok(n),
            _ => Err(invalid("n", &format!("must be from 1 to {MAX_CHOICES}"))),
        }
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError {
        field: Some(field.to_string()),
        ..ApiError::invalid(format!("{field} {message}"))
    }
}

/// Message `i` as a turn: its role, its text (content parts joined), its calls.
fn turn(i: usize, m: &OpenAiMessage) -> Api<Turn> {
    let role = match m.role.as_str() {
        "system" | "developer" => ChatRole::System,
        "user" => ChatRole::User,
        "assistant" => ChatRole::Assistant,
        "tool" => ChatRole::Tool,
        _ => {
            return Err(invalid(
                &format!("messages[{i}].role"),
                "must be system, developer, user, assistant or tool",
            ));
        }
    };
    let content = match &m.content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => Ok(t),
                    _ => Err(invalid(
                        &format!("messages[{i}].content"),
                        "parts must be text parts; BEAR's models read text only",
                    )),
                }
            })
            .collect::<Api<Vec<_>>>()?
            .join("\n"),
        Some(_) => {
            return Err(invalid(
                &format!("messages[{i}].content"),
                "must be a string or a list of text parts",
            ));
        }
    };
    Ok(Turn {
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                arguments: Redacted::new(c.function.arguments.clone()),
            })
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
        ..Turn::new(role, content)
    })
}

fn wire_calls(calls: &[ToolCall]) -> Vec<OpenAiToolCall> {
    calls
        .iter()
        .map(|c| OpenAiToolCall {
            id: c.id.clone(),
            kind: function_type(),
            function: FunctionCall {
                name: c.name.clone(),
                arguments: c.arguments.expose().clone(),
            },
        })
        .collect()
}

/// Why a choice ended, as OpenAI says it.
fn finish_reason(g: &Generation, reply: &Reply) -> &'static str {
    if reply.calls.is_empty() {
        finish(g.finish_reason)
    } else {
        "tool_calls"
    }
}

/// A piece of one of the `n` choices.
enum Tagged {
    Text(u32, String),
    Logprob(u32, TokenLogprob),
    Done(u32, Result<Generation, ApiError>),
}

/// Log probabilities as OpenAI's chat API gives them.
fn wire_logprobs(logprobs: &[TokenLogprob]) -> Value {
    let one = |t: &TokenLogprob| json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes});
    let content: Vec<Value> = logprobs
        .iter()
        .map(|t| {
            let mut v = one(t);
            v["top_logprobs"] = t.top.iter().map(one).collect();
            v
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// Starts the `n` choices at once, so the model serves them side by side (a fixed seed
/// advances by one per choice), their pieces tagged with the choice's index. Each choice takes
/// a place in the model's queue; when one cannot, the request fails and the others stop.
/// Dropping the guard cancels them all.
fn spawn_choices(
    s: &Arc<AppState>,
    request: GenerationRequest,
    n: u32,
) -> Api<(mpsc::UnboundedReceiver<Tagged>, CancelOnDrop)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let all = CancellationToken::new();
    let guard = CancelOnDrop(all.clone());
    for i in 0..n {
        let mut next = request.clone();
        next.params.seed = next.params.seed.map(|seed| seed.wrapping_add(u64::from(i)));
        let (mut pieces, _) = spawn_generation_under(s, next, all.child_token())?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(p) = pieces.recv().await {
                let sent = match p {
                    Piece::Text(t) => tx.send(Tagged::Text(i, t)),
                    Piece::Logprob(lp) => tx.send(Tagged::Logprob(i, lp)),
                    Piece::Done(r) => tx.send(Tagged::Done(i, r.map_err(ApiError::from))),
                };
                // The client went away: dropping `pieces` stops this choice within a token.
                if sent.is_err() {
                    return;
                }
            }
        });
    }
    Ok((rx, guard))
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatBody, responses((status = 200, description = "An OpenAI chat completion, or its chunks as SSE", content((ChatCompletion = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn chat_completions(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(b): Body<ChatBody>,
) -> Api<Response> {
    caller.require(Permission::Write)?;
    let model = model_id(&b.sampling.model)?.to_string();
    let n = b.choices()?;
    let chat = b.chat_request(&model)?;
    let request = app(&s)?.chat_request(&chat, openai_defaults())?;
    let (rx, guard) = spawn_choices(&s, request, n)?;
    let choices = Choices {
        id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
        model,
        tools: chat.tools,
        n,
        include_usage: b.stream_options.as_ref().is_some_and(|o| o.include_usage),
        logprobs: chat.sampling.logprobs.is_some(),
    };
    if b.sampling.stream {
        Ok(choices.sse(rx, guard).into_response())
    } else {
        Ok(Json(choices.collect(rx, guard).await?).into_response())
    }
}

/// One response's choices, whole or as chunks.
struct Choices {
    id: String,
    model: String,
    tools: Tools,
    n: u32,
    include_usage: bool,
    /// Whether the request asked for log probabilities.
    logprobs: bool,
}

impl Choices {
    async fn collect(
        self,
        mut rx: mpsc::UnboundedReceiver<Tagged>,
        _guard: CancelOnDrop,
    ) -> Api<ChatCompletion> {
        let mut choices = Vec::new();
        let mut total = Usage::default();
        while choices.len() < self.n as usize {
            let Some(t) = rx.recv().await else { break };
            let Tagged::Done(index, result) = t else {
                continue;
            };
            let g = result?;
            let reply = self.tools.reply(g.text.expose());
            add(&mut total, &g);
            choices.push(ChatChoice {
                index,
                finish_reason: finish_reason(&g, &reply),
                message: AssistantMessage {
                    role: "assistant",
                    tool_calls: wire_calls(&reply.calls),
                    content: reply.content,
                },
                logprobs: self.logprobs.then(|| wire_logprobs(&g.logprobs)),
            });
        }
        choices.sort_by_key(|c| c.index);
        if choices.len() != self.n as usize {
            return Err(ApiError::from_kind(
                bear_core::ErrorKind::Internal,
                "the generation stopped unexpectedly",
            ));
        }
        Ok(ChatCompletion {
            id: self.id,
            object: "chat.completion",
            created: created(),
            model: self.model,
            choices,
            usage: total,
        })
    }

    fn chunk(&self, index: u32, delta: Value, reason: Option<&str>) -> SseEvent {
        self.chunk_with(index, delta, reason, &[])
    }

    /// A chunk carrying the log probabilities of its tokens (when the request asked).
    fn chunk_with(
        &self,
        index: u32,
        delta: Value,
        reason: Option<&str>,
        logprobs: &[TokenLogprob],
    ) -> SseEvent {
        let logprobs = match self.logprobs {
            true => wire_logprobs(logprobs),
            false => Value::Null,
        };
        SseEvent::default().data(
            json!({"id": self.id, "object": "chat.completion.chunk", "created": created(),
                   "model": self.model,
                   "choices": [{"index": index, "delta": delta, "finish_reason": reason, "logprobs": logprobs}]})
            .to_string(),
        )
    }

    /// The chunks of a choice's end: held text or calls (a first chunk per call with its id
    /// and name, then its arguments), then the finish reason; `pending` log probabilities go
    /// with the held text, or else with the last chunk.
    fn ending(
        &self,
        index: u32,
        g: &Generation,
        held: &str,
        mut pending: Vec<TokenLogprob>,
    ) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let reply = self.tools.reply(held);
        if let Some(text) = reply.content.as_ref().filter(|t| !t.is_empty()) {
            let lp = std::mem::take(&mut pending);
            out.push(self.chunk_with(index, json!({"content": text}), None, &lp));
        }
        for (k, c) in reply.calls.iter().enumerate() {
            out.push(self.chunk(
                index,
                json!({"tool_calls": [{"index": k, "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": ""}}]}),
                None,
            ));
            out.push(self.chunk(
                index,
                json!({"tool_calls": [{"index": k,
                "function": {"arguments": c.arguments.expose()}}]}),
                None,
            ));
        }
        let reason = Some(finish_reason(g, &reply));
        out.push(self.chunk_with(index, json!({}), reason, &pending));
        out
    }

    fn sse(
        self,
        rx: mpsc::UnboundedReceiver<Tagged>,
        guard: CancelOnDrop,
    ) -> Sse<impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
        let n = self.n as usize;
        let mut state = Chunks {
            s: self,
            held: vec![String::new(); n],
            sent: vec![0; n],
            started: vec![false; n],
            pending: vec![Vec::new(); n],
            done: 0,
            total: Usage::default(),
        };
        let events =
            futures::stream::unfold((rx, guard, false), |(mut rx, guard, ended)| async move {
                if ended {
                    return None;
                }
                let t = rx.recv().await?;
                let last = matches!(&t, Tagged::Done(_, Err(_)));
                Some((t, (rx, guard, last)))
            })
            .flat_map(move |t| futures::stream::iter(state.events(t).into_iter().map(Ok)));
        Sse::new(events)
    }
}

/// What the stream has seen of each choice (they run side by side, their pieces interleaved).
struct Chunks {
    s: Choices,
    /// The text while tools are offered (a call must not be streamed as content).
    held: Vec<String>,
    /// How much of `held` was sent as content (what could not be a call).
    sent: Vec<usize>,
    /// Whether the choice's first chunk (with the role) was sent.
    started: Vec<bool>,
    /// Log probabilities of tokens whose text has not been sent yet.
    pending: Vec<Vec<TokenLogprob>>,
    /// Choices ended.
    done: u32,
    total: Usage,
}

impl Chunks {
    fn events(&mut self, t: Tagged) -> Vec<SseEvent> {
        match t {
            Tagged::Logprob(index, lp) => {
                if let Some(p) = self.pending.get_mut(index as usize) {
                    p.push(lp);
                }
                Vec::new()
            }
            Tagged::Text(index, text) => {
                let i = index as usize;
                let mut delta = json!({});
                if !std::mem::replace(&mut self.started[i], true) {
                    delta["role"] = json!("assistant");
                }
                let text = if self.s.tools.offered() {
                    self.held[i].push_str(&text);
                    let settled = self.s.tools.settled(&self.held[i]).max(self.sent[i]);
                    let new = self.held[i][self.sent[i]..settled].to_string();
                    self.sent[i] = settled;
                    if new.is_empty() {
                        if delta.get("role").is_none() {
                            return Vec::new();
                        }
                        delta["content"] = json!("");
                        return vec![self.s.chunk(index, delta, None)];
                    }
                    new
                } else {
                    text
                };
                delta["content"] = json!(text);
                let lp = std::mem::take(&mut self.pending[i]);
                vec![self.s.chunk_with(index, delta, None, &lp)]
            }
            Tagged::Done(index, Ok(g)) => {
                let i = index as usize;
                add(&mut self.total, &g);
                let mut out = Vec::new();
                if !std::mem::replace(&mut self.started[i], true) {
                    out.push(self.s.chunk(
                        index,
                        json!({"role": "assistant", "content": ""}),
                        None,
                    ));
                }
                let (held, pending) = (
                    std::mem::take(&mut self.held[i]),
                    std::mem::take(&mut self.pending[i]),
                );
                let unsent = &held[std::mem::take(&mut self.sent[i])..];
                out.extend(self.s.ending(index, &g, unsent, pending));
                self.done += 1;
                if self.done == self.s.n {
                    if self.s.include_usage {
                        let usage = std::mem::take(&mut self.total);
                        out.push(SseEvent::default().data(
                            json!({"id": self.s.id, "object": "chat.completion.chunk", "created": created(),
                                   "model": self.s.model, "choices": [], "usage": usage})
                            .to_string(),
                        ));
                    }
                    out.push(SseEvent::default().data("[DONE]"));
                }
                out
            }
            Tagged::Done(_, Err(e)) => vec![crate::openai::error_chunk(&e)],
        }
    }
}

fn add(total: &mut Usage, g: &Generation) {
    let u = usage(g);
    total.prompt_tokens += u.prompt_tokens;
    total.completion_tokens += u.completion_tokens;
    total.total_tokens += u.total_tokens;
    total.prompt_tokens_details.cached_tokens += u.prompt_tokens_details.cached_tokens;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completion with a call, pinned (`src/snapshots/`).
    #[test]
    fn chat_completion_shape() {
        let chat = ChatCompletion {
            id: "chatcmpl-0".into(),
            object: "chat.completion",
            created: 1_764_700_000,
            model: "SmolLM2-135M-Instruct.Q4_1".into(),
            choices: vec![
                ChatChoice {
                    index: 0,
                    message: AssistantMessage {
                        role: "assistant",
                        content: Some("Hello.".into()),
                        tool_calls: Vec::new(),
                    },
                    finish_reason: "stop",
                    logprobs: None,
                },
                ChatChoice {
                    index: 1,
                    message: AssistantMessage {
                        role: "assistant",
                        content: None,
                        tool_calls: vec![OpenAiToolCall {
                            id: "call_0".into(),
                            kind: function_type(),
                            function: FunctionCall {
                                name: "get_weather".into(),
                                arguments: r#"{"city":"Utrecht"}"#.into(),
                            },
                        }],
                    },
                    finish_reason: "tool_calls",
                    logprobs: None,
                },
            ],
            usage: Usage {
                prompt_tokens: 12,
                completion_tokens: 3,
                total_tokens: 15,
                prompt_tokens_details: crate::openai::PromptTokensDetails { cached_tokens: 8 },
            },
        };
        insta::assert_json_snapshot!("openai_chat_completion", chat);
    }
}
