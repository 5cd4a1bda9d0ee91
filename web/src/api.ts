// The one way the app talks to bear-server: same-origin fetch with the session cookie, the
// CSRF token on every request that changes something, and errors turned into words a user
// can act on (the server's own message, never raw JSON).

/** An API failure, with the server's message (which says what to do). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly kind: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Fired when the session has ended (expired, signed out, key revoked). */
export const SIGNED_OUT = "bear:signed-out";

let csrf: string | null = null;
/** Which sign-in the app is on; a 401 to a request sent under an earlier one ends nothing. */
let generation = 0;

export function setCsrf(token: string | null) {
  csrf = token;
  generation++;
}

/** The current sign-in, for a request to carry to [`failure`]. */
export const session = () => generation;

const UNREACHABLE =
  "The BEAR server is not answering. It may have stopped: start it again (`bear ui`), then retry.";

/** Headers for a request: JSON, and the CSRF token when it changes something. */
export function headers(method: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { accept: "application/json", ...extra };
  if (method !== "GET" && method !== "HEAD" && csrf) h["x-csrf-token"] = csrf;
  return h;
}

/** Turns a non-2xx response into an ApiError; a 401 also ends the session in the app, unless
 * the request was sent under an earlier sign-in (`sentIn`): a stale request's 401 must not
 * sign out the session that replaced it. */
export async function failure(r: Response, sentIn: number = generation): Promise<ApiError> {
  let message = `The server answered ${r.status} ${r.statusText}.`;
  let kind = "http";
  let field: string | undefined;
  try {
    const body = await r.json();
    if (body?.error?.message) {
      message = body.error.message;
      kind = body.error.kind ?? kind;
      field = body.error.field ?? undefined;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  if (r.status === 401 && sentIn === generation) window.dispatchEvent(new CustomEvent(SIGNED_OUT));
  if (r.status === 429) message = "Too many requests at once: wait a moment and try again.";
  return new ApiError(message, r.status, kind, field);
}

/** Sends a request; a JSON body is encoded, bytes go as they are. */
export async function send(
  method: string,
  path: string,
  body?: unknown,
  extra: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  const sentIn = generation;
  const isBytes = body instanceof Blob || body instanceof ArrayBuffer;
  const h = headers(method, extra);
  if (body !== undefined && !isBytes) h["content-type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(path, {
      method,
      headers: h,
      credentials: "same-origin",
      body: body === undefined ? undefined : isBytes ? (body as BodyInit) : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(UNREACHABLE, 0, "unreachable");
  }
  if (!r.ok) throw await failure(r, sentIn);
  return r;
}

/** A JSON request and its JSON answer. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await send(method, path, body);
  return (await r.json()) as T;
}

export const get = <T>(path: string) => api<T>("GET", path);

/** A message for anything caught: ours, or an unexpected failure in words. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof DOMException && e.name === "AbortError") return "Stopped.";
  return "Something went wrong in the page. Reload it; if it happens again, see the server log.";
}

/** The part of a path that names a collection or document, escaped. */
export const seg = (s: string) => encodeURIComponent(s);
