// The app's entry: the session (a `bear ui` link's one-time token, or an API key), the hash
// router, and the page shell with its navigation.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { SIGNED_OUT, api, describe, setCsrf } from "./api";
import type { Session } from "./types";
import { SignIn } from "./pages/SignIn";
import { Ask } from "./pages/Ask";
import { Chat } from "./pages/Chat";
import { Matters } from "./pages/Matters";
import { Matter } from "./pages/Matter";
import { Pii } from "./pages/Pii";
import { Grid } from "./pages/Grid";
import { Workflows } from "./pages/Workflows";
import { Run } from "./pages/Run";
import { Models } from "./pages/Models";
import { Admin } from "./pages/Admin";
import { ErrorBox } from "./components/ui";
import "./styles.css";

const NAV: [string, string, boolean][] = [
  ["#/ask", "Ask", false],
  ["#/chat", "Chat", false],
  ["#/matters", "Matters", false],
  ["#/grid", "Grid", false],
  ["#/pii", "PII", false],
  ["#/workflows", "Workflows", false],
  ["#/models", "Models", false],
  ["#/admin", "Admin", true],
];

function useRoute(): string[] {
  const parts = () => location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [route, setRoute] = useState(parts());
  useEffect(() => {
    const on = () => setRoute(parts());
    addEventListener("hashchange", on);
    // Effects run after the first paint: a hash changed before this listener was added (a
    // link followed while the page was still drawing) is read now.
    on();
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function Page({ route, session }: { route: string[]; session: Session }) {
  const [head, arg] = route;
  switch (head) {
    case "chat":
      return <Chat />;
    case "matters":
      return arg ? <Matter name={arg} session={session} /> : <Matters session={session} />;
    case "grid":
      return <Grid />;
    case "pii":
      return <Pii session={session} />;
    case "workflows":
      return arg ? <Run id={arg} session={session} /> : <Workflows session={session} />;
    case "models":
      return <Models session={session} />;
    case "admin":
      return <Admin session={session} />;
    default:
      return <Ask />;
  }
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const current = `#/${route[0] || "ask"}`;
  return (
    <>
      {/* The hash is the router's: the link moves focus without changing it. */}
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <span class="brand" aria-label="BEAR">BEAR</span>
        <nav aria-label="Sections">
          {NAV.filter(([, , admin]) => !admin || session.role === "admin").map(([href, label]) => (
            <a href={href} aria-current={current === href ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          {session.role}
          <button class="link" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} session={session} />
      </main>
    </>
  );
}

/** Signs in with the one-time token of a `bear ui` link, then drops it from the address. */
async function signInWithLink(token: string): Promise<Session> {
  history.replaceState(null, "", location.pathname + "#/ask");
  return api<Session>("POST", "/api/v1/session", { login_token: token });
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const adopt = (s: Session | null) => {
    setCsrf(s?.csrf_token ?? null);
    if (s) setError(null);
    setSession(s);
  };
  useEffect(() => {
    const login = () => location.hash.match(/^#login=(.+)$/)?.[1];
    const withLink = (token: string) =>
      signInWithLink(token).then(adopt, (e) => {
        setError(describe(e));
        adopt(null);
      });
    const token = login();
    if (token) withLink(token);
    else api<Session>("GET", "/api/v1/session").then(adopt, () => adopt(null));
    // A sign-in link opened in this tab later (the page does not reload for a new hash).
    const onHash = () => {
      const t = login();
      if (t) withLink(t);
    };
    // Any 401 (expired or revoked): back to sign-in; the address (the page) is kept.
    const out = () => adopt(null);
    addEventListener("hashchange", onHash);
    addEventListener(SIGNED_OUT, out);
    return () => {
      removeEventListener("hashchange", onHash);
      removeEventListener(SIGNED_OUT, out);
    };
  }, []);
  const signOut = () => {
    api("DELETE", "/api/v1/session").finally(() => adopt(null));
  };
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null)
    return (
      <>
        {error && <ErrorBox message={error} />}
        <SignIn onSignedIn={adopt} />
      </>
    );
  return <Shell session={session} onSignOut={signOut} />;
}

render(<App />, document.getElementById("app")!);
