//! Authentication on every HTTP route and gRPC method of every Triad server.
//!
//! Routes are declared through [`Routes`], each with its [`Access`]; [`Routes::into_router`]
//! then puts one gate in front of all of them that looks the matched route up in that
//! table. A route missing from the table is refused (fail closed), so a new endpoint
//! cannot be added without deciding who may use it, and the table each server serves at
//! `/api/v1/status/routes` (admin) is exactly what is enforced — the auth and tenant walk
//! tests are generated from it.
//!
//! The gate puts the caller's [`Principal`] into the request's extensions; handlers read
//! the tenant from there (`Extension<Principal>`), never from the request itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use triad_model::auth::{AuthError, Authenticator, Credentials, Principal, Role};

/// The header a trusted token uses to choose the tenant (Loki's, Mimir's, Tempo's).
pub const ORG_ID_HEADER: &str = "x-scope-orgid";
/// The UI's session cookie: the token, HttpOnly, SameSite=Strict, for the browser session.
pub const SESSION_COOKIE: &str = "triad_session";

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone: `/healthz`, `/readyz`, signing in.
    Open,
    /// `/metrics`: anyone, or any token when `auth.protect_metrics` is set.
    Metrics,
    /// A token with this role (or `admin`).
    #[serde(untagged)]
    Role(Role),
}

/// Labels of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `missing`, `malformed`, `unknown_token`, `forbidden`, `wrong_tenant`.
    pub reason: &'static str,
}

triad_model::metric_set! {
    /// Authentication counters.
    pub struct AuthMetrics in "triad_auth" {
        /// Requests refused by authentication, by reason.
        pub refused as "refused_requests": Family<RefusalLabels, Counter>,
    }
}

/// Checks requests against the configured tokens; shared by every server of a process.
#[derive(Clone)]
pub struct Gate {
    /// The accepted tokens; replaced as a whole when the metastore's change
    /// ([`Gate::replace`]).
    auth: Option<Arc<std::sync::RwLock<Arc<Authenticator>>>>,
    metrics: AuthMetrics,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("enabled", &self.auth.is_some())
            .finish()
    }
}

impl Gate {
    /// A gate over `auth` (`None`: authentication off, every caller is
    /// [`Principal::anonymous`]).
    pub fn new(auth: Option<Arc<Authenticator>>, metrics: AuthMetrics) -> Gate {
        Gate {
            auth: auth.map(|a| Arc::new(std::sync::RwLock::new(a))),
            metrics,
        }
    }

    /// The tokens in force now.
    fn current(&self) -> Option<Arc<Authenticator>> {
        self.auth
            .as_ref()
            .map(|a| a.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Accepts the tokens of `auth` from now on (requests in progress finish with the
    /// previous ones); nothing changes for a gate without authentication.
    pub fn replace(&self, auth: Authenticator) {
        if let Some(a) = &self.auth {
            *a.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(auth);
        }
    }

    /// A gate that lets everyone in (tests, benchmarks, `auth: none`).
    pub fn open() -> Gate {
        Gate::new(None, AuthMetrics::unregistered())
    }

    /// Whether tokens are checked.
    pub fn enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// The caller of a request with `headers` on a route with `access`; `None` for open
    /// routes.
    pub fn check(
        &self,
        headers: &HeaderMap,
        access: Access,
    ) -> Result<Option<Principal>, AuthError> {
        let needed = match access {
            Access::Open => return Ok(None),
            Access::Metrics => match self.current() {
                Some(a) if a.protect_metrics() => None,
                _ => return Ok(None),
            },
            Access::Role(r) => Some(r),
        };
        let Some(auth) = self.current() else {
            return Ok(Some(Principal::anonymous()));
        };
        let result = credentials(headers).and_then(|creds| {
            let org = headers
                .get(ORG_ID_HEADER)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| AuthError::Malformed("X-Scope-OrgID is not text"))
                })
                .transpose()?;
            auth.authenticate(&creds, org, needed)
        });
        result.map(Some).map_err(|e| self.refused(e))
    }

    /// Counts a refusal by reason.
    fn refused(&self, e: AuthError) -> AuthError {
        self.metrics
            .refused
            .get_or_create(&RefusalLabels {
                reason: reason_of(&e),
            })
            .inc();
        e
    }

    /// Checks a token offered to sign in (the UI's form) for read access.
    pub fn sign_in(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(auth) = self.current() else {
            return Ok(Principal::anonymous());
        };
        let creds = Credentials {
            token: token.into(),
            user: None,
        };
        auth.authenticate(&creds, None, Some(Role::Read))
            .map_err(|e| self.refused(e))
    }
}

fn reason_of(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Malformed(_) => "malformed",
        AuthError::Unknown => "unknown_token",
        AuthError::Forbidden { .. } => "forbidden",
        AuthError::WrongTenant(_) => "wrong_tenant",
        AuthError::Random => "internal",
    }
}

