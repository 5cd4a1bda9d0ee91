// Models with status, size, quantisation and metrics (load and unload for admins), and this
// machine's hardware profile with BEAR's recommendations.
import { useEffect, useState } from "preact/hooks";
import { api, describe, get } from "../api";
import type { ModelRow, Session } from "../types";
import { Busy, ErrorBox, bytes } from "../components/ui";

export function Models({ session }: { session: Session }) {
  const [models, setModels] = useState<ModelRow[] | null>(null);
  const [hw, setHw] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [working, setWorking] = useState<string | null>(null);
  const load = () => get<ModelRow[]>("/api/v1/models").then(setModels, (e) => setError(describe(e)));
  useEffect(() => {
    load();
    get<Record<string, unknown>>("/api/v1/hw").then(setHw, (e) => setError(describe(e)));
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
      {hw ? <pre class="result">{JSON.stringify(hw, null, 2)}</pre> : <Busy label="Reading the hardware profile…" />}
    </section>
  );
}
