//! The benchmark goals, as data: what each measure must reach, written once beside the code
//! that checks it. A report prints a goal's text and whether the run met it; nothing else in
//! the benches spells a threshold.

/// Which side of its threshold a measure must stay on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
}

/// One goal: a measure's id (as the bench code names it), its bound and its unit.
#[derive(Debug)]
pub(crate) struct Goal {
    pub(crate) id: &'static str,
    pub(crate) bound: Bound,
    pub(crate) unit: &'static str,
}

const fn at_least(id: &'static str, x: f64, unit: &'static str) -> Goal {
    Goal {
        id,
        bound: Bound::AtLeast(x),
        unit,
    }
}

const fn at_most(id: &'static str, x: f64, unit: &'static str) -> Goal {
    Goal {
        id,
        bound: Bound::AtMost(x),
        unit,
    }
}

/// Every goal the benches check.
pub(crate) const GOALS: &[Goal] = &[
    // Generation against llama-bench (same sources, flags and threads), and BEAR's own cost.
    at_least("models.pp512", 0.97, "×"),
    at_least("models.tg128", 0.97, "×"),
    at_least("models.tg_pairs", 0.97, "×"),
    at_most("models.wrapper_share", 3.0, "%"),
    at_most("models.rss_overhead", 150.0, " MB"),
    // Serving against llama-server -np 4 (issue 28).
    at_least("models.serving_4_streams", 0.9, "×"),
    at_most("models.prefix_ttft", 1.1, "×"),
    at_most("models.serving_rss_over_kv", 200.0, " MB"),
    // Embeddings against sentence-transformers on the same files: the default path (ONNX
    // Runtime over the fused float32 graph), issue 30.
    at_least("models.default_batch1", 2.0, "×"),
    at_least("models.default_batch32_t128", 1.5, "×"),
    at_least("models.default_batch32_t256", 1.5, "×"),
    at_least("rag.ingest_vs_python", 1.5, "×"),
    // PII detection against Presidio's pattern recognizers.
    at_least("security.detect_mbs", 100.0, " MB/s"),
    at_least("security.detect_ratio", 100.0, "×"),
    at_most("security.message_us", 10.0, " µs"),
    // The plugin sandbox.
    at_most("plugins.call_us", 50.0, " µs"),
    at_most("plugins.loop_late_p99_ms", 20.0, " ms"),
    at_most("plugins.bomb_growth_mib", 64.0 + 10.0, " MiB"),
    // Retrieval.
    at_most("rag.ingest_overhead", 15.0, "%"),
    at_most("rag.ann_p50_ms", 3.0, " ms"),
    at_least("rag.ann_recall", 0.95, ""),
    at_most("rag.flat_vs_numpy", 3.0, "×"),
    // The workflow engine.
    at_most("agents.step_memory_us", 20.0, " µs"),
    at_most("agents.step_sqlite_us", 1000.0, " µs"),
    at_most("agents.validate_run_10k_ms", 1000.0, " ms"),
    at_most("agents.postgres_vs_sqlite", 3.0, "×"),
    // The REST gateway against the same route without it, and the API's cost on generation.
    at_least("api.throughput_16", 0.9, "×"),
    at_least("api.throughput_64", 0.9, "×"),
    at_most("api.generate_cached_ms", 2.0, " ms"),
    at_most("api.generate_decoded_ms", 2.0, " ms"),
    // The web app: what its first load transfers, how late a streamed token is shown, and
    // the 1,000-document list.
    at_most("web.first_load_kb", 250.0, " KB"),
    at_most("web.token_lag_ms", 50.0, " ms"),
    at_most("web.list_render_ms", 200.0, " ms"),
    // Sealing at rest: the same collection sealed against plain.
    at_least("seal.ingest_ratio", 0.95, "×"),
    at_most("seal.ann_ratio", 1.10, "×"),
    at_most("seal.full_text_ratio", 1.10, "×"),
    at_most("seal.hybrid_ratio", 1.10, "×"),
    at_most("seal.exact_ratio", 1.05, "×"),
    // OCR against the tesseract CLI on the same pages, and a 200-page scan's ingest.
    at_most("ocr.clean_cer", 0.02, ""),
    at_most("ocr.cer_gap_points", 0.0, " points"),
    at_least("ocr.speed_ratio", 1.5, "×"),
    at_most("ocr.scan_rss_mib", 1024.0, " MiB"),
];

/// The goal `id`. Panics on an unknown id: that is a bug in the bench code, which the tidy
/// test `every_goal_is_checked_and_every_check_has_a_goal` catches.
pub(crate) fn goal(id: &str) -> &'static Goal {
    GOALS
        .iter()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("no benchmark goal `{id}`"))
}

impl Goal {
    /// `>= 0.97×`, `<= 3 ms`.
    pub(crate) fn text(&self) -> String {
        match self.bound {
            Bound::AtLeast(x) => format!(">= {x}{}", self.unit),
            Bound::AtMost(x) => format!("<= {x}{}", self.unit),
        }
    }

    /// Whether `value` meets the goal (NaN, a measure that failed, never does).
    pub(crate) fn met(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtLeast(x) => value >= x,
            Bound::AtMost(x) => value <= x,
        }
    }

    /// The report's goal cell: the goal and whether `value` met it.
    pub(crate) fn cell(&self, value: f64) -> String {
        let verdict = if self.met(value) {
            "met"
        } else {
            "**not met**"
        };
        format!("{} ({verdict})", self.text())
    }
}

/// The goal cell of `id` for `value`.
pub(crate) fn cell(id: &str, value: f64) -> String {
    goal(id).cell(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_have_unique_ids_and_judge_both_ways() {
        let mut ids: Vec<&str> = GOALS.iter().map(|g| g.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), GOALS.len(), "duplicate goal ids");
        let g = goal("models.pp512");
        assert!(g.met(0.97) && g.met(1.2) && !g.met(0.969) && !g.met(f64::NAN));
        assert_eq!(g.cell(0.9), ">= 0.97× (**not met**)");
        let g = goal("rag.ann_p50_ms");
        assert!(g.met(2.0) && !g.met(3.1));
        assert_eq!(g.cell(1.97), "<= 3 ms (met)");
    }

    /// Every goal is looked up by the bench code, and every id the code looks up is a goal.
    #[test]
    fn every_goal_is_checked_and_every_check_has_a_goal() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench");
        let code: String = ["mod.rs", "web.rs", "seal.rs", "serving.rs", "ocr.rs"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
            .collect();
        for g in GOALS {
            assert!(
                code.contains(&format!("\"{}\"", g.id)),
                "goal `{}` is never checked",
                g.id
            );
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find("cell(\"") {
            rest = &rest[i + 6..];
            let id = &rest[..rest.find('"').unwrap()];
            assert!(GOALS.iter().any(|g| g.id == id), "no goal `{id}`");
        }
    }
}
