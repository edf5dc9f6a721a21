// A tiny router whose whole state is the URL: path + query string, so every view is a
// shareable link and the back button works.
import { useEffect, useState } from "preact/hooks";

function current() {
  return { path: location.pathname, search: location.search };
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function navigate(to: string, replace = false) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  listeners.forEach((l) => l());
}

export function useLocation() {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const l = () => setLoc(current());
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return loc;
}

/** Query-string state: `get(k)` and `set({k: v})` (undefined/"" removes a key). */
export function useParams() {
  const loc = useLocation();
  const params = new URLSearchParams(loc.search);
  const set = (changes: Record<string, string | undefined>, replace = false) => {
    const p = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined || v === "") p.delete(k);
      else p.set(k, v);
    }
    const qs = p.toString();
    navigate(location.pathname + (qs ? `?${qs}` : ""), replace);
  };
  return { path: loc.path, params, get: (k: string) => params.get(k) ?? "", set };
}

/** A link that navigates without reloading. */
export function Link(props: { href: string; class?: string; title?: string; children: any }) {
  return (
    <a
      href={props.href}
      class={props.class}
      title={props.title}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
