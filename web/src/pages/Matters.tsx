// Matters: list, create (with the PII policy their documents are stored under) and delete.
import { useState } from "preact/hooks";
import { api, describe, seg } from "../api";
import type { Session } from "../types";
import { useCollections } from "../components/Matters";
import { Confirm, ErrorBox, when } from "../components/ui";

const POLICIES: [string, string][] = [
  ["tokenize", "Tokenise: PII replaced by tokens only an admin's keyring restores"],
  ["replace", "Replace: PII replaced by its type, e.g. [EMAIL]"],
  ["mask", "Mask: PII hidden by asterisks"],
  ["hash", "Hash: PII replaced by a keyed hash"],
  ["redact", "Redact: PII removed"],
];

export function Matters({ session }: { session: Session }) {
  const [list, loadError, reload] = useCollections();
  const [name, setName] = useState("");
  const [policy, setPolicy] = useState("tokenize");
  const [error, setError] = useState<string | null>(null);
  const [doomed, setDoomed] = useState<string | null>(null);
  const canWrite = session.role !== "read_only";
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api("POST", "/api/v1/collections", { name: name.trim(), pii_policy: policy });
      setName("");
      reload();
    } catch (err) {
      setError(describe(err));
    }
  };
  const remove = async (n: string) => {
    setDoomed(null);
    try {
      await api("DELETE", `/api/v1/collections/${seg(n)}`);
      reload();
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <section aria-labelledby="matters-title">
      <h1 id="matters-title">Matters</h1>
      <ErrorBox message={loadError ?? error} />
      {list && list.length === 0 && <p>No matter yet.</p>}
      {list && list.length > 0 && (
        <table>
          <caption class="sr-only">Your matters</caption>
          <thead>
            <tr>
              <th scope="col">Matter</th>
              <th scope="col">PII policy</th>
              <th scope="col">At rest</th>
              <th scope="col">Documents</th>
              <th scope="col">Created</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {list.map((c) => (
              <tr>
                <td><a href={`#/matters/${seg(c.name)}`}>{c.name}</a></td>
                <td>{c.pii_policy}</td>
                <td>{c.sealed ? "encrypted" : "not encrypted"}</td>
                <td>{c.documents}</td>
                <td>{when(c.created_at)}</td>
                <td>
                  {canWrite && (
                    <button class="danger" aria-label={`Delete matter ${c.name}`} onClick={() => setDoomed(c.name)}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canWrite && (
        <form onSubmit={create} class="stack narrow">
          <h2>New matter</h2>
          <label for="matter-name">Name (lower-case letters, digits, - and _)</label>
          <input id="matter-name" required pattern="[a-z0-9][a-z0-9_\-]{0,63}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <label for="matter-policy">PII policy for its documents</label>
          <select id="matter-policy" value={policy} onChange={(e) => setPolicy(e.currentTarget.value)}>
            {POLICIES.map(([v, label]) => (
              <option value={v}>{label}</option>
            ))}
          </select>
          <button type="submit">Create matter</button>
        </form>
      )}
      {doomed && (
        <Confirm title={`Delete the matter ${doomed}?`} confirm="Delete for good" onConfirm={() => remove(doomed)} onCancel={() => setDoomed(null)}>
          <p>
            Its documents, their text and search index, and the files uploaded to it are deleted from this server, and
            its encryption key is destroyed first, so a backup of its files can no longer be read either. This cannot be
            undone. Files on your own disk are not touched.
          </p>
        </Confirm>
      )}
    </section>
  );
}
