//! deploy/ cross-checked: the Kubernetes manifests, the container image's
//! Dockerfile, the NATS Helm values and the systemd units parse, and agree
//! with each other, with
//! deploy/waybill.cluster.toml, deploy/nats/cluster.conf and with the flags
//! the `waybill` binary actually has (ports, probes, arguments, mounts).

mod common;

use std::collections::BTreeSet;

use common::{run, stdout};
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `--flag` in `args` is one `waybill serve` knows.
fn assert_flags_known(args: &[String], what: &str) {
    let help = stdout(&run(&["serve", "--help"]));
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap_or(arg);
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{what}: `waybill serve` has no flag {flag}"
        );
    }
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

fn cluster_toml() -> toml::Value {
    read("deploy/waybill.cluster.toml")
        .parse()
        .expect("waybill.cluster.toml")
}

#[test]
fn kubernetes_manifests_agree_with_the_binary_and_the_config() {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read("deploy/k8s/waybill.yaml")).expect("waybill.yaml parses");
    let kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);
    let config = cluster_toml();
    let grpc = port_of(config["listen"].as_str().expect("listen"));
    let metrics = port_of(config["metrics_listen"].as_str().expect("metrics_listen"));

    // The ConfigMap carries deploy/waybill.cluster.toml verbatim.
    let map = kind("ConfigMap").next().expect("a ConfigMap");
    assert_eq!(
        map["data"]["waybill.toml"].as_str().expect("waybill.toml"),
        read("deploy/waybill.cluster.toml"),
        "the ConfigMap drifted from deploy/waybill.cluster.toml"
    );

    let deployments: Vec<&Value> = kind("StatefulSet").collect();
    assert_eq!(deployments.len(), 2, "api and worker");
    let mut container_ports = BTreeSet::new();
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().expect("name");
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["command"][0], "/usr/local/bin/waybill", "{name}");
        let args: Vec<String> = c["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string").to_string())
            .collect();
        assert_eq!(args[0], "serve", "{name}");
        assert_flags_known(&args, name);
        // Ports: as configured; probes: gRPC health on the gRPC port.
        for p in c["ports"].as_array().expect("ports") {
            let want = match p["name"].as_str() {
                Some("grpc") => grpc,
                Some("metrics") => metrics,
                other => panic!("{name}: unexpected port {other:?}"),
            };
            assert_eq!(p["containerPort"].as_u64(), Some(want), "{name}");
            container_ports.insert(p["name"].as_str().expect("name").to_string());
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(
                c[probe]["grpc"]["port"].as_u64(),
                Some(grpc),
                "{name} {probe}"
            );
        }
        // Readiness asks for the whole (log up, read models caught up);
        // liveness for the service that only says the process answers
        // (`tests/serve.rs` checks the server reports it).
        assert!(c["readinessProbe"]["grpc"]["service"].is_null(), "{name}");
        assert_eq!(
            c["livenessProbe"]["grpc"]["service"].as_str(),
            Some("liveness"),
            "{name}"
        );
        // Every file the arguments and the config name is mounted.
        let mounts: Vec<(String, String)> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("name").to_string(),
                    m["mountPath"].as_str().expect("path").to_string(),
                )
            })
            .collect();
        let claims: BTreeSet<&str> = d["spec"]["volumeClaimTemplates"]
            .as_array()
            .expect("volume claims")
            .iter()
            .map(|v| v["metadata"]["name"].as_str().expect("name"))
            .collect();
        let volumes: BTreeSet<&str> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| v["name"].as_str().expect("name"))
            .chain(claims.iter().copied())
            .collect();
        // A StatefulSet names a Service of its own (headless).
        let governing = d["spec"]["serviceName"].as_str().expect("serviceName");
        assert!(
            kind("Service")
                .any(|s| s["metadata"]["name"] == governing && s["spec"]["clusterIP"] == "None"),
            "{name}: no headless Service {governing}"
        );
        // The data directory is each pod's own volume, kept across restarts.
        let data_mount = mounts
            .iter()
            .find(|(_, m)| *m == config["data_dir"].as_str().expect("data_dir"))
            .map(|(v, _)| v.as_str())
            .expect("the data directory is mounted");
        assert!(
            claims.contains(data_mount),
            "{name}: data is not a volume claim"
        );
        for (volume, _) in &mounts {
            assert!(
                volumes.contains(volume.as_str()),
                "{name}: no volume {volume}"
            );
        }
        let mut paths: Vec<String> = args
            .windows(2)
            .filter(|w| w[0] == "--config" || w[0] == "--auth-config")
            .map(|w| w[1].clone())
            .collect();
        paths.push(config["data_dir"].as_str().expect("data_dir").to_string());
        for key in ["ca", "cert", "key"] {
            paths.push(config["nats"][key].as_str().expect(key).to_string());
        }
        paths.push(
            config["audit"]["signing_key"]
                .as_str()
                .expect("key")
                .to_string(),
        );
        for path in paths {
            assert!(
                mounts
                    .iter()
                    .any(|(_, m)| path == *m || path.starts_with(&format!("{m}/"))),
                "{name}: {path} is not mounted"
            );
        }
    }
    // The Service routes to the container ports, the ServiceMonitor scrapes metrics.
    let service = kind("Service").next().expect("a Service");
    let mut service_ports = BTreeSet::new();
    for p in service["spec"]["ports"].as_array().expect("ports") {
        let target = p["targetPort"].as_str().expect("named target");
        assert!(container_ports.contains(target), "Service targets {target}");
        service_ports.insert(p["name"].as_str().expect("name").to_string());
    }
    let monitor = kind("ServiceMonitor").next().expect("a ServiceMonitor");
    let scraped = monitor["spec"]["endpoints"][0]["port"]
        .as_str()
        .expect("port");
    assert!(
        service_ports.contains(scraped),
        "ServiceMonitor scrapes {scraped}"
    );
}

