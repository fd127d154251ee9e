//! The release binary as a child process on a free 127.0.0.1 port: started, waited on
//! until health says SERVING, measured through /proc, and stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{check_once, proc_cpu_ticks, proc_status_kb};

/// The binary under test, built by Cargo in the bench's profile (release).
pub const BIN: &str = env!("CARGO_BIN_EXE_participants-facade");
const STARTUP_POLL: Duration = Duration::from_millis(2);
/// How long [`ServerProcess::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A running server. Dropping it stops the child (SIGTERM, then SIGKILL if it lingers),
/// also when the bench panics. The data directory is the caller's: it outlives the
/// process, so the next one can open the same store.
pub struct ServerProcess {
    child: Option<Child>,
    pub pid: u32,
    pub addr: String,
}

impl ServerProcess {
    /// Spawns the binary on a free loopback port with `data_dir` as its `--data-dir`, the
    /// flags of `BENCH_SERVER_ARGS` and `BENCH_SERVER_LOG` as its RUST_LOG, and waits
    /// until health says SERVING (at most `limit`; it panics after that). Returns the
    /// server and the time from spawn to that first SERVING answer.
    pub async fn start(data_dir: &Path, limit: Duration) -> (ServerProcess, Duration) {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            probe.local_addr().expect("local addr").port()
        };
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command
            .arg("--listen")
            .arg(&addr)
            .arg("--data-dir")
            .arg(data_dir)
            .args(server_args())
            .env("RUST_LOG", server_log())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Flags win over these anyway, but keep the caller's environment from changing
        // the server under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PARTICIPANTS_") {
                command.env_remove(key);
            }
        }

        let spawned = Instant::now();
        let child = command.spawn().expect("spawn participants-facade");
        let pid = child.id();
        let mut server = ServerProcess {
            child: Some(child),
            pid,
            addr,
        };
        let url = server.url();
        loop {
            if let Some(status) = server.child_mut().try_wait().expect("try_wait") {
                panic!("participants-facade exited during start-up: {status}");
            }
            if spawned.elapsed() > limit {
                panic!("participants-facade was not SERVING within {limit:?}");
            }
            // A fresh connection attempt every time: nothing is reused from a failed try.
            if check_once(&url).await {
                break;
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
        let startup = spawned.elapsed();
        (server, startup)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("server already stopped")
    }

    /// A `/proc/<pid>/status` field in kB, such as `VmRSS` or `VmHWM`.
    pub fn status_kb(&self, field: &str) -> u64 {
        proc_status_kb(self.pid, field)
    }

    /// The child's CPU time so far, in USER_HZ ticks.
    pub fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(&format!("/proc/{}/stat", self.pid))
    }

    /// SIGTERM, then wait (at most [`STOP_LIMIT`]); SIGKILL if it does not exit in time.
    /// Returns the exit status and the time from SIGTERM to exit; `None` once stopped.
    pub fn stop(&mut self) -> Option<(ExitStatus, Duration)> {
        self.stop_within(STOP_LIMIT)
    }

    /// [`ServerProcess::stop`] with its own bound before SIGKILL.
    pub fn stop_within(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let mut child = self.child.take()?;
        let asked = Instant::now();
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some((status, asked.elapsed())),
                Ok(None) if asked.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    eprintln!("participants-facade ignored SIGTERM; killing it");
                    let _ = child.kill();
                    let status = child.wait().ok()?;
                    return Some((status, asked.elapsed()));
                }
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's RUST_LOG: `warn`, unless `BENCH_SERVER_LOG` asks for more (diagnostics
/// only, e.g. `warn,participants_facade::backend::local=debug` to see group commit sizes).
pub fn server_log() -> String {
    std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned())
}

/// Extra server flags from `BENCH_SERVER_ARGS`, e.g. `--cache-entries 0`.
pub fn server_args() -> Vec<String> {
    std::env::var("BENCH_SERVER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
