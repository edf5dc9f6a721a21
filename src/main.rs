//! `triad`: the command-line entry point. It parses arguments, loads and validates the
//! configuration, sets up logging and wires the library crates together; the logic
//! lives in `triad-collector` and `triad-query`.

mod config_file;
mod demo;
mod in_process_agent;
mod object_mode;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use triad_collector::Collector;
use triad_model::config::ValidConfig;

use object_mode::{object_mode, published};

/// mimalloc: the agent's and the indexer's hot paths allocate many small strings per
/// line; glibc malloc spent ~20% of the agent's CPU on them (see docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long shutdown waits for servers to drain before giving up on them.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "triad",
    version,
    about = "Triad: logs, traces and metrics in one observability stack",
    long_about = "Triad: logs, traces and metrics in one observability stack.\n\n\
                  A node agent on every host (`triad agent`) tails JSON, Docker and CRI log \
                  files and receives spans (OTLP, Zipkin), buffering on disk until the \
                  collector acknowledges. The collector (`triad collector`) takes OTLP, \
                  Prometheus remote_write and scrapes /metrics; it keeps logs and traces in \
                  tantivy splits and metrics in its own TSDB, each behind a write-ahead log. \
                  The query server (`triad query`) answers the Prometheus and Jaeger APIs \
                  (Grafana works unchanged), log search and live tail, correlates all three \
                  by trace ID and serves the web UI; where the metrics are (`triad up`), alert \
                  rules, golden signals included, are evaluated and posted to webhooks.\n\n\
                  Start everything in one process with `triad up` (add `--demo` for a \
                  simulated microservice system); no configuration file is needed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: collector (OTLP and remote_write on :4317/:4318, the scraper), query server and web UI (:7070), alerting, and file tailing.
    ///
    /// Data goes to ./triad-data unless --data-dir or the config file says otherwise.
    /// Stop with Ctrl-C or SIGTERM: receivers stop accepting, queued data is committed,
    /// then the process exits.
    Up(UpArgs),
    /// Run the node agent: tail log files, receive spans and logs (OTLP :4317/:4318,
    /// Zipkin :9411), buffer on disk and forward to a collector over OTLP/gRPC.
    ///
    /// Agent and host metrics are on :9464/metrics. The buffer and the file checkpoints
    /// live under <data dir>/agent; lines are checkpointed only once the collector
    /// acknowledged them, so a crash or a collector outage loses nothing.
    Agent(AgentArgs),
    /// Run the collector alone: OTLP receivers, remote_write, the scraper, and the log, trace and metric stores.
    Collector(CollectorArgs),
    /// Run the query server alone, reading the data directory a collector on this host writes.
    Query(QueryArgs),
    /// Run the demo's simulated microservices against a Triad running elsewhere: spans
    /// to an OTLP endpoint, log files to a directory, /metrics on an address.
    Demo(demo::DemoCommand),
    /// Make and hash authentication tokens for the `auth` section.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Validate a configuration file without starting anything; exits non-zero on errors.
    CheckConfig {
        /// The YAML file to check (triad.yaml).
        #[arg(required_unless_present = "print_defaults")]
        file: Option<PathBuf>,
        /// Print every key with its default value (JSON) instead of checking a file.
        #[arg(long)]
        print_defaults: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token and print it with the `auth.tokens` entry that accepts it.
    ///
    /// The token is shown once: give it to the client (the agent's
    /// `client_token_file`, Grafana's data source, `Authorization: Bearer <token>`).
    /// The configuration keeps only its hash.
    New(TokenSpec),
    /// Print the hash (`sha256:…`) of a token read from standard input, for `auth.tokens[].hash`.
    Hash,
    /// Make a new random token and keep its hash in the PostgreSQL metastore that the
    /// configuration names: every collector and query server accepts it within seconds,
    /// without a restart. The token is printed once.
    Add {
        /// The configuration of the processes (its `storage` and `metastore`).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        spec: TokenSpec,
    },
    /// List the tokens kept in the metastore (names, tenants, roles; never the tokens).
    List {
        /// The configuration of the processes.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove a token from the metastore: every process refuses it within seconds.
    Remove {
        /// The configuration of the processes.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The token's name.
        name: String,
    },
}

/// Who a new token is.
#[derive(Args)]
struct TokenSpec {
    /// The tenant the token writes to and reads from.
    #[arg(long, default_value = triad_model::DEFAULT_TENANT)]
    tenant: String,
    /// `write` (send data), `read` (query, UI) or `admin` (both, plus rules and silences).
    #[arg(long, value_parser = ["write", "read", "admin"])]
    role: String,
    /// A name for logs, metrics and `triad token list`; defaults to `<tenant>-<role>`.
    #[arg(long)]
    name: Option<String>,
    /// May choose the tenant with `X-Scope-OrgID` (a gateway, or a query server
    /// reading collectors for every tenant).
    #[arg(long)]
    trusted: bool,
}

impl TokenSpec {
    /// A new random token and the entry that accepts it (its hash).
    fn make(&self) -> anyhow::Result<(String, triad_model::config::TokenConfig)> {
        use triad_model::auth::{Role, TokenHash, new_token, valid_tenant};
        anyhow::ensure!(
            valid_tenant(&self.tenant),
            "--tenant {:?}: use 1-128 letters, digits, `_` or `-`",
            self.tenant
        );
        let token = new_token()?;
        let entry = triad_model::config::TokenConfig {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", self.tenant, self.role)),
            hash: TokenHash::of(&token).to_string(),
            tenant: self.tenant.clone(),
            role: Role::parse(&self.role).map_err(|e| anyhow::anyhow!("--role: {e}"))?,
            trusted: self.trusted,
        };
        Ok((token, entry))
    }
}

#[derive(Args)]
struct Common {
    /// YAML configuration file (every key with its default: deploy/config/triad.yaml); defaults apply without one.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` of the config file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    common: Common,
    /// OTLP/gRPC listen address; overrides collector.otlp_grpc_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_grpc_listen: Option<SocketAddr>,
    /// OTLP/HTTP listen address; overrides collector.otlp_http_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_http_listen: Option<SocketAddr>,
    /// Zipkin v2 listen address ("" turns it off); overrides collector.zipkin_listen.
    #[arg(long, value_name = "ADDR")]
    zipkin_listen: Option<String>,
    /// With object storage: the URL query servers reach this collector at; overrides
    /// collector.advertise_url (e.g. http://$(POD_NAME).triad-collector:4318).
    #[arg(long, value_name = "URL")]
    advertise_url: Option<String>,
    /// Query server listen address; overrides query.listen.
    #[arg(long, value_name = "ADDR")]
    query_listen: Option<SocketAddr>,
    /// Also run the demo: a simulated microservice system (gateway, feed, profile,
    /// topic, account) whose traces, log files and /metrics fill Triad, with faults that
    /// make golden-signal alerts fire and resolve within minutes.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    demo_args: demo::DemoArgs,
}

#[derive(Args)]
struct AgentArgs {
    #[command(flatten)]
    common: Common,
    /// Collector OTLP/gRPC endpoint, e.g. http://collector:4317; overrides
    /// agent.collector_endpoint.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// Log files to tail (glob; repeatable); adds to agent.include.
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// OTLP/gRPC listen address ("" turns it off); overrides agent.otlp_grpc_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_grpc_listen: Option<String>,
    /// OTLP/HTTP listen address ("" turns it off); overrides agent.otlp_http_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_http_listen: Option<String>,
    /// Zipkin v2 listen address ("" turns it off); overrides agent.zipkin_listen.
    #[arg(long, value_name = "ADDR")]
    zipkin_listen: Option<String>,
    /// Metrics listen address ("" turns it off); overrides agent.metrics_listen.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[derive(Args)]
struct CollectorArgs {
    #[command(flatten)]
    common: Common,
    /// OTLP/gRPC listen address; overrides collector.otlp_grpc_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_grpc_listen: Option<SocketAddr>,
    /// OTLP/HTTP listen address; overrides collector.otlp_http_listen.
    #[arg(long, value_name = "ADDR")]
    otlp_http_listen: Option<SocketAddr>,
    /// Zipkin v2 listen address ("" turns it off); overrides collector.zipkin_listen.
    #[arg(long, value_name = "ADDR")]
    zipkin_listen: Option<String>,
    /// With object storage: the URL query servers reach this collector at; overrides
    /// collector.advertise_url (e.g. http://$(POD_NAME).triad-collector:4318).
    #[arg(long, value_name = "URL")]
    advertise_url: Option<String>,
}

#[derive(Args)]
struct QueryArgs {
    #[command(flatten)]
    common: Common,
    /// Query server listen address; overrides query.listen.
    #[arg(long, value_name = "ADDR")]
    query_listen: Option<SocketAddr>,
    /// Remote read endpoint to take metric series from for PromQL (a collector's
    /// http://HOST:4318/api/v1/read or a Prometheus' http://HOST:9090/api/v1/read);
    /// overrides query.remote_read_url.
    #[arg(long, value_name = "URL")]
    remote_read_url: Option<String>,
}

fn load(
    common: &Common,
    f: impl FnOnce(&mut triad_model::config::Config),
) -> anyhow::Result<ValidConfig> {
    let cfg = config_file::load(common.config.as_deref())?;
    let cfg = cfg
        .modify(f)
        .map_err(|e| anyhow::anyhow!("invalid command-line override: {e}"))?;
    Ok(match &common.data_dir {
        Some(d) => cfg.with_data_dir(d.clone()),
        None => cfg,
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without a backtrace: this is for users.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider: ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::CheckConfig {
        file,
        print_defaults,
    } = &cli.command
    {
        if *print_defaults {
            let defaults = serde_json::to_string_pretty(&triad_model::config::Config::default())
                .context("cannot print the defaults")?;
            println!("{defaults}");
            return Ok(());
        }
        let Some(file) = file else {
            anyhow::bail!("name the file to check, e.g. triad check-config triad.yaml");
        };
        let cfg = config_file::load(Some(file))?;
        config_file::load_scrape_config(&cfg)?;
        let groups = config_file::load_rule_groups(&cfg)?;
        let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
        println!(
            "{}: ok ({} rule groups, {rules} rules)",
            file.display(),
            groups.len()
        );
        return Ok(());
    }
    if let Command::Token(t) = &cli.command {
        return token_command(t);
    }
    init_logging();
    let runtime = tokio::runtime::Runtime::new().context("start async runtime")?;
    runtime.block_on(run(cli.command))
}

pub(crate) async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for {what}: is another process using the port?")
    })?;
    let local = l.local_addr()?;
    // One machine-readable line per listener on stdout; logs go to stderr.
    println!("listening {what} {local}");
    tracing::info!(component = what, addr = %local, "listening");
    Ok(l)
}

fn shutdown_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
            _ = cancel.cancelled() => return,
        }
        tracing::info!("shutdown requested: draining");
        cancel.cancel();
    });
}

