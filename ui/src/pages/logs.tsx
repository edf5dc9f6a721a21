// Logs: search (tantivy query syntax) over a time range, filters by service and level, a
// volume histogram to drag across, hits with expandable attributes, live tail; lines with
// a trace ID link to their trace.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { fmtTime, getJSON, LogHit, quote } from "../api";
import { Chart } from "../chart";
import { Link, useParams } from "../router";
import { TimeRangePicker, useRange } from "../timerange";
import { ErrorBox, Empty } from "../widgets";

const LEVELS = ["", "fatal", "error", "warn", "info", "debug", "trace"];

interface SearchResult {
  hits: LogHit[];
  total: number;
  histogram: { time: number; count: number }[];
  bucket_seconds: number;
  took_ms: number;
}

export function fullQuery(q: string, service: string, level: string): string {
  const parts = [q.trim()].filter(Boolean);
  if (service) parts.push(`service:${quote(service)}`);
  if (level) parts.push(`level:${level}`);
  return parts.map((p, i) => (i === 0 && parts.length > 1 && /\s(OR)\s/.test(p) ? `(${p})` : p)).join(" AND ");
}

export function LogsPage() {
  const { get, set } = useParams();
  const range = useRange();
  const q = get("q");
  const service = get("service");
  const level = get("level");
  const live = get("live") === "1";
  const [text, setText] = useState(q);
  const [res, setRes] = useState<SearchResult | null>(null);
  const [err, setErr] = useState("");
  const [loading, setLoading] = useState(false);
  const [services, setServices] = useState<string[]>([]);
  const [help, setHelp] = useState(false);
  useEffect(() => setText(q), [q]);
  useEffect(() => {
    getJSON("/api/services").then((r) => setServices(r.data ?? []), () => {});
  }, []);
  const query = fullQuery(q, service, level);
  useEffect(() => {
    if (live) return;
    setLoading(true);
    setErr("");
    getJSON<SearchResult>("/api/logs/search", { q: query, start: range.start.toFixed(3), end: range.end.toFixed(3), limit: 200 })
      .then(setRes, (e) => setErr(e.message))
      .finally(() => setLoading(false));
  }, [query, range.startText, range.endText, live]);

  return (
    <section class="page" aria-label="Logs">
      <form
        class="toolbar"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          set({ q: text });
        }}
      >
        <input
          class="grow mono"
          name="q"
          aria-label="Log query"
          placeholder='Search logs, e.g. timeout AND level:error, "payment declined", attributes.user_id:42'
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <button type="button" class="btn" aria-expanded={help} onClick={() => setHelp(!help)} title="Query syntax">
          ?
        </button>
        <select aria-label="Service" value={service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value })}>
          <option value="">All services</option>
          {services.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
        <select aria-label="Level" value={level} onChange={(e) => set({ level: (e.target as HTMLSelectElement).value })}>
          {LEVELS.map((l) => (
            <option value={l}>{l || "All levels"}</option>
          ))}
        </select>
        <TimeRangePicker />
        <button class="btn primary" type="submit">
          Search
        </button>
        <button type="button" class={"btn" + (live ? " active" : "")} aria-pressed={live} onClick={() => set({ live: live ? undefined : "1" })}>
          {live ? "■ Stop tail" : "▶ Live tail"}
        </button>
      </form>
      {help && <QueryHelp />}
      {err && <ErrorBox message={err} />}
      {live ? (
        <LiveTail query={query} />
      ) : (
        res && (
          <>
            <div class="summary">
              <strong>{res.total.toLocaleString()}</strong> lines · {res.took_ms.toFixed(1)} ms {loading && "· loading…"}
            </div>
            <Histogram res={res} onSelect={(a, b) => set({ start: new Date(a * 1000).toISOString(), end: new Date(b * 1000).toISOString() })} />
            {res.hits.length === 0 ? <Empty>No log lines match in this time range. Widen the range or loosen the query.</Empty> : <Hits hits={res.hits} />}
          </>
        )
      )}
    </section>
  );
}

function QueryHelp() {
  return (
    <div class="help card">
      <p>
        Words match the message body; terms are combined with <code>AND</code> unless you write <code>OR</code>; <code>NOT word</code> excludes;
        <code>"exact phrase"</code> matches a phrase.
      </p>
      <p>
        Fields: <code>service:checkout</code> <code>level:error</code> <code>host:node-1</code> <code>trace_id:4bf9…</code>{" "}
        <code>span_id:00f0…</code> <code>source:/var/log/app.log</code> <code>attributes.user_id:42</code>.
      </p>
    </div>
  );
}

function Histogram({ res, onSelect }: { res: SearchResult; onSelect: (a: number, b: number) => void }) {
  const data = useMemo(() => [res.histogram.map((b) => b.time), res.histogram.map((b) => b.count)] as any, [res]);
  if (!res.histogram.length) return null;
  return (
    <Chart
      label="Log volume; drag across to zoom"
      height={110}
      data={data}
      legend={false}
      onSelect={onSelect}
      series={[{ label: "lines", stroke: "#4f7cff", fill: "rgba(79,124,255,0.35)", paths: (uPlotBars as any)(), points: { show: false } }]}
    />
  );
}

