// One trace, of any size: the waterfall streams its rows in tree order
// (`/api/traces/{id}/rows`, NDJSON after a summary), so the first rows show before a
// 100,000-span trace has arrived; rows are virtualized and compact (no attributes, no
// per-span closures), subtrees collapse and expand (large or deep ones start
// collapsed), a search inside the trace jumps to and reveals its matches, and the
// selected span's attributes, events and log lines are read on demand.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { fmtDuration, fmtTime, getJSON, LogHit, noteStatus } from "../api";
import { Link, useParams } from "../router";
import { ErrorBox, Loading } from "../widgets";
import { Hit } from "./logs";

interface Summary {
  traceID: string;
  spanCount: number;
  services: string[];
  depth: number;
  errors: number;
  start_us: number;
  duration_us: number;
  critical: string[];
  logs: number;
  partial: boolean;
  warnings: string[];
}

/** One span as the rows stream sends it. */
export interface Row {
  id: string;
  p: number; // parent row, -1 for a root
  d: number; // depth
  s: number; // index into Summary.services
  n: string; // name
  t: number; // start, µs after the trace's
  u: number; // duration, µs
  e: boolean; // error
  c: number; // children
  z: number; // spans in the subtree, itself included
  l: number; // log lines
}

interface JaegerSpan {
  spanID: string;
  operationName: string;
  startTime: number; // µs
  duration: number; // µs
  tags: { key: string; type: string; value: unknown }[];
  logs: { timestamp: number; fields: { key: string; value: unknown }[] }[];
  processID: string;
}

interface SpanDetail {
  span: JaegerSpan;
  processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
  logs: LogHit[];
}

interface Around {
  alerts: { labels: Record<string, string>; related: boolean }[] | null;
  logs: LogHit[];
  span_count: number;
}

const ROW_HEIGHT = 26;
/** Subtrees start collapsed from this depth, or with more direct children than this. */
const COLLAPSE_DEPTH = 8;
const COLLAPSE_CHILDREN = 200;

/** Whether a row starts collapsed. */
export function startsCollapsed(r: Row): boolean {
  return r.c > 0 && (r.d >= COLLAPSE_DEPTH || (r.d > 0 && r.c > COLLAPSE_CHILDREN));
}

/** The rows shown: all, except those inside a collapsed subtree. */
export function visibleRows(rows: Row[], collapsed: Set<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; ) {
    out.push(i);
    i += collapsed.has(i) ? rows[i].z : 1;
  }
  return out;
}