/// Waits for every task; the first failure cancels the rest.
async fn supervise(
    mut tasks: JoinSet<Result<(), String>>,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    loop {
        let next = if cancel.is_cancelled() {
            match tokio::time::timeout(DRAIN_DEADLINE, tasks.join_next()).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!("servers did not drain in time; stopping them");
                    tasks.abort_all();
                    break;
                }
            }
        } else {
            tasks.join_next().await
        };
        let Some(res) = next else { break };
        let err = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) if e.is_cancelled() => None,
            Err(e) => Some(format!("task panicked: {e}")),
        };
        if let Some(e) = err {
            tracing::error!(error = %e, "component failed; shutting down");
            first_error.get_or_insert(e);
            cancel.cancel();
        }
    }
    match first_error {
        Some(e) => Err(anyhow::anyhow!(e)),
        None => Ok(()),
    }
}

/// What a query server reads: the stores, and the alert engine where one runs.
struct Served {
    logs: Arc<dyn triad_model::store::LogRead>,
    traces: Arc<dyn triad_model::store::TraceRead>,
    metrics: Option<Arc<dyn triad_model::store::MetricRead>>,
    alerting: Option<Arc<triad_query::alert::Alerting>>,
    remote_alerting: Option<Arc<triad_query::alert::remote::RemoteAlerting>>,
    silences: Option<Arc<triad_query::alert::silence::Silences>>,
}

