//! Text generation: the seed's defaults (`max_tokens` 100, `temperature` 0.7), the limits, and
//! the chat-template rule (a prompt is one user message in the model's chat template, unless
//! `raw` asks for the text as it is or the model has no template), for every front end.

use bear_core::{
    CancellationToken, ChatMessage, ChatRole, GenerationRequest, ModelId, Prompt, Redacted,
    SamplingParams, TokenSink, ToolCall,
};
use serde::{Deserialize, Serialize};

use crate::calls::Tools;
use crate::rag::Finish;
use crate::{App, Error, Result};

/// The most tokens one generation may ask for.
pub const MAX_TOKENS: u32 = 4096;

/// The most choices (OpenAI's `n`) one chat request may ask for.
pub const MAX_CHOICES: u32 = 8;

/// Sampling as requested; what is absent takes the operation's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1].
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens; 0 disables.
    pub top_k: Option<u32>,
    /// Repetition penalty; 1 disables.
    pub repeat_penalty: Option<f32>,
    /// OpenAI's presence penalty, in [-2, 2].
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty, in [-2, 2].
    pub frequency_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Stop before any of these texts.
    pub stop: Vec<String>,
    /// Constrain the output to JSON valid under this schema.
    pub json_schema: Option<serde_json::Value>,
    /// Report each token's log probability with this many alternatives.
    pub logprobs: Option<u8>,
}

impl Sampling {
    /// The parameters: each given one, else `defaults`'; checked, naming the field at fault.
    pub fn params(&self, defaults: SamplingParams, max_tokens: u32) -> Result<SamplingParams> {
        let p = SamplingParams {
            max_tokens: self.max_tokens.unwrap_or(defaults.max_tokens),
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            top_k: self.top_k.unwrap_or(defaults.top_k),
            repeat_penalty: self.repeat_penalty.unwrap_or(defaults.repeat_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency_penalty),
            seed: self.seed.or(defaults.seed),
            stop: if self.stop.is_empty() {
                defaults.stop
            } else {
                self.stop.clone()
            },
            json_schema: match &self.json_schema {
                None => defaults.json_schema,
                Some(schema) if !schema.is_object() => {
                    return Err(Error::invalid("json_schema", "must be a JSON object"));
                }
                Some(schema) => Some(schema.to_string()),
            },
            logprobs: match self.logprobs {
                Some(k) if k > bear_core::MAX_TOP_LOGPROBS => {
                    return Err(Error::invalid("top_logprobs", "must be from 0 to 20"));
                }
                k => k.or(defaults.logprobs),
            },
        };
        if p.max_tokens == 0 || p.max_tokens > max_tokens {
            return Err(Error::invalid(
                "max_tokens",
                format!("must be from 1 to {max_tokens}"),
            ));
        }
        p.validate()?;
        Ok(p)
    }
}

/// A generation with one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The prompt.
    pub prompt: String,
    /// The model [default: `models.default_generator`; REST takes it from the path].
    #[serde(default)]
    pub model: Option<String>,
    /// Most tokens to generate, 1 to 4096 [default: 100].
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// 0 is greedy [default: 0.7].
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1] [default: 0.95].
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens; 0 disables [default: 40].
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Repetition penalty; 1 disables [default: 1.1].
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop before any of these texts; they never appear in the output.
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    /// Send the prompt as it is, not as a user message in the model's chat template.
    #[serde(default)]
    pub raw: bool,
    /// Constrain the output to JSON valid under this JSON schema (at most 64 KiB): generation
    /// follows a grammar made from it, so the text always parses unless `max_tokens` cuts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub json_schema: Option<serde_json::Value>,
    /// REST: answer with server-sent events (`token` events, then one `done`).
    #[serde(default)]
    pub stream: bool,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenerateResponse {
    /// The model that generated.
    pub model: String,
    /// The generated text.
    pub text: String,
    /// Prompt and generated tokens together.
    pub tokens_used: u32,
    /// Prompt tokens (after the chat template).
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Seconds the generation took.
    pub generation_time: f64,
    /// Why generation stopped.
    pub finish_reason: Finish,
    /// Whether the prompt went through the model's chat template.
    pub chat_template: bool,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
    /// Where the time went, when the model ran (absent for an answer from the cache).
    pub timings: Option<Timings>,
}

/// Where a generation's time went: prompt processing against generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timings {
    /// Prompt tokens decoded.
    pub prompt_tokens: u32,
    /// Seconds spent decoding the prompt.
    pub prompt_seconds: f64,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Seconds spent generating (sampling, decoding, detokenising).
    pub generation_seconds: f64,
    /// Of `generation_seconds`, the time inside llama.cpp's decode.
    pub decode_seconds: f64,
}

impl From<bear_models::GenerationTimings> for Timings {
    fn from(t: bear_models::GenerationTimings) -> Self {
        Self {
            prompt_tokens: t.prompt_tokens,
            prompt_seconds: t.prompt_seconds,
            generated_tokens: t.generated_tokens,
            generation_seconds: t.generation_seconds,
            decode_seconds: t.decode_seconds,
        }
    }
}

impl GenerateRequest {
    fn sampling(&self) -> Sampling {
        Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            stop: self.stop_sequences.clone(),
            json_schema: self.json_schema.clone(),
            ..Sampling::default()
        }
    }
}

impl App {
    /// Whether model `id` has a chat template (read from its file's header, without loading).
    fn has_chat_template(&self, id: &ModelId) -> Result<bool> {
        Ok(self.model_entry(id)?.meta.has_chat_template)
    }