/** Reads the NDJSON rows stream: the summary first, then rows in batches. */
async function streamRows(id: string, onSummary: (s: Summary) => void, onRows: (rows: Row[]) => void, signal: AbortSignal) {
  const r = await fetch(`/api/traces/${id}/rows`, { signal });
  noteStatus(r);
  if (!r.ok || !r.body) {
    const text = await r.text();
    let msg = text;
    try {
      msg = JSON.parse(text).error ?? text;
    } catch {
      /* not JSON */
    }
    throw new Error(msg || `${r.status}`);
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  let first = true;
  for (;;) {
    const { done, value } = await reader.read();
    if (value) rest += decoder.decode(value, { stream: true });
    const lines = rest.split("\n");
    rest = done ? "" : lines.pop()!;
    const batch: Row[] = [];
    for (const line of lines) {
      if (!line) continue;
      if (first) {
        onSummary(JSON.parse(line));
        first = false;
      } else batch.push(JSON.parse(line));
    }
    if (batch.length) onRows(batch);
    if (done) return;
  }
}

function colorOf(service: string): string {
  let h = 0;
  for (const ch of service) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 60% 55%)`;
}

export function TracePage({ id }: { id: string }) {
  const { get, set } = useParams();
  const [summary, setSummary] = useState<Summary | null>(null);
  const [err, setErr] = useState("");
  const [done, setDone] = useState(false);
  // Rows live in a ref and grow as they arrive; `version` re-renders.
  const rows = useRef<Row[]>([]);
  const byId = useRef(new Map<string, number>());
  const collapsed = useRef(new Set<number>());
  const [version, setVersion] = useState(0);
  const [around, setAround] = useState<Around | null>(null);
  const [logsOnly, setLogsOnly] = useState<LogHit[] | null>(null);

  useEffect(() => {
    rows.current = [];
    byId.current = new Map();
    collapsed.current = new Set();
    setSummary(null);
    setErr("");
    setDone(false);
    setLogsOnly(null);
    const abort = new AbortController();
    let last = 0;
    streamRows(
      id,
      setSummary,
      (batch) => {
        for (const r of batch) {
          const i = rows.current.length;
          rows.current.push(r);
          byId.current.set(r.id, i);
          if (startsCollapsed(r)) collapsed.current.add(i);
        }
        // At most ten renders a second while rows arrive.
        const now = performance.now();
        if (now - last > 100 || rows.current.length <= batch.length) {
          last = now;
          setVersion((v) => v + 1);
        }
      },
      abort.signal,
    ).then(
      () => {
        setDone(true);
        setVersion((v) => v + 1);
      },
      (e) => {
        if (abort.signal.aborted) return;
        // No spans: the trace's log lines, if any carry its ID.
        getJSON<Around>(`/api/correlate/${id}`, { trace: "false" }).then(
          (a) => (a.span_count === 0 ? setLogsOnly(a.logs) : setErr(e.message)),
          (e2) => setErr(e2.message),
        );
      },
    );
    getJSON<Around>(`/api/correlate/${id}`, { trace: "false" }).then(setAround, () => setAround(null));
    return () => abort.abort();
  }, [id]);

  const visible = useMemo(() => visibleRows(rows.current, collapsed.current), [version]);
  const critical = useMemo(() => new Set(summary?.critical ?? []), [summary]);

  if (err) return <ErrorBox message={`trace ${id}: ${err}`} />;
  if (logsOnly)
    return (
      <section class="page trace" aria-label="Trace">
        <h1>
          Trace <span class="mono muted">{id}</span>
        </h1>
        <div class="card">
          <p>No spans stored for this trace ID; its log lines:</p>
          <ol class="hits">
            {logsOnly.map((l) => (
              <Hit hit={l} />
            ))}
          </ol>
        </div>
      </section>
    );
  if (!summary || rows.current.length === 0) return <Loading />;
  const all = rows.current;
  const selected = get("span") || all[0].id;
  const selIdx = byId.current.get(selected) ?? -1;
  const root = all[0];
  const startSec = summary.start_us / 1e6;
  const metricsRange = `start=${new Date((startSec - 900) * 1000).toISOString()}&end=${new Date((startSec + 900) * 1000).toISOString()}`;
  const select = (i: number) => set({ span: all[i].id }, true);
  const toggle = (i: number) => {
    if (collapsed.current.has(i)) collapsed.current.delete(i);
    else collapsed.current.add(i);
    setVersion((v) => v + 1);
  };
  const reveal = (i: number) => {
    for (let p = all[i].p; p >= 0; p = all[p].p) collapsed.current.delete(p);
    setVersion((v) => v + 1);
    select(i);
  };
  const related = around?.alerts?.filter((a) => a.related) ?? [];
  return (
    <section class="page trace" aria-label="Trace">
      <header class="tracehead">
        <h1>
          {summary.services[root.s]}: {root.n} <span class="mono muted">{summary.traceID}</span>
        </h1>
        <div class="facts">
          <span>{fmtTime(startSec)}</span>
          <span>duration {fmtDuration(summary.duration_us / 1000)}</span>
          <span aria-label="Span count">
            {done ? `${summary.spanCount.toLocaleString()} spans` : `loading ${all.length.toLocaleString()} of ${summary.spanCount.toLocaleString()} spans…`}
          </span>
          <span>depth {summary.depth}</span>
          {summary.errors > 0 && <span class="bad">{summary.errors.toLocaleString()} failed</span>}
          <span>{summary.logs.toLocaleString()} log lines</span>
          <span>
            services:{" "}
            {summary.services.slice(0, 12).map((s) => (
              <Link href={`/services/${encodeURIComponent(s)}?${metricsRange}`} class="chip" title={`${s}'s metrics around this trace`}>
                {s}
              </Link>
            ))}
            {summary.services.length > 12 && <span class="muted"> +{summary.services.length - 12}</span>}
          </span>
        </div>
        {related.length > 0 && (
          <div class="warn" role="note">
            Firing around this trace:{" "}
            {related.map((a) => (
              <Link href="/alerts" class="chip bad">
                {a.labels.alertname} {a.labels.service ? `(${a.labels.service})` : ""}
              </Link>
            ))}
          </div>
        )}
        <Finder traceId={id} onJump={reveal} />
      </header>
      <div class="split">
        <Waterfall
          rows={all}
          visible={visible}
          services={summary.services}
          total={Math.max(summary.duration_us, 1)}
          selected={selIdx}
          critical={critical}
          collapsed={collapsed.current}
          onSelect={select}
          onToggle={toggle}
        />
        {selIdx >= 0 && <SpanDetails traceId={id} row={all[selIdx]} service={summary.services[all[selIdx].s]} critical={critical.has(selected)} />}
      </div>
    </section>
  );
}

