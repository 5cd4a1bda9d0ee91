//! Advice derived from a [`Machine`]: threads, batch sizes, model fit, mmap/mlock, GPU layers.
//!
//! Every function here is pure, so the rules are tested on synthetic machines. The numbers are
//! deliberately conservative: telling a lawyer a model fits and then swapping the machine to a
//! halt is worse than suggesting a smaller model.

use serde::{Deserialize, Serialize};

use crate::probe::Machine;
use crate::{GIB, MIB};

/// Most threads worth giving one generation: past this, token generation is memory-bound and
/// more threads only add contention.
const MAX_INFERENCE_THREADS: usize = 32;

/// What BEAR recommends for this machine, independent of any one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Threads for llama.cpp generation: the physical cores, capped at 32.
    pub inference_threads: usize,
    /// Sentences per embedding batch.
    pub embedding_batch_size: usize,
    /// Requests a generation model serves at once (continuous batching): more streams share
    /// each pass over the weights, at one KV cache per stream.
    #[serde(default = "one")]
    pub parallel_requests: usize,
    /// Memory that resident models may use together, leaving the safety margin free.
    pub model_memory_budget_bytes: u64,
    /// Memory always left free for the OS and other programs.
    pub safety_margin_bytes: u64,
    /// Map model files instead of reading them: always advised for local files.
    pub mmap: bool,
    /// Whether locking model pages in RAM is possible here.
    pub mlock: LockAdvice,
    /// GPU offload for a model that fills the budget.
    pub gpu: GpuOffload,
}

/// Advice on `mlock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAdvice {
    /// Whether to lock.
    pub recommended: bool,
    /// Why, in one sentence.
    pub reason: String,
}

/// How many model layers to put on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum GpuOffload {
    /// CPU only.
    None,
    /// Every layer fits on the GPU.
    All,
    /// Only this fraction of the layers fits.
    Partial {
        /// Share of layers, in (0, 1).
        fraction: f32,
    },
}

/// The shape of a model's KV cache, when known from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvShape {
    /// Transformer layers.
    pub layers: u32,
    /// Width of K (and of V) per token per layer: KV heads times head size.
    pub kv_dim: u32,
}

/// Whether a model fits in memory, with the numbers behind the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Size of the model file.
    pub model_bytes: u64,
    /// Context length assumed.
    pub context_length: u32,
    /// Estimated KV cache at that context (f16 keys and values).
    pub kv_cache_bytes: u64,
    /// Whether `kv_cache_bytes` came from the model's real shape or from a size heuristic.
    pub kv_estimate: &'static str,
    /// Compute buffers and runtime overhead.
    pub overhead_bytes: u64,
    /// Model + KV cache + overhead.
    pub required_bytes: u64,
    /// Memory available now.
    pub available_bytes: u64,
    /// Memory kept free.
    pub safety_margin_bytes: u64,
    /// Whether `required_bytes <= available_bytes - safety_margin_bytes`.
    pub fits: bool,
    /// The verdict in one sentence.
    pub reason: String,
    /// Map the file.
    pub mmap: bool,
    /// Lock its pages.
    pub mlock: LockAdvice,
    /// GPU layers.
    pub gpu: GpuOffload,
    /// Threads to generate with.
    pub threads: usize,
}

/// Memory kept free for everything else: 10% of RAM, at least 512 MiB.
fn safety_margin(m: &Machine) -> u64 {
    (m.memory.total_bytes / 10).max(512 * MIB)
}

fn one() -> usize {
    1
}

/// General recommendations for this machine.
pub fn recommend(m: &Machine) -> Recommendations {
    let margin = safety_margin(m);
    let budget = m.memory.available_bytes.saturating_sub(margin);
    let cores = m.cpu.physical_cores.max(1).min(m.cpu.logical_cores.max(1));
    let available = m.memory.available_bytes;
    let embedding_batch_size = if available < 2 * GIB {
        8
    } else if available < 8 * GIB {
        16
    } else if cores >= 16 && available >= 32 * GIB {
        64
    } else {
        32
    };
    let parallel_requests = if available < 2 * GIB {
        1
    } else if available < 4 * GIB {
        2
    } else if cores < 8 || available < 32 * GIB {
        4
    } else {
        8
    };
    Recommendations {
        inference_threads: cores.min(MAX_INFERENCE_THREADS),
        embedding_batch_size,
        parallel_requests,
        model_memory_budget_bytes: budget,
        safety_margin_bytes: margin,
        mmap: true,
        mlock: lock_advice(m, budget),
        gpu: gpu_offload(m, budget),
    }
}