/// `triad token new|hash`.
fn token_command(t: &TokenCommand) -> anyhow::Result<()> {
    use triad_model::auth::TokenHash;
    match t {
        TokenCommand::New(spec) => {
            let (token, entry) = spec.make()?;
            println!("token (shown once; give it to the client): {token}");
            println!("# under auth.tokens in triad.yaml:");
            println!("- name: {}", entry.name);
            println!("  hash: \"{}\"", entry.hash);
            println!("  tenant: {}", entry.tenant);
            println!("  role: {}", entry.role.as_str());
            if entry.trusted {
                println!("  trusted: true");
            }
        }
        TokenCommand::Hash => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("reading the token from standard input")?;
            let token = text.trim();
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!("{}", TokenHash::of(token));
        }
        TokenCommand::Add { config, .. }
        | TokenCommand::List { config }
        | TokenCommand::Remove { config, .. } => {
            let cfg = config_file::load(Some(config))?;
            anyhow::ensure!(
                cfg.tokens_in_metastore(),
                "{}: tokens are kept in the metastore with object storage (storage.url) and \
                 a PostgreSQL metastore (metastore.url); otherwise list them under \
                 auth.tokens (`triad token new` prints the entry)",
                config.display()
            );
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(metastore_token_command(t, &cfg))?;
        }
    }
    Ok(())
}

/// `triad token add|list|remove` on the metastore of `cfg`.
async fn metastore_token_command(t: &TokenCommand, cfg: &ValidConfig) -> anyhow::Result<()> {
    let metastore = triad_metastore::Metastore::open(&cfg.metastore, &cfg.data_dir)
        .await
        .context("metastore")?;
    match t {
        TokenCommand::Add { spec, .. } => {
            let (token, entry) = spec.make()?;
            anyhow::ensure!(
                metastore.add_token(&entry).await?,
                "a token named {:?} is in the metastore already: choose another --name, or \
                 `triad token remove` it first",
                entry.name
            );
            println!("token (shown once; give it to the client): {token}");
            if cfg.auth.tokens().is_none() {
                eprintln!(
                    "note: this configuration has no `auth: {{tokens: …}}` section, so its \
                     processes check no token; add `auth: {{tokens: []}}` to require them"
                );
            }
            println!(
                "kept in the metastore as {:?} (tenant {}, role {}); every process accepts it within {} s",
                entry.name,
                entry.tenant,
                entry.role.as_str(),
                TOKEN_REFRESH.as_secs()
            );
        }
        TokenCommand::List { .. } => {
            println!("{:<24} {:<24} {:<6} trusted", "name", "tenant", "role");
            for t in metastore.tokens().await? {
                println!(
                    "{:<24} {:<24} {:<6} {}",
                    t.name,
                    t.tenant,
                    t.role.as_str(),
                    t.trusted
                );
            }
        }
        TokenCommand::Remove { name, .. } => {
            anyhow::ensure!(
                metastore.remove_token(name).await?,
                "no token named {name:?} in the metastore (`triad token list` shows them)"
            );
            println!(
                "removed {name:?}; every process refuses it within {} s",
                TOKEN_REFRESH.as_secs()
            );
        }
        TokenCommand::New { .. } | TokenCommand::Hash => {}
    }
    Ok(())
}

/// How often processes re-read the metastore's tokens.
const TOKEN_REFRESH: Duration = Duration::from_secs(5);

