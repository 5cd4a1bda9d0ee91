// One workflow run: its DAG laid out by dagre, each step's live state over SSE, agent,
// timing, output and error; cancel while it runs.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, describe, get, seg } from "../api";
import type { RunStatus, Session, StepState } from "../types";
import { ErrorBox } from "../components/ui";
import { LazyDag } from "../components/LazyDag";

type RunEvent =
  | { event: "snapshot"; run: RunStatus }
  | { event: "step"; step: string; status: string }
  | { event: "end"; status: string };

function apply(run: RunStatus | null, ev: RunEvent): RunStatus | null {
  if (ev.event === "snapshot") return ev.run;
  if (!run) return run;
  if (ev.event === "end") return { ...run, status: ev.status };
  const steps = run.progress.steps.map((s) => (s.id === ev.step ? { ...s, status: ev.status } : s));
  return { ...run, progress: { ...run.progress, steps } };
}

export function Run({ id, session }: { id: string; session: Session }) {
  const [run, setRun] = useState<RunStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const [picked, setPicked] = useState<string | null>(null);
  useEffect(() => {
    const es = new EventSource(`/api/v1/workflows/${seg(id)}/events`);
    es.onopen = () => setLive(true);
    const on = (m: MessageEvent) => {
      const ev = JSON.parse(m.data) as RunEvent;
      // A snapshot also comes after a reconnection: the server is back.
      if (ev.event === "snapshot") setError(null);
      setRun((r) => apply(r, ev));
      if (ev.event === "end") es.close();
    };
    for (const name of ["snapshot", "step", "end"]) es.addEventListener(name, on);
    es.onerror = () => {
      setLive(false);
      // The server went away (the browser reconnects by itself) or the run is not there:
      // show the stored state, or why not.
      get<RunStatus>(`/api/v1/workflows/${seg(id)}`).then(setRun, (e) => setError(describe(e)));
    };
    return () => es.close();
  }, [id]);
  const control = (method: string, path: string) =>
    api(method, `/api/v1/workflows/${seg(id)}${path}`).catch((e) => setError(describe(e)));
  const steps = run?.progress.steps ?? [];
  const step = useMemo(() => steps.find((s) => s.id === picked), [steps, picked]);
  const active = run && ["pending", "running", "paused"].includes(run.status);
  return (
    <section aria-labelledby="run-title">
      <p>
        <a href="#/workflows">← Workflows</a>
      </p>
      <h1 id="run-title">{run?.name ?? "Run"}</h1>
      <ErrorBox message={error} />
      {run && (
        <p role="status" aria-live="polite">
          <span class={`status ${run.status}`}>{run.status}</span> · {run.progress.completed}/{run.progress.total} steps ·{" "}
          {run.execution_time.toFixed(1)} s {live && active ? "· live" : ""}
        </p>
      )}
      {active && session.role !== "read_only" && (
        <div class="row">
          {run.status === "paused" ? (
            <button onClick={() => control("POST", "/resume")}>Resume</button>
          ) : (
            <button onClick={() => control("POST", "/pause")}>Pause</button>
          )}
          <button class="danger" onClick={() => control("DELETE", "")}>
            Cancel run
          </button>
        </div>
      )}
      {steps.length > 0 && <LazyDag steps={steps} onPick={setPicked} picked={picked} />}
      <StepTable steps={steps} onPick={setPicked} />
      {step && <StepDetail step={step} output={step.output ?? run?.results[step.id]} />}
    </section>
  );
}

function StepTable({ steps, onPick }: { steps: StepState[]; onPick: (id: string) => void }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Status</th>
          <th scope="col">Agent</th>
          <th scope="col">Time</th>
        </tr>
      </thead>
      <tbody>
        {steps.map((s) => (
          <tr>
            <td>
              <button class="link" onClick={() => onPick(s.id)}>{s.id}</button>
            </td>
            <td class={`status ${s.status}`} data-step={s.id}>{s.status}</td>
            <td>{s.agent ?? "–"}</td>
            <td>{typeof s.duration_ms === "number" ? `${(s.duration_ms / 1000).toFixed(2)} s` : "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function StepDetail({ step, output }: { step: StepState; output: unknown }) {
  return (
    <div class="card" aria-label={`Step ${step.id}`}>
      <h2>{step.id}</h2>
      {step.error && <p class="error">{step.error}</p>}
      <pre class="result">{output === undefined ? "No output yet." : JSON.stringify(output, null, 2)}</pre>
    </div>
  );
}
