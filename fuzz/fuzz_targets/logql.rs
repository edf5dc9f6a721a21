//! LogQL text of Loki's query API: parse, derive the index prefilter, and run a log
//! query's pipeline over a few lines — nothing may panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_query::logql::ast::Query;
use triad_query::logql::eval::prefilter;
use triad_query::logql::pipeline::{Entry, run};

const LINES: &[&str] = &[
    r#"{"status":500,"took":"1.5s","req":{"path":"/x"}}"#,
    r#"level=info msg="query done" rows=42 size=2KB"#,
    "10.0.0.1 - - \"GET /index.html HTTP/1.1\" 200 512",
    "\u{1b}[31mred\u{1b}[0m",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(q) = triad_query::logql::parse(text) else { return };
    let exprs = match &q {
        Query::Log(l) => vec![l.clone()],
        Query::Metric(m) => m.ranges.iter().map(|r| r.log.clone()).collect(),
    };
    for e in exprs {
        let _ = prefilter(&e);
        for line in LINES {
            let mut entry = Entry {
                ts: 1,
                line: line.to_string(),
                labels: vec![("service_name".into(), "api".into())],
            };
            let _ = run(&e.stages, &mut entry);
        }
    }
});
