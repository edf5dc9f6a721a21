//! The agent's own metrics and the host's, both on `:9464/metrics`.
//!
//! Host metrics use node_exporter's names and labels (`node_cpu_seconds_total{cpu,mode}`,
//! `node_memory_MemAvailable_bytes`, `node_filesystem_avail_bytes{mountpoint}`, …) so
//! that the dashboards and alert rules people already have for node_exporter work on
//! them unchanged; they are read from `/proc` on every scrape.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::buffer::DiskBuffer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalOutcome {
    signal: &'static str,
    /// `ok`, `retry`, `dropped`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabel {
    signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: String,
}

fn send_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

triad_model::metric_set! {
    /// Counters and gauges of the agent's pipeline (`triad_agent_*`).
    pub struct AgentMetrics in "triad_agent" {
        /// Lines read from log files.
        pub lines_read: Counter,
        /// Bytes read from log files.
        pub bytes_read: Counter,
        /// Log records produced from file lines (partial lines joined).
        pub records: Counter,
        /// Lines kept as plain text because they did not parse as their format claimed.
        parse_errors: Family<ReasonLabel, Counter>,
        /// Export attempts to the collector by outcome (ok, retry, dropped).
        batches: Family<SignalOutcome, Counter>,
        /// Duration of one export to the collector.
        send_seconds: Family<SignalLabel, Histogram> = Family::new_with_constructor(send_histogram),
        /// Items the collector refused one by one (partial success).
        rejected as "rejected_items": Family<SignalLabel, Counter>,
        /// Bytes waiting in the on-disk buffer.
        buffer_bytes: Gauge,
        /// Batches waiting in the on-disk buffer.
        buffer_entries: Gauge,
        /// Files open for tailing.
        pub open_files: Gauge,
        /// Bytes of a file not yet read.
        file_lag as "file_lag_bytes": Family<PathLabel, Gauge>,
        /// Checkpoint writes that failed.
        pub checkpoint_errors: Counter,
        /// Times the file source woke up, by reason (event: a watched file or directory
        /// changed; timer: a deadline of its own or the fallback scan; wake:
        /// acknowledged positions or a stop).
        source_wakeups: Family<ReasonLabel, Counter>,
        /// Scans of the include globs (directory listings) by the file source.
        pub directory_scans: Counter,
    }
}

impl AgentMetrics {
    /// Counts one export attempt.
    pub fn observe_send(&self, signal: &'static str, outcome: &'static str, took: Duration) {
        self.batches
            .get_or_create(&SignalOutcome { signal, outcome })
            .inc();
        self.send_seconds
            .get_or_create(&SignalLabel { signal })
            .observe(took.as_secs_f64());
    }

    /// Counts items the collector refused.
    pub fn rejected_items(&self, signal: &'static str, n: u64) {
        self.rejected
            .get_or_create(&SignalLabel { signal })
            .inc_by(n);
    }

