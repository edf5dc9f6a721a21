// Services: golden signals of every service (rate, error %, p50/p95/p99, host CPU) with
// sparklines, the dependency graph from spans, and a page per service whose latency
// chart shows exemplar dots that open traces.
import { useEffect, useMemo, useState } from "preact/hooks";
import uPlot from "uplot";
import { fmtDuration, fmtNumber, fmtTime, getJSON, prom } from "../api";
import { alignMatrix, Chart, PALETTE } from "../chart";
import { Link, navigate } from "../router";
import { TimeRangePicker, useRange } from "../timerange";
import { Empty, ErrorBox, Loading } from "../widgets";

const R = "triad_span_requests_total";
const E = "triad_span_errors_total";
const B = "triad_span_duration_seconds_bucket";

function win(step: number): string {
  return `${Math.max(60, Math.round(step * 4))}s`;
}

export const signals = (sel: string, w: string) => ({
  rate: `sum by (service) (rate(${R}{${sel}}[${w}]))`,
  errors: `sum by (service) (rate(${E}{${sel}}[${w}])) / sum by (service) (rate(${R}{${sel}}[${w}]))`,
  p50: `histogram_quantile(0.5, sum by (service, le) (rate(${B}{${sel}}[${w}])))`,
  p95: `histogram_quantile(0.95, sum by (service, le) (rate(${B}{${sel}}[${w}])))`,
  p99: `histogram_quantile(0.99, sum by (service, le) (rate(${B}{${sel}}[${w}])))`,
  cpu: `max by (service) (max by (host, service) (triad_service_host_info{${sel}}) * on (host) group_left () (1 - avg by (host) (rate(node_cpu_seconds_total{mode="idle"}[${w}]))))`,
});

type Signal = keyof ReturnType<typeof signals>;
type Matrix = { metric: Record<string, string>; values: [number, string][] }[];

function last(values: [number, string][] | undefined): number | null {
  if (!values?.length) return null;
  const v = parseFloat(values[values.length - 1][1]);
  return isFinite(v) ? v : null;
}