#[test]
fn nats_helm_values_match_the_cluster_config_and_waybill() {
    let values: Value =
        serde_saphyr::from_str(&read("deploy/k8s/nats-values.yaml")).expect("nats-values.yaml");
    let c = &values["config"];
    assert_eq!(c["jetstream"]["enabled"], true);
    assert_eq!(c["jetstream"]["merge"]["sync_interval"], "always");
    assert_eq!(c["cluster"]["enabled"], true);
    assert_eq!(c["cluster"]["replicas"], 3);
    assert_eq!(c["nats"]["tls"]["enabled"], true);
    assert_eq!(c["cluster"]["tls"]["enabled"], true);
    assert_eq!(c["nats"]["tls"]["merge"]["verify"], true, "mutual TLS");
    // Waybill connects to the chart's client port, over TLS, with R3.
    let config = cluster_toml();
    let port = c["nats"]["port"].as_u64().expect("port");
    for url in config["nats"]["url"].as_str().expect("url").split(',') {
        assert!(url.starts_with("tls://"), "{url}");
        assert_eq!(port_of(url), port, "{url}");
    }
    assert_eq!(config["nats"]["replicas"].as_integer(), Some(3));
    // The standalone cluster config says the same.
    let conf = read("deploy/nats/cluster.conf");
    assert!(conf.contains("sync_interval: always"));
    assert!(conf.contains("verify: true"));
}

#[test]
fn systemd_units_agree_with_the_binary_and_the_nats_config() {
    let exec = |unit: &str| -> Vec<String> {
        read(unit)
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let waybill = exec("deploy/systemd/waybill.service");
    assert_eq!(waybill[0], "/usr/local/bin/waybill");
    assert_eq!(waybill[1], "serve");
    assert_flags_known(&waybill[1..], "waybill.service");
    assert!(waybill
        .windows(2)
        .any(|w| w == ["--config", "/etc/waybill/waybill.toml"]));
    // A reload first checks what the server runs with: the same command
    // line with --check, then SIGHUP.
    let reloads: Vec<String> = read("deploy/systemd/waybill.service")
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .map(|l| l.trim().to_string())
        .collect();
    let mut checked = waybill.clone();
    checked.insert(2, "--check".to_string());
    assert_eq!(
        reloads,
        [checked.join(" "), "/bin/kill -HUP $MAINPID".to_string()]
    );

    let nats = exec("deploy/systemd/nats-server@.service");
    assert_eq!(nats[1..], ["-c", "/etc/nats/cluster.conf"]);
    // The unit documents exactly the variables the config uses.
    let conf = read("deploy/nats/cluster.conf");
    let used: BTreeSet<String> = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')))
        .filter_map(|w| w.strip_prefix('$'))
        .map(str::to_string)
        .collect();
    let unit = read("deploy/systemd/nats-server@.service");
    let documented: BTreeSet<String> = unit
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.starts_with("NATS_"))
        .flat_map(|w| {
            // NATS_ROUTE_1..3 stands for three variables.
            match w.strip_suffix("1..3") {
                Some(stem) => (1..=3).map(|i| format!("{stem}{i}")).collect::<Vec<_>>(),
                None => vec![w.trim_end_matches('.').to_string()],
            }
        })
        .collect();
    assert_eq!(
        used, documented,
        "variables of cluster.conf vs nats-server@.service"
    );
}

