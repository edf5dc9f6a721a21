// Metrics: a PromQL box with completion of metric names, label names and functions, and
// graph (range query) and table (instant query) views. The URL uses Prometheus' own
// `g0.expr` / `g0.tab` parameters, so alert `generatorURL`s open here.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { prom } from "../api";
import { alignMatrix, Chart, PALETTE, seriesLabel } from "../chart";
import { useParams } from "../router";
import { TimeRangePicker, useRange } from "../timerange";
import { Empty, ErrorBox, Tabs } from "../widgets";
import { getJSON } from "../api";

const FUNCTIONS = (
  "abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time day_of_month day_of_week " +
  "delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join label_replace last_over_time ln " +
  "log10 log2 max_over_time min_over_time minute month predict_linear quantile_over_time rate resets round scalar sgn sort " +
  "sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector year sum avg min max count group " +
  "stddev stdvar topk bottomk quantile count_values by without on ignoring group_left group_right bool offset"
).split(" ");

/** The word being typed at `pos` and whether it sits inside `{…}` (label names). */
export function tokenAt(text: string, pos: number): { word: string; from: number; inBraces: boolean } {
  let from = pos;
  while (from > 0 && /[\w:]/.test(text[from - 1])) from--;
  const before = text.slice(0, from);
  const inBraces = before.lastIndexOf("{") > before.lastIndexOf("}");
  return { word: text.slice(from, pos), from, inBraces };
}

function ExprInput({ value, onRun }: { value: string; onRun: (v: string) => void }) {
  const [text, setText] = useState(value);
  const [names, setNames] = useState<string[]>([]);
  const [labels, setLabels] = useState<string[]>([]);
  const [sugg, setSugg] = useState<string[]>([]);
  const [active, setActive] = useState(0);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    getJSON("/api/v1/label/__name__/values").then((r) => setNames(r.data ?? []), () => {});
    getJSON("/api/v1/labels").then((r) => setLabels(r.data ?? []), () => {});
  }, []);
  const suggest = (t: string, pos: number) => {
    const tok = tokenAt(t, pos);
    if (tok.word.length < 1) return setSugg([]);
    const pool = tok.inBraces ? labels : [...names, ...FUNCTIONS];
    const w = tok.word.toLowerCase();
    const hits = pool.filter((n) => n.toLowerCase().startsWith(w) && n !== tok.word);
    const more = pool.filter((n) => !n.toLowerCase().startsWith(w) && n.toLowerCase().includes(w));
    setSugg([...hits, ...more].slice(0, 12));
    setActive(0);
  };
  // Names that arrive while someone is already typing complete what is typed, not only
  // the next keystroke.
  useEffect(() => {
    const el = ref.current;
    if (el && document.activeElement === el && el.value) suggest(el.value, el.selectionStart);
  }, [names, labels]);
  const accept = (s: string) => {
    const el = ref.current!;
    const tok = tokenAt(text, el.selectionStart);
    const next = text.slice(0, tok.from) + s + text.slice(el.selectionStart);
    // Set value and caret synchronously: keys typed right after must land after the
    // completion, not wherever a later frame would put the caret.
    el.value = next;
    el.selectionStart = el.selectionEnd = tok.from + s.length;
    el.focus();
    setText(next);
    setSugg([]);
  };
  return (
    <div class="exprbox">
      <textarea
        ref={ref}
        class="mono grow"
        rows={2}
        aria-label="PromQL expression"
        aria-autocomplete="list"
        placeholder="PromQL, e.g. sum by (service) (rate(triad_span_requests_total[5m]))"
        value={text}
        onInput={(e) => {
          const el = e.target as HTMLTextAreaElement;
          setText(el.value);
          suggest(el.value, el.selectionStart);
        }}
        onKeyDown={(e) => {
          if (sugg.length && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
            e.preventDefault();
            setActive((a) => (a + (e.key === "ArrowDown" ? 1 : sugg.length - 1)) % sugg.length);
          } else if (sugg.length && (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey && sugg[active]))) {
            e.preventDefault();
            accept(sugg[active]);
          } else if (e.key === "Escape") setSugg([]);
          else if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            setSugg([]);
            onRun(text);
          }
        }}
      />
      {sugg.length > 0 && (
        <ul class="suggest" role="listbox" aria-label="Completions">
          {sugg.map((s, i) => (
            <li role="option" aria-selected={i === active} class={i === active ? "active" : ""} onMouseDown={(e) => (e.preventDefault(), accept(s))}>
              {s}
            </li>
          ))}
        </ul>
      )}
      <button class="btn primary" onClick={() => onRun(text)}>
        Execute
      </button>
    </div>
  );
}

export function GraphPage() {
  const { get, set } = useParams();
  const range = useRange();
  const expr = get("g0.expr");
  const tab = get("g0.tab") === "1" ? "table" : "graph";
  const [res, setRes] = useState<any>(null);
  const [err, setErr] = useState("");
  const step = Math.max(1, Math.round((range.end - range.start) / 250));
  useEffect(() => {
    setErr("");
    setRes(null);
    if (!expr) return;
    const p =
      tab === "graph"
        ? prom("query_range", { query: expr, start: range.start.toFixed(3), end: range.end.toFixed(3), step })
        : prom("query", { query: expr, time: range.end.toFixed(3) });
    p.then(setRes, (e) => setErr(e.message));
  }, [expr, tab, range.startText, range.endText]);
  const chart = useMemo(() => (res?.resultType === "matrix" ? { data: alignMatrix(res.result), labels: res.result.map((r: any) => seriesLabel(r.metric)) } : null), [res]);
  return (
    <section class="page" aria-label="Metrics">
      <ExprInput value={expr} onRun={(v) => set({ "g0.expr": v })} />
      <div class="toolbar">
        <Tabs value={tab} tabs={[["graph", "Graph"], ["table", "Table"]]} onChange={(t) => set({ "g0.tab": t === "table" ? "1" : "0" })} />
        <span class="grow" />
        <TimeRangePicker />
      </div>
      {err && <ErrorBox message={err} />}
      {!expr && <Empty>Type a PromQL expression; names complete as you type (Tab or Enter to accept).</Empty>}
      {chart &&
        (chart.labels.length === 0 ? (
          <Empty>The query returned no series.</Empty>
        ) : (
          <Chart height={360} data={chart.data} series={chart.labels.map((l: string, i: number) => ({ label: l, stroke: PALETTE[i % PALETTE.length], width: 1.5 }))} label="query result" />
        ))}
      {res && tab === "table" && <ResultTable res={res} />}
    </section>
  );
}

function ResultTable({ res }: { res: any }) {
  if (res.resultType === "scalar" || res.resultType === "string") return <pre class="json">{String(res.result[1])}</pre>;
  if (!res.result.length) return <Empty>The query returned no series.</Empty>;
  return (
    <table class="table" aria-label="Query result">
      <tbody>
        {res.result.map((r: any) => (
          <tr>
            <td class="mono">{seriesLabel(r.metric)}</td>
            <td class="mono">{r.value ? r.value[1] : r.values.map((v: any) => v[1]).join(", ")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