    /// Counts one wake-up of the file source.
    pub fn source_wakeup(&self, reason: &'static str) {
        self.source_wakeups
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a line that claimed a format it did not have.
    pub fn parse_error(&self, reason: &'static str) {
        self.parse_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Updates the buffer gauges.
    pub fn set_buffer(&self, buffer: &DiskBuffer) {
        self.buffer_bytes.set(buffer.bytes() as i64);
        self.buffer_entries.set(buffer.len() as i64);
    }

    /// Replaces the per-file lag gauges.
    pub fn set_file_lag(&self, lags: &[(String, u64)]) {
        self.file_lag.clear();
        for (path, lag) in lags {
            self.file_lag
                .get_or_create(&PathLabel { path: path.clone() })
                .set(*lag as i64);
        }
    }
}

/// Host metrics read from `/proc` at scrape time, under node_exporter's names.
#[derive(Debug, Default)]
pub struct HostMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabels {
    cpu: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabel {
    device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FsLabels {
    device: String,
    fstype: String,
    mountpoint: String,
}

/// Pseudo and virtual file systems node_exporter leaves out by default.
const IGNORED_FS: [&str; 22] = [
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// Encodes one metric family of constant values, one row per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, f64)],
    metric: impl Fn(f64) -> M,
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut fam = enc.encode_descriptor(name, help, None, metric(0.0).metric_type())?;
    for (labels, v) in rows {
        metric(*v).encode(fam.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter_family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, rows, ConstCounter::new)
}

fn gauge_family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, rows, ConstGauge::new)
}

impl Collector for HostMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use procfs::{Current, CurrentSI};
        // Each source is optional: a missing /proc file (a container, another OS)
        // leaves its metrics out rather than failing the scrape.
        if let Ok(stat) = procfs::KernelStats::current() {
            let tps = procfs::ticks_per_second() as f64;
            let mut rows = Vec::new();
            for (i, c) in stat.cpu_time.iter().enumerate() {
                let cpu = i.to_string();
                let modes: [(&'static str, u64); 8] = [
                    ("user", c.user),
                    ("nice", c.nice),
                    ("system", c.system),
                    ("idle", c.idle),
                    ("iowait", c.iowait.unwrap_or(0)),
                    ("irq", c.irq.unwrap_or(0)),
                    ("softirq", c.softirq.unwrap_or(0)),
                    ("steal", c.steal.unwrap_or(0)),
                ];
                for (mode, ticks) in modes {
                    rows.push((
                        CpuLabels {
                            cpu: cpu.clone(),
                            mode,
                        },
                        ticks as f64 / tps,
                    ));
                }
            }
            counter_family(
                &mut enc,
                "node_cpu_seconds",
                "Seconds the CPUs spent in each mode",
                &rows,
            )?;
        }
        if let Ok(mem) = procfs::Meminfo::current() {
            gauge(
                &mut enc,
                "node_memory_MemTotal_bytes",
                "Memory information field MemTotal_bytes",
                mem.mem_total as f64,
            )?;
            gauge(
                &mut enc,
                "node_memory_MemFree_bytes",
                "Memory information field MemFree_bytes",
                mem.mem_free as f64,
            )?;
            if let Some(avail) = mem.mem_available {
                gauge(
                    &mut enc,
                    "node_memory_MemAvailable_bytes",
                    "Memory information field MemAvailable_bytes",
                    avail as f64,
                )?;
            }
        }
        if let Ok(load) = procfs::LoadAverage::current() {
            gauge(
                &mut enc,
                "node_load1",
                "1m load average",
                f64::from(load.one),
            )?;
            gauge(
                &mut enc,
                "node_load5",
                "5m load average",
                f64::from(load.five),
            )?;
            gauge(
                &mut enc,
                "node_load15",
                "15m load average",
                f64::from(load.fifteen),
            )?;
        }
        if let Ok(devs) = procfs::net::dev_status() {
            let mut names: Vec<_> = devs.keys().cloned().collect();
            names.sort();
            let rows = |f: fn(&procfs::net::DeviceStatus) -> u64| {
                names
                    .iter()
                    .filter_map(|n| {
                        devs.get(n)
                            .map(|d| (DeviceLabel { device: n.clone() }, f(d) as f64))
                    })
                    .collect::<Vec<_>>()
            };
            counter_family(
                &mut enc,
                "node_network_receive_bytes",
                "Network device statistic receive_bytes",
                &rows(|d| d.recv_bytes),
            )?;
            counter_family(
                &mut enc,
                "node_network_transmit_bytes",
                "Network device statistic transmit_bytes",
                &rows(|d| d.sent_bytes),
            )?;
            counter_family(
                &mut enc,
                "node_network_receive_errs",
                "Network device statistic receive_errs",
                &rows(|d| d.recv_errs),
            )?;
            counter_family(
                &mut enc,
                "node_network_transmit_errs",
                "Network device statistic transmit_errs",
                &rows(|d| d.sent_errs),
            )?;
        }
        if let Ok(disks) = procfs::diskstats() {
            // Whole devices and partitions alike, as node_exporter (minus loop and ram).
            let disks: Vec<_> = disks
                .into_iter()
                .filter(|d| !d.name.starts_with("loop") && !d.name.starts_with("ram"))
                .collect();
            let rows = |f: fn(&procfs::DiskStat) -> f64| {
                disks
                    .iter()
                    .map(|d| {
                        (
                            DeviceLabel {
                                device: d.name.clone(),
                            },
                            f(d),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            counter_family(
                &mut enc,
                "node_disk_read_bytes",
                "The total number of bytes read successfully",
                &rows(|d| d.sectors_read as f64 * 512.0),
            )?;
            counter_family(
                &mut enc,
                "node_disk_written_bytes",
                "The total number of bytes written successfully",
                &rows(|d| d.sectors_written as f64 * 512.0),
            )?;
            counter_family(
                &mut enc,
                "node_disk_io_time_seconds",
                "Total seconds spent doing I/Os",
                &rows(|d| d.time_in_progress as f64 / 1000.0),
            )?;
        }
        if let Ok(mounts) = procfs::mounts() {
            let mut size = Vec::new();
            let mut avail = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for m in mounts {
                if IGNORED_FS.contains(&m.fs_vfstype.as_str()) || !seen.insert(m.fs_file.clone()) {
                    continue;
                }
                let Ok(st) = rustix::fs::statvfs(m.fs_file.as_str()) else {
                    continue;
                };
                let labels = FsLabels {
                    device: m.fs_spec,
                    fstype: m.fs_vfstype,
                    mountpoint: m.fs_file,
                };
                size.push((labels.clone(), (st.f_blocks * st.f_frsize) as f64));
                avail.push((labels, (st.f_bavail * st.f_frsize) as f64));
            }
            gauge_family(
                &mut enc,
                "node_filesystem_size_bytes",
                "Filesystem size in bytes",
                &size,
            )?;
            gauge_family(
                &mut enc,
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes",
                &avail,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn host_metrics_render_with_node_exporter_names() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HostMetrics));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for name in [
            "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}",
            "node_memory_MemAvailable_bytes ",
            "node_load1 ",
            "node_network_receive_bytes_total{device=\"lo\"}",
            "node_filesystem_avail_bytes{",
        ] {
            assert!(out.contains(name), "{name} missing from:\n{out}");
        }
    }
}
