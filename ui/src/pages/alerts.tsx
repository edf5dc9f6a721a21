// Alerts: firing and pending alerts with their evidence (example traces and log lines),
// rules with state and health, and silences (create, expire).
import { useEffect, useState } from "preact/hooks";
import { fmtDuration, fmtTime, getJSON, send } from "../api";
import { Link, useParams } from "../router";
import { Empty, ErrorBox, Loading, Tabs } from "../widgets";
import { Context } from "./logs";

interface ActiveAlert {
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt: string;
  value: string;
  silencedBy: string[];
  rule: { group: string; name: string; query: string };
}

export function AlertsPage() {
  const { get, set } = useParams();
  const tab = (get("tab") || "alerts") as "alerts" | "rules" | "silences";
  return (
    <section class="page" aria-label="Alerts">
      <Tabs
        value={tab}
        tabs={[
          ["alerts", "Alerts"],
          ["rules", "Rules"],
          ["silences", "Silences"],
        ]}
        onChange={(t) => set({ tab: t === "alerts" ? undefined : t })}
      />
      {tab === "alerts" && <ActiveAlerts />}
      {tab === "rules" && <Rules />}
      {tab === "silences" && <Silences />}
    </section>
  );
}

function usePoll<T>(load: () => Promise<T>, ms = 5000): [T | null, string, () => void] {
  const [v, setV] = useState<T | null>(null);
  const [err, setErr] = useState("");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () => load().then((x) => live && (setV(x), setErr("")), (e) => live && setErr(e.message));
    run();
    const t = setInterval(run, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [n]);
  return [v, err, () => setN(n + 1)];
}

function ActiveAlerts() {
  const [alerts, err] = usePoll(() => getJSON<ActiveAlert[]>("/api/alerts"));
  if (err) return <ErrorBox message={err} />;
  if (!alerts) return <Loading />;
  if (alerts.length === 0) return <Empty>No alert is pending or firing.</Empty>;
  const sorted = [...alerts].sort((a, b) => (a.state === b.state ? a.activeAt.localeCompare(b.activeAt) : a.state === "firing" ? -1 : 1));
  return (
    <ul class="alerts" aria-label="Active alerts">
      {sorted.map((a) => (
        <AlertCard a={a} key={a.fingerprint} />
      ))}
    </ul>
  );
}

function AlertCard({ a }: { a: ActiveAlert }) {
  const [ev, setEv] = useState<any>(null);
  const [open, setOpen] = useState(false);
  const [err, setErr] = useState("");
  const toggle = () => {
    setOpen(!open);
    if (!ev) getJSON(`/api/alerts/${a.fingerprint}/evidence`).then(setEv, (e) => setErr(e.message));
  };
  const silenceHref = `/alerts?tab=silences&matchers=${encodeURIComponent(
    Object.entries(a.labels)
      .filter(([k]) => k === "alertname" || k === "service")
      .map(([k, v]) => `${k}="${v}"`)
      .join(","),
  )}`;
  return (
    <li class={"alert card " + a.state}>
      <div class="alerthead">
        <span class={"badge " + (a.state === "firing" ? "lvl-error" : "lvl-warn")}>{a.state}</span>
        <strong>{a.labels.alertname}</strong>
        {a.silencedBy.length > 0 && <span class="badge">silenced</span>}
        <span class="muted">since {fmtTime(Date.parse(a.activeAt) / 1000)}</span>
        <span class="grow" />
        <Link href={silenceHref} class="btn">
          Silence…
        </Link>
        <button class="btn" aria-expanded={open} onClick={toggle}>
          {open ? "Hide evidence" : "Evidence"}
        </button>
      </div>
      {a.annotations.summary && <p>{a.annotations.summary}</p>}
      <div class="labels">
        {Object.entries(a.labels).map(([k, v]) => (
          <span class="chip">
            {k}={v}
          </span>
        ))}
      </div>
      <p class="muted mono small">
        {a.rule.group} / <Link href={`/graph?g0.expr=${encodeURIComponent(a.rule.query)}&g0.tab=0`}>{a.rule.query}</Link>
      </p>
      {open && (err ? <ErrorBox message={err} /> : !ev ? <Loading /> : <Evidence ev={ev} />)}
    </li>
  );
}

export function Evidence({ ev }: { ev: any }) {
  return (
    <div class="evidence" aria-label="Evidence">
      <h4>Example traces</h4>
      {ev.traces.length === 0 ? (
        <p class="muted">No exemplar or error span in the window.</p>
      ) : (
        <ul>
          {ev.traces.map((t: any) => (
            <li>
              <Link href={`/traces/${t.trace_id}`}>
                {t.root_service}: {t.root_operation}
              </Link>{" "}
              {fmtDuration(t.duration_ms)} {t.error && <span class="badge lvl-error">error</span>} <span class="muted">({t.found_by.replace("_", " ")})</span>
            </li>
          ))}
        </ul>
      )}
      <h4>Log lines</h4>
      {ev.logs.length === 0 ? (
        <p class="muted">No error log line in the window.</p>
      ) : (
        <ul class="evlogs">
          {ev.logs.map((l: any) => (
            <EvidenceLine line={l} />
          ))}
        </ul>
      )}
    </div>
  );
}

