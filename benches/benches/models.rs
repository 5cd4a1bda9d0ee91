//! bear-models benchmarks: llama.cpp generation through BEAR's wrapper (pp512, tg128, the
//! wrapper's own per-token cost) and sentence embeddings (candle and ONNX Runtime, batch 1 and
//! and 32, 32- and 128-token inputs). `cargo xtask bench models` runs the peers (llama-bench,
//! Python sentence-transformers) in the same run and prints the ratios.
//!
//! Each iteration reports only the phase it names (prompt processing, or token generation), the
//! way llama-bench does, so the numbers are comparable.

use std::hint::black_box;
use std::time::Duration;

use bear_core::{
    CancellationToken, Dirs, GenerationRequest, ModelId, Prompt, Redacted, SamplingParams, assets,
};
use bear_models::{CandleEmbedder, LlamaCppGenerator, LlamaOptions, OrtEmbedder};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn dirs() -> Dirs {
    Dirs::from_env(|k| std::env::var_os(k)).expect("HOME is set")
}

fn threads() -> u32 {
    std::env::var("BEAR_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            let m = bear_hw::Probe::probe(&bear_hw::SysProbe, &std::env::temp_dir());
            bear_hw::recommend(&m).inference_threads as u32
        })
}

fn generator() -> LlamaCppGenerator {
    let path = dirs().models_dir.join(assets::SMOLLM2_GGUF);
    assert!(path.exists(), "{}", assets::missing_hint(&path));
    let t = threads();
    LlamaCppGenerator::load(
        ModelId::new("SmolLM2-135M-Instruct.Q4_1").unwrap(),
        &path,
        // No prompt cache: pp512 repeats one prompt, which the cache would supply all but one
        // token of; llama-bench decodes it whole every time.
        LlamaOptions {
            context_length: 1024,
            threads: t,
            prompt_cache_bytes: 0,
            ..LlamaOptions::default()
        },
    )
    .unwrap()
}

fn request(prompt: String, max_tokens: u32) -> GenerationRequest {
    GenerationRequest {
        model: ModelId::new("SmolLM2-135M-Instruct.Q4_1").unwrap(),
        prompt: Prompt::Text(Redacted::new(prompt)),
        params: SamplingParams {
            max_tokens,
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..SamplingParams::default()
        },
    }
}

/// A prompt of exactly `n` tokens for this model (a contract clause, repeated and cut).
fn prompt_of(g: &LlamaCppGenerator, n: usize) -> String {
    let clause = "The Supplier shall indemnify the Customer against all losses arising from any \
                  breach of the warranties in clause 7, save where caused by the Customer. ";
    let mut text = clause.repeat(n / 20 + 2);
    loop {
        let len = g
            .tokenize_prompt(&Prompt::Text(Redacted::new(text.clone())))
            .unwrap()
            .len();
        if len <= n {
            return text;
        }
        // Trim a word at a time until the count is right.
        let cut = text.trim_end().rfind(' ').unwrap_or(0);
        text.truncate(cut);
    }
}

fn generation(c: &mut Criterion) {
    let g = generator();
    let mut group = c.benchmark_group("generation");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(20));

    let pp = prompt_of(&g, 512);
    group.throughput(Throughput::Elements(512));
    group.bench_function("pp512", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut sink = |_: &str| true;
                let (_, t) = g
                    .generate_blocking(
                        &request(pp.clone(), 1),
                        &mut sink,
                        &CancellationToken::new(),
                    )
                    .unwrap();
                // Scale to exactly 512 tokens in case the tokenizer landed a few short.
                total +=
                    Duration::from_secs_f64(t.prompt_seconds * 512.0 / f64::from(t.prompt_tokens));
            }
            total
        })
    });

    // A counting prompt keeps greedy decoding going for all 128 tokens.
    let tg = "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5,".to_string();
    group.throughput(Throughput::Elements(128));
    group.bench_function("tg128", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut sink = |p: &str| {
                    black_box(p);
                    true
                };
                let (_, t) = g
                    .generate_blocking(
                        &request(tg.clone(), 128),
                        &mut sink,
                        &CancellationToken::new(),
                    )
                    .unwrap();
                total += Duration::from_secs_f64(
                    t.generation_seconds * 128.0 / f64::from(t.generated_tokens.max(1)),
                );
            }
            total
        })
    });

    // BEAR's own per-token work: generation time outside llama.cpp's decode, per token.
    group.throughput(Throughput::Elements(1));
    group.bench_function("wrapper_per_token", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut sink = |_: &str| true;
                let (_, t) = g
                    .generate_blocking(
                        &request(tg.clone(), 64),
                        &mut sink,
                        &CancellationToken::new(),
                    )
                    .unwrap();
                let own = (t.generation_seconds - t.decode_seconds).max(0.0);
                total += Duration::from_secs_f64(own / f64::from(t.generated_tokens.max(1)));
            }
            total
        })
    });
    group.finish();
}

/// `n` texts of about `tokens` WordPiece tokens each.
fn texts(n: usize, tokens: usize) -> Vec<String> {
    let words = "the parties agree that any dispute arising out of this agreement shall be \
                 referred to arbitration in amsterdam under the rules then in force";
    let words: Vec<&str> = words.split(' ').collect();
    (0..n)
        .map(|i| {
            (0..tokens.saturating_sub(2))
                .map(|j| words[(i + j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn embeddings(c: &mut Criterion) {
    let d = dirs();
    let minilm = d.models_dir.join(assets::MINILM_DIR);
    let candle = CandleEmbedder::load(ModelId::new("all-MiniLM-L6-v2").unwrap(), &minilm).unwrap();
    let ort_of = |id: &str, file: &str| {
        OrtEmbedder::load(
            ModelId::new(id).unwrap(),
            &d.models_dir.join(file),
            &minilm,
            &bear_models::ort_dylib_candidates(None, &d.models_dir),
            threads() as usize,
        )
        .unwrap()
    };
    // The default path (the fused float32 graph `cargo xtask models` writes) and the int8
    // arithmetic graph it derives.
    let fused = ort_of("all-MiniLM-L6-v2-fused", assets::MINILM_FUSED_ONNX);
    let int8 = ort_of(
        "all-MiniLM-L6-v2-int8-dynamic",
        assets::MINILM_INT8_DYNAMIC_ONNX,
    );
    let mut group = c.benchmark_group("embeddings");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for tokens in [32usize, 128, 256] {
        for batch in [1usize, 32] {
            let input = texts(batch, tokens);
            group.throughput(Throughput::Elements(batch as u64));
            let id = format!("b{batch}_t{tokens}");
            group.bench_with_input(BenchmarkId::new("candle", &id), &input, |b, input| {
                b.iter(|| candle.embed_blocking(black_box(input)).unwrap())
            });
            group.bench_with_input(BenchmarkId::new("ort_fused", &id), &input, |b, input| {
                b.iter(|| fused.embed_blocking(black_box(input)).unwrap())
            });
            group.bench_with_input(BenchmarkId::new("ort_int8", &id), &input, |b, input| {
                b.iter(|| int8.embed_blocking(black_box(input)).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, generation, embeddings);
criterion_main!(benches);
