// uPlot in a Preact component: time-series lines, bars and points, sized to its box,
// redrawn when data changes, themed by CSS variables.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export const PALETTE = ["#4f7cff", "#e5534b", "#2da44e", "#d29922", "#a371f7", "#1f9fbf", "#db61a2", "#8b949e"];

export interface ChartProps {
  data: uPlot.AlignedData;
  series: uPlot.Series[];
  height?: number;
  /** Called with a selected x range (seconds) after a drag. */
  onSelect?: (from: number, to: number) => void;
  /** Called with the data index under the cursor on click. */
  onClick?: (u: uPlot) => void;
  axes?: uPlot.Axis[];
  scales?: uPlot.Scales;
  legend?: boolean;
  sparkline?: boolean;
  label?: string;
}

export function Chart(p: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const cb = useRef(p);
  cb.current = p;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#888";
    const grid = css.getPropertyValue("--grid").trim() || "#eee";
    const axis = (a: uPlot.Axis = {}): uPlot.Axis => ({ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, ...a });
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height: p.height ?? 200,
      series: [{}, ...p.series],
      legend: { show: p.legend ?? !p.sparkline },
      cursor: p.sparkline ? { show: false } : { drag: { x: !!p.onSelect, y: false, setScale: false } },
      select: { show: !!p.onSelect, left: 0, top: 0, width: 0, height: 0 },
      axes: p.sparkline ? [{ show: false }, { show: false }] : (p.axes ?? [axis(), axis()]).map((a) => axis(a)),
      scales: p.scales ?? { x: { time: true } },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 2 && cb.current.onSelect) {
              const from = u.posToVal(u.select.left, "x");
              const to = u.posToVal(u.select.left + u.select.width, "x");
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              cb.current.onSelect(from, to);
            }
          },
        ],
        ready: [
          (u) => {
            u.over.addEventListener("click", () => cb.current.onClick?.(u));
          },
        ],
      },
    };
    plot.current = new uPlot(opts, p.data, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: p.height ?? 200 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [p.series.length, p.height, p.series.map((s) => s.label).join("\u0000")]);
  useEffect(() => {
    plot.current?.setData(p.data);
  }, [p.data]);
  return <div class={p.sparkline ? "chart spark" : "chart"} ref={box} role="img" aria-label={p.label ?? "chart"} />;
}

/** Series of Prometheus matrix results aligned on one time axis. */
export function alignMatrix(result: { metric: Record<string, string>; values: [number, string][] }[]): uPlot.AlignedData {
  const times = Array.from(new Set(result.flatMap((r) => r.values.map((v) => v[0])))).sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const cols = result.map((r) => {
    const col: (number | null)[] = new Array(times.length).fill(null);
    for (const [t, v] of r.values) col[index.get(t)!] = parseFloat(v);
    return col;
  });
  return [times, ...cols] as uPlot.AlignedData;
}

export function seriesLabel(metric: Record<string, string>): string {
  const name = metric.__name__ ?? "";
  const rest = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .map(([k, v]) => `${k}="${v}"`)
    .join(", ");
  return rest ? `${name}{${rest}}` : name || "{}";
}