/// Whether a model of `model_bytes` at `context_length` fits, and how to run it.
///
/// `kv` is the model's real KV shape when its metadata is known; without it the KV cache is
/// estimated from the file size, erring high.
pub fn fit_model(
    m: &Machine,
    model_bytes: u64,
    context_length: u32,
    kv: Option<KvShape>,
) -> FitReport {
    let Footprint {
        kv_cache_bytes,
        kv_estimate,
        overhead_bytes,
        required_bytes: required,
    } = model_footprint(model_bytes, context_length, kv);
    let margin = safety_margin(m);
    let usable = m.memory.available_bytes.saturating_sub(margin);
    let fits = required <= usable;
    let reason = if fits {
        format!(
            "fits: needs {} of the {} usable ({} available, {} kept free)",
            human(required),
            human(usable),
            human(m.memory.available_bytes),
            human(margin)
        )
    } else {
        format!(
            "does not fit: needs {} but only {} is usable ({} available, {} kept free); \
             use a smaller quantisation or a shorter context",
            human(required),
            human(usable),
            human(m.memory.available_bytes),
            human(margin)
        )
    };
    let rec = recommend(m);
    let mlock = if !fits {
        LockAdvice {
            recommended: false,
            reason: "the model does not fit, so locking it would starve the system".into(),
        }
    } else if required > usable / 2 {
        LockAdvice {
            recommended: false,
            reason: "the model needs more than half the usable memory; let the OS page it".into(),
        }
    } else {
        lock_advice(m, required)
    };
    FitReport {
        model_bytes,
        context_length,
        kv_cache_bytes,
        kv_estimate,
        overhead_bytes,
        required_bytes: required,
        available_bytes: m.memory.available_bytes,
        safety_margin_bytes: margin,
        fits,
        reason,
        mmap: true,
        mlock,
        gpu: gpu_offload(m, model_bytes + kv_cache_bytes),
        threads: rec.inference_threads,
    }
}

/// Memory one loaded model needs: weights, KV cache and runtime buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// KV cache at the context length.
    pub kv_cache_bytes: u64,
    /// `model shape` or `size heuristic`.
    pub kv_estimate: &'static str,
    /// Compute buffers and runtime overhead.
    pub overhead_bytes: u64,
    /// The sum of the weights, the KV cache and the overhead.
    pub required_bytes: u64,
}

/// The memory a model of `model_bytes` needs at `context_length`, independent of the machine.
pub fn model_footprint(model_bytes: u64, context_length: u32, kv: Option<KvShape>) -> Footprint {
    let (kv_cache_bytes, kv_estimate) = match kv {
        // K and V, per layer, per token, in f16.
        Some(s) => (
            2 * u64::from(s.layers) * u64::from(s.kv_dim) * u64::from(context_length) * 2,
            "model shape",
        ),
        None => {
            let per_token = (model_bytes / 2048).clamp(16 * 1024, 512 * 1024);
            (per_token * u64::from(context_length), "size heuristic")
        }
    };
    let overhead_bytes = 64 * MIB + model_bytes / 20;
    Footprint {
        kv_cache_bytes,
        kv_estimate,
        overhead_bytes,
        required_bytes: model_bytes
            .saturating_add(kv_cache_bytes)
            .saturating_add(overhead_bytes),
    }
}

fn lock_advice(m: &Machine, bytes: u64) -> LockAdvice {
    match m.memory.mlock_limit_bytes {
        Some(limit) if limit < bytes => LockAdvice {
            recommended: false,
            reason: format!(
                "RLIMIT_MEMLOCK is {}; raise it (ulimit -l) to lock models in RAM",
                human(limit)
            ),
        },
        _ if m.memory.total_bytes < 8 * GIB => LockAdvice {
            recommended: false,
            reason: "under 8 GiB of RAM, locked pages would crowd out everything else".into(),
        },
        _ => LockAdvice {
            recommended: true,
            reason: "enough RAM and a sufficient lock limit: locking avoids page-outs mid-answer"
                .into(),
        },
    }
}

fn gpu_offload(m: &Machine, bytes: u64) -> GpuOffload {
    let vram = m
        .gpus
        .iter()
        .filter_map(|g| g.memory_bytes)
        .max()
        .unwrap_or(0);
    // Leave a tenth of VRAM for the runtime's own buffers.
    let usable = vram - vram / 10;
    if usable == 0 || bytes == 0 {
        GpuOffload::None
    } else if usable >= bytes {
        GpuOffload::All
    } else {
        GpuOffload::Partial {
            fraction: (usable as f64 / bytes as f64) as f32,
        }
    }
}

