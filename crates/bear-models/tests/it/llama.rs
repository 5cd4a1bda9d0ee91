//! LlamaCppGenerator on the real SmolLM2 GGUF: determinism, streaming, stop sequences,
//! cancellation, limits, JSON-schema-constrained output and bad input.

use std::sync::{Arc, Mutex, OnceLock};

use bear_core::{
    CancellationToken, ChatMessage, ChatRole, ErrorKind, FinishReason, GenerationRequest, ModelId,
    Prompt, Redacted, SamplingParams, TextGenerator,
};
use bear_models::{Error, LlamaCppGenerator, LlamaOptions, Overflow};

use crate::asset;

const ID: &str = "SmolLM2-135M-Instruct.Q4_1";

/// SmolLM2 with `options`.
fn load(options: LlamaOptions) -> LlamaCppGenerator {
    LlamaCppGenerator::load(
        ModelId::new(ID).unwrap(),
        &asset(bear_core::assets::SMOLLM2_GGUF),
        options,
    )
    .expect("SmolLM2 loads")
}

/// A generation whose prompt came from the cache but for its last token, continuing `starts`.
fn all_but_one_reused(
    (g, t): &(bear_core::Generation, bear_models::GenerationTimings),
    starts: &str,
) {
    assert_eq!(g.prompt_cached_tokens, g.prompt_tokens - 1);
    assert_eq!(t.prompt_tokens, 1);
    assert!(g.text.expose().starts_with(starts), "{:?}", g.text.expose());
}

fn generator() -> &'static LlamaCppGenerator {
    static GEN: OnceLock<LlamaCppGenerator> = OnceLock::new();
    GEN.get_or_init(|| {
        // No prompt cache, one request at a time, all threads always: these tests compare
        // greedy runs word for word, which a reused prefix, a batch shared with other tests'
        // requests (decoded in other batch shapes) or a decode on fewer threads does not
        // promise.
        load(LlamaOptions {
            prompt_cache_bytes: 0,
            parallel: 1,
            adapt_threads: false,
            ..LlamaOptions::default()
        })
    })
}

fn request(prompt: &str, edit: impl FnOnce(&mut SamplingParams)) -> GenerationRequest {
    let mut params = SamplingParams {
        max_tokens: 24,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    edit(&mut params);
    GenerationRequest {
        model: ModelId::new(ID).unwrap(),
        prompt: Prompt::Text(Redacted::new(prompt.into())),
        params,
    }
}

/// Generates, collecting the streamed pieces.
fn run(req: &GenerationRequest) -> (bear_core::Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let mut sink = |p: &str| {
        pieces.push(p.to_string());
        true
    };
    let (g, _) = generator()
        .generate_blocking(req, &mut sink, &CancellationToken::new())
        .unwrap();
    (g, pieces)
}

const PROMPT: &str = "The three most important duties of a lawyer to a client are";

#[test]
fn greedy_output_is_identical_run_to_run_and_streams() {
    let req = request(PROMPT, |_| {});
    let (a, pieces) = run(&req);
    let (b, _) = run(&req);
    assert!(!a.text.expose().trim().is_empty());
    assert_eq!(a.text.expose(), b.text.expose());
    assert_eq!(pieces.concat(), *a.text.expose());
    assert!(a.prompt_tokens > 5);
    assert!(a.completion_tokens > 0 && a.completion_tokens <= 24);
    assert!(a.tokens_per_second() > 0.0);
}

#[test]
fn a_fixed_seed_reproduces_sampled_output() {
    let req = request(PROMPT, |p| {
        p.temperature = 0.9;
        p.seed = Some(42);
    });
    assert_eq!(run(&req).0.text.expose(), run(&req).0.text.expose());
}

#[test]
fn max_tokens_is_honoured() {
    let (g, _) = run(&request(PROMPT, |p| p.max_tokens = 3));
    assert_eq!(g.completion_tokens, 3);
    assert_eq!(g.finish_reason, FinishReason::Length);
}

#[test]
fn stop_sequences_cut_before_the_match_and_never_appear() {
    let (full, _) = run(&request(PROMPT, |p| p.max_tokens = 40));
    let text = full.text.expose().clone();
    // Stop on the second word of the greedy answer: it is produced, then withheld.
    let word = text
        .split_whitespace()
        .nth(1)
        .expect("the answer has two words")
        .to_string();
    let (g, pieces) = run(&request(PROMPT, |p| {
        p.max_tokens = 40;
        p.stop = vec![word.clone()];
    }));
    assert_eq!(g.finish_reason, FinishReason::StopSequence);
    assert_eq!(*g.text.expose(), text[..text.find(&word).unwrap()]);
    assert!(!pieces.concat().contains(&word));
}

#[test]
fn a_sink_returning_false_cancels_within_one_token() {
    let mut seen = 0;
    let mut sink = |_: &str| {
        seen += 1;
        seen < 2
    };
    let (g, _) = generator()
        .generate_blocking(
            &request(PROMPT, |p| p.max_tokens = 50),
            &mut sink,
            &CancellationToken::new(),
        )
        .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(
        g.completion_tokens <= 3,
        "{} tokens after cancel",
        g.completion_tokens
    );
}

#[test]
fn a_cancelled_token_stops_before_decoding() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let mut sink = |_: &str| true;
    let (g, _) = generator()
        .generate_blocking(&request(PROMPT, |_| {}), &mut sink, &cancel)
        .unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert_eq!(g.completion_tokens, 0);
}