/// With tokens kept in a PostgreSQL metastore (`triad token add`): reads them before
/// serving and every [`TOKEN_REFRESH`] after, the gate accepting the configuration's
/// tokens and the metastore's. While the metastore cannot be read, the tokens read last
/// stay in force.
async fn metastore_tokens(
    cfg: &ValidConfig,
    gate: &triad_receiver::auth::Gate,
    om: Option<&object_mode::ObjectMode>,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<()> {
    use triad_model::auth::{Authenticator, valid_tenant};
    let (Some(om), Some(auth)) = (om, cfg.auth.tokens()) else {
        return Ok(());
    };
    if !cfg.tokens_in_metastore() {
        return Ok(());
    }
    let auth = auth.clone();
    let apply = move |gate: &triad_receiver::auth::Gate,
                      tokens: &[triad_model::config::TokenConfig]| {
        let valid: Vec<_> = tokens
            .iter()
            .filter(|t| {
                let ok = valid_tenant(&t.tenant);
                if !ok {
                    tracing::warn!(token = %t.name, "metastore token with an invalid tenant name skipped");
                }
                ok
            })
            .cloned()
            .collect();
        gate.replace(Authenticator::with_tokens(&auth, &valid));
        tracing::info!(tokens = valid.len(), "tokens read from the metastore");
    };
    let metastore = om.metastore.clone();
    let mut last = metastore
        .tokens()
        .await
        .context("reading the tokens kept in the metastore")?;
    apply(gate, &last);
    let (gate, cancel) = (gate.clone(), cancel.child_token());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(TOKEN_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            match metastore.tokens().await {
                Ok(tokens) if tokens != last => {
                    apply(&gate, &tokens);
                    last = tokens;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the metastore's tokens; the last ones stay in force"),
            }
        }
    });
    Ok(())
}

/// A process's security: who may call its servers, and their TLS.
struct Security {
    gate: triad_receiver::auth::Gate,
    tls: Option<Arc<triad_receiver::tls::ServerTls>>,
    limits: Arc<triad_receiver::limits::Limits>,
    conn_limits: triad_receiver::serve::ConnLimits,
}