/// The metrics the README documents (its table in "Running in production",
/// which a unit test keeps equal to what `waybill serve` exports).
fn documented_metrics() -> BTreeSet<String> {
    read("README.md")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("| `waybill_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("waybill_{name}"))
        .collect()
}

#[test]
fn alerting_rules_use_only_metrics_waybill_exports() {
    let rules: Value = serde_saphyr::from_str(&read("deploy/prometheus/waybill-rules.yaml"))
        .expect("waybill-rules.yaml parses");
    let known = documented_metrics();
    assert!(known.len() >= 10, "the README's metrics table: {known:?}");
    let rules = rules["groups"][0]["rules"].as_array().expect("rules");
    assert!(!rules.is_empty());
    for rule in rules {
        let name = rule["alert"].as_str().expect("alert name");
        let expr = rule["expr"].as_str().expect("expr");
        assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
        assert!(
            rule["annotations"]["summary"].is_string(),
            "{name}: summary"
        );
        let mut used = 0;
        for (at, _) in expr.match_indices("waybill_") {
            let metric: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| metric.strip_suffix(s))
                .unwrap_or(&metric);
            assert!(known.contains(base), "{name}: no metric {metric} in {expr}");
            used += 1;
        }
        assert!(used > 0, "{name} uses no Waybill metric: {expr}");
    }
}

/// The final stage's value of `instruction` in deploy/Dockerfile.
fn final_stage(dockerfile: &str, instruction: &str) -> Vec<String> {
    let lines: Vec<&str> = dockerfile.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[last_from..]
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_container_image_agrees_with_the_manifests_and_the_workspace() {
    let dockerfile = read("deploy/Dockerfile");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read("deploy/k8s/waybill.yaml")).expect("waybill.yaml parses");
    let pods: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| &d["spec"]["template"]["spec"])
        .collect();
    assert!(!pods.is_empty());
    let json = |text: &str| -> Vec<String> { serde_json::from_str(text).expect("a JSON array") };

    // The binary where the manifests run it, as the user they run it as.
    let entrypoint = json(&final_stage(&dockerfile, "ENTRYPOINT")[0]);
    let user = final_stage(&dockerfile, "USER")[0].clone();
    for pod in &pods {
        assert_eq!(pod["containers"][0]["command"][0], entrypoint[0].as_str());
        let uid = pod["securityContext"]["runAsUser"]
            .as_u64()
            .expect("runAsUser");
        assert_eq!(user, format!("{uid}:{uid}"));
    }
    // It serves on the ports the cluster config listens on, and with no
    // arguments as the binary takes them.
    let config = cluster_toml();
    let exposed: BTreeSet<u64> = final_stage(&dockerfile, "EXPOSE")[0]
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    for key in ["listen", "metrics_listen"] {
        let port = port_of(config[key].as_str().expect(key));
        assert!(exposed.contains(&port), "{key} port {port} is not exposed");
    }
    let cmd = json(&final_stage(&dockerfile, "CMD")[0]);
    assert_eq!(cmd[0], "serve");
    assert_flags_known(&cmd, "deploy/Dockerfile CMD");
    let data_dir = cmd
        .iter()
        .position(|a| a == "--data-dir")
        .map(|i| cmd[i + 1].clone())
        .expect("--data-dir");
    assert!(
        dockerfile.contains(&format!("--chown={user} /out{data_dir} {data_dir}")),
        "the data dir {data_dir} belongs to the image's user"
    );

    // The builder's Rust is at least the workspace's rust-version.
    let manifest: toml::Value = read("Cargo.toml").parse().expect("Cargo.toml");
    let needed = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("rust-version");
    let version = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().expect("a number"));
        (parts.next().expect("major"), parts.next().expect("minor"))
    };
    let builder = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .and_then(|l| l.split('-').next())
        .expect("a rust builder stage");
    assert!(
        version(builder) >= version(needed),
        "the builder's Rust {builder} is older than rust-version {needed}"
    );
    // The build context leaves out the build output and local tools.
    let ignored = read(".dockerignore");
    for dir in ["target/", ".tools/"] {
        assert!(
            ignored.lines().any(|l| l == dir),
            ".dockerignore lacks {dir}"
        );
    }
}