#[test]
fn chat_messages_use_the_models_template() {
    let req = GenerationRequest {
        model: ModelId::new(ID).unwrap(),
        prompt: Prompt::Chat(vec![
            ChatMessage::new(
                ChatRole::System,
                "You are a concise legal assistant.".into(),
            ),
            ChatMessage::new(ChatRole::User, "What is a contract? One sentence.".into()),
        ]),
        params: SamplingParams {
            max_tokens: 30,
            temperature: 0.0,
            ..SamplingParams::default()
        },
    };
    let tokens = generator().tokenize_prompt(&req.prompt).unwrap();
    // The chatml markers became single control tokens, not text.
    assert!(tokens.len() < 40, "{} tokens", tokens.len());
    let (g, _) = run(&req);
    assert!(!g.text.expose().trim().is_empty());
    assert!(!g.text.expose().contains("<|im_start|>"));
}

#[test]
fn a_prompt_over_the_context_is_rejected_or_truncated() {
    let long = "The parties agree to the terms. ".repeat(40);
    let small = |overflow| {
        load(LlamaOptions {
            context_length: 64,
            overflow,
            ..LlamaOptions::default()
        })
    };
    let mut sink = |_: &str| true;
    let req = request(&long, |p| p.max_tokens = 4);
    let err = small(Overflow::Reject)
        .generate_blocking(&req, &mut sink, &CancellationToken::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidRequest(ref m) if m.contains("context holds 64")),
        "{err}"
    );
    let (g, _) = small(Overflow::TruncateStart)
        .generate_blocking(&req, &mut sink, &CancellationToken::new())
        .unwrap();
    assert!(g.prompt_tokens < 64);
    assert!(g.completion_tokens >= 1);
}

#[test]
fn bad_parameters_are_typed_errors() {
    let mut sink = |_: &str| true;
    type Edit = Box<dyn Fn(&mut SamplingParams)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("", Box::new(|_| {})),
        ("   ", Box::new(|_| {})),
        (PROMPT, Box::new(|p| p.max_tokens = 0)),
        (PROMPT, Box::new(|p| p.max_tokens = 10_000_000)),
        (PROMPT, Box::new(|p| p.temperature = -1.0)),
        (PROMPT, Box::new(|p| p.top_p = 0.0)),
        (PROMPT, Box::new(|p| p.top_p = 1.5)),
    ];
    for (prompt, edit) in cases {
        let req = request(prompt, |p| edit(p));
        let err = generator()
            .generate_blocking(&req, &mut sink, &CancellationToken::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    }
}

