//! `/v1/chat/completions` as today's OpenAI clients use it, on the real model: tools and
//! `tool_choice` (calls constrained to the functions' schemas, streamed as tool-call deltas),
//! tool turns in the history, `response_format`, `n` choices, penalties, usage in the stream,
//! log probabilities, and every error in OpenAI's shape with OpenAI's status.

use serde_json::{Value, json};

use crate::models::{keys, openai_chunks};
use crate::{Server, body, server};

const GEN: &str = "SmolLM2-135M-Instruct.Q4_1";

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                           "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "find_clause", "description": "Finds a clause of the lease",
            "parameters": {"type": "object", "properties": {"topic": {"type": "string", "maxLength": 30},
                           "page": {"type": "integer"}}, "required": ["topic", "page"], "additionalProperties": false}}}
    ])
}

fn ask(extra: Value) -> Value {
    let mut b = json!({
        "model": GEN, "max_tokens": 60, "temperature": 0, "seed": 3,
        "messages": [{"role": "user", "content": "Which clause of the lease covers the notice period?"}],
        "tools": tools()
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn post(s: &Server, b: &Value) -> (u16, Value) {
    body(
        s.send("POST", "/v1/chat/completions", &s.user, Some(b))
            .await,
    )
    .await
}

/// `b` streamed, with usage: its chunks (the usage chunk last).
async fn streamed(s: &Server, b: &Value) -> Vec<Value> {
    let mut b = b.clone();
    b["stream"] = json!(true);
    b["stream_options"] = json!({"include_usage": true});
    let r = s
        .send("POST", "/v1/chat/completions", &s.user, Some(&b))
        .await;
    openai_chunks(&r.text().await.unwrap())
}

/// The call's arguments, checked against the function's own schema.
fn checked_args(call: &Value) -> (String, Value) {
    keys(call, &["id", "type", "function"]);
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let name = call["function"]["name"].as_str().unwrap().to_string();
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    let tools = tools();
    let schema = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is one of the tools"))["function"]["parameters"]
        .clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&args), "{name}: {args}");
    (name, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_and_named_calls_follow_the_functions_schemas_whole_and_streamed() {
    let s = server(bear_api::Limits::default()).await;
    let (status, v) = post(&s, &ask(json!({"tool_choice": "required"}))).await;
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    keys(&choice["message"], &["role", "content", "tool_calls"]);
    assert!(choice["message"]["content"].is_null());
    checked_args(&choice["message"]["tool_calls"][0]);

    let named =
        ask(json!({"tool_choice": {"type": "function", "function": {"name": "find_clause"}}}));
    let (status, v) = post(&s, &named).await;
    assert_eq!(status, 200, "{v}");
    let (name, args) = checked_args(&v["choices"][0]["message"]["tool_calls"][0]);
    assert_eq!(name, "find_clause");

    // Streamed: a role chunk, then per call one chunk with its id and name and one with its
    // arguments, then the finish reason, then [DONE]; greedy, so the same arguments.
    let mut streamed = named.clone();
    streamed["stream"] = json!(true);
    let r = s
        .send("POST", "/v1/chat/completions", &s.user, Some(&streamed))
        .await;
    assert_eq!(r.status(), 200);
    let chunks = openai_chunks(&r.text().await.unwrap());
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    let calls: Vec<&Value> = deltas.iter().filter_map(|d| d.get("tool_calls")).collect();
    assert_eq!(calls.len(), 2, "{chunks:?}");
    assert_eq!(calls[0][0]["function"]["name"], "find_clause");
    assert!(calls[0][0]["id"].as_str().unwrap().starts_with("call_"));
    let streamed_args: Value =
        serde_json::from_str(calls[1][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(streamed_args, args);
    assert!(
        deltas
            .iter()
            .all(|d| d.get("content").is_none_or(|c| c == ""))
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_turns_auto_none_response_format_n_and_usage() {
    let s = server(bear_api::Limits::default()).await;
    // A history with a call and its result; `auto` answers with text or valid calls.
    let history = ask(json!({"messages": [
        {"role": "developer", "content": "You help with a lease."},
        {"role": "user", "content": [{"type": "text", "text": "What is the weather in Utrecht?"}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Utrecht\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees and rain"}
    ], "tool_choice": "auto"}));
    let (status, v) = post(&s, &history).await;
    assert_eq!(status, 200, "{v}");
    let m = &v["choices"][0]["message"];
    match m.get("tool_calls") {
        Some(calls) => {
            assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
            checked_args(&calls[0]);
        }
        None => assert!(m["content"].is_string(), "{v}"),
    }
    // `none`: plain text, no calls.
    let (status, v) = post(&s, &ask(json!({"tool_choice": "none"}))).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert!(v["choices"][0]["message"]["content"].is_string());
    // Another question after the same system prompt (the identical request would come from
    // the result cache): the shared prefix comes from the prompt cache, only the rest is
    // decoded.
    let other = ask(json!({"tool_choice": "none", "messages": [
        {"role": "system", "content": "You help with a lease. ".repeat(8)},
        {"role": "user", "content": "Who pays for repairs to the roof?"}]}));
    let (status, _) = post(&s, &other).await;
    assert_eq!(status, 200);
    let mut next = other.clone();
    next["messages"][1]["content"] = json!("When may the tenant sublet the offices?");
    let (status, again) = post(&s, &next).await;
    assert_eq!(status, 200, "{again}");
    let prompt = again["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 40 && cached < prompt, "{again}");
    // /metrics counts them per model, beside the tokens decoded.
    let metrics = s
        .send("GET", "/metrics", &s.reader, None)
        .await
        .text()
        .await
        .unwrap();
    let counted = |name: &str| {
        let line = format!("bear_{name}{{bear_instance=\"api-test\",model=\"{GEN}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(counted("model_prompt_tokens_cached") >= cached, "{metrics}");
    assert!(
        counted("model_prompt_tokens_processed") >= prompt - cached,
        "{metrics}"
    );

    // response_format: output that parses, under the schema.
    let schema = json!({"type": "object", "properties": {"clause": {"type": "string", "maxLength": 40},
        "months": {"type": "integer"}}, "required": ["clause", "months"], "additionalProperties": false});
    // (Room to finish: OpenAI's defaults have no repetition penalty, and this small model
    // repeats itself inside the string until its maxLength.)
    let formatted = json!({"model": GEN, "max_tokens": 160, "temperature": 0,
        "messages": [{"role": "user", "content": "How many months of notice?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "notice", "schema": schema, "strict": true}}});
    let (status, v) = post(&s, &formatted).await;
    assert_eq!(status, 200, "{v}");
    let out: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&out),
        "{out}"
    );
    let object = json!({"model": GEN, "max_tokens": 40, "temperature": 0,
        "messages": [{"role": "user", "content": "The parties, as JSON."}], "response_format": {"type": "json_object"}});
    let (status, v) = post(&s, &object).await;
    assert_eq!(status, 200, "{v}");
    if v["choices"][0]["finish_reason"] == "stop" {
        let out: Value =
            serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        assert!(out.is_object(), "{out}");
    }

    // n choices, penalties, and usage summed over them.
    let several = json!({"model": GEN, "max_tokens": 8, "temperature": 0.9, "seed": 11, "n": 3,
        "presence_penalty": 0.5, "frequency_penalty": 0.5,
        "messages": [{"role": "user", "content": "Name a Dutch city."}]});
    let (status, v) = post(&s, &several).await;
    assert_eq!(status, 200, "{v}");
    let choices = v["choices"].as_array().unwrap();
    let indexes: Vec<u64> = choices
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 8 && completion <= 24, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"].as_u64().unwrap() % 3, 0);

    let mut two = several.clone();
    two["n"] = json!(2);
    let chunks = streamed(&s, &two).await;
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 8);
    // The choices run side by side: each ends once, in whichever order.
    let mut finished: Vec<u64> = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"].is_string())
        .map(|c| c["choices"][0]["index"].as_u64().unwrap())
        .collect();
    finished.sort_unstable();
    assert_eq!(finished, [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_error_is_openai_shaped_with_openais_status() {
    let s = server(bear_api::Limits::default()).await;
    let bad_schema = {
        let mut t = tools();
        t[0]["function"]["parameters"] =
            json!({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}});
        ask(json!({"tools": t}))
    };
    let cases = [
        (bad_schema, "tools[0].function.parameters"),
        (
            ask(json!({"tool_choice": {"type": "function", "function": {"name": "wire_funds"}}})),
            "tool_choice",
        ),
        (ask(json!({"tool_choice": "sometimes"})), "tool_choice"),
        (ask(json!({"n": 9})), "n"),
        (
            ask(json!({"logprobs": true, "top_logprobs": 21})),
            "top_logprobs",
        ),
        (ask(json!({"top_logprobs": 2})), "top_logprobs"),
        (ask(json!({"presence_penalty": 3})), "presence_penalty"),
        (
            ask(json!({"tool_choice": "required", "response_format": {"type": "json_object"}})),
            "response_format",
        ),
        (
            ask(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            ),
            "messages[0].content",
        ),
        (
            ask(json!({"messages": [{"role": "wizard", "content": "hi"}]})),
            "messages[0].role",
        ),
    ];
    for (b, param) in cases {
        let (status, v) = post(&s, &b).await;
        assert_eq!(status, 400, "{param}: {v}");
        keys(&v, &["error"]);
        keys(&v["error"], &["message", "type", "param", "code"]);
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        if param != "presence_penalty" {
            assert_eq!(v["error"]["param"], param, "{v}");
        }
        assert!(v["error"]["message"].as_str().unwrap().len() > 10, "{v}");
    }
    let (status, v) = post(&s, &ask(json!({"model": "no-such-model"}))).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let r = s
        .send(
            "POST",
            "/v1/chat/completions",
            "not-a-key",
            Some(&ask(json!({}))),
        )
        .await;
    let (status, v) = body(r).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    // BEAR's own routes keep BEAR's shape.
    let (status, v) = body(
        s.send(
            "POST",
            &format!("/api/v1/models/{GEN}/generate"),
            &s.user,
            Some(&json!({"prompt": ""})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["kind"].is_string(), "{v}");
}

/// Checks one token's log probabilities: a probability, the alternatives most likely first,
/// and (greedy, no penalties) the token itself the most likely one.
fn checked_logprob(t: &Value, top: usize) -> String {
    keys(t, &["token", "logprob", "bytes", "top_logprobs"]);
    let lp = t["logprob"].as_f64().unwrap();
    assert!(lp <= 0.0 && lp.is_finite(), "{t}");
    let alts = t["top_logprobs"].as_array().unwrap();
    assert_eq!(alts.len(), top, "{t}");
    let values: Vec<f64> = alts
        .iter()
        .map(|a| a["logprob"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{t}");
    assert!(
        values.iter().map(|v| v.exp()).sum::<f64>() <= 1.0 + 1e-4,
        "{t}"
    );
    assert_eq!(
        alts[0]["token"], t["token"],
        "greedy takes the most likely: {t}"
    );
    assert!((values[0] - lp).abs() < 1e-5, "{t}");
    let bytes: Vec<u8> = (t["bytes"].as_array().unwrap().iter())
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        t["token"].as_str().unwrap()
    );
    t["token"].as_str().unwrap().to_string()
}

/// `logprobs` and `top_logprobs`: one entry per generated token, whose texts spell the
/// content, whole and streamed (each chunk carrying its own tokens').
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_probabilities_whole_and_streamed() {
    let s = server(bear_api::Limits::default()).await;
    // No repetition penalty, so greedy takes the most likely token of the raw distribution.
    let b = json!({"model": GEN, "max_tokens": 12, "temperature": 0, "logprobs": true,
        "top_logprobs": 3, "repeat_penalty": 1.0, "messages": [{"role": "user", "content": "Name three Dutch cities."}]});
    let (status, v) = post(&s, &b).await;
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    let content = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len() as u64,
        v["usage"]["completion_tokens"].as_u64().unwrap(),
        "{v}"
    );
    let spelled: String = content.iter().map(|t| checked_logprob(t, 3)).collect();
    assert_eq!(spelled, choice["message"]["content"].as_str().unwrap());

    let chunks = streamed(&s, &b).await;
    let (mut text, mut tokens) = (String::new(), String::new());
    let mut count = 0;
    for c in &chunks[..chunks.len() - 1] {
        let choice = &c["choices"][0];
        text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        for t in choice["logprobs"]["content"].as_array().unwrap() {
            tokens.push_str(&checked_logprob(t, 3));
            count += 1;
        }
    }
    assert_eq!(tokens, text);
    assert_eq!(text, spelled, "the stream spells what the whole answer did");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(count, usage["completion_tokens"].as_u64().unwrap());

    // Without `logprobs` there are none.
    let (_, v) = post(
        &s,
        &json!({"model": GEN, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert!(v["choices"][0]["logprobs"].is_null(), "{v}");
}

/// With tools offered under `auto`, an answer in text streams as it is generated (several
/// content chunks, spelling the whole answer's content), and no call text ever appears as
/// content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_text_streams_as_it_comes_and_calls_never_do() {
    let s = server(bear_api::Limits::default()).await;
    let b = ask(
        json!({"tool_choice": "auto", "max_tokens": 40, "messages": [
        {"role": "user", "content": "Write one friendly sentence greeting the new tenant."}]}),
    );
    let chunks = streamed(&s, &b).await;
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    let text = pieces.concat();
    assert!(
        !text.contains("<tool_call>") && !text.contains("[TOOL_CALLS]"),
        "{text}"
    );
    // The same request whole (from the result cache: the same generation).
    let (status, v) = post(&s, &b).await;
    assert_eq!(status, 200, "{v}");
    let message = &v["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "a text answer: {v}");
    assert_eq!(text.trim(), message["content"].as_str().unwrap().trim());
    assert!(pieces.len() >= 3, "streamed as generated: {pieces:?}");
}