/** An evidence log line, with its context on demand. */
function EvidenceLine({ line: l }: { line: any }) {
  const [context, setContext] = useState(false);
  return (
    <li>
      <span class="mono muted">{l.timestamp}</span> <span class="badge lvl-error">{l.level}</span> {l.service}: <span class="mono">{l.body}</span>{" "}
      {l.trace_id && <Link href={`/traces/${l.trace_id}${l.span_id ? `?span=${l.span_id}` : ""}`}>trace</Link>}{" "}
      {l.timestamp_ns && (
        <button class="linkish" aria-pressed={context} onClick={() => setContext(!context)}>
          {context ? "hide context" : "context"}
        </button>
      )}
      {context && <Context hit={l} />}
    </li>
  );
}

function Rules() {
  const [data, err] = usePoll(() => getJSON("/api/v1/rules").then((r) => r.data.groups as any[]));
  if (err) return <ErrorBox message={err} />;
  if (!data) return <Loading />;
  if (data.length === 0) return <Empty>No rules. Add rule files (alerting.rule_files) or golden signals (alerting.golden_signals) to triad.yaml.</Empty>;
  return (
    <div>
      {data.map((g) => (
        <div class="card">
          <h3>
            {g.name} <span class="muted small">{g.file} · every {g.interval}s</span>
          </h3>
          <table class="table" aria-label={`Rules of ${g.name}`}>
            <tbody>
              {g.rules.map((r: any) => (
                <tr>
                  <td>
                    <span class={"badge " + (r.state === "firing" ? "lvl-error" : r.state === "pending" ? "lvl-warn" : r.type === "recording" ? "" : "lvl-ok")}>{r.state ?? "record"}</span>
                  </td>
                  <td>
                    <strong>{r.name}</strong>
                  </td>
                  <td class="mono small">
                    <Link href={`/graph?g0.expr=${encodeURIComponent(r.query)}&g0.tab=0`}>{r.query}</Link>
                  </td>
                  <td class={r.health === "err" ? "bad" : "muted"}>{r.health === "err" ? r.lastError : r.health}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function parseMatchers(text: string) {
  return text
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean)
    .map((m) => {
      const r = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?$/.exec(m);
      if (!r) throw new Error(`cannot read matcher ${m}: write name="value" or name=~"regex"`);
      return { name: r[1], value: r[3], isRegex: r[2].includes("~"), isEqual: !r[2].startsWith("!") };
    });
}

function Silences() {
  const { get } = useParams();
  const [list, err, reload] = usePoll(() => getJSON<any[]>("/api/v2/silences"));
  const [matchers, setMatchers] = useState(get("matchers"));
  const [hours, setHours] = useState("2");
  const [comment, setComment] = useState("");
  const [formErr, setFormErr] = useState("");
  const create = async (e: Event) => {
    e.preventDefault();
    setFormErr("");
    try {
      const body = {
        matchers: parseMatchers(matchers),
        endsAt: new Date(Date.now() + parseFloat(hours) * 3600_000).toISOString(),
        createdBy: "ui",
        comment,
      };
      await send("POST", "/api/v2/silences", body);
      setComment("");
      reload();
    } catch (x: any) {
      setFormErr(x.message);
    }
  };
  return (
    <div>
      <form class="card silenceform" onSubmit={create} aria-label="New silence">
        <h3>New silence</h3>
        <label>
          Matchers <input class="mono grow" name="matchers" value={matchers} placeholder='alertname="GoldenSignalErrors", service="checkout"' onInput={(e) => setMatchers((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Hours <input class="short" name="hours" type="number" min="0.1" step="0.1" value={hours} onInput={(e) => setHours((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Comment <input name="comment" value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
        </label>
        <button class="btn primary" type="submit">
          Create silence
        </button>
        {formErr && <ErrorBox message={formErr} />}
      </form>
      {err && <ErrorBox message={err} />}
      {list && list.length === 0 && <Empty>No silences.</Empty>}
      {list && list.length > 0 && (
        <table class="table" aria-label="Silences">
          <thead>
            <tr>
              <th>State</th>
              <th>Matchers</th>
              <th>Ends</th>
              <th>Comment</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr>
                <td>
                  <span class={"badge " + (s.status.state === "active" ? "lvl-warn" : "")}>{s.status.state}</span>
                </td>
                <td class="mono">{s.matchers.map((m: any) => `${m.name}${m.isEqual ? "" : "!"}${m.isRegex ? "=~" : "="}"${m.value}"`).join(", ")}</td>
                <td>{fmtTime(Date.parse(s.endsAt) / 1000)}</td>
                <td>{s.comment}</td>
                <td>
                  {s.status.state !== "expired" && (
                    <button class="btn" onClick={() => send("DELETE", `/api/v2/silence/${s.id}`).then(reload)}>
                      Expire
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
