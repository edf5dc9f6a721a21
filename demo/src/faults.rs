//! The fault schedule: each cycle has a latency spike on `profile`, an error burst on
//! `account` and `node-c` running hot, overlapping so the UI shows all three at once.

use std::time::Duration;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// The service's own work takes this many times longer.
    Latency {
        /// Service.
        service: &'static str,
        /// Factor.
        factor: f64,
    },
    /// The service fails this share of requests.
    Errors {
        /// Service.
        service: &'static str,
        /// Share, 0..1.
        ratio: f64,
    },
    /// The host's CPU is busy this share of the time.
    HotHost {
        /// Host.
        host: &'static str,
        /// Busy share, 0..1.
        busy: f64,
    },
}

/// A fault and when it is active within a cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Start, from the cycle's start.
    pub from: Duration,
    /// End, from the cycle's start.
    pub to: Duration,
}

/// The faults of one cycle of length `cycle`: in a 10-minute cycle the latency spike
/// starts 18 s in, the error burst at 36 s, the hot host at 60 s, each lasting about two
/// and a half minutes (scaled for other cycle lengths).
pub fn schedule(cycle: Duration) -> Vec<Fault> {
    let at = |share: f64| cycle.mul_f64(share);
    vec![
        Fault {
            kind: FaultKind::Latency {
                service: "profile",
                factor: 40.0,
            },
            from: at(0.03),
            to: at(0.28),
        },
        Fault {
            kind: FaultKind::Errors {
                service: "account",
                ratio: 0.35,
            },
            from: at(0.06),
            to: at(0.31),
        },
        Fault {
            kind: FaultKind::HotHost {
                host: "node-c",
                busy: 0.97,
            },
            from: at(0.10),
            to: at(0.36),
        },
    ]
}

/// The faults active `elapsed` after the start.
pub fn active(faults: &[Fault], cycle: Duration, elapsed: Duration) -> Vec<FaultKind> {
    let t = Duration::from_nanos((elapsed.as_nanos() % cycle.as_nanos().max(1)) as u64);
    faults
        .iter()
        .filter(|f| f.from <= t && t < f.to)
        .map(|f| f.kind)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_start_within_the_first_minutes_and_end_within_the_cycle() {
        let cycle = Duration::from_secs(600);
        let s = schedule(cycle);
        assert!(
            s.iter()
                .all(|f| f.from <= Duration::from_secs(60) && f.to < cycle && f.from < f.to)
        );
        assert!(active(&s, cycle, Duration::from_secs(10)).is_empty());
        assert_eq!(active(&s, cycle, Duration::from_secs(100)).len(), 3);
        assert!(active(&s, cycle, Duration::from_secs(300)).is_empty());
        assert_eq!(
            active(&s, cycle, Duration::from_secs(700)).len(),
            3,
            "faults repeat every cycle"
        );
    }
}
