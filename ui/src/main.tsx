// The app shell: navigation, theme (light/dark, remembered), and the route table.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { AlertsPage } from "./pages/alerts";
import { GraphPage } from "./pages/graph";
import { LogsPage } from "./pages/logs";
import { ServicePage, ServicesPage } from "./pages/services";
import { TracePage } from "./pages/trace";
import { TracesPage } from "./pages/traces";
import { clearWarnings, currentSession, currentWarnings, onSession, onWarnings, Session, signIn, signOut } from "./api";
import { Link, navigate, useLocation } from "./router";

const NAV: [string, string][] = [
  ["/logs", "Logs"],
  ["/traces", "Traces"],
  ["/services", "Services"],
  ["/graph", "Metrics"],
  ["/alerts", "Alerts"],
];

function route(path: string) {
  const m = (re: RegExp) => re.exec(path);
  let x;
  if ((x = m(/^\/traces\/([0-9a-fA-F]{1,32})\/?$/))) return <TracePage id={x[1]} />;
  if (m(/^\/traces\/?$/)) return <TracesPage />;
  if ((x = m(/^\/services\/([^/]+)\/?$/))) return <ServicePage name={decodeURIComponent(x[1])} />;
  if (m(/^\/services\/?$/)) return <ServicesPage />;
  if (m(/^\/graph\/?$/)) return <GraphPage />;
  if (m(/^\/alerts\/?$/)) return <AlertsPage />;
  if (m(/^\/logs\/?$/)) return <LogsPage />;
  return null;
}

function Theme() {
  const [dark, setDark] = useState(() => (localStorage.getItem("triad-theme") ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light")) === "dark");
  useEffect(() => {
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    localStorage.setItem("triad-theme", dark ? "dark" : "light");
  }, [dark]);
  return (
    <button class="btn theme" onClick={() => setDark(!dark)} aria-label={dark ? "Switch to light theme" : "Switch to dark theme"} title="Light / dark">
      {dark ? "☀" : "☾"}
    </button>
  );
}

/** Says when an answer on the page is incomplete (a collector did not answer) or
 * carries warnings, as Prometheus' UI does. */
function WarningsBanner({ path }: { path: string }) {
  const [warnings, setWarnings] = useState<string[]>([]);
  useEffect(() => onWarnings(() => setWarnings(currentWarnings())), []);
  useEffect(() => clearWarnings(), [path]);
  if (warnings.length === 0) return null;
  return (
    <div class="warning-banner" role="status">
      <strong>Incomplete answer.</strong> Some of what is shown may be missing:
      <ul>
        {warnings.map((w) => (
          <li>{w}</li>
        ))}
      </ul>
    </div>
  );
}

/** Asks for a token when the server checks them and none is signed in. */
function SignIn({ failed }: { failed?: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(failed ?? "");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      await signIn(token.trim());
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>▲ Triad</h1>
        <p>This Triad asks for a token. Paste one with the read role (made with <code>triad token new</code>); it is kept for this browser session only.</p>
        <label>
          Token
          <input type="password" autocomplete="current-password" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} autofocus required />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button class="btn primary" type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Who({ session }: { session: Session }) {
  if (!session.auth) return null;
  return (
    <span class="who">
      <span title={`token ${session.name}`}>
        {session.tenant} · {session.role}
      </span>
      <button class="btn" onClick={() => signOut()}>
        Sign out
      </button>
    </span>
  );
}

function App() {
  // undefined: asking the server; null: a token is needed.
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [failure, setFailure] = useState("");
  useEffect(() => {
    currentSession()
      .then(setSession)
      .catch((e) => {
        setFailure((e as Error).message);
        setSession(null);
      });
    return onSession(setSession);
  }, []);
  if (session === undefined) return null;
  if (session === null) return <SignIn failed={failure} />;
  return <Shell session={session} />;
}

function Shell({ session }: { session: Session }) {
  const loc = useLocation();
  useEffect(() => {
    if (loc.path === "/") navigate("/services", true);
  }, [loc.path]);
  const page = route(loc.path);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/services" class="brand">
          ▲ Triad
        </Link>
        <nav aria-label="Main">
          {NAV.map(([href, label]) => (
            <Link href={href} class={loc.path.startsWith(href) ? "active" : ""}>
              {label}
            </Link>
          ))}
        </nav>
        <span class="grow" />
        <Who session={session} />
        <Theme />
      </header>
      <main id="main">
        <WarningsBanner path={loc.path} />
        {page ?? <div class="empty">No page at {loc.path}. Use the menu above.</div>}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
