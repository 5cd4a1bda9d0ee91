// Models with status, size, quantisation and metrics (load and unload for admins), and this
// machine's hardware profile with BEAR's recommendations.
import { useEffect, useState } from "preact/hooks";
import { api, describe, get } from "../api";
import type { ModelRow, Session } from "../types";
import { Busy, ErrorBox, bytes } from "../components/ui";

export function Models({ session }: { session: Session }) {
  const [models, setModels] = useState<ModelRow[] | null>(null);
  const [hw, setHw] = useState<Hw | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [working, setWorking] = useState<string | null>(null);
  const load = () => get<ModelRow[]>("/api/v1/models").then(setModels, (e) => setError(describe(e)));
  useEffect(() => {
    load();
    get<Hw>("/api/v1/hw").then(setHw, (e) => setError(describe(e)));
  }, []);
  const manage = async (action: "load" | "unload", id: string) => {
    setWorking(`${action === "load" ? "Loading" : "Unloading"} ${id}…`);
    setError(null);
    try {
      await api("POST", "/api/v1/models", { action, model_id: id });
      await load();
    } catch (e) {
      setError(describe(e));
    } finally {
      setWorking(null);
    }
  };
  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      <ErrorBox message={error} />
      {working && <Busy label={working} />}
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Status</th>
              <th scope="col">Kind</th>
              <th scope="col">Size</th>
              <th scope="col">Quantisation</th>
              <th scope="col">Tokens/s</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {(models ?? []).map((m) => (
              <tr>
                <td>{m.name}</td>
                <td class={`status ${m.status}`}>{m.status}</td>
                <td>{m.kind}</td>
                <td>{bytes(m.size)}</td>
                <td>{m.meta.quantization ?? "–"}</td>
                <td>{m.performance_metrics.generation_tokens_per_second?.toFixed(1) ?? "–"}</td>
                <td>
                  {session.role === "admin" &&
                    (m.status === "loaded" ? (
                      <button onClick={() => manage("unload", m.id)} aria-label={`Unload ${m.name}`}>Unload</button>
                    ) : (
                      <button onClick={() => manage("load", m.id)} aria-label={`Load ${m.name}`}>Load</button>
                    ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>This machine</h2>
      {hw ? <Hardware hw={hw} /> : <Busy label="Reading the hardware profile…" />}
    </section>
  );
}

interface Hw {
  cpu: { model: string; arch: string; physical_cores: number; logical_cores: number; simd: Record<string, boolean> };
  memory: { total_bytes: number; available_bytes: number };
  gpus: { name?: string }[];
  disk: { mount_point: string; available_bytes: number; total_bytes: number };
  recommendations: {
    inference_threads: number;
    embedding_batch_size: number;
    model_memory_budget_bytes: number;
    mmap: boolean;
    mlock: { recommended: boolean; reason?: string };
    gpu: { mode: string };
  };
}

function Hardware({ hw }: { hw: Hw }) {
  const r = hw.recommendations;
  const simd = Object.entries(hw.cpu.simd).filter(([, on]) => on).map(([k]) => k).join(", ") || "none";
  const rows: [string, string][] = [
    ["Processor", `${hw.cpu.model} (${hw.cpu.arch}), ${hw.cpu.physical_cores} cores, ${hw.cpu.logical_cores} threads, SIMD: ${simd}`],
    ["Memory", `${bytes(hw.memory.available_bytes)} free of ${bytes(hw.memory.total_bytes)}`],
    ["Graphics", hw.gpus.length ? hw.gpus.map((g) => g.name ?? "GPU").join(", ") : "none found"],
    ["Disk", `${bytes(hw.disk.available_bytes)} free of ${bytes(hw.disk.total_bytes)} on ${hw.disk.mount_point}`],
    ["Advised: threads", String(r.inference_threads)],
    ["Advised: embedding batch", String(r.embedding_batch_size)],
    ["Advised: memory for models", bytes(r.model_memory_budget_bytes)],
    ["Advised: memory-map models", r.mmap ? "yes" : "no"],
    ["Advised: lock models in memory", r.mlock.recommended ? "yes" : `no${r.mlock.reason ? ` — ${r.mlock.reason}` : ""}`],
    ["Advised: GPU offload", r.gpu.mode],
  ];
  return (
    <dl class="facts">
      {rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </dl>
  );
}
