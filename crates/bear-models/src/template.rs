//! Chat templates as the model wrote them: the GGUF's Jinja `tokenizer.chat_template`
//! rendered with minijinja (llama-server renders it with minja), with the messages, the tools
//! and the model's special tokens, under the switches Hugging Face renders with (`trim_blocks`,
//! `lstrip_blocks`) and Python's string methods (minijinja-contrib's pycompat).
//!
//! A model without a template gets ChatML ([`DEFAULT_TEMPLATE`]). A template that never
//! mentions tools gets them the way Hermes-trained models expect: described in the system
//! message ([`tool_instructions`]), earlier calls written as `<tool_call>` blocks and tool
//! results as `<tool_response>` blocks in a user turn.

use std::fmt::Write as _;

use bear_core::{ChatMessage, ChatRole, FunctionSpec, ToolCall};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The template of a model whose file has none: ChatML.
pub const DEFAULT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n\
{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A model's chat template with the special tokens it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// The template `source` ([`DEFAULT_TEMPLATE`] when `None`), its `bos_token` and
    /// `eos_token`.
    pub fn new(source: Option<String>, bos: String, eos: String) -> Self {
        Self {
            source: source.unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
            bos,
            eos,
        }
    }

    /// The text of the model's BOS token.
    pub fn bos(&self) -> &str {
        &self.bos
    }

    /// Whether the template renders tools itself.
    pub fn speaks_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// The prompt for `messages` with `tools` on offer, ending where the assistant's answer
    /// starts. A template that fails (`raise_exception`, a syntax error, a missing method) is
    /// a request error naming the cause.
    pub fn render(&self, messages: &[ChatMessage], tools: &[FunctionSpec]) -> Result<String> {
        let own = self.speaks_tools();
        let messages = if own || tools.is_empty() && !has_tool_turns(messages) {
            messages.iter().map(message_value).collect()
        } else {
            hermes_messages(messages, tools)
        };
        let tools: Option<Vec<Value>> =
            (own && !tools.is_empty()).then(|| tools.iter().map(tool_value).collect());
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        let template = env
            .template_from_str(&self.source)
            .map_err(template_error)?;
        let context = minijinja::context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        template.render(context).map_err(template_error)
    }
}

fn has_tool_turns(messages: &[ChatMessage]) -> bool {
    messages
        .iter()
        .any(|m| m.role == ChatRole::Tool || !m.tool_calls.is_empty())
}

fn template_error(e: minijinja::Error) -> Error {
    // The error's text names the template's fault (line, filter, message), never a message.
    let kind = e.kind();
    let detail = e.detail().unwrap_or_default().to_string();
    Error::InvalidRequest(format!(
        "the model's chat template cannot render this conversation ({kind}{}{detail})",
        if detail.is_empty() { "" } else { ": " }
    ))
}

/// `raise_exception(message)`: how templates refuse a conversation.
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        message,
    ))
}

/// `strftime_now(format)`: the local date and time, for templates that state today's date.
fn strftime_now(format: String) -> std::result::Result<String, minijinja::Error> {
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "strftime_now: not a date format",
        )
    })?;
    Ok(out)
}

fn role(r: ChatRole) -> &'static str {
    match r {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
        ChatRole::Tool => "tool",
    }
}

/// A message as Hugging Face templates see it: arguments of calls as objects.
fn message_value(m: &ChatMessage) -> Value {
    let mut v = json!({"role": role(m.role), "content": m.content.expose()});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m.tool_calls.iter().map(call_value).collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

fn call_value(c: &ToolCall) -> Value {
    let arguments = serde_json::from_str::<Value>(c.arguments.expose())
        .unwrap_or_else(|_| json!(c.arguments.expose()));
    json!({"id": c.id, "type": "function",
           "function": {"name": c.name, "arguments": arguments},
           "name": c.name, "arguments": arguments})
}

fn tool_value(t: &FunctionSpec) -> Value {
    json!({"type": "function", "function": {
        "name": t.name, "description": t.description, "parameters": t.parameters}})
}

/// The system text that offers `tools` to a model whose template does not: the format
/// Hermes and Qwen models are trained on.
pub fn tool_instructions(tools: &[FunctionSpec]) -> String {
    let mut text = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n",
    );
    for t in tools {
        text.push_str(&tool_value(t).to_string());
        text.push('\n');
    }
    text.push_str(
        "</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    text
}

/// The conversation for a template without tools: the tools described in the system
/// message, calls and results written out as text.
fn hermes_messages(messages: &[ChatMessage], tools: &[FunctionSpec]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let offer = tool_instructions(tools);
        match messages.first() {
            Some(m) if m.role == ChatRole::System => {
                let text = format!("{}\n\n{offer}", m.content.expose());
                out.push(json!({"role": "system", "content": text}));
            }
            _ => out.push(json!({"role": "system", "content": offer})),
        }
    }
    let skip = usize::from(
        !tools.is_empty() && messages.first().map(|m| m.role) == Some(ChatRole::System),
    );
    for m in &messages[skip..] {
        out.push(hermes_message(m));
    }
    out
}

