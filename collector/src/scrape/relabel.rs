//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`), step by step as
//! Prometheus' `relabel.Process` does.

use md5::{Digest, Md5};
use triad_model::metric::is_label_name;
use triad_model::promconfig::{RelabelAction, RelabelConfig};

/// A relabeling step with its regex compiled.
#[derive(Debug, Clone)]
pub struct Relabel {
    cfg: RelabelConfig,
    regex: regex::Regex,
}

impl Relabel {
    /// Compiles a step; the config was validated, so the regex compiles.
    pub fn new(cfg: &RelabelConfig) -> Result<Relabel, regex::Error> {
        Ok(Relabel {
            regex: regex::Regex::new(&format!("^(?s:{})$", cfg.regex))?,
            cfg: cfg.clone(),
        })
    }
}

fn get<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn set(labels: &mut Vec<(String, String)>, name: &str, value: String) {
    labels.retain(|(n, _)| n != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value));
    }
}

/// Applies the steps in order; `None` when a step drops the label set.
pub fn process(
    mut labels: Vec<(String, String)>,
    steps: &[Relabel],
) -> Option<Vec<(String, String)>> {
    for step in steps {
        let c = &step.cfg;
        let re = &step.regex;
        let val = c
            .source_labels
            .iter()
            .map(|n| get(&labels, n))
            .collect::<Vec<_>>()
            .join(&c.separator);
        match c.action {
            RelabelAction::Drop => {
                if re.is_match(&val) {
                    return None;
                }
            }
            RelabelAction::Keep => {
                if !re.is_match(&val) {
                    return None;
                }
            }
            RelabelAction::Dropequal => {
                if get(&labels, &c.target_label) == val {
                    return None;
                }
            }
            RelabelAction::Keepequal => {
                if get(&labels, &c.target_label) != val {
                    return None;
                }
            }
            RelabelAction::Replace => {
                let Some(caps) = re.captures(&val) else {
                    continue;
                };
                let mut target = String::new();
                caps.expand(&c.target_label, &mut target);
                if !is_label_name(&target) {
                    labels.retain(|(n, _)| *n != c.target_label);
                    continue;
                }
                let mut res = String::new();
                caps.expand(&c.replacement, &mut res);
                set(&mut labels, &target, res);
            }
            RelabelAction::Lowercase => set(&mut labels, &c.target_label, val.to_lowercase()),
            RelabelAction::Uppercase => set(&mut labels, &c.target_label, val.to_uppercase()),
            RelabelAction::Hashmod => {
                let digest = Md5::digest(val.as_bytes());
                // Go's sum64: the low 8 bytes, big endian.
                let mut low = [0u8; 8];
                low.copy_from_slice(&digest[8..16]);
                let m = u64::from_be_bytes(low) % c.modulus.max(1);
                set(&mut labels, &c.target_label, m.to_string());
            }
            RelabelAction::Labelmap => {
                let mut added = Vec::new();
                for (n, v) in &labels {
                    if re.is_match(n) {
                        added.push((
                            re.replace_all(n, c.replacement.as_str()).into_owned(),
                            v.clone(),
                        ));
                    }
                }
                for (n, v) in added {
                    set(&mut labels, &n, v);
                }
            }
            RelabelAction::Labeldrop => labels.retain(|(n, _)| !re.is_match(n)),
            RelabelAction::Labelkeep => labels.retain(|(n, _)| re.is_match(n)),
        }
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(yaml: &str) -> Vec<Relabel> {
        let cfgs: Vec<RelabelConfig> = serde_saphyr::from_str(yaml).unwrap();
        cfgs.iter().map(|c| Relabel::new(c).unwrap()).collect()
    }

    fn ls(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
        v.sort();
        v
    }

    #[test]
    fn every_action() {
        let input = ls(&[
            ("__address__", "10.0.0.1:9100"),
            ("__meta_env", "prod"),
            ("job", "node"),
        ]);
        let s = steps(
            r#"
- source_labels: [__address__]
  regex: '([^:]+):\d+'
  target_label: host
- regex: __meta_(.+)
  action: labelmap
  replacement: meta_$1
- source_labels: [job, host]
  separator: "@"
  target_label: id
- source_labels: [host]
  modulus: 4
  target_label: shard
  action: hashmod
- source_labels: [job]
  target_label: JOB
  action: uppercase
- regex: JOB
  action: labeldrop
"#,
        );
        let out = sorted(process(input.clone(), &s).unwrap());
        assert_eq!(
            out,
            sorted(ls(&[
                ("__address__", "10.0.0.1:9100"),
                ("__meta_env", "prod"),
                ("host", "10.0.0.1"),
                ("id", "node@10.0.0.1"),
                ("job", "node"),
                ("meta_env", "prod"),
                // md5("10.0.0.1") low 8 bytes mod 4, as Prometheus computes it.
                ("shard", "0"),
            ]))
        );
        assert!(
            process(
                input.clone(),
                &steps("- {source_labels: [job], regex: node, action: drop}")
            )
            .is_none()
        );
        assert!(
            process(
                input.clone(),
                &steps("- {source_labels: [job], regex: web, action: keep}")
            )
            .is_none()
        );
        let kept = process(
            input.clone(),
            &steps("- {regex: 'job|__address__', action: labelkeep}"),
        )
        .unwrap();
        assert_eq!(kept.len(), 2);
        // A replacement that expands to nothing removes the label; no match changes nothing.
        let out = process(
            input.clone(),
            &steps(
                "- {source_labels: [job], regex: 'no(.)e', target_label: job, replacement: '$9'}",
            ),
        )
        .unwrap();
        assert_eq!(get(&out, "job"), "");
        let out = process(
            input,
            &steps("- {source_labels: [job], regex: web, target_label: job, replacement: x}"),
        )
        .unwrap();
        assert_eq!(get(&out, "job"), "node");
    }
}