#[tokio::test]
async fn the_trait_streams_queues_and_checks_the_model_id() {
    let model = generator();
    let pieces = Arc::new(Mutex::new(String::new()));
    let p2 = pieces.clone();
    let sink = Box::new(move |p: &str| {
        p2.lock().unwrap().push_str(p);
        true
    });
    let g = model
        .generate(request(PROMPT, |_| {}), sink, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(*pieces.lock().unwrap(), *g.text.expose());

    // Two concurrent requests both complete (they queue on the model).
    let (a, b) = tokio::join!(
        model.generate(
            request(PROMPT, |_| {}),
            Box::new(|_: &str| true),
            CancellationToken::new()
        ),
        model.generate(
            request(PROMPT, |_| {}),
            Box::new(|_: &str| true),
            CancellationToken::new()
        ),
    );
    assert_eq!(a.unwrap().text.expose(), b.unwrap().text.expose());

    let mut other = request(PROMPT, |_| {});
    other.model = ModelId::new("no-such-model").unwrap();
    let err = model
        .generate(other, Box::new(|_: &str| true), CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn bad_files_never_reach_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let load = |p: &std::path::Path| {
        LlamaCppGenerator::load(ModelId::new("x").unwrap(), p, LlamaOptions::default())
    };
    let missing = load(&dir.path().join("missing.gguf")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model").unwrap();
    assert!(matches!(
        load(&text).unwrap_err(),
        Error::InvalidModel { .. }
    ));

    let real = std::fs::read(asset(bear_core::assets::SMOLLM2_GGUF)).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &real[..real.len() / 3]).unwrap();
    assert!(matches!(
        load(&cut).unwrap_err(),
        Error::InvalidModel { .. }
    ));

    // A well-formed file of an architecture BEAR does not run.
    let mut other = real[..].to_vec();
    let at = other
        .windows(5)
        .position(|w| w == b"llama")
        .expect("the architecture string");
    other[at..at + 5].copy_from_slice(b"xlstm");
    let alien = dir.path().join("alien.gguf");
    std::fs::write(&alien, &other).unwrap();
    assert!(matches!(
        load(&alien).unwrap_err(),
        Error::UnsupportedArchitecture { .. }
    ));
}

#[tokio::test]
async fn dropping_the_future_stops_decoding() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let model = generator();
    let count = Arc::new(AtomicU32::new(0));
    let first = Arc::new(tokio::sync::Notify::new());
    let (c2, f2) = (count.clone(), first.clone());
    let sink = Box::new(move |_: &str| {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            f2.notify_one();
        }
        true
    });
    let long = request("Count from 1 to 1000, separated by commas: 1, 2, 3,", |p| {
        p.max_tokens = 400
    });
    {
        let fut = model.generate_queued(long, sink, CancellationToken::new());
        tokio::pin!(fut);
        tokio::select! {
            _ = &mut fut => panic!("generation finished before it was dropped"),
            () = first.notified() => {}
        }
        // `fut` is dropped here, mid-generation.
    }
    // The next request queues behind the dropped one, so when it runs the first has stopped.
    model
        .generate_queued(
            request(PROMPT, |p| p.max_tokens = 1),
            Box::new(|_: &str| true),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let pieces = count.load(Ordering::SeqCst);
    assert!(
        pieces < 20,
        "{pieces} pieces were streamed after the drop of a 400-token request"
    );
}

/// An extraction schema: the output must parse and validate, greedy and sampled.
const PARTIES: &str = r#"{
  "type": "object",
  "properties": {
    "landlord": { "type": "string", "maxLength": 40 },
    "tenant": { "type": "string", "maxLength": 40 },
    "monthly_rent_eur": { "type": "integer" },
    "signed": { "type": "boolean" }
  },
  "required": ["landlord", "tenant", "monthly_rent_eur", "signed"],
  "additionalProperties": false
}"#;