/// The credentials of a request: its `Authorization` header, else the UI's session cookie.
fn credentials(headers: &HeaderMap) -> Result<Credentials<'_>, AuthError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return triad_model::auth::parse_authorization(v.as_bytes());
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(text) = v.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
                && !val.is_empty()
            {
                return Ok(Credentials {
                    token: val.into(),
                    user: None,
                });
            }
        }
    }
    Err(AuthError::Missing)
}

/// The answer to a refused HTTP request: 401 with `WWW-Authenticate`, or 403; a JSON body
/// in the shape of the Prometheus API's errors (which Grafana shows as they are).
pub fn refusal(e: &AuthError) -> Response {
    let (status, kind) = if e.is_unauthenticated() {
        (StatusCode::UNAUTHORIZED, "unauthorized")
    } else {
        (StatusCode::FORBIDDEN, "forbidden")
    };
    let body = serde_json::json!({"status": "error", "errorType": kind, "error": e.to_string()});
    let mut r = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"triad\""),
        );
    }
    r
}

/// The access rules of one route pattern: one for every method, or one per method
/// (`GET` to read silences, `POST` to create one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathRule {
    /// For methods without their own rule.
    pub any: Option<Access>,
    /// By method name.
    pub by_method: BTreeMap<String, Access>,
}

impl PathRule {
    /// The rule for `method`, if any.
    pub fn for_method(&self, method: &str) -> Option<Access> {
        self.by_method.get(method).copied().or(self.any)
    }
}

/// The access rules of every route of a server, by route pattern.
pub type RouteTable = BTreeMap<String, PathRule>;

/// A router whose every route has an access rule.
pub struct Routes<S = ()> {
    router: Router<S>,
    table: RouteTable,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Routes {
            router: Router::new(),
            table: RouteTable::new(),
        }
    }

    /// Adds a route with its access rule for every method it has.
    pub fn route(mut self, path: &str, access: Access, method_router: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method_router);
        self.table.entry(path.to_string()).or_default().any = Some(access);
        self
    }

    /// Adds methods to a route with an access rule of their own; `method_router` must
    /// hold exactly `methods`.
    pub fn route_methods(
        mut self,
        path: &str,
        methods: &[axum::http::Method],
        access: Access,
        method_router: MethodRouter<S>,
    ) -> Self {
        self.router = self.router.route(path, method_router);
        let rule = self.table.entry(path.to_string()).or_default();
        for m in methods {
            rule.by_method.insert(m.as_str().to_string(), access);
        }
        self
    }

    /// Applies a layer to the routes added so far (body limits, metrics).
    pub fn map_router(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    /// Provides the state, for merging with other servers' routes.
    pub fn with_state(self, state: S) -> Routes<()> {
        Routes {
            router: self.router.with_state(state),
            table: self.table,
        }
    }
}

impl Routes<()> {
    /// Adds another set of routes (routes must not repeat).
    pub fn merge(mut self, other: Routes<()>) -> Self {
        self.router = self.router.merge(other.router);
        for (path, rule) in other.table {
            let mine = self.table.entry(path).or_default();
            mine.any = mine.any.or(rule.any);
            mine.by_method.extend(rule.by_method);
        }
        self
    }

    /// The access rules.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// The router with the gate in front of every route, and `/api/v1/status/routes`
    /// (admin) listing the rules. A fallback, if any, is added after this and stays open
    /// (static UI files).
    pub fn into_router(self, gate: Gate) -> Router {
        let mut table = self.table;
        table.insert(
            ROUTES_PATH.to_string(),
            PathRule {
                any: Some(Access::Role(Role::Admin)),
                by_method: BTreeMap::new(),
            },
        );
        let mut rows = Vec::new();
        for (path, rule) in &table {
            if let Some(a) = rule.any {
                rows.push(serde_json::json!({"path": path, "method": "*", "access": a}));
            }
            for (m, a) in &rule.by_method {
                rows.push(serde_json::json!({"path": path, "method": m, "access": a}));
            }
        }
        let listing = serde_json::json!({"status": "success", "data": rows});
        let router = self.router.route(
            ROUTES_PATH,
            axum::routing::get(move || {
                let listing = listing.clone();
                async move { axum::Json(listing) }
            }),
        );
        router.route_layer(axum::middleware::from_fn_with_state(
            (gate, Arc::new(table)),
            enforce,
        ))
    }
}

/// Where each server lists its routes and their access rules.
pub const ROUTES_PATH: &str = "/api/v1/status/routes";