// uPlot's bar path builder.
const uPlotBars = () => uPlot.paths.bars!({ size: [0.9, 100] });

export function Hits({ hits }: { hits: LogHit[] }) {
  return (
    <ol class="hits" aria-label="Log lines">
      {hits.map((h) => (
        <Hit hit={h} key={h.timestamp_ns + h.body} />
      ))}
    </ol>
  );
}

export function Hit({ hit }: { hit: LogHit }) {
  const [open, setOpen] = useState(false);
  const [context, setContext] = useState(false);
  const t = Number(BigInt(hit.timestamp_ns) / 1000000n) / 1000;
  return (
    <li class={"hit lvl-" + (hit.level || "none")}>
      <button class="row" aria-expanded={open} onClick={() => setOpen(!open)}>
        <span class="ts mono">{fmtTime(t)}</span>
        <span class={"badge lvl-" + (hit.level || "none")}>{hit.level || "—"}</span>
        <span class="svc">{hit.service}</span>
        <span class="body mono">{hit.body}</span>
      </button>
      {hit.trace_id && (
        <Link href={`/traces/${hit.trace_id}${hit.span_id ? `?span=${hit.span_id}` : ""}`} class="tracelink" title="Open the trace">
          trace {hit.trace_id.slice(0, 8)}…
        </Link>
      )}
      {open && (
        <>
          <div class="hit-actions">
            <button class="btn" aria-pressed={context} onClick={() => setContext(!context)}>
              {context ? "Hide context" : "Show context"}
            </button>
          </div>
          {context && <Context hit={hit} />}
          <pre class="json">{JSON.stringify({ ...hit, attributes: hit.attributes }, null, 2)}</pre>
        </>
      )}
    </li>
  );
}

/** The lines around a line from the same source (file, or service and host for OTLP
 * lines), oldest first, the line itself highlighted; more load from either end. */
export function Context({ hit }: { hit: Pick<LogHit, "timestamp_ns" | "source" | "service" | "host" | "body"> }) {
  const [lines, setLines] = useState<LogHit[] | null>(null);
  const [err, setErr] = useState("");
  const [edge, setEdge] = useState({ before: true, after: true });
  const ask = (timestamp_ns: string, before: number, after: number) =>
    getJSON("/api/logs/context", { timestamp_ns, source: hit.source, service: hit.service, host: hit.host, before, after });
  useEffect(() => {
    ask(hit.timestamp_ns, 10, 10).then(
      (r) => {
        setLines([...r.before, ...r.at, ...r.after]);
        setEdge({ before: r.before.length === 10, after: r.after.length === 10 });
      },
      (e) => setErr(e.message),
    );
  }, [hit.timestamp_ns, hit.source]);
  if (err) return <ErrorBox message={err} />;
  if (lines === null) return null;
  const same = (a: LogHit) => a.timestamp_ns === hit.timestamp_ns && a.body === hit.body;
  const earlier = () =>
    ask(lines[0].timestamp_ns, 20, 0).then((r) => {
      setLines([...r.before, ...lines]);
      setEdge({ ...edge, before: r.before.length === 20 });
    });
  const later = () =>
    ask(lines[lines.length - 1].timestamp_ns, 0, 20).then((r) => {
      setLines([...lines, ...r.after]);
      setEdge({ ...edge, after: r.after.length === 20 });
    });
  return (
    <div class="context">
      {edge.before && (
        <button class="btn" onClick={earlier}>
          Earlier lines
        </button>
      )}
      <ol class="context-lines mono" aria-label="Context lines">
        {lines.map((l) => (
          <li class={same(l) ? "anchor" : ""} aria-current={same(l) ? "true" : undefined}>
            <span class="ts">{fmtTime(Number(BigInt(l.timestamp_ns) / 1000000n) / 1000)}</span> <span class={"badge lvl-" + (l.level || "none")}>{l.level || "—"}</span> {l.body}
          </li>
        ))}
      </ol>
      {edge.after && (
        <button class="btn" onClick={later}>
          Later lines
        </button>
      )}
    </div>
  );
}

function LiveTail({ query }: { query: string }) {
  const [lines, setLines] = useState<LogHit[]>([]);
  const [state, setState] = useState("connecting");
  const buf = useRef<LogHit[]>([]);
  useEffect(() => {
    setLines([]);
    const es = new EventSource(`/api/logs/tail?q=${encodeURIComponent(query)}`);
    es.onopen = () => setState("live");
    es.onerror = () => setState("reconnecting");
    es.addEventListener("log", (e) => {
      buf.current.push(JSON.parse((e as MessageEvent).data));
    });
    // Batch renders: a busy tail delivers thousands of lines a second.
    const timer = setInterval(() => {
      if (!buf.current.length) return;
      const fresh = buf.current.reverse();
      buf.current = [];
      setLines((old) => fresh.concat(old).slice(0, 1000));
    }, 250);
    return () => {
      es.close();
      clearInterval(timer);
    };
  }, [query]);
  return (
    <>
      <div class="summary" role="status">
        Live tail: {state} · {lines.length} lines (newest first, last 1000 kept)
      </div>
      {lines.length === 0 ? <Empty>Waiting for new lines that match…</Empty> : <Hits hits={lines} />}
    </>
  );
}
