// Search in one matter: mode, date filters, and hits with snippets and citations.
import { useState } from "preact/hooks";
import { api, describe } from "../api";
import type { SearchHit } from "../types";
import { ErrorBox } from "./ui";

export function Search({ collection }: { collection: string }) {
  const [query, setQuery] = useState("");
  const [mode, setMode] = useState("hybrid");
  const [after, setAfter] = useState("");
  const [before, setBefore] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api<{ hits: SearchHit[] }>("POST", "/api/v1/search", {
        query,
        collection,
        mode,
        after: after || null,
        before: before || null,
      });
      setHits(r.hits);
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <form onSubmit={run} class="search" role="search" aria-label="Search this matter">
      <div class="row wrap">
        <label class="inline">
          Search <input type="search" required value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <label class="inline">
          Mode
          <select value={mode} onChange={(e) => setMode(e.currentTarget.value)}>
            <option value="hybrid">hybrid</option>
            <option value="vector">meaning</option>
            <option value="fulltext">words</option>
            <option value="exact">exact</option>
          </select>
        </label>
        <label class="inline">
          From <input type="date" value={after} onInput={(e) => setAfter(e.currentTarget.value)} />
        </label>
        <label class="inline">
          To <input type="date" value={before} onInput={(e) => setBefore(e.currentTarget.value)} />
        </label>
        <button type="submit">Search</button>
      </div>
      <ErrorBox message={error} />
      {hits && hits.length === 0 && <p role="status">Nothing found.</p>}
      {hits && hits.length > 0 && (
        <ol class="hits">
          {hits.map((h) => (
            <li>
              <strong>{h.citation}</strong>
              <p class="snippet">{h.text.length > 300 ? `${h.text.slice(0, 300)}…` : h.text}</p>
            </li>
          ))}
        </ol>
      )}
    </form>
  );
}