/// Formats bytes for people: `1.5 GiB`, `120.0 MiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= GIB {
        format!("{:.1} GiB", b / GIB as f64)
    } else if bytes >= MIB {
        format!("{:.1} MiB", b / MIB as f64)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{CpuInfo, GpuInfo, MemoryInfo, SimdFeatures};

    fn machine(physical: usize, logical: usize, ram_gib: u64, avail_gib: u64) -> Machine {
        Machine {
            cpu: CpuInfo {
                model: "synthetic".into(),
                arch: "x86_64".into(),
                physical_cores: physical,
                logical_cores: logical,
                simd: SimdFeatures::default(),
            },
            memory: MemoryInfo {
                total_bytes: ram_gib * GIB,
                available_bytes: avail_gib * GIB,
                mlock_limit_bytes: None,
            },
            gpus: vec![],
            disk: None,
        }
    }

    const SMOLLM2_Q4_1: u64 = 98_362_432;
    const LLAMA_8B_Q4: u64 = 4_920_000_000;

    #[test]
    fn threads_and_batches_across_machines() {
        // (physical, logical, ram, available) -> (threads, batch, parallel requests)
        let table = [
            ((2, 2, 4, 3), (2, 16, 2)),
            ((1, 1, 1, 1), (1, 8, 1)),
            ((4, 8, 16, 12), (4, 32, 4)),
            ((64, 128, 512, 480), (32, 64, 8)),
            ((16, 32, 24, 20), (16, 32, 4)),
        ];
        for ((p, l, r, a), (threads, batch, parallel)) in table {
            let rec = recommend(&machine(p, l, r, a));
            assert_eq!(rec.inference_threads, threads, "{p} cores");
            assert_eq!(rec.embedding_batch_size, batch, "{a} GiB available");
            assert_eq!(rec.parallel_requests, parallel, "{p} cores, {a} GiB");
            assert!(rec.mmap);
        }
    }

    #[test]
    fn small_model_fits_small_machine() {
        let r = fit_model(&machine(2, 2, 4, 3), SMOLLM2_Q4_1, 2048, None);
        assert!(r.fits, "{}", r.reason);
        assert_eq!(
            r.required_bytes,
            r.model_bytes + r.kv_cache_bytes + r.overhead_bytes
        );
        assert!(r.reason.starts_with("fits"));
        assert!(!r.mlock.recommended, "4 GiB machines should not lock");
    }

    #[test]
    fn big_model_does_not_fit_small_machine_but_fits_big_one() {
        let small = fit_model(&machine(2, 2, 4, 3), LLAMA_8B_Q4, 8192, None);
        assert!(!small.fits);
        assert!(small.reason.contains("smaller quantisation"));
        let big = fit_model(&machine(64, 128, 512, 480), LLAMA_8B_Q4, 8192, None);
        assert!(big.fits);
        assert!(big.mlock.recommended);
        assert_eq!(big.threads, 32);
    }

    #[test]
    fn exact_kv_shape_is_used() {
        // SmolLM2-135M: 30 layers, 3 KV heads x 64.
        let shape = KvShape {
            layers: 30,
            kv_dim: 192,
        };
        let r = fit_model(&machine(2, 2, 4, 3), SMOLLM2_Q4_1, 2048, Some(shape));
        assert_eq!(r.kv_cache_bytes, 2 * 30 * 192 * 2048 * 2);
        assert_eq!(r.kv_estimate, "model shape");
    }

    #[test]
    fn context_pushes_a_model_over_the_edge() {
        let m = machine(8, 16, 8, 7);
        assert!(fit_model(&m, 4 * GIB, 2048, None).fits);
        assert!(!fit_model(&m, 4 * GIB, 32_768, None).fits);
    }

    #[test]
    fn mlock_respects_the_rlimit() {
        let mut m = machine(8, 16, 32, 30);
        m.memory.mlock_limit_bytes = Some(8 * MIB);
        let r = fit_model(&m, SMOLLM2_Q4_1, 2048, None);
        assert!(!r.mlock.recommended);
        assert!(r.mlock.reason.contains("RLIMIT_MEMLOCK"));
    }

    #[test]
    fn gpu_layers() {
        let mut m = machine(8, 16, 32, 30);
        assert_eq!(recommend(&m).gpu, GpuOffload::None);
        m.gpus.push(GpuInfo {
            vendor: "nvidia".into(),
            name: "x".into(),
            memory_bytes: Some(8 * GIB),
        });
        assert_eq!(fit_model(&m, GIB, 2048, None).gpu, GpuOffload::All);
        match fit_model(&m, 12 * GIB, 2048, None).gpu {
            GpuOffload::Partial { fraction } => assert!(fraction > 0.4 && fraction < 0.7),
            other => panic!("expected partial offload, got {other:?}"),
        }
        // A GPU whose memory is unknown gets nothing offloaded.
        m.gpus[0].memory_bytes = None;
        assert_eq!(fit_model(&m, GIB, 2048, None).gpu, GpuOffload::None);
    }

    #[test]
    fn zero_memory_never_panics() {
        let r = fit_model(&machine(1, 1, 0, 0), 0, 16, None);
        assert!(!r.fits || r.required_bytes == 0);
        let _ = recommend(&machine(0, 0, 0, 0));
    }
}
