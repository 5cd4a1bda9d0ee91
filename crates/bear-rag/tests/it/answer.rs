//! `ask` with the real SmolLM2 generator: streamed answers with numbered sources from the right
//! document, restored PII, citations verified against their sources (strict mode keeps only
//! verified sentences), and honest refusals without generation.

use std::sync::{Arc, Mutex, OnceLock};

use bear_core::{CancellationToken, ModelId, PiiPolicy, RagConfig, SamplingParams, assets};
use bear_models::LlamaCppGenerator;
use bear_rag::answer::{NOT_VERIFIED, NOTHING_FOUND, Refusal};
use bear_rag::{Answer, AskOptions, Filter, IngestOptions};

use crate::Env;

fn generator() -> &'static LlamaCppGenerator {
    static G: OnceLock<LlamaCppGenerator> = OnceLock::new();
    G.get_or_init(|| {
        let path = crate::models_dir().join(assets::SMOLLM2_GGUF);
        assert!(path.exists(), "{}", assets::missing_hint(&path));
        let id = ModelId::new("SmolLM2-135M-Instruct.Q4_1").unwrap();
        // No prompt cache, one request at a time, all threads always: the tests compare two
        // greedy generations of one prompt word for word, which a reused prefix, a shared
        // batch (decoded in other batch shapes) or a decode on fewer threads does not promise.
        let options = bear_models::LlamaOptions {
            prompt_cache_bytes: 0,
            parallel: 1,
            adapt_threads: false,
            ..bear_models::LlamaOptions::default()
        };
        LlamaCppGenerator::load(id, &path, options).unwrap()
    })
}

const RENT: &str = "What is the monthly rent for the office at Keizersgracht?";

