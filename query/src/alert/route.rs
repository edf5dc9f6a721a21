//! The routing tree: which receiver gets an alert and how alerts are grouped, with
//! Alertmanager's semantics (depth-first, first match wins unless `continue`, children
//! inherit what they leave unset).

use std::time::Duration;

use triad_model::alerting::Route as RouteConfig;
use triad_model::metric::{Labels, Matcher, parse_matcher};

/// A route with everything inherited filled in.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the tree, `{}` for the root and `{}/{matchers}` below it, as
    /// Alertmanager writes it in `groupKey`.
    pub key: String,
    /// Receiver name.
    pub receiver: String,
    /// Labels that split alerts into groups; `None` groups by every label (`[...]`).
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a group.
    pub group_wait: Duration,
    /// Wait between notifications of changes.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    children: Vec<Route>,
}

impl Route {
    /// Builds the tree from the (validated) configuration.
    pub fn new(cfg: &RouteConfig) -> Result<Route, String> {
        let root = Route {
            key: "{}".into(),
            receiver: cfg.receiver.clone().unwrap_or_default(),
            group_by: group_by(
                cfg.group_by
                    .clone()
                    .unwrap_or_else(|| vec!["alertname".into()]),
            ),
            group_wait: Duration::from_secs(cfg.group_wait_secs.unwrap_or(30)),
            group_interval: Duration::from_secs(cfg.group_interval_secs.unwrap_or(300)),
            repeat_interval: Duration::from_secs(cfg.repeat_interval_secs.unwrap_or(4 * 3600)),
            matchers: Vec::new(),
            continue_matching: false,
            children: Vec::new(),
        };
        Self::child_of(root, cfg)
    }

    fn child_of(mut node: Route, cfg: &RouteConfig) -> Result<Route, String> {
        for c in &cfg.routes {
            let matchers = c
                .matchers
                .iter()
                .map(|m| parse_matcher(m))
                .collect::<Result<Vec<_>, _>>()?;
            let child = Route {
                key: format!("{}/{{{}}}", node.key, c.matchers.join(",")),
                receiver: c.receiver.clone().unwrap_or_else(|| node.receiver.clone()),
                group_by: match &c.group_by {
                    Some(g) => group_by(g.clone()),
                    None => node.group_by.clone(),
                },
                group_wait: c
                    .group_wait_secs
                    .map_or(node.group_wait, Duration::from_secs),
                group_interval: c
                    .group_interval_secs
                    .map_or(node.group_interval, Duration::from_secs),
                repeat_interval: c
                    .repeat_interval_secs
                    .map_or(node.repeat_interval, Duration::from_secs),
                matchers,
                continue_matching: c.continue_matching,
                children: Vec::new(),
            };
            node.children.push(Self::child_of(child, c)?);
        }
        Ok(node)
    }

    /// The routes an alert with these labels takes (at least the root).
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.iter().all(|m| m.matches_labels(labels)) {
            return false;
        }
        let before = out.len();
        for c in &self.children {
            if c.collect(labels, out) && !c.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// The labels of `labels` this route groups by.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            None => labels.clone(),
            Some(names) => Labels::new(
                names
                    .iter()
                    .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.to_string())))
                    .collect(),
            ),
        }
    }
}

fn group_by(names: Vec<String>) -> Option<Vec<String>> {
    if names.iter().any(|n| n == "...") {
        None
    } else {
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn first_match_wins_unless_continue_and_children_inherit() {
        let cfg: RouteConfig = serde_json::from_value(serde_json::json!({
            "receiver": "default",
            "group_by": ["alertname"],
            "group_wait_secs": 5,
            "routes": [
                {"matchers": ["severity=\"page\""], "receiver": "pager", "continue": true},
                {"matchers": ["severity=~\"page|ticket\""], "receiver": "tickets", "group_by": ["..."]},
                {"matchers": ["team=\"db\""], "receiver": "db"}
            ]
        }))
        .unwrap();
        let root = Route::new(&cfg).unwrap();
        let page = labels(&[("alertname", "A"), ("severity", "page")]);
        let got: Vec<&str> = root
            .matching(&page)
            .iter()
            .map(|r| r.receiver.as_str())
            .collect();
        assert_eq!(got, ["pager", "tickets"]);
        let r = root.matching(&page)[0];
        assert_eq!(r.group_wait, Duration::from_secs(5));
        assert_eq!(r.key, "{}/{severity=\"page\"}");
        assert_eq!(r.group_labels(&page), labels(&[("alertname", "A")]));
        let tickets = root.matching(&page)[1];
        assert_eq!(tickets.group_labels(&page), page);
        let other = labels(&[("alertname", "B")]);
        assert_eq!(root.matching(&other)[0].receiver, "default");
        assert_eq!(root.matching(&labels(&[("team", "db")]))[0].receiver, "db");
    }
}
