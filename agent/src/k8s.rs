//! Kubernetes metadata from the file names under `/var/log/containers/`:
//! `<pod>_<namespace>_<container>-<64 hex container id>.log`.

use triad_model::{KeyValue, Value};

/// Pod, namespace, container and container ID of a `/var/log/containers/` file, as OTel
/// resource attributes (`k8s.pod.name`, `k8s.namespace.name`, `k8s.container.name`,
/// `container.id`). `None` for any other path.
pub fn metadata_from_path(path: &str) -> Option<Vec<KeyValue>> {
    let name = path
        .strip_prefix("/var/log/containers/")?
        .strip_suffix(".log")?;
    if name.contains('/') {
        return None;
    }
    let (pod, rest) = name.split_once('_')?;
    let (namespace, rest) = rest.split_once('_')?;
    let (container, id) = rest.rsplit_once('-')?;
    if pod.is_empty()
        || namespace.is_empty()
        || container.is_empty()
        || id.len() != 64
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let kv = |k: &str, v: &str| KeyValue::new(k, Value::Str(v.to_string()));
    Some(vec![
        kv("k8s.pod.name", pod),
        kv("k8s.namespace.name", namespace),
        kv("k8s.container.name", container),
        kv("container.id", id),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_container_log_names() {
        let id = "a".repeat(64);
        let m = metadata_from_path(&format!(
            "/var/log/containers/checkout-7d9f8-x2lq_shop_checkout-api-{id}.log"
        ))
        .unwrap();
        let get = |k: &str| {
            m.iter()
                .find(|a| a.key == k)
                .map(|a| a.value.to_text())
                .unwrap()
        };
        assert_eq!(get("k8s.pod.name"), "checkout-7d9f8-x2lq");
        assert_eq!(get("k8s.namespace.name"), "shop");
        assert_eq!(get("k8s.container.name"), "checkout-api");
        assert_eq!(get("container.id"), id);
    }

    #[test]
    fn other_paths_have_no_metadata() {
        assert!(metadata_from_path("/var/log/app.log").is_none());
        assert!(metadata_from_path("/var/log/containers/nounderscores.log").is_none());
        assert!(metadata_from_path("/var/log/containers/p_ns_c-short.log").is_none());
        assert!(
            metadata_from_path(&format!(
                "/var/log/containers/sub/p_ns_c-{}.log",
                "b".repeat(64)
            ))
            .is_none()
        );
    }
}
