//! Aggregated APIs in the test world: an API group served by a server of its own (KEDA's
//! `external.metrics.k8s.io`, metrics-server's `metrics.k8s.io`), registered as a cluster
//! registers it: an APIService naming a Service, whose endpoints are the test host's address
//! (the API server refuses loopback endpoints), relayed to the server on loopback.

use std::time::Duration;

use super::test_host::TestHost;
use super::{env, kubectl_apply, run_kubectl, wait_for};

/// Registers `group`/`version` as served by the server listening on `127.0.0.1:<port>` with a
/// certificate for `<service>.<namespace>.svc` signed by the CA whose base64 is `ca_bundle`;
/// returns once the API server reports the APIService Available.
pub fn register(group: &str, version: &str, service: (&str, &str), port: u16, ca_bundle: &str) {
    let (namespace, service) = service;
    let host = TestHost::get();
    let published = host.relay(port);
    let address = host.address;
    let yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: {namespace}}}
spec:
  ports: [{{name: https, port: 443, targetPort: {published}, protocol: TCP}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: {service}, namespace: {namespace}}}
subsets:
- addresses: [{{ip: "{address}"}}]
  ports: [{{name: https, port: {published}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {service}-test-host
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
endpoints:
- addresses: ["{address}"]
  conditions: {{ready: true}}
ports: [{{name: https, port: {published}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {version}.{group}}}
spec:
  group: {group}
  version: {version}
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca_bundle}
  service: {{name: {service}, namespace: {namespace}, port: 443}}
"#
    );
    let out = kubectl_apply(&env().kubeconfig, &yaml, &[]);
    assert!(out.success, "registering {version}.{group}: {}", out.stderr);
    wait_for(
        &format!("the APIService {version}.{group} to be Available"),
        Duration::from_secs(90),
        || {
            let available = run_kubectl(&[
                "get",
                "apiservice",
                &format!("{version}.{group}"),
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
            ]);
            (available.trim() == "True").then_some(())
        },
    );
}
