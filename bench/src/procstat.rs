//! CPU time of a process from `/proc/<pid>/stat`.

/// The sum of the given fields of proc(5)'s `stat` (numbered from 1, as the manual
/// does) of `pid` (or `self`), as seconds of 100 Hz clock ticks; 0 if unreadable.
pub fn stat_seconds(pid: &str, fields: &[usize]) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the parenthesised command name start at field 3 (state).
    let after: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields
        .iter()
        .filter_map(|i| after.get(i.checked_sub(3)?)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// User + system CPU seconds of a process (fields 14 and 15).
pub fn cpu_seconds(pid: &str) -> f64 {
    stat_seconds(pid, &[14, 15])
}

/// User + system CPU seconds of this process's waited-for children (fields 16 and 17).
pub fn children_cpu_seconds() -> f64 {
    stat_seconds("self", &[16, 17])
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS:`, `VmHWM:`); 0 if unreadable.
pub fn status_kib(pid: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with(key))?.to_string();
            line[key.len()..].split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}