fn options() -> AskOptions {
    AskOptions {
        model: generator().id().clone(),
        params: SamplingParams {
            max_tokens: 48,
            temperature: 0.0,
            ..SamplingParams::default()
        },
        k: 3,
        context_tokens: 2048,
        min_similarity: RagConfig::default().min_similarity,
        filter: Filter::default(),
        strict: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stream_with_sources_and_restored_pii() {
    let env = Env::new(PiiPolicy::Tokenize);
    let c = env.collection("ask").await;
    let mut sink = |_: &bear_rag::Progress| {};
    let files = [
        "commercial-lease.pdf",
        "employment-agreement.docx",
        "loan-agreement.md",
    ]
    .map(|f| crate::corpus().join(f));
    let r = bear_rag::ingest(
        &c,
        &env.pipeline(RagConfig::default()),
        &files,
        &IngestOptions::default(),
        &mut sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.ingested.len(), 3);

    let answer = ask(&env, &c, RENT, &options()).await;
    assert!(answer.relevant);
    assert!(!answer.text.trim().is_empty());
    // `ask` has checked that the stream is the answer.
    assert!(answer.completion_tokens > 0 && answer.prompt_tokens > 0);
    assert!(answer.time_to_first_token_ms.is_some());
    let first = &answer.sources[0];
    assert!(
        first.path.ends_with("commercial-lease.pdf"),
        "{:#?}",
        answer.sources
    );
    assert!(
        answer
            .sources
            .iter()
            .any(|s| s.path.ends_with("commercial-lease.pdf") && s.page == Some(2)),
        "the rent article (p. 2) is among the sources: {:#?}",
        answer.sources
    );
    // Sources are shown restored: the IBAN stored as a token comes back for the local user.
    assert!(
        answer
            .sources
            .iter()
            .any(|s| s.text.contains("NL91ABNA0417164300")),
        "{:#?}",
        answer.sources
    );
    assert_checks_hold(&answer, RENT);
    // Strict: every sentence left has a verified citation, or the answer is the refusal.
    if answer.refusal == Some(Refusal::NothingVerified) {
        assert_eq!(answer.text, NOT_VERIFIED);
    } else {
        for (s, e) in bear_rag::verify::sentences(&answer.text) {
            assert!(
                answer
                    .checks
                    .iter()
                    .any(|c| c.sentence == (s, e) && c.verified),
                "unverified sentence kept in strict mode: {:?}",
                &answer.text[s..e]
            );
        }
    }
    // Without strict, nothing is removed and strict's sentences are among the loose answer's.
    let mut loose = options();
    loose.strict = false;
    let all = ask(
        &env,
        &c,
        "What is the monthly rent for the office at Keizersgracht?",
        &loose,
    )
    .await;
    assert_eq!(all.removed, 0);
    assert_checks_hold(&all, RENT);
    if answer.refusal.is_none() {
        for (s, e) in bear_rag::verify::sentences(&answer.text) {
            assert!(
                all.text.contains(answer.text[s..e].trim()),
                "{answer:#?}\n{all:#?}"
            );
        }
    }
    let kept = match answer.refusal {
        Some(_) => 0,
        None => bear_rag::verify::sentences(&answer.text).len(),
    };
    assert_eq!(
        answer.removed + kept,
        bear_rag::verify::sentences(&all.text).len(),
        "strict removed exactly the sentences it lacks: {answer:#?}\n{all:#?}"
    );

    // Retrieved passages that never name what the question asks about: refused, no model run.
    let off = ask(
        &env,
        &c,
        "What penalty applies to late deliveries of gearbox housings?",
        &options(),
    )
    .await;
    assert_eq!(off.refusal, Some(Refusal::KeyTermsMissing), "{off:#?}");
    assert_eq!(off.completion_tokens, 0);
    assert!(
        !off.sources.is_empty(),
        "the closest sources are listed to read"
    );

    // Nothing relevant: say so, invent nothing, run no model.
    let none = bear_rag::ask(
        &c,
        crate::embedder().as_ref(),
        env.scrubber.clone(),
        generator(),
        "Which volcano on Io erupts most often?",
        &options(),
        Box::new(|_: &str| true),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(!none.relevant);
    assert_eq!(none.text, NOTHING_FOUND);
    assert_eq!(none.refusal, Some(Refusal::NothingRelevant));
    assert_eq!(none.completion_tokens, 0);
    assert!(none.sources.is_empty());

    // A bad request fails before any model work.
    let mut bad = options();
    bad.params.max_tokens = 0;
    let err = bear_rag::ask(
        &c,
        crate::embedder().as_ref(),
        env.scrubber.clone(),
        generator(),
        "rent?",
        &bad,
        Box::new(|_: &str| true),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), bear_core::ErrorKind::InvalidRequest);
}

async fn ask(env: &Env, c: &bear_rag::Collection, question: &str, options: &AskOptions) -> Answer {
    let streamed = Arc::new(Mutex::new(String::new()));
    let s2 = streamed.clone();
    let answer = bear_rag::ask(
        c,
        crate::embedder().as_ref(),
        env.scrubber.clone(),
        generator(),
        question,
        options,
        Box::new(move |p: &str| {
            s2.lock().unwrap().push_str(p);
            true
        }),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        *streamed.lock().unwrap(),
        answer.text,
        "the stream is the answer"
    );
    answer
}

/// The answer's checks are what the checker finds in its final text (markers BEAR added
/// included), and every verified span is a real slice of its source.
fn assert_checks_hold(answer: &Answer, question: &str) {
    let sources: Vec<&str> = answer.sources.iter().map(|h| h.text.as_str()).collect();
    let again = bear_rag::verify::verify_about(&answer.text, &sources, question);
    let key = |c: &bear_rag::verify::Check| (c.sentence, c.source, c.verified, c.span, c.reason);
    assert_eq!(
        answer.checks.iter().map(key).collect::<Vec<_>>(),
        again.iter().map(key).collect::<Vec<_>>(),
        "{answer:#?}"
    );
    for c in &answer.checks {
        if let Some((s, e)) = c.span {
            assert!(
                sources[c.source - 1]
                    .get(s..e)
                    .is_some_and(|t| !t.is_empty())
            );
        }
    }
    assert!(
        answer
            .cited
            .iter()
            .all(|n| (1..=answer.sources.len()).contains(n))
    );
}
