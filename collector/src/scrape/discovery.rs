//! Targets: file_sd files (globs, JSON or YAML) and Prometheus' `PopulateLabels`
//! (meta labels, relabeling, default port, `instance`).

use super::*;

/// A target group as file_sd files hold them.
#[derive(Deserialize)]
pub(super) struct FileGroup {
    #[serde(default)]
    pub(super) targets: Vec<String>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
}

pub(super) fn expand_globs(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains('*') {
            out.push(f.clone());
            continue;
        }
        let dir = f
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let pattern = format!("^{}$", regex::escape(&name).replace("\\*", "[^/]*"));
        let Ok(re) = regex::Regex::new(&pattern) else {
            continue;
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    out
}

pub(super) async fn read_file_sd(path: &Path) -> Result<Vec<FileGroup>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| e.to_string())?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())
    }
}

/// Prometheus' `PopulateLabels`: meta labels, relabeling, default port, instance.
pub(super) fn populate(
    job: &Job,
    address: &str,
    group: &BTreeMap<String, String>,
) -> Option<Target> {
    let cfg = &job.cfg;
    let mut labels: Vec<(String, String)> =
        group.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut base = vec![
        ("__address__".to_string(), address.to_string()),
        ("job".to_string(), cfg.job_name.clone()),
        ("__scheme__".to_string(), cfg.scheme.clone()),
        ("__metrics_path__".to_string(), cfg.metrics_path.clone()),
        (
            "__scrape_interval__".to_string(),
            format_duration(job.interval),
        ),
        (
            "__scrape_timeout__".to_string(),
            format_duration(job.timeout),
        ),
    ];
    for (name, values) in &cfg.params {
        if let Some(v) = values.first() {
            base.push((format!("__param_{name}"), v.clone()));
        }
    }
    for (n, v) in base {
        if !labels.iter().any(|(k, _)| *k == n) {
            labels.push((n, v));
        }
    }
    let labels = relabel::process(labels, &job.relabel)?;
    let get = |n: &str| {
        labels
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut addr = get("__address__");
    if addr.is_empty() {
        return None;
    }
    let scheme = get("__scheme__");
    if !addr.contains(':') || addr.ends_with(']') {
        addr = format!("{addr}:{}", if scheme == "https" { 443 } else { 80 });
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for (name, values) in &cfg.params {
        for v in values {
            query.push((name.clone(), v.clone()));
        }
    }
    for (k, v) in &labels {
        if let Some(name) = k.strip_prefix("__param_") {
            query.retain(|(n, _)| n != name);
            query.push((name.to_string(), v.clone()));
        }
    }
    let mut url = format!("{scheme}://{addr}{}", get("__metrics_path__"));
    if !query.is_empty() {
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&qs);
    }
    let mut final_labels: Vec<(String, String)> = labels
        .into_iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .collect();
    if !final_labels.iter().any(|(k, _)| k == "instance") {
        final_labels.push(("instance".into(), addr.clone()));
    }
    Some(Target {
        job: cfg.job_name.clone(),
        url,
        labels: Labels::new(final_labels),
        interval: job.interval,
        timeout: job.timeout,
        honor_labels: cfg.honor_labels,
        honor_timestamps: cfg.honor_timestamps,
        body_limit: job.body_limit,
        sample_limit: job.sample_limit,
        metric_relabel: job.metric_relabel.clone(),
        auth: job.auth.clone(),
        client: job.client.clone(),
    })
}

pub(super) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
