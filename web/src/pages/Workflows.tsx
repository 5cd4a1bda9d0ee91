// Workflow runs with a status filter, and a new run from a YAML or JSON definition: syntax
// problems are shown at their line, the server's validation problems at their path.
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, describe, get } from "../api";
import type { RunRow, Session } from "../types";
import { ErrorBox } from "../components/ui";

const EXAMPLE = `name: review
inputs:
  clause: {description: the clause to review}
steps:
  - id: scrub
    type: pii_scrub
    parameters: {text: "{{ inputs.clause }}"}
  - id: summary
    type: llm_generation
    depends_on: [scrub]
    parameters: {prompt: "Summarise: {{ steps.scrub.output.text }}", max_tokens: 64}
input_values:
  clause: "Either party may end the lease by giving six months' written notice."
`;

export function Workflows({ session }: { session: Session }) {
  const [runs, setRuns] = useState<RunRow[] | null>(null);
  const [status, setStatus] = useState("");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<RunRow[]>(`/api/v1/workflows${status ? `?status=${status}` : ""}`).then(setRuns, (e) => setError(describe(e)));
  }, [status]);
  return (
    <section aria-labelledby="wf-title">
      <h1 id="wf-title">Workflows</h1>
      <ErrorBox message={error} />
      <label class="inline">
        Status
        <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">any</option>
          {["pending", "running", "paused", "completed", "failed", "cancelled"].map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
      </label>
      {runs && runs.length === 0 && <p>No run{status && ` ${status}`}.</p>}
      {runs && runs.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status</th>
              <th scope="col">Steps</th>
              <th scope="col">Started</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((r) => (
              <tr>
                <td><a href={`#/workflows/${r.id}`}>{r.name}</a></td>
                <td class={`status ${r.status}`}>{r.status}{r.interrupted && " (interrupted)"}</td>
                <td>{r.progress.completed}/{r.progress.total}</td>
                <td>{new Date(r.created_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {session.role !== "read_only" && <NewRun />}
    </section>
  );
}

function NewRun() {
  const [source, setSource] = useState(EXAMPLE);
  const [problem, setProblem] = useState<string | null>(null);
  const start = async (e: Event) => {
    e.preventDefault();
    setProblem(null);
    // The YAML parser loads with the first run started, not with the app.
    const { parse, YAMLParseError } = await import("yaml");
    let definition: unknown;
    try {
      definition = parse(source);
    } catch (err) {
      const at = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : "";
      return setProblem(`The definition is not valid YAML or JSON${at}: ${(err as Error).message.split("\n")[0]}`);
    }
    try {
      const run = await api<{ workflow_id: string }>("POST", "/api/v1/workflows", definition);
      location.hash = `#/workflows/${run.workflow_id}`;
    } catch (err) {
      setProblem(err instanceof ApiError && err.field ? `At ${err.field}: ${err.message}` : describe(err));
    }
  };
  return (
    <form onSubmit={start} class="stack">
      <h2>Start a run</h2>
      <label for="wf-def">Definition (YAML or JSON)</label>
      <textarea id="wf-def" class="code" rows={14} spellcheck={false} value={source} onInput={(e) => setSource(e.currentTarget.value)} />
      <ErrorBox message={problem} />
      <button type="submit">Start</button>
    </form>
  );
}
