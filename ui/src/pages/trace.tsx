// One trace: a waterfall of its spans (virtualized, so 10k+ spans stay responsive), the
// critical path highlighted, details of the selected span (attributes, events, status)
// with its log lines inline, and links to the services' metrics at that moment.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { fmtDuration, fmtTime, getJSON, LogHit } from "../api";
import { Link, useParams } from "../router";
import { ErrorBox, Loading } from "../widgets";
import { Hit } from "./logs";

interface JaegerSpan {
  spanID: string;
  operationName: string;
  references: { refType: string; spanID: string }[];
  startTime: number; // µs
  duration: number; // µs
  tags: { key: string; type: string; value: unknown }[];
  logs: { timestamp: number; fields: { key: string; value: unknown }[] }[];
  processID: string;
}

interface Correlated {
  traceID: string;
  start: string;
  duration_ms: number;
  services: string[];
  trace: { spans: JaegerSpan[]; processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }> } | null;
  spans: { spanID: string; logs: number[]; error: boolean }[];
  logs: LogHit[];
  window: { start: string; end: string };
  alerts: { labels: Record<string, string>; firing_from: string; firing_until: string; related: boolean }[] | null;
}

export interface Row {
  span: JaegerSpan;
  service: string;
  depth: number;
  error: boolean;
  logs: number[];
  critical: boolean;
  childCount: number;
}

const ROW_HEIGHT = 26;

/** Depth-first order of the spans (children by start time) with the critical path marked. */
export function layout(c: Correlated): Row[] {
  const spans = c.trace?.spans ?? [];
  const byId = new Map(spans.map((s) => [s.spanID, s]));
  const extra = new Map(c.spans.map((s) => [s.spanID, s]));
  const children = new Map<string, JaegerSpan[]>();
  const roots: JaegerSpan[] = [];
  for (const s of spans) {
    const parent = s.references.find((r) => r.refType === "CHILD_OF" && byId.has(r.spanID))?.spanID;
    if (parent) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent)!.push(s);
    } else roots.push(s);
  }
  for (const list of children.values()) list.sort((a, b) => a.startTime - b.startTime);
  roots.sort((a, b) => a.startTime - b.startTime);

  // Critical path, as Jaeger computes it: from the end of a span, the last-finishing
  // child that ends before the cursor, then the cursor moves to that child's start.
  const critical = new Set<string>();
  const walk = (s: JaegerSpan, limit: number) => {
    critical.add(s.spanID);
    let cursor = Math.min(s.startTime + s.duration, limit);
    const kids = [...(children.get(s.spanID) ?? [])].sort((a, b) => b.startTime + b.duration - (a.startTime + a.duration));
    for (const k of kids) {
      if (k.startTime >= cursor) continue;
      walk(k, cursor);
      cursor = k.startTime;
    }
  };
  if (roots[0]) walk(roots.reduce((a, b) => (b.duration > a.duration ? b : a)), Infinity);

  const rows: Row[] = [];
  const stack: [JaegerSpan, number][] = roots.reverse().map((r) => [r, 0]);
  while (stack.length) {
    const [s, depth] = stack.pop()!;
    const kids = children.get(s.spanID) ?? [];
    const x = extra.get(s.spanID);
    rows.push({
      span: s,
      depth,
      service: c.trace?.processes[s.processID]?.serviceName ?? "",
      error: x?.error ?? false,
      logs: x?.logs ?? [],
      critical: critical.has(s.spanID),
      childCount: kids.length,
    });
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  return rows;
}

function colorOf(service: string): string {
  let h = 0;
  for (const ch of service) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 60% 55%)`;
}

export function TracePage({ id }: { id: string }) {
  const { get, set } = useParams();
  const [c, setC] = useState<Correlated | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    setC(null);
    setErr("");
    getJSON<Correlated>(`/api/correlate/${id}`).then(setC, (e) => setErr(e.message));
  }, [id]);
  const rows = useMemo(() => (c ? layout(c) : []), [c]);
  if (err) return <ErrorBox message={`trace ${id}: ${err}`} />;
  if (!c) return <Loading />;
  const selected = get("span") || rows[0]?.span.spanID;
  const sel = rows.find((r) => r.span.spanID === selected);
  const t0 = rows.length ? Math.min(...rows.map((r) => r.span.startTime)) : 0;
  const total = rows.length ? Math.max(...rows.map((r) => r.span.startTime + r.span.duration)) - t0 : 1;
  const start = Date.parse(c.start) / 1000;
  const metricsRange = `start=${new Date((start - 900) * 1000).toISOString()}&end=${new Date((start + 900) * 1000).toISOString()}`;
  return (
    <section class="page trace" aria-label="Trace">
      <header class="tracehead">
        <h1>
          {rows[0] ? `${rows[0].service}: ${rows[0].span.operationName}` : "Trace"} <span class="mono muted">{c.traceID}</span>
        </h1>
        <div class="facts">
          <span>{fmtTime(start)}</span>
          <span>duration {fmtDuration(c.duration_ms)}</span>
          <span>{rows.length} spans</span>
          <span>{c.logs.length} log lines</span>
          <span>
            services:{" "}
            {c.services.map((s) => (
              <Link href={`/services/${encodeURIComponent(s)}?${metricsRange}`} class="chip" title={`${s}'s metrics around this trace`}>
                {s}
              </Link>
            ))}
          </span>
        </div>
        {c.alerts && c.alerts.filter((a) => a.related).length > 0 && (
          <div class="warn" role="note">
            Firing around this trace:{" "}
            {c.alerts
              .filter((a) => a.related)
              .map((a) => (
                <Link href="/alerts" class="chip bad">
                  {a.labels.alertname} {a.labels.service ? `(${a.labels.service})` : ""}
                </Link>
              ))}
          </div>
        )}
      </header>
      {rows.length === 0 ? (
        <div class="card">
          <p>No spans stored for this trace ID; its log lines:</p>
          <ol class="hits">{c.logs.map((l) => <Hit hit={l} />)}</ol>
        </div>
      ) : (
        <div class="split">
          <Waterfall rows={rows} t0={t0} total={total} selected={selected} onSelect={(s) => set({ span: s }, true)} />
          {sel && <SpanDetails row={sel} logs={sel.logs.map((i) => c.logs[i])} t0={t0} />}
        </div>
      )}
    </section>
  );
}