#[test]
fn a_json_schema_constrains_the_output_to_valid_json() {
    let schema: serde_json::Value = serde_json::from_str(PARTIES).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let prompt = "Lease: Canal Estates B.V. lets the office to Brightwater Legal LLP for EUR 4,250 \
a month. Signed on 1 March 2024.\nThe lease as JSON:";
    for (temperature, seed) in [(0.0, None), (0.8, Some(11))] {
        let req = request(prompt, |p| {
            p.max_tokens = 160;
            p.temperature = temperature;
            p.seed = seed;
            p.json_schema = Some(PARTIES.into());
        });
        let (g, pieces) = run(&req);
        assert_eq!(g.finish_reason, FinishReason::Stop, "{}", g.text.expose());
        assert_eq!(pieces.concat(), *g.text.expose());
        let out: serde_json::Value = serde_json::from_str(g.text.expose())
            .unwrap_or_else(|e| panic!("{e}: {}", g.text.expose()));
        let errors: Vec<String> = validator.iter_errors(&out).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {out}");
    }
    // The same prompt without the schema is free text, not this object.
    let (free, _) = run(&request(prompt, |p| p.max_tokens = 40));
    let parsed = serde_json::from_str::<serde_json::Value>(free.text.expose());
    assert!(parsed.map_or(true, |v| !validator.is_valid(&v)));
}

#[test]
fn bad_json_schemas_are_typed_errors_naming_the_problem() {
    let mut sink = |_: &str| true;
    let huge = format!(
        r#"{{"type":"object","properties":{{{}}}}}"#,
        (0..3000)
            .map(|i| format!(r#""field_{i}":{{"type":"string"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let cases = [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (
            r##"{"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}"##,
            "json_schema",
        ),
        (r#"{"type": "strang"}"#, "json_schema"),
        (huge.as_str(), "json_schema"),
    ];
    for (schema, says) in cases {
        let req = request(PROMPT, |p| p.json_schema = Some(schema.into()));
        let err = generator()
            .generate_blocking(&req, &mut sink, &CancellationToken::new())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    // A recursive schema is a grammar with a recursive rule: it works.
    let tree = r##"{"$defs": {"node": {"type": "object", "properties": {"name": {"type": "string",
        "maxLength": 8}, "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}},
        "required": ["name"]}}, "$ref": "#/$defs/node"}"##;
    let req = request("A family tree as JSON:", |p| {
        p.max_tokens = 120;
        p.json_schema = Some(tree.into());
    });
    let (g, _) = run(&req);
    if g.finish_reason == FinishReason::Stop {
        let v: serde_json::Value = serde_json::from_str(g.text.expose()).unwrap();
        assert!(v["name"].is_string(), "{v}");
    } else {
        assert_eq!(g.finish_reason, FinishReason::Length, "{}", g.text.expose());
    }
}

/// A second prompt sharing a prefix with the first decodes only the rest: the cached count
/// says how much was reused and the timings how much was decoded. The continuations asked for
/// have wide margins, so a wrongly reused cache (stale entries, wrong positions) would show,
/// while the float noise of decoding in other batches would not. With no cache bytes nothing
/// is reused.
#[test]
fn a_shared_prefix_is_decoded_once() {
    let with_cache = |prompt_cache_bytes| {
        load(LlamaOptions {
            prompt_cache_bytes,
            ..LlamaOptions::default()
        })
    };
    let preamble = "The lease of the offices at Keizersgracht 221 in Amsterdam runs for five \
                    years from 1 March 2024. "
        .repeat(5);
    let count = |from: u32| {
        let numbers: Vec<String> = (1..=from).map(|n| n.to_string()).collect();
        let prompt = format!(
            "{preamble}\nCount from 1 to 1000, separated by commas: {},",
            numbers.join(", ")
        );
        request(&prompt, |p| p.max_tokens = 6)
    };
    let go = |g: &LlamaCppGenerator, req: &GenerationRequest| {
        let mut sink = |_: &str| true;
        g.generate_blocking(req, &mut sink, &CancellationToken::new())
            .unwrap()
    };
    let cached = with_cache(256 << 20);
    let plain = with_cache(0);

    let (a, ta) = go(&cached, &count(5));
    assert_eq!(a.prompt_cached_tokens, 0);
    assert_eq!(ta.prompt_tokens, a.prompt_tokens);
    assert!(
        a.text.expose().starts_with(" 6, 7"),
        "{:?}",
        a.text.expose()
    );
    // The same prompt again: all but its last token come from the cache.
    all_but_one_reused(&go(&cached, &count(5)), " 6, 7");
    // The same preamble, counting further: the shared part is reused.
    let (b, tb) = go(&cached, &count(8));
    let shared = b.prompt_cached_tokens;
    assert!(
        shared > 60 && shared < b.prompt_tokens,
        "{shared} of {}",
        b.prompt_tokens
    );
    assert_eq!(tb.prompt_tokens, b.prompt_tokens - shared);
    assert!(
        b.text.expose().starts_with(" 9, 10"),
        "{:?}",
        b.text.expose()
    );
    let (b_plain, t) = go(&plain, &count(8));
    assert_eq!(b_plain.prompt_cached_tokens, 0);
    assert_eq!(
        t.prompt_tokens, b.prompt_tokens,
        "no cache: the whole prompt again"
    );
    assert!(
        b_plain.text.expose().starts_with(" 9, 10"),
        "{:?}",
        b_plain.text
    );
}

