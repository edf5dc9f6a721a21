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
import { clearWarnings, currentWarnings, onWarnings } from "./api";
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

function App() {
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
