//! One `nats-server` process with JetStream, on free loopback ports and a temp store.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::probe::{accepts_connections, free_ports, get_ok, log_tail};

/// Environment variable naming the `nats-server` binary to use.
const BIN_ENV: &str = "NATS_SERVER_BIN";

/// How often readiness and exit are polled.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a server may take to become ready before the harness panics.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times `start` picks new ports when another process took one first.
const START_ATTEMPTS: usize = 3;

/// The `nats-server` binary the harness runs.
///
/// `$NATS_SERVER_BIN` if set; else `<workspace>/.tools/bin/nats-server` (installed by
/// `scripts/install-nats-server`) if it exists; else `nats-server` on `PATH`.
///
/// # Panics
///
/// When none of these exists.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|bin| !bin.is_empty()) {
        return PathBuf::from(bin);
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/nats-server");
    if installed.is_file() {
        return installed;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "no nats-server found: run scripts/install-nats-server, \
             or set {BIN_ENV} to a nats-server binary"
        )
    })
}

/// Options for the generated server configuration.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Fsync every JetStream write (`jetstream { sync_interval: always }`).
    pub sync_always: bool,
    /// JetStream's storage limit (`jetstream { max_file_store: ... }`,
    /// e.g. "1MB"): a server whose storage fills up.
    pub max_file_store: Option<String>,
    /// Text appended verbatim to the generated config file.
    pub extra_config: String,
    /// Another nats-server binary than [`nats_server_bin`] (e.g. an old release).
    pub binary: Option<PathBuf>,
}

/// Cluster settings of one node, for [`NatsCluster`](super::NatsCluster).
#[derive(Debug)]
pub(super) struct ClusterSpec {
    /// This node's route port.
    pub(super) port: u16,
    /// Route ports of every node of the cluster, this one included.
    pub(super) routes: Vec<u16>,
}

/// Everything needed to write one node's config file.
#[derive(Debug)]
pub(super) struct NodeSpec<'a> {
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) http_port: u16,
    pub(super) cluster: Option<ClusterSpec>,
    pub(super) options: &'a ServerOptions,
}

/// A running (or killed) `nats-server` with JetStream enabled.
///
/// Its config, log (`server.log`) and store live in a temp dir. Dropping it kills the
/// process with SIGKILL, waits for it, and removes the temp dir.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    name: String,
    port: u16,
    http_port: u16,
    clustered: bool,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    store_dir: PathBuf,
    // Held only to remove the temp dir on drop; being the last field, it is dropped
    // after `Drop::drop` has killed the process.
    _dir: TempDir,
}

impl NatsServer {
    /// Starts a single JetStream node with default options and waits until it is ready.
    pub fn start() -> NatsServer {
        NatsServer::start_with(ServerOptions::default())
    }

