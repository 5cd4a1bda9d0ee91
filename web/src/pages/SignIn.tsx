// Sign-in with an API key: the key goes once to POST /api/v1/session and is never stored; the
// browser keeps only the HttpOnly session cookie.
import { useState } from "preact/hooks";
import { ApiError, describe, send } from "../api";
import type { Session } from "../types";
import { ErrorBox } from "../components/ui";

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await send("POST", "/api/v1/session", undefined, { authorization: `Bearer ${key.trim()}` });
      setKey("");
      onSignedIn((await r.json()) as Session);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? "That key was not accepted. Check it, or run `bear ui` on this machine for a sign-in link."
          : describe(err),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>Sign in to BEAR</h1>
      <p>Run <code>bear ui</code> on this machine to open BEAR already signed in, or enter an API key.</p>
      <form onSubmit={submit}>
        <label for="key">API key</label>
        <input
          id="key"
          type="password"
          autoComplete="off"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || !key.trim()}>
          Sign in
        </button>
      </form>
      <ErrorBox message={error} />
    </main>
  );
}