/** Search inside the trace: service, operation, attribute (`key=value`), span ID, or
 * `error`; Enter jumps to the next match, revealing it. */
function Finder({ traceId, onJump }: { traceId: string; onJump: (row: number) => void }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState<{ q: string; matches: number[]; truncated: boolean } | null>(null);
  const [at, setAt] = useState(0);
  const [err, setErr] = useState("");
  const go = async (step: number) => {
    const text = q.trim();
    if (!text) return;
    let f = found;
    if (!f || f.q !== text) {
      try {
        const r = await getJSON<{ matches: number[]; truncated: boolean }>(`/api/traces/${traceId}/find`, { q: text });
        f = { q: text, ...r };
        setFound(f);
        setErr("");
      } catch (e) {
        setErr((e as Error).message);
        return;
      }
      if (f.matches.length) {
        setAt(0);
        onJump(f.matches[0]);
      }
      return;
    }
    if (!f.matches.length) return;
    const next = (at + step + f.matches.length) % f.matches.length;
    setAt(next);
    onJump(f.matches[next]);
  };
  return (
    <form
      class="finder"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        go(1);
      }}
    >
      <input
        type="search"
        aria-label="Find in trace"
        placeholder="find in trace: service, operation, key=value, error"
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
      />
      <button type="button" onClick={() => go(-1)} disabled={!found?.matches.length} aria-label="Previous match">
        ↑
      </button>
      <button type="submit" aria-label="Next match">
        ↓
      </button>
      <span class="muted" aria-live="polite">
        {err ? err : found ? (found.matches.length ? `${at + 1} of ${found.matches.length}${found.truncated ? "+" : ""}` : "no match") : ""}
      </span>
    </form>
  );
}

