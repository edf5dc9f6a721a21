// Trace search (Jaeger's API): service (or all), operation, tags, duration bounds;
// results as a duration-over-time scatter plot (click a dot to open the trace) and a
// list. Without a service or filters, the failed and the slowest traces of the range
// across every service.
import { useEffect, useMemo, useState } from "preact/hooks";
import uPlot from "uplot";
import { fmtDuration, fmtTime, getJSON } from "../api";
import { Chart } from "../chart";
import { Link, navigate, useParams } from "../router";
import { TimeRangePicker, useRange } from "../timerange";
import { Empty, ErrorBox } from "../widgets";

interface Summary {
  id: string;
  start: number; // s
  durationMs: number;
  root: string;
  spans: number;
  services: string[];
  error: boolean;
}

function summarize(t: any): Summary {
  const spans = t.spans as any[];
  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(...spans.map((s) => s.startTime + s.duration));
  const root = spans.find((s) => !s.references?.some((r: any) => r.refType === "CHILD_OF")) ?? spans[0];
  const services = Array.from(new Set(spans.map((s) => t.processes[s.processID]?.serviceName))) as string[];
  const error = spans.some((s) => s.tags.some((g: any) => g.key === "error" && g.value === true));
  return {
    id: t.traceID,
    start: start / 1e6,
    durationMs: (end - start) / 1000,
    root: `${t.processes[root.processID]?.serviceName}: ${root.operationName}`,
    spans: spans.length,
    services,
    error,
  };
}

export function TracesPage() {
  const { get, set } = useParams();
  const range = useRange();
  const service = get("service");
  const [services, setServices] = useState<string[]>([]);
  const [ops, setOps] = useState<string[]>([]);
  const [form, setForm] = useState({ operation: get("operation"), tags: get("tags"), minDuration: get("minDuration"), maxDuration: get("maxDuration") });
  const [found, setFound] = useState<Summary[] | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    getJSON("/api/services").then((r) => setServices(r.data ?? []), (e) => setErr(e.message));
  }, []);
  useEffect(() => {
    setOps([]);
    if (service) getJSON(`/api/services/${encodeURIComponent(service)}/operations`).then((r) => setOps(r.data ?? []), () => {});
  }, [service]);
  const key = [service, get("operation"), get("tags"), get("minDuration"), get("maxDuration"), range.startText, range.endText].join("|");
  const filtered = !!(service || get("operation") || get("tags") || get("minDuration") || get("maxDuration"));
  useEffect(() => {
    setErr("");
    setFound(null);
    let tags = get("tags");
    if (tags && !tags.trim().startsWith("{")) {
      // `key=value key2=value2` is easier to type than JSON.
      const obj: Record<string, string> = {};
      for (const kv of tags.trim().split(/\s+/)) {
        const [k, ...v] = kv.split("=");
        obj[k] = v.join("=");
      }
      tags = JSON.stringify(obj);
    }
    const window = { start: Math.floor(range.start * 1e6), end: Math.ceil(range.end * 1e6) };
    const search = (params: Record<string, any>) => getJSON("/api/traces", { ...window, ...params }).then((r) => (r.data ?? []).map(summarize) as Summary[]);
    const done = filtered
      ? search({ service, operation: get("operation"), tags, minDuration: get("minDuration"), maxDuration: get("maxDuration"), limit: 200 }).then((f) =>
          f.sort((a, b) => b.start - a.start),
        )
      : // Every service: the failed traces first, then the slowest, each slowest first.
        Promise.all([search({ tags: JSON.stringify({ error: "true" }), order: "slowest", limit: 50 }), search({ order: "slowest", limit: 50 })]).then(([failed, slowest]) => {
          const seen = new Set(failed.map((t) => t.id));
          const bySlowest = (a: Summary, b: Summary) => b.durationMs - a.durationMs;
          return [...failed.sort(bySlowest), ...slowest.filter((t) => !seen.has(t.id)).sort(bySlowest)];
        });
    done.then(setFound, (e) => setErr(e.message));
  }, [key]);
  const data = useMemo(() => {
    const f = [...(found ?? [])].sort((a, b) => a.start - b.start);
    return { sorted: f, plot: [f.map((t) => t.start), f.map((t) => t.durationMs)] as uPlot.AlignedData };
  }, [found]);
  return (
    <section class="page" aria-label="Traces">
      <form
        class="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          set({ ...form });
        }}
      >
        <select aria-label="Service" value={service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value, operation: undefined })}>
          <option value="">All services</option>
          {services.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
        <select aria-label="Operation" value={form.operation} onChange={(e) => setForm({ ...form, operation: (e.target as HTMLSelectElement).value })}>
          <option value="">All operations</option>
          {ops.map((o) => (
            <option value={o}>{o}</option>
          ))}
        </select>
        <input class="mono" aria-label="Tags" placeholder="error=true http.status_code=500" value={form.tags} onInput={(e) => setForm({ ...form, tags: (e.target as HTMLInputElement).value })} />
        <input class="short" aria-label="Minimum duration" placeholder="min e.g. 100ms" value={form.minDuration} onInput={(e) => setForm({ ...form, minDuration: (e.target as HTMLInputElement).value })} />
        <input class="short" aria-label="Maximum duration" placeholder="max e.g. 2s" value={form.maxDuration} onInput={(e) => setForm({ ...form, maxDuration: (e.target as HTMLInputElement).value })} />
        <TimeRangePicker />
        <button class="btn primary" type="submit">
          Find traces
        </button>
      </form>
      {err && <ErrorBox message={err} />}
      {found === null ? null : found.length === 0 ? (
        <Empty>{services.length === 0 ? "No service has sent spans yet." : "No traces match in this time range."}</Empty>
      ) : (
        <>
          {!filtered && <p class="muted">The failed traces of the time range, then the slowest, across every service.</p>}
          <Chart
            label="Trace durations over time; click a dot to open the trace"
            height={180}
            data={data.plot}
            legend={false}
            series={[{ label: "duration ms", stroke: "#4f7cff", width: 0, points: { show: true, size: 7, fill: "#4f7cff" }, paths: () => null }]}
            onClick={(u) => {
              const i = u.cursor.idx;
              if (i != null && data.sorted[i]) navigate(`/traces/${data.sorted[i].id}`);
            }}
          />
          <table class="table" aria-label="Traces found">
            <thead>
              <tr>
                <th>Start</th>
                <th>Root</th>
                <th>Duration</th>
                <th>Spans</th>
                <th>Services</th>
              </tr>
            </thead>
            <tbody>
              {found.map((t) => (
                <tr class={t.error ? "err" : ""}>
                  <td class="mono">{fmtTime(t.start)}</td>
                  <td>
                    <Link href={`/traces/${t.id}`}>{t.root}</Link> {t.error && <span class="badge lvl-error">error</span>}
                  </td>
                  <td>{fmtDuration(t.durationMs)}</td>
                  <td>{t.spans}</td>
                  <td>{t.services.join(", ")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