/// "Count from `from` to 1000" continued after `upto`: a prompt whose continuation has wide
/// margins.
fn counting(from: u32, upto: u32, edit: impl FnOnce(&mut SamplingParams)) -> GenerationRequest {
    let numbers: Vec<String> = (from..=upto).map(|n| n.to_string()).collect();
    let prompt = format!(
        "Count from {from} to 1000, separated by commas: {},",
        numbers.join(", ")
    );
    request(&prompt, edit)
}

/// Continuous batching: a request arriving while another runs starts at once beside it (its
/// text comes before the first one ends), each keeps its own limits and stop sequences, and a
/// cancelled request frees its sequence for the next at once. Two sequences: the running one
/// and the cancelled one's, which the third request can only get if it was freed.
#[test]
fn requests_join_a_running_batch_and_leave_it_when_done() {
    let g = Arc::new(load(LlamaOptions {
        prompt_cache_bytes: 0,
        parallel: 2,
        ..LlamaOptions::default()
    }));
    let log = Arc::new(Mutex::new(Vec::<&str>::new()));
    let (started, first_piece) = std::sync::mpsc::channel();
    let long = {
        let (g, log) = (g.clone(), log.clone());
        std::thread::spawn(move || {
            let mut sink = |_: &str| {
                log.lock().unwrap().push("long");
                let _ = started.send(());
                true
            };
            let req = counting(100, 102, |p| {
                p.max_tokens = 200;
                p.repeat_penalty = 1.0;
            });
            let result = g.generate_blocking(&req, &mut sink, &CancellationToken::new());
            log.lock().unwrap().push("long done");
            result.unwrap().0
        })
    };
    first_piece.recv().expect("the long request streams");

    let mut once = |_: &str| false;
    let (cancelled, _) = g
        .generate_blocking(
            &counting(1, 20, |p| p.max_tokens = 200),
            &mut once,
            &CancellationToken::new(),
        )
        .unwrap();
    assert_eq!(cancelled.finish_reason, FinishReason::Cancelled);

    let mut sink = |_: &str| {
        log.lock().unwrap().push("short");
        true
    };
    let req = counting(1, 13, |p| {
        p.max_tokens = 20;
        p.stop = vec![", 16".into()];
    });
    let (short, _) = g
        .generate_blocking(&req, &mut sink, &CancellationToken::new())
        .unwrap();
    assert_eq!(short.finish_reason, FinishReason::StopSequence);
    assert_eq!(short.text.expose(), " 14, 15");

    // A prompt longer than two batches is read in chunks, and the running stream goes on
    // between them: it gets a token at each of the newcomer's chunk steps.
    log.lock().unwrap().push("big sent");
    let text = "The tenant pays the rent monthly. ".repeat(180) + "Summarise.";
    let mut sink = |_: &str| {
        log.lock().unwrap().push("big");
        true
    };
    let big = g
        .generate_blocking(
            &request(&text, |p| p.max_tokens = 2),
            &mut sink,
            &CancellationToken::new(),
        )
        .unwrap()
        .0;
    log.lock().unwrap().push("big done");
    assert!(big.prompt_tokens > 1024, "{} tokens", big.prompt_tokens);
    let long = long.join().unwrap();
    {
        let log = log.lock().unwrap();
        let sent = log.iter().position(|e| *e == "big sent").unwrap();
        // The newcomer's first piece (or its end, had it none).
        let first = log[sent + 1..]
            .iter()
            .position(|e| e.starts_with("big"))
            .map(|i| sent + 1 + i)
            .unwrap();
        let beside = log[sent..first].iter().filter(|e| **e == "long").count();
        assert!(
            beside >= 2,
            "the running stream produced {beside} tokens while a {}-token prompt was read",
            big.prompt_tokens
        );
    }
    assert_eq!(
        (long.finish_reason, long.completion_tokens),
        (FinishReason::Length, 200),
        "{:?}",
        long.text.expose()
    );
    assert!(
        long.text.expose().starts_with(" 103, 104, 105, 106"),
        "{:?}",
        long.text.expose()
    );
    let log = log.lock().unwrap();
    let at = |what| log.iter().position(|e| *e == what).unwrap();
    assert!(
        at("short") < at("long done"),
        "the short request ran beside the long one, in the sequence the cancelled one freed"
    );
}

