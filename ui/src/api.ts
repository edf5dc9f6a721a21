// Calls to Triad's HTTP APIs. Every function throws an Error whose message is fit to
// show the user.

export async function getJSON<T = any>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") qs.set(k, String(v));
  const url = qs.toString() ? `${path}?${qs}` : path;
  const r = await fetch(url);
  noteStatus(r);
  const text = await r.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new Error(r.ok ? `invalid answer from ${path}` : `${r.status}: ${text.slice(0, 300)}`);
  }
  if (!r.ok) {
    const msg = body?.error ?? body?.errors?.[0]?.msg ?? text;
    throw new Error(typeof msg === "string" ? msg : `${r.status} from ${path}`);
  }
  noteWarnings(path, body);
  return body as T;
}

/** Who is signed in: the token's tenant, role and name; `auth` false when the server
 * checks no tokens (no sign-out then). */
export interface Session {
  tenant: string;
  role: string;
  name: string;
  auth: boolean;
}

const sessionListeners = new Set<(s: Session | null) => void>();

/** Calls `l` with `null` when the server stops accepting the session (a 401 anywhere)
 * and with the session after signing in; returns the unsubscribe function. */
export function onSession(l: (s: Session | null) => void): () => void {
  sessionListeners.add(l);
  return () => sessionListeners.delete(l);
}

/** Every API answer passes here: a 401 means the session is gone. */
export function noteStatus(r: Response) {
  if (r.status === 401) sessionListeners.forEach((l) => l(null));
}

/** The current session, or `null` when a token is needed. */
export async function currentSession(): Promise<Session | null> {
  const r = await fetch("/api/session");
  if (r.status === 401) return null;
  if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).slice(0, 300)}`);
  return (await r.json()) as Session;
}

/** Signs in with a token: the server keeps it in an HttpOnly cookie for this browser
 * session. Throws the server's reason when the token is refused. */
export async function signIn(token: string): Promise<Session> {
  const r = await fetch("/api/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(body?.error ?? `sign-in failed (${r.status})`);
  sessionListeners.forEach((l) => l(body as Session));
  return body as Session;
}

/** Signs out: the server clears the cookie. */
export async function signOut(): Promise<void> {
  await fetch("/api/session", { method: "DELETE" });
  sessionListeners.forEach((l) => l(null));
}

// Answers that are incomplete (a source did not answer: `partial: true`) or carry
// Prometheus-style `warnings`, by API path; the app shows them in a banner.
const warningsByPath = new Map<string, string[]>();
const warningListeners = new Set<() => void>();

function noteWarnings(path: string, body: any) {
  const list: string[] = Array.isArray(body?.warnings) ? body.warnings.filter((w: unknown) => typeof w === "string") : [];
  if (body?.partial === true && list.length === 0) list.push("a source did not answer: results may be incomplete");
  const had = warningsByPath.has(path);
  if (list.length) warningsByPath.set(path, list);
  else warningsByPath.delete(path);
  if (list.length || had) warningListeners.forEach((l) => l());
}

/** The warnings of the latest answers, each once. */
export function currentWarnings(): string[] {
  return [...new Set([...warningsByPath.values()].flat())];
}

/** Forgets the warnings (a new page). */
export function clearWarnings() {
  if (warningsByPath.size === 0) return;
  warningsByPath.clear();
  warningListeners.forEach((l) => l());
}

/** Calls `l` whenever the warnings change; returns the unsubscribe function. */
export function onWarnings(l: () => void): () => void {
  warningListeners.add(l);
  return () => warningListeners.delete(l);
}

export async function send(method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  noteStatus(r);
  const text = await r.text();
  if (!r.ok) throw new Error(text || `${r.status}`);
  return text ? JSON.parse(text) : null;
}

/** A PromQL instant or range query through the Prometheus API. */
export async function prom(path: "query" | "query_range", params: Record<string, string | number>): Promise<any> {
  const body = await getJSON(`/api/v1/${path}`, params);
  if (body.status !== "success") throw new Error(body.error ?? "query failed");
  return body.data;
}

export interface LogHit {
  timestamp: string;
  timestamp_ns: string;
  level: string;
  body: string;
  service: string;
  host: string;
  trace_id: string | null;
  span_id: string | null;
  source: string;
  attributes: Record<string, unknown>;
}

export interface Range {
  start: number; // unix seconds
  end: number;
}

export function rfc3339(sec: number): string {
  return new Date(sec * 1000).toISOString();
}

export function fmtTime(sec: number): string {
  const d = new Date(sec * 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)}µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  return `${(ms / 60_000).toFixed(1)}min`;
}

export function fmtNumber(v: number): string {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(2) + "k";
  if (a >= 100 || a === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

/** Quotes a value for the log query syntax. */
export function quote(v: string): string {
  return /^[\w.\-:/]+$/.test(v) ? v : `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