function Waterfall(p: { rows: Row[]; t0: number; total: number; selected?: string; onSelect: (id: string) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight);
    const idx = p.rows.findIndex((r) => r.span.spanID === p.selected);
    if (idx > 0 && (idx * ROW_HEIGHT < el.scrollTop || idx * ROW_HEIGHT > el.scrollTop + el.clientHeight)) el.scrollTop = idx * ROW_HEIGHT - 100;
  }, []);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 20);
  const last = Math.min(p.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + 20);
  const move = (delta: number) => {
    const idx = p.rows.findIndex((r) => r.span.spanID === p.selected);
    const next = p.rows[Math.max(0, Math.min(p.rows.length - 1, idx + delta))];
    if (next) p.onSelect(next.span.spanID);
  };
  return (
    <div
      class="waterfall"
      ref={box}
      tabIndex={0}
      role="tree"
      aria-label="Spans; arrow keys move the selection"
      onScroll={(e) => setTop((e.target as HTMLDivElement).scrollTop)}
      onKeyDown={(e) => {
        if (e.key === "ArrowDown") (move(1), e.preventDefault());
        if (e.key === "ArrowUp") (move(-1), e.preventDefault());
      }}
    >
      <div style={{ height: p.rows.length * ROW_HEIGHT, position: "relative" }}>
        {p.rows.slice(first, last).map((r, i) => {
          const s = r.span;
          const left = ((s.startTime - p.t0) / p.total) * 100;
          const width = Math.max((s.duration / p.total) * 100, 0.2);
          return (
            <div
              role="treeitem"
              aria-selected={s.spanID === p.selected}
              class={"wrow" + (s.spanID === p.selected ? " selected" : "") + (r.error ? " err" : "")}
              style={{ top: (first + i) * ROW_HEIGHT, height: ROW_HEIGHT }}
              onClick={() => p.onSelect(s.spanID)}
              data-span={s.spanID}
            >
              <div class="wname" style={{ paddingLeft: 6 + r.depth * 14 }} title={`${r.service} ${s.operationName}`}>
                <span class="dot" style={{ background: colorOf(r.service) }} />
                <span class="svc">{r.service}</span> {s.operationName}
                {r.logs.length > 0 && <span class="logcount" title="log lines of this span">✎{r.logs.length}</span>}
              </div>
              <div class="wbar">
                <div
                  class={"bar" + (r.critical ? " critical" : "")}
                  style={{ left: `${left}%`, width: `${width}%`, background: colorOf(r.service) }}
                  title={`${fmtDuration(s.duration / 1000)}${r.critical ? " · on the critical path" : ""}`}
                />
                <span class="blabel" style={{ left: `${Math.min(left + width, 85)}%` }}>
                  {fmtDuration(s.duration / 1000)}
                </span>
              </div>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function SpanDetails({ row, logs, t0 }: { row: Row; logs: LogHit[]; t0: number }) {
  const s = row.span;
  const status = s.tags.find((t) => t.key === "otel.status_code")?.value ?? (row.error ? "ERROR" : "UNSET");
  return (
    <aside class="details card" aria-label="Span details">
      <h2>
        {row.service}: {s.operationName}
      </h2>
      <dl class="kv">
        <dt>Span ID</dt>
        <dd class="mono">{s.spanID}</dd>
        <dt>Start</dt>
        <dd>+{fmtDuration((s.startTime - t0) / 1000)}</dd>
        <dt>Duration</dt>
        <dd>{fmtDuration(s.duration / 1000)}</dd>
        <dt>Status</dt>
        <dd class={row.error ? "bad" : ""}>{String(status)}</dd>
        <dt>Critical path</dt>
        <dd>{row.critical ? "yes" : "no"}</dd>
      </dl>
      <h3>Attributes</h3>
      <dl class="kv">
        {s.tags.map((t) => (
          <>
            <dt>{t.key}</dt>
            <dd class="mono">{String(t.value)}</dd>
          </>
        ))}
      </dl>
      {s.logs.length > 0 && (
        <>
          <h3>Events</h3>
          <ul class="events">
            {s.logs.map((e) => (
              <li>
                +{fmtDuration((e.timestamp - t0) / 1000)}{" "}
                {e.fields.map((f) => (
                  <span class="mono">
                    {f.key}={String(f.value)}{" "}
                  </span>
                ))}
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Log lines ({logs.length})</h3>
      {logs.length === 0 ? <p class="muted">No log line carries this span's ID.</p> : <ol class="hits" aria-label="Span log lines">{logs.map((l) => <Hit hit={l} />)}</ol>}
    </aside>
  );
}