async fn enforce(
    State((gate, table)): State<(Gate, Arc<RouteTable>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let rule = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| table.get(p.as_str()));
    let access = rule.and_then(|r| r.for_method(req.method().as_str()));
    if rule.is_some() && access.is_none() {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(access) = access else {
        // Every route is declared through `Routes::route`; one that is not is a bug, and
        // refusing it is the safe side.
        tracing::error!(
            path = req.uri().path(),
            "route without an access rule refused"
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "route without an access rule",
        )
            .into_response();
    };
    match gate.check(req.headers(), access) {
        Ok(Some(p)) => {
            req.extensions_mut().insert(p);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(path = req.uri().path(), error = %e, "request refused");
            return refusal(&e);
        }
    }
    next.run(req).await
}

/// The `Authorization` value this process sends to other Triad servers, from
/// `TRIAD_TOKEN` or the configured file (trimmed); `None` when neither is set.
pub fn client_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    if let Ok(t) = std::env::var("TRIAD_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(path) = file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("client_token_file {}: {e}", path.display()))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("client_token_file {} is empty", path.display()));
    }
    Ok(Some(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;
    use triad_model::auth::TokenHash;
    use triad_model::config::{AuthConfig, TokenConfig};

    fn gate() -> Gate {
        let tok = |name: &str, role| TokenConfig {
            name: name.into(),
            hash: TokenHash::of(&format!("{name}-secret")).to_string(),
            tenant: format!("t-{name}"),
            role,
            trusted: false,
        };
        let cfg = AuthConfig {
            tokens: vec![tok("r", Role::Read), tok("w", Role::Write)],
            protect_metrics: true,
        };
        Gate::new(
            Some(Arc::new(Authenticator::new(&cfg))),
            AuthMetrics::unregistered(),
        )
    }

    async fn call(app: &Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut req = axum::http::Request::get(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn replaced_tokens_take_effect_at_once() {
        let g = gate();
        let bearer = |secret: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                "authorization",
                axum::http::HeaderValue::from_str(&format!("Bearer {secret}")).unwrap(),
            );
            h
        };
        let read = Access::Role(Role::Read);
        assert!(g.check(&bearer("r-secret"), read).is_ok());
        assert!(g.check(&bearer("new-secret"), read).is_err());
        let cfg = AuthConfig {
            tokens: Vec::new(),
            protect_metrics: true,
        };
        let added = TokenConfig {
            name: "new".into(),
            hash: TokenHash::of("new-secret").to_string(),
            tenant: "t-new".into(),
            role: Role::Read,
            trusted: false,
        };
        g.replace(Authenticator::with_tokens(&cfg, &[added]));
        let p = g.check(&bearer("new-secret"), read).unwrap().unwrap();
        assert_eq!(p.tenant, "t-new");
        assert!(g.check(&bearer("r-secret"), read).is_err(), "removed");
        // A gate without authentication stays open.
        let open = Gate::open();
        open.replace(Authenticator::with_tokens(&cfg, &[]));
        assert!(!open.enabled());
    }

    #[tokio::test]
    async fn every_route_is_gated_by_its_rule() {
        let who = get(|axum::Extension(p): axum::Extension<Principal>| async move { p.tenant });
        let app = Routes::new()
            .route("/healthz", Access::Open, get(|| async { "ok" }))
            .route("/metrics", Access::Metrics, get(|| async { "m" }))
            .route("/read/{x}", Access::Role(Role::Read), who.clone())
            .route("/write", Access::Role(Role::Write), who)
            .into_router(gate());
        assert_eq!(call(&app, "/healthz", None).await.0, StatusCode::OK);
        assert_eq!(
            call(&app, "/metrics", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, "/metrics", Some("Bearer w-secret")).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(&app, "/read/1", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, "/read/1", Some("Bearer nope")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, "/read/1", Some("Bearer w-secret")).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(&app, "/read/1", Some("Bearer r-secret")).await,
            (StatusCode::OK, "t-r".to_string())
        );
        assert_eq!(
            call(&app, "/write", Some("Bearer w-secret")).await,
            (StatusCode::OK, "t-w".to_string())
        );
        let (status, body) = call(&app, ROUTES_PATH, Some("Bearer r-secret")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }

    #[tokio::test]
    async fn a_route_without_a_rule_is_refused() {
        let routes = Routes::new().route("/a", Access::Open, get(|| async { "a" }));
        let mut app = routes.into_router(gate());
        // Added behind the builder's back, after the gate: not reachable.
        app = app.route_layer(axum::middleware::from_fn(
            |req: Request, next: Next| async move { next.run(req).await },
        ));
        assert_eq!(call(&app, "/a", None).await.0, StatusCode::OK);
        let sneaky = Router::new()
            .route("/b", get(|| async { "b" }))
            .merge(
                Routes::new()
                    .route("/a", Access::Open, get(|| async { "a" }))
                    .router,
            )
            .route_layer(axum::middleware::from_fn_with_state(
                (gate(), Arc::new(RouteTable::new())),
                enforce,
            ));
        assert_eq!(
            call(&sneaky, "/b", None).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn the_session_cookie_signs_the_ui_in() {
        let app = Routes::new()
            .route(
                "/r",
                Access::Role(Role::Read),
                get(|axum::Extension(p): axum::Extension<Principal>| async move { p.tenant }),
            )
            .into_router(gate());
        let req = axum::http::Request::get("/r")
            .header("cookie", format!("theme=dark; {SESSION_COOKIE}=r-secret"))
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