export function ServicesPage() {
  const range = useRange();
  const [services, setServices] = useState<string[] | null>(null);
  const [data, setData] = useState<Record<string, Matrix>>({});
  const [deps, setDeps] = useState<{ parent: string; child: string; callCount: number }[]>([]);
  const [err, setErr] = useState("");
  const step = Math.max(15, Math.round((range.end - range.start) / 60));
  useEffect(() => {
    setErr("");
    getJSON("/api/services").then((r) => setServices(r.data ?? []), (e) => setErr(e.message));
    getJSON("/api/dependencies", { endTs: Math.round(range.end * 1000), lookback: Math.round((range.end - range.start) * 1000) }).then(
      (r) => setDeps(r.data ?? []),
      () => {},
    );
    const q = signals("", win(step));
    Promise.all(
      (Object.keys(q) as Signal[]).map((k) =>
        prom("query_range", { query: q[k], start: range.start.toFixed(3), end: range.end.toFixed(3), step }).then(
          (d) => [k, d.result as Matrix] as const,
          () => [k, [] as Matrix] as const,
        ),
      ),
    ).then((pairs) => setData(Object.fromEntries(pairs)));
  }, [range.startText, range.endText]);
  if (err) return <ErrorBox message={err} />;
  if (!services) return <Loading />;
  const of = (k: Signal, svc: string) => data[k]?.find((m) => m.metric.service === svc);
  return (
    <section class="page" aria-label="Services">
      <div class="toolbar">
        <h1 class="grow">Services</h1>
        <TimeRangePicker />
      </div>
      {services.length === 0 ? (
        <Empty>No service has sent spans yet. Send OpenTelemetry spans to :4317 or :4318 and they appear here with their golden signals.</Empty>
      ) : (
        <table class="table services" aria-label="Golden signals">
          <thead>
            <tr>
              <th>Service</th>
              <th>Requests/s</th>
              <th>Errors</th>
              <th>p50</th>
              <th>p95</th>
              <th>p99</th>
              <th>Host CPU</th>
              <th>Rate</th>
            </tr>
          </thead>
          <tbody>
            {services.map((s) => {
              const rate = last(of("rate", s)?.values);
              const errors = last(of("errors", s)?.values);
              const ms = (k: Signal) => {
                const v = last(of(k, s)?.values);
                return v === null ? "—" : fmtDuration(v * 1000);
              };
              const cpu = last(of("cpu", s)?.values);
              const spark = of("rate", s);
              return (
                <tr>
                  <td>
                    <Link href={`/services/${encodeURIComponent(s)}${location.search}`}>{s}</Link>
                  </td>
                  <td>{rate === null ? "—" : fmtNumber(rate)}</td>
                  <td class={errors !== null && errors > 0.05 ? "bad" : ""}>{errors === null ? "—" : `${(errors * 100).toFixed(2)}%`}</td>
                  <td>{ms("p50")}</td>
                  <td>{ms("p95")}</td>
                  <td>{ms("p99")}</td>
                  <td>{cpu === null ? "—" : `${(cpu * 100).toFixed(0)}%`}</td>
                  <td class="sparkcell">{spark && <Chart sparkline height={28} data={alignMatrix([spark])} series={[{ stroke: PALETTE[0], width: 1.5 }]} label={`${s} request rate`} />}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h2>Dependencies</h2>
      {deps.length === 0 ? <Empty>No calls between services in this time range.</Empty> : <DependencyGraph deps={deps} />}
    </section>
  );
}

/** Services in layers (callers left of callees), edges labelled with call counts. */
export function DependencyGraph({ deps }: { deps: { parent: string; child: string; callCount: number }[] }) {
  const { nodes, edges, width, height } = useMemo(() => {
    const names = Array.from(new Set(deps.flatMap((d) => [d.parent, d.child]))).sort();
    const layer = new Map(names.map((n) => [n, 0]));
    // Longest path from a caller; bounded passes so cycles cannot loop.
    for (let pass = 0; pass < names.length; pass++)
      for (const d of deps) if (d.parent !== d.child && layer.get(d.child)! < layer.get(d.parent)! + 1) layer.set(d.child, Math.min(layer.get(d.parent)! + 1, names.length));
    const cols = new Map<number, string[]>();
    for (const n of names) cols.set(layer.get(n)!, [...(cols.get(layer.get(n)!) ?? []), n]);
    const pos = new Map<string, { x: number; y: number }>();
    for (const [l, ns] of cols) ns.forEach((n, i) => pos.set(n, { x: 30 + l * 200, y: 30 + i * 60 }));
    const width = 60 + Math.max(...cols.keys()) * 200 + 140;
    const height = 60 + Math.max(...[...cols.values()].map((c) => c.length)) * 60;
    return { nodes: names.map((n) => ({ n, ...pos.get(n)! })), edges: deps.map((d) => ({ d, a: pos.get(d.parent)!, b: pos.get(d.child)! })), width, height };
  }, [deps]);
  return (
    <svg class="depgraph" width={width} height={height} role="img" aria-label="Service dependency graph">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
        </marker>
      </defs>
      {edges.map(({ d, a, b }) => (
        <g class="edge">
          <line x1={a.x + 140} y1={a.y + 14} x2={b.x} y2={b.y + 14} marker-end="url(#arrow)" />
          <text x={(a.x + 140 + b.x) / 2} y={(a.y + b.y) / 2 + 8}>
            {d.callCount}
          </text>
        </g>
      ))}
      {nodes.map(({ n, x, y }) => (
        <g class="node" onClick={() => navigate(`/services/${encodeURIComponent(n)}`)}>
          <rect x={x} y={y} width={140} height={28} rx={6} />
          <text x={x + 70} y={y + 18} text-anchor="middle">
            {n}
          </text>
        </g>
      ))}
    </svg>
  );
}

interface Exemplar {
  labels: Record<string, string>;
  value: string;
  timestamp: number;
}

export function ServicePage({ name }: { name: string }) {
  const range = useRange();
  const [charts, setCharts] = useState<Record<string, Matrix> | null>(null);
  const [exemplars, setExemplars] = useState<Exemplar[]>([]);
  const [ops, setOps] = useState<Matrix>([]);
  const [err, setErr] = useState("");
  const step = Math.max(5, Math.round((range.end - range.start) / 120));
  const sel = `service="${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  useEffect(() => {
    setErr("");
    const q = signals(sel, win(step));
    const params = { start: range.start.toFixed(3), end: range.end.toFixed(3), step };
    Promise.all(
      (["rate", "errors", "p50", "p99"] as Signal[]).map((k) =>
        prom("query_range", { ...params, query: q[k] }).then((d) => [k, d.result as Matrix] as const),
      ),
    ).then((pairs) => setCharts(Object.fromEntries(pairs)), (e) => setErr(e.message));
    getJSON("/api/v1/query_exemplars", { query: `${B}{${sel}}`, start: range.start.toFixed(3), end: range.end.toFixed(3) }).then(
      (r) => setExemplars((r.data ?? []).flatMap((s: any) => s.exemplars)),
      () => setExemplars([]),
    );
    prom("query", { query: `sum by (operation) (rate(${R}{${sel}}[${win(step)}]))`, time: range.end.toFixed(3) }).then((d) => setOps(d.result), () => setOps([]));
  }, [name, range.startText, range.endText]);
  const latency = useMemo(() => {
    if (!charts) return null;
    // p50/p99 lines plus exemplars as dots on their own timestamps.
    const lines = [...(charts.p50 ?? []), ...(charts.p99 ?? [])];
    const base = alignMatrix(lines);
    const times = Array.from(new Set([...(base[0] as number[]), ...exemplars.map((e) => e.timestamp)])).sort((a, b) => a - b);
    const idx = new Map(times.map((t, i) => [t, i]));
    const cols = lines.map((_, li) => {
      const col: (number | null)[] = new Array(times.length).fill(null);
      (base[0] as number[]).forEach((t, i) => (col[idx.get(t)!] = (base[li + 1] as (number | null)[])[i]));
      return col;
    });
    const ex: (number | null)[] = new Array(times.length).fill(null);
    const exAt = new Map<number, Exemplar>();
    for (const e of exemplars) {
      ex[idx.get(e.timestamp)!] = parseFloat(e.value);
      exAt.set(idx.get(e.timestamp)!, e);
    }
    return { data: [times, ...cols, ex] as uPlot.AlignedData, exAt, n: lines.length };
  }, [charts, exemplars]);
  if (err) return <ErrorBox message={err} />;
  return (
    <section class="page" aria-label={`Service ${name}`}>
      <div class="toolbar">
        <h1 class="grow">{name}</h1>
        <Link href={`/traces?service=${encodeURIComponent(name)}`} class="btn">
          Traces
        </Link>
        <Link href={`/logs?service=${encodeURIComponent(name)}`} class="btn">
          Logs
        </Link>
        <TimeRangePicker />
      </div>
      {!charts ? (
        <Loading />
      ) : (
        <div class="grid2">
          <div class="card">
            <h3>Requests/s</h3>
            <Chart data={alignMatrix(charts.rate)} series={charts.rate.map(() => ({ label: "req/s", stroke: PALETTE[0], width: 1.5 }))} label="requests per second" />
          </div>
          <div class="card">
            <h3>Error ratio</h3>
            <Chart data={alignMatrix(charts.errors)} series={charts.errors.map(() => ({ label: "errors", stroke: PALETTE[1], width: 1.5 }))} label="error ratio" />
          </div>
          <div class="card wide">
            <h3>Latency (p50, p99) · dots are exemplars: click one to open its trace</h3>
            {latency && (
              <Chart
                label="latency with exemplars"
                data={latency.data}
                series={[
                  ...(charts.p50 ?? []).map(() => ({ label: "p50 s", stroke: PALETTE[2], width: 1.5, spanGaps: true })),
                  ...(charts.p99 ?? []).map(() => ({ label: "p99 s", stroke: PALETTE[3], width: 1.5, spanGaps: true })),
                  { label: "exemplar s", stroke: PALETTE[4], width: 0, paths: () => null, points: { show: true, size: 8, fill: PALETTE[4] } },
                ]}
                onClick={(u) => {
                  const e = u.cursor.idx != null ? latency.exAt.get(u.cursor.idx) : undefined;
                  if (e?.labels.trace_id) navigate(`/traces/${e.labels.trace_id}`);
                }}
              />
            )}
            {exemplars.length > 0 && (
              <ul class="exemplars" aria-label="Exemplars">
                {exemplars
                  .slice()
                  .sort((a, b) => parseFloat(b.value) - parseFloat(a.value))
                  .slice(0, 5)
                  .map((e) => (
                    <li>
                      <Link href={`/traces/${e.labels.trace_id}`}>{fmtDuration(parseFloat(e.value) * 1000)}</Link> at {fmtTime(e.timestamp)}
                    </li>
                  ))}
              </ul>
            )}
          </div>
          <div class="card wide">
            <h3>Operations</h3>
            {ops.length === 0 ? (
              <Empty>No requests in this window.</Empty>
            ) : (
              <table class="table">
                <tbody>
                  {ops.map((o: any) => (
                    <tr>
                      <td>
                        <Link href={`/traces?service=${encodeURIComponent(name)}&operation=${encodeURIComponent(o.metric.operation)}`}>{o.metric.operation}</Link>
                      </td>
                      <td>{fmtNumber(parseFloat(o.value[1]))} req/s</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
