// The review grid: a matter's documents against questions (or a JSON schema's fields), one
// cell per document and column, each cell checked against its document (a verified citation
// with its page and passage, or the value found in the text); downloaded as CSV or JSON.
import { useState } from "preact/hooks";
import { api, describe, send } from "../api";
import { MatterPicker } from "../components/Matters";
import { Busy, ErrorBox, download } from "../components/ui";

interface Cell {
  value: unknown;
  verified: boolean;
  page?: number;
  quote?: string;
  reason?: string;
}
interface Grid {
  collection: string;
  columns: { key: string; label: string }[];
  rows: { document_id: string; path: string; cells: Cell[]; error?: string }[];
}

const fileName = (path: string) => path.split(/[\\/]/).pop() ?? path;
const shown = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

function GridCell({ cell }: { cell: Cell }) {
  if (!cell.verified)
    return (
      <td class="unverified">
        <span aria-label="not found">✗</span> <span class="muted">{cell.reason ?? "not found"}</span>
      </td>
    );
  return (
    <td class="verified">
      <span aria-label="verified">✓</span> {shown(cell.value)}
      {cell.page !== undefined && <span class="muted"> (p. {cell.page})</span>}
      {cell.quote && <blockquote>“{cell.quote}”</blockquote>}
    </td>
  );
}

export function Grid() {
  const [collection, setCollection] = useState(localStorage.getItem("bear.matter") ?? "");
  const [mode, setMode] = useState<"questions" | "schema">("questions");
  const [questions, setQuestions] = useState("");
  const [schema, setSchema] = useState("");
  const [grid, setGrid] = useState<Grid | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);

  const request = () => {
    if (mode === "questions") {
      const qs = questions.split("\n").map((q) => q.trim()).filter(Boolean);
      return { collection, questions: qs };
    }
    return { collection, schema: JSON.parse(schema) as unknown };
  };
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setGrid(null);
    setRunning(true);
    try {
      setGrid(await api<Grid>("POST", "/api/v1/grid", request()));
    } catch (err) {
      setError(err instanceof SyntaxError ? "The schema is not JSON." : describe(err));
    } finally {
      setRunning(false);
    }
  };
  const csv = async () => {
    setError(null);
    try {
      const r = await send("POST", "/api/v1/grid?format=csv", request());
      download(`bear-grid-${collection}.csv`, await r.text());
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <section aria-labelledby="grid-title">
      <h1 id="grid-title">Review grid</h1>
      <form onSubmit={run} class="stack">
        <MatterPicker value={collection} onChange={setCollection} />
        <fieldset class="row wrap">
          <legend>Columns</legend>
          <label class="check">
            <input type="radio" name="grid-mode" checked={mode === "questions"} onChange={() => setMode("questions")} />
            Questions
          </label>
          <label class="check">
            <input type="radio" name="grid-mode" checked={mode === "schema"} onChange={() => setMode("schema")} />
            A JSON schema's fields
          </label>
        </fieldset>
        {mode === "questions" ? (
          <>
            <label for="grid-questions">Questions, one per line</label>
            <textarea id="grid-questions" rows={4} required value={questions} onInput={(e) => setQuestions(e.currentTarget.value)} />
          </>
        ) : (
          <>
            <label for="grid-schema">JSON schema</label>
            <textarea id="grid-schema" rows={8} required value={schema} onInput={(e) => setSchema(e.currentTarget.value)} />
          </>
        )}
        <div class="row">
          <button type="submit" disabled={running || !collection}>Fill the grid</button>
        </div>
      </form>
      {running && <Busy label="Reading every document…" />}
      <ErrorBox message={error} />
      {grid && (
        <>
          <table class="review-grid" aria-label={`Review grid of ${grid.collection}`}>
            <thead>
              <tr>
                <th scope="col">Document</th>
                {grid.columns.map((c) => (
                  <th scope="col">{c.label}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {grid.rows.map((r) => (
                <tr>
                  <th scope="row" title={r.path}>
                    {fileName(r.path)}
                    {r.error && <span class="error"> {r.error}</span>}
                  </th>
                  {r.cells.map((c) => (
                    <GridCell cell={c} />
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          <div class="row">
            <button onClick={csv}>Download CSV</button>
            <button onClick={() => download(`bear-grid-${grid.collection}.json`, JSON.stringify(grid, null, 2))}>
              Download JSON
            </button>
          </div>
        </>
      )}
    </section>
  );
}
