// Small shared pieces: error and empty states, a loading line, tabs.
export function ErrorBox({ message }: { message: string }) {
  return (
    <div class="error" role="alert">
      <strong>Error:</strong> {message}
    </div>
  );
}

export function Empty({ children }: { children: any }) {
  return <div class="empty">{children}</div>;
}

export function Loading() {
  return (
    <div class="loading" role="status">
      Loading…
    </div>
  );
}

export function Tabs<T extends string>({ value, tabs, onChange }: { value: T; tabs: [T, string][]; onChange: (t: T) => void }) {
  return (
    <div class="tabs" role="tablist">
      {tabs.map(([id, label]) => (
        <button role="tab" aria-selected={value === id} class={"tab" + (value === id ? " active" : "")} onClick={() => onChange(id)}>
          {label}
        </button>
      ))}
    </div>
  );
}
