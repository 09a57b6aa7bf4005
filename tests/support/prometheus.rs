//! Debian's prometheus and prometheus-pushgateway on loopback: tests push per-group samples
//! (label `group_id`) to the pushgateway and Prometheus scrapes it every second.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::processes::{free_port, spawn_logged};
use super::wait_for;

const INSTALL_HINT: &str =
    "apt-get install prometheus prometheus-pushgateway (hack/install-deps.sh does it)";

/// A running Prometheus scraping a pushgateway.
pub struct Prometheus {
    /// Prometheus base URL.
    pub url: String,
    /// Pushgateway base URL.
    pub pushgateway: String,
    /// Prometheus' query log: one JSON line per query it ran.
    pub query_log: std::path::PathBuf,
    /// The CA that Prometheus' serving certificate is signed by, when it serves TLS.
    ca_pem: Option<Vec<u8>>,
    /// The two processes; killed with the test binary.
    _children: Vec<std::process::Child>,
}

fn binary(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).is_file(),
        "{name} not found: {INSTALL_HINT}"
    );
    path
}

/// A blocking HTTP request on a helper thread (tests may already run inside a runtime).
pub fn http(method: &str, url: &str, body: Option<String>) -> Result<(u16, String), String> {
    http_trusting(method, url, body, None)
}

/// [`http`], trusting `ca_pem` for https.
fn http_trusting(
    method: &str,
    url: &str,
    body: Option<String>,
    ca_pem: Option<Vec<u8>>,
) -> Result<(u16, String), String> {
    let (method, url) = (method.to_string(), url.to_string());
    super::block_on_helper(async move {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
        if let Some(ca) = ca_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?,
            );
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(|e| e.to_string())?))
    })
}

impl Prometheus {
    /// Starts both and waits until Prometheus scrapes the pushgateway.
    pub fn start(dir: &Path) -> Self {
        Self::start_serving(dir, None)
    }

    /// Starts both, Prometheus serving only TLS with the certificate in `cert_dir` (`tls.crt`,
    /// `tls.key`, signed by `ca.crt`) through its own `--web.config.file`.
    pub fn start_with_tls(dir: &Path, cert_dir: &Path) -> Self {
        Self::start_serving(dir, Some(cert_dir))
    }

    fn start_serving(dir: &Path, tls: Option<&Path>) -> Self {
        let gateway_port = free_port();
        let mut gateway = Command::new(binary("prometheus-pushgateway"));
        gateway.arg(format!("--web.listen-address=127.0.0.1:{gateway_port}"));
        let gateway = spawn_logged(gateway, &dir.join("pushgateway.log"));
        let prometheus_port = free_port();
        let config = dir.join("prometheus.yml");
        let query_log = dir.join("prometheus-queries.log");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s, query_log_file: {}}}\nscrape_configs:\n- job_name: pushgateway\n  honor_labels: true\n  static_configs: [{{targets: ['127.0.0.1:{gateway_port}']}}]\n",
                query_log.display()
            ),
        )
        .expect("writing prometheus.yml");
        let mut prometheus = Command::new(binary("prometheus"));
        if let Some(cert_dir) = tls {
            let web_config = dir.join("prometheus-web.yml");
            std::fs::write(
                &web_config,
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    cert_dir.join("tls.crt").display(),
                    cert_dir.join("tls.key").display()
                ),
            )
            .expect("writing Prometheus' web config");
            prometheus.arg(format!("--web.config.file={}", web_config.display()));
        }
        prometheus.args([
            format!("--config.file={}", config.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
            "--log.level=warn".into(),
        ]);
        let prometheus = spawn_logged(prometheus, &dir.join("prometheus.log"));
        let this = Self {
            url: format!(
                "{}://127.0.0.1:{prometheus_port}",
                if tls.is_some() { "https" } else { "http" }
            ),
            pushgateway: format!("http://127.0.0.1:{gateway_port}"),
            query_log,
            ca_pem: tls.map(|dir| std::fs::read(dir.join("ca.crt")).expect("the CA")),
            _children: vec![gateway, prometheus],
        };
        wait_for(
            "Prometheus to scrape the pushgateway",
            Duration::from_secs(60),
            || {
                let (_, body) = http_trusting(
                    "GET",
                    &format!("{}/api/v1/query?query=up", this.url),
                    None,
                    this.ca_pem.clone(),
                )
                .ok()?;
                body.contains(r#""value":["#)
                    .then_some(())
                    .filter(|_| body.contains(r#","1"]"#))
            },
        );
        this
    }

    /// Sets `metric` for one group of the pods in `namespace` (job `job`, grouping labels
    /// `namespace` and `group_id`, as a scrape of the group's pods labels them).
    pub fn push(
        &self,
        job: &str,
        metric: &str,
        kind: &str,
        namespace: &str,
        group: i32,
        value: f64,
    ) {
        self.push_series(job, kind, namespace, group, &format!("{metric} {value}"));
    }

    /// Pushes one sample line (`metric{labels} value`) for one group of `namespace`.
    pub fn push_series(&self, job: &str, kind: &str, namespace: &str, group: i32, line: &str) {
        let metric = line.split(['{', ' ']).next().unwrap_or_default();
        let body = format!("# TYPE {metric} {kind}\n{line}\n");
        let url = format!(
            "{}/metrics/job/{job}/namespace/{namespace}/group_id/{group}",
            self.pushgateway
        );
        let (status, text) = http("PUT", &url, Some(body)).expect("pushing to the pushgateway");
        assert!(
            (200..300).contains(&status),
            "pushgateway said {status}: {text}"
        );
    }

    /// Removes one group's series from the pushgateway.
    pub fn delete(&self, job: &str, group: i32) {
        let url = format!("{}/metrics/job/{job}/group_id/{group}", self.pushgateway);
        let (status, text) = http("DELETE", &url, None).expect("deleting from the pushgateway");
        assert!(
            (200..300).contains(&status),
            "pushgateway said {status}: {text}"
        );
    }

    /// The current `(group_id, value)` pairs `query` returns, sorted by group.
    pub fn query_values(&self, query: &str) -> Vec<(i32, f64)> {
        let url = format!("{}/api/v1/query?query={}", self.url, urlencode(query));
        let Ok((_, body)) = http_trusting("GET", &url, None, self.ca_pem.clone()) else {
            return Vec::new();
        };
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut found: Vec<(i32, f64)> = value["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((
                    s["metric"]["group_id"].as_str()?.parse().ok()?,
                    s["value"][1].as_str()?.parse().ok()?,
                ))
            })
            .collect();
        found.sort_by_key(|(g, _)| *g);
        found
    }

    /// Waits until `query` returns exactly `expected` (group_id -> value, compared at 1e-6).
    pub fn wait_query(&self, query: &str, expected: &[(i32, f64)]) {
        wait_for(
            &format!("Prometheus to answer {query} with {expected:?}"),
            Duration::from_secs(60),
            || {
                let found = self.query_values(query);
                let matches = found.len() == expected.len()
                    && found
                        .iter()
                        .zip(expected)
                        .all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-6);
                matches.then_some(())
            },
        );
    }
}

/// Percent-encodes a query parameter.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
