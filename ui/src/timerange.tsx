// The time-range picker: relative ranges (`now-1h` … `now`) or absolute times, kept in
// the URL as `start`/`end` (RFC 3339, or `now-<n><unit>`).
import { useState } from "preact/hooks";
import type { Range } from "./api";
import { useParams } from "./router";

const PRESETS: [string, string][] = [
  ["now-5m", "Last 5 minutes"],
  ["now-15m", "Last 15 minutes"],
  ["now-1h", "Last hour"],
  ["now-6h", "Last 6 hours"],
  ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"],
];
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds since the epoch for `now`, `now-15m`, RFC 3339 or unix seconds. */
export function parseTime(v: string, now = Date.now() / 1000): number | null {
  if (!v || v === "now") return now;
  const rel = /^now-(\d+(?:\.\d+)?)([smhdw])$/.exec(v);
  if (rel) return now - parseFloat(rel[1]) * UNITS[rel[2]];
  if (/^\d+(\.\d+)?$/.test(v)) return parseFloat(v);
  const t = Date.parse(v);
  return isNaN(t) ? null : t / 1000;
}

export function useRange(defaultStart = "now-1h"): Range & { startText: string; endText: string } {
  const { get } = useParams();
  const startText = get("start") || defaultStart;
  const endText = get("end") || "now";
  const now = Date.now() / 1000;
  const start = parseTime(startText, now) ?? now - 3600;
  const end = parseTime(endText, now) ?? now;
  return { start: Math.min(start, end - 1), end, startText, endText };
}

function toLocalInput(sec: number): string {
  const d = new Date(sec * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

export function TimeRangePicker({ defaultStart = "now-1h" }: { defaultStart?: string }) {
  const { set } = useParams();
  const r = useRange(defaultStart);
  const [open, setOpen] = useState(false);
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const preset = PRESETS.find(([v]) => v === r.startText && r.endText === "now");
  const label = preset ? preset[1] : `${new Date(r.start * 1000).toLocaleString()} → ${new Date(r.end * 1000).toLocaleString()}`;
  return (
    <div class="timepicker">
      <button
        class="btn"
        aria-haspopup="true"
        aria-expanded={open}
        onClick={() => {
          setFrom(toLocalInput(r.start));
          setTo(toLocalInput(r.end));
          setOpen(!open);
        }}
      >
        {label} ▾
      </button>
      {open && (
        <div class="popover" role="dialog" aria-label="Time range">
          <div class="presets">
            {PRESETS.map(([v, text]) => (
              <button
                class={"btn link" + (preset?.[0] === v ? " active" : "")}
                onClick={() => {
                  set({ start: v, end: undefined });
                  setOpen(false);
                }}
              >
                {text}
              </button>
            ))}
          </div>
          <form
            class="absolute"
            onSubmit={(e) => {
              e.preventDefault();
              const a = Date.parse(from);
              const b = Date.parse(to);
              if (!isNaN(a) && !isNaN(b) && a < b) {
                set({ start: new Date(a).toISOString(), end: new Date(b).toISOString() });
                setOpen(false);
              }
            }}
          >
            <label>
              From <input type="datetime-local" step="1" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              To <input type="datetime-local" step="1" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
            </label>
            <button class="btn primary" type="submit">
              Apply
            </button>
          </form>
        </div>
      )}
    </div>
  );
}
