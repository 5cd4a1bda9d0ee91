// One matter: its documents (filtered as you type), search with mode and filters, upload by
// drag-and-drop or file picker with progress per file, and removal.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, describe, get, seg } from "../api";
import type { DocumentView, Session } from "../types";
import { Confirm, ErrorBox, bytes, when } from "../components/ui";
import { Uploader } from "../components/Uploader";
import { Search } from "../components/Search";

const fileName = (d: DocumentView) => d.path.split("/").pop() ?? d.path;

export function Matter({ name, session }: { name: string; session: Session }) {
  const [docs, setDocs] = useState<DocumentView[] | null>(null);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [doomed, setDoomed] = useState<DocumentView | null>(null);
  const load = () =>
    get<DocumentView[]>(`/api/v1/collections/${seg(name)}/documents`).then(setDocs, (e) => setError(describe(e)));
  useEffect(() => {
    load();
  }, [name]);
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    return (docs ?? []).filter((d) => !f || d.title.toLowerCase().includes(f) || fileName(d).toLowerCase().includes(f));
  }, [docs, filter]);
  const remove = async (d: DocumentView) => {
    setDoomed(null);
    try {
      await api("DELETE", `/api/v1/collections/${seg(name)}/documents/${seg(d.id)}`);
      load();
    } catch (e) {
      setError(describe(e));
    }
  };
  const canWrite = session.role !== "read_only";
  return (
    <section aria-labelledby="matter-title">
      <p>
        <a href="#/matters">← Matters</a>
      </p>
      <h1 id="matter-title">{name}</h1>
      <ErrorBox message={error} />
      {canWrite && <Uploader collection={name} onIngested={load} />}
      <Search collection={name} />
      <h2>Documents</h2>
      <label class="inline">
        Filter <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      </label>
      <p class="muted" role="status">
        {docs ? `${shown.length} of ${docs.length} documents` : "Loading…"}
      </p>
      <div class="scroll">
        <table class="docs">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Pages</th>
              <th scope="col">Size</th>
              <th scope="col">Ingested</th>
              <th scope="col">Status</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {shown.map((d) => (
              <tr key={d.id}>
                <td>
                  {d.title} <span class="muted">{fileName(d)}</span>
                </td>
                <td>{fileName(d).split(".").pop()}</td>
                <td>{d.page_count ?? "–"}</td>
                <td>{bytes(d.size)}</td>
                <td>{when(d.ingested_at)}</td>
                <td>{d.chunks} passages</td>
                <td>
                  {canWrite && (
                    <button class="danger" aria-label={`Remove ${d.title}`} onClick={() => setDoomed(d)}>
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {doomed && (
        <Confirm title={`Remove ${doomed.title}?`} confirm="Remove" onConfirm={() => remove(doomed)} onCancel={() => setDoomed(null)}>
          <p>Its text and search index are deleted from this matter, and the uploaded copy with them.</p>
        </Confirm>
      )}
    </section>
  );
}