/// The prompt cache's second level: with one sequence, an unrelated prompt overwrites it, but
/// the earlier sequence was saved to host memory first and a later prompt sharing its prefix
/// restores it instead of decoding the prefix again.
#[test]
fn a_sequence_overwritten_by_another_prompt_is_restored_from_host_memory() {
    let g = load(LlamaOptions {
        parallel: 1,
        ..LlamaOptions::default()
    });
    let go = |preamble: &str| {
        let mut req = counting(1, 5, |p| p.max_tokens = 4);
        let Prompt::Text(text) = &req.prompt else {
            unreachable!()
        };
        req.prompt = Prompt::Text(Redacted::new(preamble.repeat(4) + text.expose()));
        let mut sink = |_: &str| true;
        g.generate_blocking(&req, &mut sink, &CancellationToken::new())
            .unwrap()
    };
    let lease = "The lease of the offices at Keizersgracht 221 runs for five years. ";
    let loan = "Under the loan agreement the borrower repays EUR 40,000 by 2027. ";
    let (first, _) = go(lease);
    assert_eq!(first.prompt_cached_tokens, 0);
    let (other, _) = go(loan);
    assert!(
        other.prompt_cached_tokens < 16,
        "{}",
        other.prompt_cached_tokens
    );
    all_but_one_reused(&go(lease), " 6,");
}

/// A newcomer whose prompt a running request's sequence already holds copies that prefix
/// (shared KV cells) instead of decoding it: the other sequence is free and empty, so only the
/// copy can supply the cached tokens.
#[test]
fn a_running_sequences_prefix_is_copied_to_a_newcomer() {
    let g = Arc::new(load(LlamaOptions {
        parallel: 2,
        ..LlamaOptions::default()
    }));
    let counting_on = |max_tokens| {
        counting(100, 102, |p| {
            p.max_tokens = max_tokens;
            p.repeat_penalty = 1.0;
        })
    };
    let (started, first_piece) = std::sync::mpsc::channel();
    let long = {
        let (g, req) = (g.clone(), counting_on(200));
        std::thread::spawn(move || {
            let mut sink = |_: &str| {
                let _ = started.send(());
                true
            };
            g.generate_blocking(&req, &mut sink, &CancellationToken::new())
                .unwrap()
                .0
        })
    };
    first_piece.recv().unwrap();
    let mut sink = |_: &str| true;
    let copied = g
        .generate_blocking(&counting_on(6), &mut sink, &CancellationToken::new())
        .unwrap();
    all_but_one_reused(&copied, " 103,");
    let long = long.join().unwrap();
    assert_eq!(long.completion_tokens, 200, "{:?}", long.text.expose());
}
