//! The simulated system: which service runs on which host, its routes, and which routes
//! call which.

/// A simulated host.
pub struct Host {
    /// `host.name` of the spans and the `host` label of the host metrics.
    pub name: &'static str,
    /// CPUs.
    pub cpus: usize,
    /// Memory, bytes.
    pub memory_bytes: f64,
}

/// The hosts.
pub const HOSTS: [Host; 3] = [
    Host {
        name: "node-a",
        cpus: 4,
        memory_bytes: 16e9,
    },
    Host {
        name: "node-b",
        cpus: 4,
        memory_bytes: 16e9,
    },
    Host {
        name: "node-c",
        cpus: 2,
        memory_bytes: 8e9,
    },
];

/// How a service's log lines reach disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines written by the app itself.
    Json,
    /// Docker's `json-file` driver.
    Docker,
    /// CRI (containerd, CRI-O), as in `/var/log/containers`.
    Cri,
}

/// A simulated service.
pub struct Service {
    /// `service.name`.
    pub name: &'static str,
    /// Host it runs on.
    pub host: &'static str,
    /// Format of its log file.
    pub log_format: LogFormat,
}

/// The services.
pub const SERVICES: [Service; 5] = [
    Service {
        name: "gateway",
        host: "node-a",
        log_format: LogFormat::Json,
    },
    Service {
        name: "feed",
        host: "node-a",
        log_format: LogFormat::Docker,
    },
    Service {
        name: "profile",
        host: "node-b",
        log_format: LogFormat::Cri,
    },
    Service {
        name: "topic",
        host: "node-b",
        log_format: LogFormat::Json,
    },
    Service {
        name: "account",
        host: "node-c",
        log_format: LogFormat::Cri,
    },
];

/// A route of a service and what it calls.
pub struct Route {
    /// Service handling it.
    pub service: &'static str,
    /// `METHOD /path`.
    pub name: &'static str,
    /// Typical own work, ms (log-normal around it).
    pub base_ms: f64,
    /// Downstream calls, in order: (service, route name).
    pub calls: &'static [(&'static str, &'static str)],
    /// Whether it ends in a database query span.
    pub db: Option<&'static str>,
}

/// Every route.
pub const ROUTES: &[Route] = &[
    Route {
        service: "gateway",
        name: "GET /api/feed",
        base_ms: 3.0,
        calls: &[("feed", "GET /items"), ("profile", "GET /users/{id}")],
        db: None,
    },
    Route {
        service: "gateway",
        name: "GET /api/profile/{id}",
        base_ms: 2.0,
        calls: &[("profile", "GET /users/{id}")],
        db: None,
    },
    Route {
        service: "gateway",
        name: "GET /api/topics",
        base_ms: 2.0,
        calls: &[("topic", "GET /topics")],
        db: None,
    },
    Route {
        service: "gateway",
        name: "POST /api/transfers",
        base_ms: 4.0,
        calls: &[("account", "POST /transfers")],
        db: None,
    },
    Route {
        service: "gateway",
        name: "GET /api/balance",
        base_ms: 2.0,
        calls: &[("account", "GET /balance")],
        db: None,
    },
    Route {
        service: "feed",
        name: "GET /items",
        base_ms: 12.0,
        calls: &[("topic", "GET /topics")],
        db: Some("SELECT items"),
    },
    Route {
        service: "profile",
        name: "GET /users/{id}",
        base_ms: 8.0,
        calls: &[],
        db: Some("SELECT users"),
    },
    Route {
        service: "topic",
        name: "GET /topics",
        base_ms: 6.0,
        calls: &[],
        db: Some("SELECT topics"),
    },
    Route {
        service: "account",
        name: "POST /transfers",
        base_ms: 20.0,
        calls: &[],
        db: Some("UPDATE accounts"),
    },
    Route {
        service: "account",
        name: "GET /balance",
        base_ms: 5.0,
        calls: &[],
        db: Some("SELECT balance"),
    },
];

/// Entry routes of the gateway with their share of traffic.
pub const ENTRY_MIX: &[(&str, f64)] = &[
    ("GET /api/feed", 0.4),
    ("GET /api/profile/{id}", 0.2),
    ("GET /api/topics", 0.15),
    ("POST /api/transfers", 0.1),
    ("GET /api/balance", 0.15),
];

/// The route `name` of `service`.
pub fn route(service: &str, name: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.service == service && r.name == name)
}

/// The service named `name`.
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.name == name)
}
