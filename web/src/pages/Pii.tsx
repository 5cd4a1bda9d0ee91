// The PII workbench: findings highlighted by type with score and recognizer, the text scrubbed
// under a chosen policy, tokenised text restored (admins), and the result downloaded.
import { useState } from "preact/hooks";
import { api, describe } from "../api";
import type { Finding, Session } from "../types";
import { ErrorBox, download } from "../components/ui";

interface Detected {
  findings: Finding[];
  counts: Record<string, number>;
  risk: string;
}

function Highlighted({ text, findings }: { text: string; findings: Finding[] }) {
  const chars = [...text];
  const parts = [];
  let at = 0;
  for (const f of [...findings].sort((a, b) => a.char_start - b.char_start)) {
    if (f.char_start < at) continue;
    parts.push(chars.slice(at, f.char_start).join(""));
    parts.push(
      <mark class={`pii ${f.entity.toLowerCase()}`} title={`${f.entity}, score ${f.score.toFixed(2)}, ${f.recognizer}`}>
        {chars.slice(f.char_start, f.char_end).join("")}
        <span class="tag">
          {f.entity} {f.score.toFixed(2)} · {f.recognizer}
        </span>
      </mark>,
    );
    at = f.char_end;
  }
  parts.push(chars.slice(at).join(""));
  return <pre class="highlighted" aria-label="The text, each finding marked">{parts}</pre>;
}

export function Pii({ session }: { session: Session }) {
  const [text, setText] = useState("");
  const [policy, setPolicy] = useState("replace");
  const [found, setFound] = useState<{ text: string; r: Detected } | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const call = async (f: () => Promise<void>) => {
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(describe(e));
    }
  };
  const detect = () =>
    call(async () => setFound({ text, r: await api<Detected>("POST", "/api/v1/pii/detect", { text }) }));
  const scrub = () =>
    call(async () => setResult((await api<{ text: string }>("POST", "/api/v1/pii/scrub", { text, policy })).text));
  const restore = () =>
    call(async () => setResult((await api<{ text: string }>("POST", "/api/v1/pii/restore", { text })).text));
  const load = async (file: File | undefined) => file && setText(await file.text());
  return (
    <section aria-labelledby="pii-title">
      <h1 id="pii-title">PII workbench</h1>
      <label for="pii-text">Text</label>
      <textarea id="pii-text" rows={8} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      <div class="row wrap">
        <label class="button">
          Open a text file
          <input class="sr-only" type="file" accept=".txt,.md,.csv,.json,text/*" onChange={(e) => load(e.currentTarget.files?.[0])} />
        </label>
        <button onClick={detect} disabled={!text}>Find PII</button>
        <label class="inline">
          Policy
          <select value={policy} onChange={(e) => setPolicy(e.currentTarget.value)}>
            {["replace", "mask", "hash", "redact", "tokenize"].map((p) => (
              <option value={p}>{p}</option>
            ))}
          </select>
        </label>
        <button onClick={scrub} disabled={!text}>Scrub</button>
        {session.role === "admin" && (
          <button onClick={restore} disabled={!text}>Restore tokens</button>
        )}
      </div>
      <ErrorBox message={error} />
      {found && (
        <>
          <h2>Findings</h2>
          <p role="status">
            {found.r.findings.length} found, risk {found.r.risk}
            {Object.entries(found.r.counts).map(([k, v]) => ` · ${k} ${v}`)}
          </p>
          <Highlighted text={found.text} findings={found.r.findings} />
        </>
      )}
      {result !== null && (
        <>
          <h2>Result</h2>
          <pre class="result">{result}</pre>
          <button onClick={() => download("bear-pii.txt", result)}>Download</button>
        </>
      )}
    </section>
  );
}