    /// Starts a single JetStream node and waits until it is ready.
    ///
    /// # Panics
    ///
    /// When the server exits or is not ready within 30 s; the message has its log tail.
    pub fn start_with(options: ServerOptions) -> NatsServer {
        for attempt in 1..=START_ATTEMPTS {
            let ports = free_ports(2);
            let spec = NodeSpec {
                name: "waybill-test".to_owned(),
                port: ports[0],
                http_port: ports[1],
                cluster: None,
                options: &options,
            };
            let mut server = NatsServer::launch(&spec);
            match server.try_wait_ready() {
                Ok(()) => return server,
                // Another process took a port between our probe and the server's bind.
                Err(_) if attempt < START_ATTEMPTS && server.lost_port_race() => continue,
                Err(why) => server.fail(&why),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Writes the config for `spec` into a new temp dir and spawns the server, without
    /// waiting for it to be ready.
    pub(super) fn launch(spec: &NodeSpec<'_>) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("waybill-nats-")
            .tempdir()
            .expect("creating a temp dir for nats-server");
        let store_dir = dir.path().join("store");
        let config_path = dir.path().join("nats-server.conf");
        std::fs::write(&config_path, render_config(spec, &store_dir))
            .expect("writing the nats-server config file");
        let mut server = NatsServer {
            child: None,
            name: spec.name.clone(),
            port: spec.port,
            http_port: spec.http_port,
            clustered: spec.cluster.is_some(),
            binary: spec.options.binary.clone().unwrap_or_else(nats_server_bin),
            config_path,
            log_path: dir.path().join("server.log"),
            store_dir,
            _dir: dir,
        };
        server.spawn();
        server
    }

    /// Client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Monitoring (HTTP) port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The `server_name` in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// JetStream store directory; kept across kill and restart, removed on drop.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's stdout and stderr, appended across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills the process with SIGKILL and waits for it; the store is kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error only means the process has already exited, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process gracefully: SIGTERM, then SIGKILL if it is still running
    /// after 10 s. The store is kept.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if matches!(term, Ok(status) if status.success()) {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(POLL_INTERVAL);
            }
        }
        // As in `kill`: an error only means the process has already exited.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is
    /// answered until [`NatsServer::resume`]; a busy or stalled server.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        let Some(child) = &self.child else {
            return;
        };
        let sent = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(sent, Ok(status) if status.success()),
            "kill {signal} nats-server: {sent:?}"
        );
    }

    /// Starts the server again with the same config, ports and store, and waits until
    /// it is ready. A running server is killed first.
    ///
    /// # Panics
    ///
    /// When the server exits or is not ready within 30 s; the message has its log tail.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    /// Spawns the process, appending its output to the log file.
    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the nats-server log file");
        let log_err: File = log.try_clone().expect("duplicating the log file handle");
        let bin = self.binary.clone();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {}: {err}; run scripts/install-nats-server or set {BIN_ENV}",
                    bin.display()
                )
            });
        self.child = Some(child);
    }

    /// Waits until ready, panicking with the log tail otherwise.
    pub(super) fn wait_ready(&mut self) {
        if let Err(why) = self.try_wait_ready() {
            self.fail(&why);
        }
    }

    /// Polls until the server is ready, it exits, or the timeout passes.
    fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(format!("nats-server exited with {status}"));
            }
            let probe = self.probe();
            if probe.is_ok() {
                return probe;
            }
            if Instant::now() >= deadline {
                let last = probe.err().unwrap_or_default();
                return Err(format!(
                    "not ready after {READY_TIMEOUT:?}; last probe: {last}"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// One readiness check.
    ///
    /// A single node is ready when JetStream is enabled and the client port accepts
    /// connections. A cluster node also needs the full `/healthz` (meta leader known,
    /// its streams current) and a meta leader in `/jsz`.
    fn probe(&self) -> Result<(), String> {
        if self.clustered {
            get_ok(self.http_port, "/healthz")?;
            let jsz = get_ok(self.http_port, "/jsz")?;
            let jsz: serde_json::Value =
                serde_json::from_str(&jsz).map_err(|err| format!("GET /jsz: {err}"))?;
            let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or_default();
            if leader.is_empty() {
                return Err("GET /jsz: no meta leader yet".to_owned());
            }
        } else {
            get_ok(self.http_port, "/healthz?js-enabled-only=true")?;
        }
        if !accepts_connections(self.port) {
            return Err(format!("client port {} not accepting yet", self.port));
        }
        Ok(())
    }

    /// The exit status if the process has exited; `None` while running or killed.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the server exited because one of its ports was already taken.
    fn lost_port_race(&mut self) -> bool {
        self.exit_status().is_some() && log_tail(&self.log_path).contains("address already in use")
    }

    /// Kills the server and panics with `why` and the log tail.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        panic!(
            "nats-server {} (client port {}, http port {}) failed: {why}\n\
             --- tail of {} ---\n{}",
            self.name,
            self.port,
            self.http_port,
            self.log_path.display(),
            log_tail(&self.log_path)
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config file text for one node.
fn render_config(spec: &NodeSpec<'_>, store_dir: &Path) -> String {
    let mut conf = format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{port}\n\
         http: 127.0.0.1:{http_port}\n\
         jetstream {{\n  store_dir: {store_dir:?}\n{sync}{limit}}}\n",
        name = spec.name,
        port = spec.port,
        http_port = spec.http_port,
        store_dir = store_dir.display().to_string(),
        sync = if spec.options.sync_always {
            "  sync_interval: always\n"
        } else {
            ""
        },
        limit = match &spec.options.max_file_store {
            Some(limit) => format!("  max_file_store: {limit}\n"),
            None => String::new(),
        },
    );
    if let Some(cluster) = &spec.cluster {
        let routes: String = cluster
            .routes
            .iter()
            .map(|port| format!("    nats-route://127.0.0.1:{port}\n"))
            .collect();
        conf.push_str(&format!(
            "cluster {{\n  name: waybill-test\n  listen: 127.0.0.1:{}\n  routes: [\n{routes}  ]\n}}\n",
            cluster.port
        ));
    }
    conf.push_str(&spec.options.extra_config);
    conf.push('\n');
    conf
}