fn hermes_message(m: &ChatMessage) -> Value {
    let mut text = m.content.expose().clone();
    match m.role {
        ChatRole::Tool => {
            text = format!("<tool_response>\n{text}\n</tool_response>");
            return json!({"role": "user", "content": text});
        }
        _ => {
            for c in &m.tool_calls {
                let call = call_value(c);
                let call = json!({"name": c.name, "arguments": call["arguments"]});
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("<tool_call>\n{call}\n</tool_call>"));
            }
        }
    }
    json!({"role": role(m.role), "content": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Qwen2.5's template, cut to its tool handling (the real one is longer, same logic).
    const QWEN_TOOLS: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools><|im_end|>\n" }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "assistant" and message.tool_calls %}
        {{- '<|im_start|>' + message.role }}
        {%- for tool_call in message.tool_calls %}
            {%- set tool_call = tool_call.function %}
            {{- '\n<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' + tool_call.arguments | tojson + '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {{- '<|im_start|>user\n<tool_response>\n' + message.content.strip() + '\n</tool_response><|im_end|>\n' }}
    {%- elif not (tools and message.role == "system") %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

    fn t(source: &str) -> ChatTemplate {
        ChatTemplate::new(Some(source.into()), "<s>".into(), "</s>".into())
    }

    fn weather() -> FunctionSpec {
        FunctionSpec {
            name: "get_weather".into(),
            description: "The weather in a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        }
    }

    fn call() -> ChatMessage {
        let mut m = ChatMessage::new(ChatRole::Assistant, String::new());
        m.tool_calls = vec![ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: bear_core::Redacted::new(r#"{"city":"Utrecht"}"#.into()),
        }];
        m
    }

    fn answer() -> ChatMessage {
        let mut m = ChatMessage::new(ChatRole::Tool, " 12 degrees \n".into());
        m.tool_call_id = Some("call_1".into());
        m
    }

    #[test]
    fn smollm2s_own_template_renders_as_llama_cpp_did() {
        let m = [ChatMessage::new(ChatRole::User, "Hello".into())];
        let out = t(SMOLLM2).render(&m, &[]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_template_that_speaks_tools_gets_them_and_the_calls_as_objects() {
        let m = [
            ChatMessage::new(ChatRole::System, "Be brief.".into()),
            ChatMessage::new(ChatRole::User, "Weather in Utrecht?".into()),
            call(),
            answer(),
        ];
        let out = t(QWEN_TOOLS).render(&m, &[weather()]).unwrap();
        assert!(
            out.starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n\n<tools>\n{"),
            "{out}"
        );
        assert!(out.contains(r#""name":"get_weather""#), "{out}");
        assert!(out.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Utrecht\"}}\n</tool_call>"), "{out}");
        // pycompat: the template's `.strip()` works.
        assert!(
            out.contains("<tool_response>\n12 degrees\n</tool_response>"),
            "{out}"
        );
        assert!(out.ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn a_template_without_tools_gets_them_in_the_system_message_hermes_style() {
        let m = [
            ChatMessage::new(ChatRole::User, "Weather in Utrecht?".into()),
            call(),
            answer(),
        ];
        let out = t(SMOLLM2).render(&m, &[weather()]).unwrap();
        assert!(out.starts_with("<|im_start|>system\n# Tools\n"), "{out}");
        assert!(
            out.contains("<tools>\n{\"type\":\"function\",\"function\":{\"name\":\"get_weather\""),
            "{out}"
        );
        assert!(out.contains("<|im_start|>assistant\n<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Utrecht\"}}\n</tool_call><|im_end|>"), "{out}");
        assert!(
            out.contains(
                "<|im_start|>user\n<tool_response>\n 12 degrees \n\n</tool_response><|im_end|>"
            ),
            "{out}"
        );
    }

    #[test]
    fn no_template_means_chatml_and_a_failing_template_is_a_request_error() {
        let m = [ChatMessage::new(ChatRole::User, "Hi".into())];
        let none = ChatTemplate::new(None, String::new(), String::new());
        assert_eq!(
            none.render(&m, &[]).unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let strict = t(
            "{% if messages[0].role != 'system' %}{{ raise_exception('System first') }}{% endif %}",
        );
        let e = strict.render(&m, &[]).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidRequest(s) if s.contains("System first")),
            "{e}"
        );
        let broken = t("{% for m in messages %}");
        assert!(matches!(
            broken.render(&m, &[]),
            Err(Error::InvalidRequest(_))
        ));
        let dated = t("{{ strftime_now('%Y') }}");
        assert_eq!(dated.render(&m, &[]).unwrap().len(), 4);
    }
}