    /// The model a generation uses: `model`, else `models.default_generator`.
    pub fn generator_id(&self, model: Option<&str>) -> Result<ModelId> {
        let default = &self.config().config.models.default_generator;
        ModelId::new(model.unwrap_or(default)).map_err(|e| Error::invalid("model", e.to_string()))
    }

    /// The generation request `req` stands for, and whether it uses the chat template.
    pub fn generation_request(&self, req: &GenerateRequest) -> Result<(GenerationRequest, bool)> {
        let model = self.generator_id(req.model.as_deref())?;
        let defaults = SamplingParams {
            max_tokens: 100,
            temperature: 0.7,
            ..SamplingParams::default()
        };
        let params = req.sampling().params(defaults, MAX_TOKENS)?;
        let chat = !req.raw && self.has_chat_template(&model)?;
        let prompt = if chat {
            Prompt::Chat(vec![ChatMessage::new(ChatRole::User, req.prompt.clone())])
        } else {
            Prompt::Text(Redacted::new(req.prompt.clone()))
        };
        Ok((
            GenerationRequest {
                model,
                prompt,
                params,
            },
            chat,
        ))
    }

    /// Generates, streaming the text to `sink`.
    pub async fn generate(
        &self,
        req: GenerateRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<GenerateResponse> {
        let (request, chat_template) = self.generation_request(&req)?;
        self.respond(request, chat_template, sink, cancel).await
    }

    /// Runs `request`, streaming to `sink`: the response every front end gives.
    async fn respond(
        &self,
        request: GenerationRequest,
        chat_template: bool,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<GenerateResponse> {
        let model = request.model.to_string();
        let (g, timings) = self.models().generate_timed(request, sink, cancel).await?;
        Ok(GenerateResponse {
            model,
            text: g.text.expose().clone(),
            tokens_used: g.prompt_tokens + g.completion_tokens,
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
            generation_time: g.elapsed.as_secs_f64(),
            finish_reason: g.finish_reason.into(),
            chat_template,
            tokens_per_second: g.tokens_per_second(),
            timings: timings.map(Timings::from),
        })
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: String,
    /// The functions an assistant turn called.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool turn answers.
    pub tool_call_id: Option<String>,
}

impl Turn {
    /// A turn of `role` saying `content`, calling nothing.
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A conversation for the model to continue, in its chat template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The model [default: `models.default_generator`].
    pub model: Option<String>,
    /// The conversation so far, ending with the user's message.
    pub messages: Vec<Turn>,
    /// Sampling; what is absent takes the model's defaults.
    pub sampling: Sampling,
    /// Functions the model may call, and how.
    pub tools: Tools,
}

impl App {
    /// The generation request a conversation stands for: a model, a non-empty conversation,
    /// sampling within the limits (absent values from `defaults`).
    pub fn chat_request(
        &self,
        req: &ChatRequest,
        defaults: SamplingParams,
    ) -> Result<GenerationRequest> {
        let model = self.generator_id(req.model.as_deref())?;
        if req.messages.is_empty() {
            return Err(Error::invalid("messages", "must not be empty"));
        }
        let messages: Vec<ChatMessage> = req
            .messages
            .iter()
            .map(|m| ChatMessage {
                tool_calls: m.tool_calls.clone(),
                tool_call_id: m.tool_call_id.clone(),
                ..ChatMessage::new(m.role, m.content.clone())
            })
            .collect();
        req.tools.check()?;
        let mut params = req.sampling.params(defaults, MAX_TOKENS)?;
        if let Some(schema) = req.tools.call_schema() {
            if req.sampling.json_schema.is_some() {
                return Err(Error::invalid(
                    "response_format",
                    "cannot be combined with a tool_choice that requires a call",
                ));
            }
            params.json_schema = Some(schema);
        }
        let prompt = match req.tools.offered() {
            true => Prompt::ChatTools {
                messages,
                tools: req.tools.functions.clone(),
            },
            false => Prompt::Chat(messages),
        };
        Ok(GenerationRequest {
            model,
            prompt,
            params,
        })
    }

    /// Continues a conversation, streaming the reply to `sink`.
    pub async fn chat(
        &self,
        req: ChatRequest,
        sink: Box<dyn TokenSink>,
        cancel: CancellationToken,
    ) -> Result<GenerateResponse> {
        let request = self.chat_request(&req, SamplingParams::default())?;
        self.respond(request, true, sink, cancel).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_take_the_operations_defaults_and_limits_name_the_field() {
        let d = SamplingParams {
            max_tokens: 100,
            temperature: 0.7,
            ..SamplingParams::default()
        };
        let p = Sampling::default().params(d.clone(), MAX_TOKENS).unwrap();
        assert_eq!((p.max_tokens, p.temperature), (100, 0.7));
        let asked = Sampling {
            max_tokens: Some(7),
            stop: vec!["###".into()],
            ..Sampling::default()
        };
        let p = asked.params(d.clone(), MAX_TOKENS).unwrap();
        assert_eq!(
            (p.max_tokens, p.stop.as_slice()),
            (7, &["###".to_string()][..])
        );
        let too_many = Sampling {
            max_tokens: Some(MAX_TOKENS + 1),
            ..Sampling::default()
        };
        let e = too_many.params(d, MAX_TOKENS).unwrap_err();
        assert_eq!(e.field(), Some("max_tokens"));
    }
}
