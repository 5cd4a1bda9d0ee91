// Administration: API keys (a new key shown once; revocation ends its sessions), the audit
// chain verified (the first bad line named), and plugins with their tools and grants.
import { useEffect, useState } from "preact/hooks";
import { api, describe, get, seg } from "../api";
import type { KeyView, Session } from "../types";
import { Confirm, ErrorBox } from "../components/ui";

interface Plugin {
  name: string;
  version: string;
  description: string;
  capabilities: Record<string, unknown>;
  tools: { name: string; description: string }[];
}

export function Admin({ session }: { session: Session }) {
  if (session.role !== "admin") return <p>Administration is for admins.</p>;
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Administration</h1>
      <Keys session={session} />
      <Audit />
      <Plugins />
    </section>
  );
}

function Keys({ session }: { session: Session }) {
  const [keys, setKeys] = useState<KeyView[]>([]);
  const [role, setRole] = useState("user");
  const [label, setLabel] = useState("");
  const [shown, setShown] = useState<string | null>(null);
  const [doomed, setDoomed] = useState<KeyView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => get<KeyView[]>("/api/v1/keys").then(setKeys, (e) => setError(describe(e)));
  useEffect(() => {
    load();
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api<{ key: string }>("POST", "/api/v1/keys", { role, label: label || undefined });
      setShown(r.key);
      setLabel("");
      load();
    } catch (err) {
      setError(describe(err));
    }
  };
  const revoke = async (k: KeyView) => {
    setDoomed(null);
    try {
      await api("DELETE", `/api/v1/keys/${seg(k.id)}`);
      load();
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <div class="card">
      <h2>API keys</h2>
      <ErrorBox message={error} />
      {shown && (
        <p class="shown" role="status">
          The new key, shown this once: <code class="secret">{shown}</code>
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">Id</th>
            <th scope="col">Role</th>
            <th scope="col">Label</th>
            <th scope="col">Created</th>
            <th scope="col"><span class="sr-only">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr>
              <td><code>{k.id}</code></td>
              <td>{k.role}</td>
              <td>{k.label}</td>
              <td>{new Date(k.created_at).toLocaleString()}</td>
              <td>
                {k.id !== session.key_id && (
                  <button class="danger" aria-label={`Revoke key ${k.label || k.id}`} onClick={() => setDoomed(k)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={create} class="row wrap">
        <label class="inline">
          Role
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="user">user</option>
            <option value="read-only">read-only</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label class="inline">
          Label <input value={label} onInput={(e) => setLabel(e.currentTarget.value)} />
        </label>
        <button type="submit">Create key</button>
      </form>
      {doomed && (
        <Confirm title={`Revoke ${doomed.label || doomed.id}?`} confirm="Revoke" onConfirm={() => revoke(doomed)} onCancel={() => setDoomed(null)}>
          <p>Requests with this key are refused from now on, and every browser session signed in with it ends at once.</p>
        </Confirm>
      )}
    </div>
  );
}

function Audit() {
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const verify = async () => {
    setError(null);
    setResult(null);
    try {
      const v = await get<{ records: number; head_checked: boolean }>("/api/v1/audit/verify");
      setResult(`The audit chain holds: ${v.records} records checked${v.head_checked ? ", head matched" : ""}.`);
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <div class="card">
      <h2>Audit log</h2>
      <button onClick={verify}>Verify the audit chain</button>
      {result && <p role="status">{result}</p>}
      <ErrorBox message={error} />
    </div>
  );
}

function Plugins() {
  const [plugins, setPlugins] = useState<Plugin[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    get<Plugin[]>("/api/v1/plugins").then(setPlugins, (e) => setError(describe(e)));
  }, []);
  return (
    <div class="card">
      <h2>Plugins</h2>
      <ErrorBox message={error} />
      {plugins && plugins.length === 0 && <p>No plugin is loaded.</p>}
      {plugins?.map((p) => (
        <details>
          <summary>
            {p.name} {p.version} — {p.description}
          </summary>
          <ul>
            {p.tools.map((t) => (
              <li>
                <strong>{t.name}</strong>: {t.description}
              </li>
            ))}
          </ul>
          <pre class="result">{JSON.stringify(p.capabilities, null, 2)}</pre>
        </details>
      ))}
    </div>
  );
}