/// Security for a process: its gate (who may call its servers), its servers' TLS (the
/// files watched for changes), its client identity (token and TLS for calls to other
/// Triad servers), and the start-up line when it is held to loopback for want of an
/// `auth` section.
fn security(
    cfg: &ValidConfig,
    registry: &mut Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Security> {
    let token = triad_receiver::auth::client_token(cfg.client_token_file.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    triad_receiver::client::configure(token.as_deref(), &cfg.tls)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    triad_receiver::client::spawn_reloader(
        Duration::from_secs(cfg.tls.reload_interval_secs),
        cancel,
        tasks,
    );
    let tls = triad_receiver::tls::ServerTls::load(
        &cfg.tls,
        triad_receiver::tls::TlsMetrics::register(registry),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(t) = &tls {
        t.spawn_reloader(
            Duration::from_secs(cfg.tls.reload_interval_secs),
            cancel,
            tasks,
        );
    }
    match &cfg.auth {
        triad_model::config::AuthSetting::Unset if cfg.held_to_loopback() => {
            println!(
                "no auth configured: listening on loopback only. To serve other machines, \
                 add tokens under `auth:` (triad token new --role admin) or set `auth: none`."
            );
        }
        triad_model::config::AuthSetting::None => {
            tracing::warn!("auth: none — every endpoint is open to whoever reaches it");
        }
        _ => {}
    }
    let metrics = triad_receiver::auth::AuthMetrics::register(registry);
    Ok(Security {
        gate: triad_receiver::auth::Gate::new(
            triad_model::auth::Authenticator::from_setting(&cfg.auth),
            metrics,
        ),
        tls,
        limits: triad_receiver::limits::Limits::new(
            cfg.limits.clone(),
            triad_receiver::limits::LimitMetrics::register(registry),
        ),
        conn_limits: triad_receiver::serve::ConnLimits::from_config(&cfg.limits),
    })
}

/// `served` read within each tenant's retention: a tenant with its own
/// (`limits.tenants.<name>.*_retention_secs`) does not see its records past it.
fn retained(cfg: &ValidConfig, served: Served) -> Served {
    use triad_model::store::Retained;
    let r = cfg.retentions();
    if r.logs.tenants.is_empty() && r.traces.tenants.is_empty() && r.metrics.tenants.is_empty() {
        return served;
    }
    Served {
        logs: Arc::new(Retained::new(served.logs, r.logs)),
        traces: Arc::new(Retained::new(served.traces, r.traces)),
        metrics: served.metrics.map(|m| {
            Arc::new(Retained::new(m, r.metrics)) as Arc<dyn triad_model::store::MetricRead>
        }),
        ..served
    }
}

fn query_state(
    cfg: &ValidConfig,
    sec: &Security,
    served: Served,
    registry: Arc<Registry>,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
    cancel: &CancellationToken,
) -> triad_query::AppState {
    let served = retained(cfg, served);
    triad_query::AppState {
        logs: served.logs,
        traces: served.traces,
        metrics: served.metrics,
        alerting: served.alerting,
        silences: served.silences,
        remote_alerting: served.remote_alerting,
        external_url: external_url(cfg),
        cfg: cfg.query.clone(),
        registry,
        ready,
        cancel: cancel.child_token(),
        ui: ui_asset,
        trace_cache: Default::default(),
        alert_tenants: Arc::new(
            std::iter::once(&cfg.alerting.tenant)
                .chain(cfg.alerting.tenants.keys())
                .cloned()
                .collect(),
        ),
        gate: sec.gate.clone(),
        limits: sec.limits.clone(),
    }
}

/// The web UI embedded in this binary (built by `ui/build.rs`), for the query server.
fn ui_asset(path: &str) -> Option<triad_query::ui::UiAsset> {
    triad_ui::asset(path).map(|a| triad_query::ui::UiAsset {
        path: a.path,
        content_type: a.content_type,
        bytes: a.bytes,
        immutable: a.immutable,
    })
}

/// The URL users reach this Triad under: `alerting.external_url`, or the query server's
/// address with this host's name.
fn external_url(cfg: &ValidConfig) -> String {
    if !cfg.alerting.external_url.is_empty() {
        return cfg.alerting.external_url.trim_end_matches('/').to_string();
    }
    let addr = cfg.query.listen;
    let host = if addr.ip().is_unspecified() {
        triad_agent::source::host_name()
    } else {
        addr.ip().to_string()
    };
    format!("{}://{host}:{}", scheme(cfg), addr.port())
}

/// Starts rule evaluation and notifications on a collector (`triad up` or `triad
/// collector`). Alone, it evaluates over its own stores and keeps silences and the
/// notification log in files. With a shared PostgreSQL metastore, one process of all
/// evaluates at a time (see `object_mode::alert_leadership`), over the whole store —
/// published data and every live collector's, as a query server reads — and silences
/// and the notification log live in the metastore, so a process taking over neither
/// repeats nor drops a notification. Call it after the collector registered its lease.
/// Returns the engine and, with several processes, the view of whichever leads.
async fn start_alerting(
    cfg: &ValidConfig,
    collector: &Arc<Collector>,
    om: Option<&object_mode::ObjectMode>,
    metrics: triad_query::alert::AlertMetrics,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<(
    Arc<triad_query::alert::Alerting>,
    Option<Arc<triad_query::alert::remote::RemoteAlerting>>,
)> {
    use triad_query::alert::StateStore;
    let groups = config_file::load_rule_groups(cfg)?;
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    tracing::info!(groups = groups.len(), rules, "alerting rules loaded");
    let files = StateStore::Files(cfg.data_dir.join("alerting"));
    let local =
        |metrics: Arc<dyn triad_query::alert::MetricReadWrite>| triad_query::alert::Stores {
            metrics,
            traces: collector.traces.clone(),
            logs: collector.logs.clone(),
        };
    let mut remote = None;
    let (stores, state, leading) = match om {
        None => (
            local(collector.metrics.clone()),
            files,
            Arc::new(std::sync::atomic::AtomicBool::new(true)),
        ),
        Some(om) => {
            let leading = object_mode::alert_leadership(om.metastore.clone(), cancel, tasks);
            match &om.metastore {
                triad_metastore::Metastore::Postgres(_) => {
                    let stores = if groups.is_empty() {
                        local(Arc::new(triad_collector::blocks::CollectorMetrics::new(
                            collector.metrics.clone(),
                            om.blocks.clone(),
                        )))
                    } else {
                        let whole = object_mode::query_server_stores(cfg, om, cancel, tasks)
                            .await
                            .context("alerting: the whole store's view")?;
                        remote = Some(Arc::new(remote_alerting(cfg, &whole)?));
                        triad_query::alert::Stores {
                            metrics: Arc::new(triad_collector::blocks::CollectorMetrics::over(
                                whole.metrics,
                                collector.metrics.clone(),
                            )),
                            traces: whole.traces,
                            logs: whole.logs,
                        }
                    };
                    (stores, StateStore::Metastore(om.metastore.clone()), leading)
                }
                triad_metastore::Metastore::File(_) => (
                    local(Arc::new(triad_collector::blocks::CollectorMetrics::new(
                        collector.metrics.clone(),
                        om.blocks.clone(),
                    ))),
                    files,
                    leading,
                ),
            }
        }
    };
    let alerting = triad_query::alert::Alerting::start(
        groups,
        &cfg.alerting,
        external_url(cfg),
        stores,
        triad_promql::Limits::from_config(&cfg.query),
        state,
        metrics,
        leading,
        cancel,
        tasks,
    )
    .await
    .map_err(|e| anyhow::anyhow!("alerting: {e}"))?;
    Ok((alerting, remote))
}

/// The alert state of whichever collector evaluates rules, asked of every live collector
/// `stores` reaches; an alert's evidence is gathered from `stores`.
fn remote_alerting(
    cfg: &ValidConfig,
    stores: &object_mode::QueryStores,
) -> anyhow::Result<triad_query::alert::remote::RemoteAlerting> {
    let evidence = Arc::new(triad_query::alert::evidence::EvidenceSource {
        metrics: stores.metrics.clone(),
        traces: stores.traces.clone(),
        logs: stores.logs.clone(),
        external_url: external_url(cfg),
        cfg: cfg.alerting.evidence.clone(),
    });
    let collectors = stores.collectors.clone();
    triad_query::alert::remote::RemoteAlerting::new(
        Arc::new(move || collectors.addresses()),
        Duration::from_secs(cfg.query.query_timeout_secs),
        evidence,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn open_collector(
    cfg: &ValidConfig,
    sec: &Security,
    registry: &mut Registry,
) -> anyhow::Result<Arc<Collector>> {
    let started = std::time::Instant::now();
    let mut collector_cfg = cfg.collector.clone();
    if cfg.storage.is_remote() {
        // Recent data reaches object storage within minutes, not at the hourly seal.
        for store in [&mut collector_cfg.logs, &mut collector_cfg.traces] {
            store.split_max_age_secs = store.split_max_age_secs.min(cfg.storage.seal_after_secs);
        }
    }
    let collector = Collector::open(
        &collector_cfg,
        &cfg.data_dir,
        cfg.storage.is_remote(),
        sec.limits.clone(),
        registry,
    )
    .with_context(|| format!("cannot open the data directory {}", cfg.data_dir.display()))?;
    tracing::info!(data_dir = %cfg.data_dir.display(), ms = started.elapsed().as_millis() as u64, "storage open");
    Ok(Arc::new(collector))
}

/// The URL query servers reach this collector at: `collector.advertise_url`, or the
/// HTTP receiver's address (the host name when it listens on every interface).
fn advertise_url(cfg: &ValidConfig, http: SocketAddr) -> String {
    if !cfg.collector.advertise_url.is_empty() {
        return cfg
            .collector
            .advertise_url
            .trim_end_matches('/')
            .to_string();
    }
    let scheme = scheme(cfg);
    if http.ip().is_unspecified() {
        format!("{scheme}://{}:{}", triad_model::host_name(), http.port())
    } else {
        format!("{scheme}://{http}")
    }
}

/// `https` where this process's servers speak TLS.
fn scheme(cfg: &ValidConfig) -> &'static str {
    if cfg.tls.serves_tls() {
        "https"
    } else {
        "http"
    }
}

/// Binds a server's socket, with TLS when the process serves it.
async fn bind_server(
    what: &str,
    addr: SocketAddr,
    sec: &Security,
) -> anyhow::Result<triad_receiver::tls::Listener> {
    Ok(triad_receiver::tls::Listener::new(
        bind(what, addr).await?,
        sec.tls.as_ref(),
        sec.conn_limits,
    ))
}

/// Binds a server's socket from its config value; `""` means off.
async fn bind_optional(
    what: &str,
    addr: &str,
    sec: &Security,
) -> anyhow::Result<Option<triad_receiver::tls::Listener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("{what}: {addr:?} is not an address"))?;
    Ok(Some(bind_server(what, addr, sec).await?))
}

/// Runs a server subcommand until a signal or a task failure, then closes the stores.
async fn run(command: Command) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    shutdown_signal(cancel.clone());
    let mut tasks = JoinSet::new();
    let registry = Registry::default();
    let collector = match command {
        Command::Up(a) => up(a, registry, &cancel, &mut tasks).await?,
        Command::Agent(a) => agent(a, registry, &cancel, &mut tasks).await?,
        Command::Collector(a) => collector(a, registry, &cancel, &mut tasks).await?,
        Command::Query(a) => query(a, registry, &cancel, &mut tasks).await?,
        Command::Demo(a) => {
            demo::run_standalone(a, &cancel, &mut tasks).await?;
            None
        }
        Command::CheckConfig { .. } | Command::Token(_) => {
            unreachable!("handled before the runtime starts")
        }
    };
    let result = supervise(tasks, &cancel).await;
    if let Some(c) = collector {
        c.shutdown().await;
        tracing::info!("storage committed and closed");
    }
    result
}

/// `triad up`: collector, scraper, query server, alerting, in-process agent, demo.
async fn up(
    a: UpArgs,
    mut registry: Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Option<Arc<Collector>>> {
    let cfg = load(&a.common, |c| {
        if let Some(x) = a.otlp_grpc_listen {
            c.collector.otlp_grpc_listen = x
        }
        if let Some(x) = a.otlp_http_listen {
            c.collector.otlp_http_listen = x
        }
        if let Some(x) = &a.zipkin_listen {
            c.collector.zipkin_listen = x.clone()
        }
        if let Some(x) = &a.advertise_url {
            c.collector.advertise_url = x.clone()
        }
        if let Some(x) = a.query_listen {
            c.query.listen = x
        }
    })?;
    let demo_dir = cfg.data_dir.join("demo");
    let cfg = if a.demo {
        cfg.modify(|c| demo::adjust_config(c, &demo_dir))
            .map_err(|e| anyhow::anyhow!("--demo: {e}"))?
    } else {
        cfg
    };
    let sec = security(&cfg, &mut registry, cancel, tasks)?;
    let gate = sec.gate.clone();
    let collector = open_collector(&cfg, &sec, &mut registry).await?;
    let om = object_mode(&cfg, &mut registry, cancel, tasks).await?;
    metastore_tokens(&cfg, &gate, om.as_ref(), cancel, tasks).await?;
    let qm = triad_query::metrics::QueryMetrics::register(&mut registry);
    let agent_metrics = triad_agent::metrics::AgentMetrics::register(&mut registry);
    registry.register_collector(Box::new(triad_agent::metrics::HostMetrics));
    let alert_metrics = triad_query::alert::AlertMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let grpc = bind_server("otlp-grpc", cfg.collector.otlp_grpc_listen, &sec).await?;
    let http = bind_server("otlp-http", cfg.collector.otlp_http_listen, &sec).await?;
    let query = bind_server("query", cfg.query.listen, &sec).await?;
    let grpc_addr = grpc.local_addr()?;
    let advertise = advertise_url(&cfg, http.local_addr()?);
    // The alert engine starts once the collector registered; until then its internal
    // endpoint answers 503.
    let alerting_slot = triad_query::alert::remote::AlertingSlot::default();
    let zipkin = bind_optional("zipkin", &cfg.collector.zipkin_listen, &sec).await?;
    collector.spawn(
        triad_collector::Listeners { grpc, http, zipkin },
        registry.clone(),
        gate.clone(),
        triad_query::alert::remote::internal_router(alerting_slot.clone()),
        cancel,
        tasks,
    );
    let mut scrape = config_file::load_scrape_config(&cfg)?;
    if a.demo {
        let listener = bind("demo-metrics", SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        scrape = demo::scrape_config(scrape, listener.local_addr()?)?;
        let endpoint = format!("http://127.0.0.1:{}", grpc_addr.port());
        let demo_cfg = a.demo_args.config(endpoint, demo_dir.clone())?;
        demo::spawn(demo_cfg, listener, cancel, tasks);
    }
    // In object-storage mode, what is published and gone from local disk is read back
    // from object storage.
    let metric_store: Arc<dyn triad_query::alert::MetricReadWrite> = match &om {
        None => collector.metrics.clone(),
        Some(om) => Arc::new(triad_collector::blocks::CollectorMetrics::new(
            collector.metrics.clone(),
            om.blocks.clone(),
        )),
    };
    let ready = {
        let c = collector.clone();
        Arc::new(move || c.is_ready())
    };
    let mut membership = None;
    let (logs, traces): (
        Arc<dyn triad_model::store::LogRead>,
        Arc<dyn triad_model::store::TraceRead>,
    ) = match &om {
        None => (collector.logs.clone(), collector.traces.clone()),
        Some(om) => {
            membership = Some(collector.spawn_publisher(
                om.storage.clone(),
                om.metastore.clone(),
                om.blocks.clone(),
                &cfg.storage,
                &cfg.data_dir,
                advertise,
                cancel,
                tasks,
            ));
            let local = triad_splits::published::Local {
                logs: collector.logs.clone(),
                traces: collector.traces.clone(),
                node_id: collector.node_id(),
            };
            let p = published(&cfg, om, Some(local), cancel, tasks).await?;
            (p.logs.clone(), p.traces.clone())
        }
    };
    collector
        .spawn_scraper(scrape, membership, cancel, tasks)
        .map_err(|e| anyhow::anyhow!("scraper: {e}"))?;
    let (alerting, remote_alerting) =
        start_alerting(&cfg, &collector, om.as_ref(), alert_metrics, cancel, tasks).await?;
    let _ = alerting_slot.set(alerting.clone());
    let served = Served {
        logs,
        traces,
        metrics: Some(metric_store),
        silences: Some(alerting.silences.clone()),
        alerting: Some(alerting),
        remote_alerting,
    };
    let state = query_state(&cfg, &sec, served, registry, ready, cancel);
    triad_receiver::http::spawn_server(
        "query server",
        query,
        triad_query::app(state, qm),
        cancel,
        tasks,
    );
    if !cfg.agent.include.is_empty() {
        in_process_agent::spawn(&cfg, collector.logs.clone(), agent_metrics, cancel, tasks)?;
    }
    println!(
        "ready: query API on {}://{}",
        scheme(&cfg),
        cfg.query.listen
    );
    Ok(Some(collector))
}

/// `triad agent`: the node agent.
async fn agent(
    a: AgentArgs,
    mut registry: Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Option<Arc<Collector>>> {
    let cfg = load(&a.common, |c| {
        let ag = &mut c.agent;
        if let Some(x) = &a.collector {
            ag.collector_endpoint = x.clone();
        }
        ag.include.extend(a.include.iter().cloned());
        for (slot, value) in [
            (&mut ag.otlp_grpc_listen, &a.otlp_grpc_listen),
            (&mut ag.otlp_http_listen, &a.otlp_http_listen),
            (&mut ag.zipkin_listen, &a.zipkin_listen),
            (&mut ag.metrics_listen, &a.metrics_listen),
        ] {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
    })?;
    let ag = &cfg.agent;
    let sec = security(&cfg, &mut registry, cancel, tasks)?;
    let gate = sec.gate.clone();
    let settings = triad_agent::run::AgentSettings {
        gate,
        data_dir: cfg.data_dir.join("agent"),
        collector_endpoint: ag.collector_endpoint.clone(),
        max_buffer_bytes: ag.max_buffer_bytes,
        source: (!ag.include.is_empty()).then(|| in_process_agent::source_config(&cfg)),
        host: triad_agent::source::host_name(),
        max_request_bytes: ag.max_request_bytes,
        max_decompressed_bytes: cfg.collector.max_decompressed_bytes,
    };
    let agent = tokio::task::spawn_blocking(move || {
        triad_agent::run::Agent::open(settings, &mut registry).map(|a| (a, registry))
    })
    .await
    .context("agent start-up task failed")?
    .with_context(|| {
        format!(
            "cannot open the agent buffer under {}",
            cfg.data_dir.display()
        )
    })?;
    let (agent, registry) = agent;
    let listeners = triad_agent::run::Listeners {
        otlp_grpc: bind_optional("otlp-grpc", &ag.otlp_grpc_listen, &sec).await?,
        otlp_http: bind_optional("otlp-http", &ag.otlp_http_listen, &sec).await?,
        zipkin: bind_optional("zipkin", &ag.zipkin_listen, &sec).await?,
        metrics: bind_optional("metrics", &ag.metrics_listen, &sec).await?,
    };
    agent
        .spawn(listeners, Arc::new(registry), cancel, tasks)
        .map_err(|e| anyhow::anyhow!("agent: {e}"))?;
    if !ag.include.is_empty() {
        tracing::info!(include = ?ag.include, "tailing log files");
    }
    println!("ready: agent forwarding to {}", ag.collector_endpoint);
    Ok(None)
}

/// `triad collector`: receivers, scraper and the stores.
async fn collector(
    a: CollectorArgs,
    mut registry: Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Option<Arc<Collector>>> {
    let cfg = load(&a.common, |c| {
        if let Some(x) = a.otlp_grpc_listen {
            c.collector.otlp_grpc_listen = x
        }
        if let Some(x) = a.otlp_http_listen {
            c.collector.otlp_http_listen = x
        }
        if let Some(x) = &a.zipkin_listen {
            c.collector.zipkin_listen = x.clone()
        }
        if let Some(x) = &a.advertise_url {
            c.collector.advertise_url = x.clone()
        }
    })?;
    let sec = security(&cfg, &mut registry, cancel, tasks)?;
    let gate = sec.gate.clone();
    let collector = open_collector(&cfg, &sec, &mut registry).await?;
    let om = object_mode(&cfg, &mut registry, cancel, tasks).await?;
    metastore_tokens(&cfg, &gate, om.as_ref(), cancel, tasks).await?;
    let alert_metrics = triad_query::alert::AlertMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let grpc = bind_server("otlp-grpc", cfg.collector.otlp_grpc_listen, &sec).await?;
    let http = bind_server("otlp-http", cfg.collector.otlp_http_listen, &sec).await?;
    let advertise = advertise_url(&cfg, http.local_addr()?);
    let alerting_slot = triad_query::alert::remote::AlertingSlot::default();
    let zipkin = bind_optional("zipkin", &cfg.collector.zipkin_listen, &sec).await?;
    collector.spawn(
        triad_collector::Listeners { grpc, http, zipkin },
        registry,
        gate,
        triad_query::alert::remote::internal_router(alerting_slot.clone()),
        cancel,
        tasks,
    );
    let membership = om.as_ref().map(|om| {
        collector.spawn_publisher(
            om.storage.clone(),
            om.metastore.clone(),
            om.blocks.clone(),
            &cfg.storage,
            &cfg.data_dir,
            advertise,
            cancel,
            tasks,
        )
    });
    collector
        .spawn_scraper(
            config_file::load_scrape_config(&cfg)?,
            membership,
            cancel,
            tasks,
        )
        .map_err(|e| anyhow::anyhow!("scraper: {e}"))?;
    // Rules are evaluated where the metric store is written: by this collector alone,
    // or by one collector of several at a time; query servers show the leader's state.
    let (alerting, _) =
        start_alerting(&cfg, &collector, om.as_ref(), alert_metrics, cancel, tasks).await?;
    let _ = alerting_slot.set(alerting);
    println!("ready: collector");
    Ok(Some(collector))
}

/// `triad query`: the query server over a collector's data directory.
async fn query(
    a: QueryArgs,
    mut registry: Registry,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<Result<(), String>>,
) -> anyhow::Result<Option<Arc<Collector>>> {
    let cfg = load(&a.common, |c| {
        if let Some(x) = a.query_listen {
            c.query.listen = x
        }
        if let Some(url) = &a.remote_read_url {
            c.query.remote_read_url = Some(url.clone())
        }
    })?;
    let sec = security(&cfg, &mut registry, cancel, tasks)?;
    let om = object_mode(&cfg, &mut registry, cancel, tasks).await?;
    metastore_tokens(&cfg, &sec.gate, om.as_ref(), cancel, tasks).await?;
    let served = match &om {
        None => {
            let readers =
                triad_splits::read_only::open(&cfg.data_dir, &cfg.collector, &mut registry)?;
            readers.spawn_refresh(cancel, tasks);
            let metrics: Option<Arc<dyn triad_model::store::MetricRead>> =
                match &cfg.query.remote_read_url {
                    Some(url) => Some(Arc::new(
                        triad_collector::remote_read::RemoteReader::new(
                            url,
                            Duration::from_secs(cfg.query.query_timeout_secs),
                        )
                        .map_err(|e| anyhow::anyhow!("query.remote_read_url: {e}"))?,
                    )),
                    None => None,
                };
            Served {
                logs: readers.logs.clone(),
                traces: readers.traces.clone(),
                metrics,
                alerting: None,
                remote_alerting: None,
                silences: None,
            }
        }
        Some(om) => {
            let s = object_mode::query_server_stores(&cfg, om, cancel, tasks).await?;
            // Rules run on the collectors; the API shows the state of the one that
            // evaluates them, and gathers an alert's evidence from this server's stores.
            let remote = remote_alerting(&cfg, &s)?;
            // Silences live in the metastore every process shares: added here, they mute
            // alerts on the collector that evaluates rules.
            let silences = triad_query::alert::silence::Silences::open(
                triad_query::alert::StateStore::Metastore(om.metastore.clone()),
                &cfg.alerting.tenant,
            )
            .await
            .map_err(|e| anyhow::anyhow!("silences: {e}"))?;
            Served {
                logs: s.logs,
                traces: s.traces,
                metrics: Some(s.metrics),
                alerting: None,
                remote_alerting: Some(Arc::new(remote)),
                silences: Some(Arc::new(silences)),
            }
        }
    };
    let qm = triad_query::metrics::QueryMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let query = bind_server("query", cfg.query.listen, &sec).await?;
    let state = query_state(&cfg, &sec, served, registry, Arc::new(|| true), cancel);
    triad_receiver::http::spawn_server(
        "query server",
        query,
        triad_query::app(state, qm),
        cancel,
        tasks,
    );
    println!(
        "ready: query API on {}://{}",
        scheme(&cfg),
        cfg.query.listen
    );
    Ok(None)
}