function Waterfall(p: {
  rows: Row[];
  visible: number[];
  services: string[];
  total: number;
  selected: number;
  critical: Set<string>;
  collapsed: Set<number>;
  onSelect: (row: number) => void;
  onToggle: (row: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const pos = p.visible.indexOf(p.selected);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight);
    // Keep the selected row in view (a search result, a link to a span).
    if (pos >= 0 && (pos * ROW_HEIGHT < el.scrollTop || (pos + 1) * ROW_HEIGHT > el.scrollTop + el.clientHeight)) {
      el.scrollTop = Math.max(0, pos * ROW_HEIGHT - 100);
      setTop(el.scrollTop);
    }
  }, [p.selected, pos]);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 20);
  const last = Math.min(p.visible.length, Math.ceil((top + height) / ROW_HEIGHT) + 20);
  const move = (delta: number) => {
    const next = p.visible[Math.max(0, Math.min(p.visible.length - 1, pos + delta))];
    if (next !== undefined) p.onSelect(next);
  };
  return (
    <div
      class="waterfall"
      ref={box}
      tabIndex={0}
      role="tree"
      aria-label="Spans; arrow keys move the selection, left and right collapse and expand"
      onScroll={(e) => setTop((e.target as HTMLDivElement).scrollTop)}
      onKeyDown={(e) => {
        const r = p.rows[p.selected];
        if (e.key === "ArrowDown") (move(1), e.preventDefault());
        if (e.key === "ArrowUp") (move(-1), e.preventDefault());
        if (e.key === "ArrowLeft" && r) {
          if (r.c > 0 && !p.collapsed.has(p.selected)) p.onToggle(p.selected);
          else if (r.p >= 0) p.onSelect(r.p);
          e.preventDefault();
        }
        if (e.key === "ArrowRight" && r && r.c > 0 && p.collapsed.has(p.selected)) (p.onToggle(p.selected), e.preventDefault());
      }}
    >
      <div style={{ height: p.visible.length * ROW_HEIGHT, position: "relative" }}>
        {p.visible.slice(first, last).map((idx, k) => {
          const r = p.rows[idx];
          const service = p.services[r.s] ?? "";
          const left = (r.t / p.total) * 100;
          const width = Math.max((r.u / p.total) * 100, 0.2);
          const closed = p.collapsed.has(idx);
          const critical = p.critical.has(r.id);
          return (
            <div
              role="treeitem"
              aria-selected={idx === p.selected}
              aria-expanded={r.c > 0 ? !closed : undefined}
              aria-level={r.d + 1}
              class={"wrow" + (idx === p.selected ? " selected" : "") + (r.e ? " err" : "")}
              style={{ top: (first + k) * ROW_HEIGHT, height: ROW_HEIGHT }}
              onClick={() => p.onSelect(idx)}
              data-span={r.id}
            >
              <div class="wname" style={{ paddingLeft: 6 + r.d * 14 }} title={`${service} ${r.n}`}>
                {r.c > 0 ? (
                  <button
                    class="twisty"
                    aria-label={closed ? `expand ${r.z - 1} spans` : "collapse"}
                    onClick={(e) => {
                      e.stopPropagation();
                      p.onToggle(idx);
                    }}
                  >
                    {closed ? "▸" : "▾"}
                  </button>
                ) : (
                  <span class="twisty" />
                )}
                <span class="dot" style={{ background: colorOf(service) }} />
                <span class="svc">{service}</span> {r.n}
                {closed && <span class="muted"> +{(r.z - 1).toLocaleString()}</span>}
                {r.l > 0 && <span class="logcount" title="log lines of this span">✎{r.l}</span>}
              </div>
              <div class="wbar">
                <div
                  class={"bar" + (critical ? " critical" : "")}
                  style={{ left: `${left}%`, width: `${width}%`, background: colorOf(service) }}
                  title={`${fmtDuration(r.u / 1000)}${critical ? " · on the critical path" : ""}`}
                />
                <span class="blabel" style={{ left: `${Math.min(left + width, 85)}%` }}>
                  {fmtDuration(r.u / 1000)}
                </span>
              </div>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function SpanDetails({ traceId, row, service, critical }: { traceId: string; row: Row; service: string; critical: boolean }) {
  const [detail, setDetail] = useState<SpanDetail | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    setDetail(null);
    setErr("");
    let live = true;
    getJSON<SpanDetail>(`/api/traces/${traceId}/spans/${row.id}`).then(
      (d) => live && setDetail(d),
      (e) => live && setErr(e.message),
    );
    return () => {
      live = false;
    };
  }, [traceId, row.id]);
  const s = detail?.span;
  const status = s?.tags.find((t) => t.key === "otel.status_code")?.value ?? (row.e ? "ERROR" : "UNSET");
  return (
    <aside class="details card" aria-label="Span details">
      <h2>
        {service}: {row.n}
      </h2>
      <dl class="kv">
        <dt>Span ID</dt>
        <dd class="mono">{row.id}</dd>
        <dt>Start</dt>
        <dd>+{fmtDuration(row.t / 1000)}</dd>
        <dt>Duration</dt>
        <dd>{fmtDuration(row.u / 1000)}</dd>
        <dt>Status</dt>
        <dd class={row.e ? "bad" : ""}>{String(status)}</dd>
        <dt>Critical path</dt>
        <dd>{critical ? "yes" : "no"}</dd>
        <dt>Children</dt>
        <dd>
          {row.c.toLocaleString()} ({(row.z - 1).toLocaleString()} below)
        </dd>
      </dl>
      {err && <ErrorBox message={err} />}
      {!s && !err && <Loading />}
      {s && (
        <>
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
                    +{fmtDuration((e.timestamp - s.startTime + row.t) / 1000)}{" "}
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
          <h3>Log lines ({detail.logs.length})</h3>
          {detail.logs.length === 0 ? (
            <p class="muted">No log line carries this span's ID.</p>
          ) : (
            <ol class="hits" aria-label="Span log lines">
              {detail.logs.map((l) => (
                <Hit hit={l} />
              ))}
            </ol>
          )}
        </>
      )}
    </aside>
  );
}
