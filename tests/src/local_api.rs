//! The local API started the way a user starts it, `make run`, on free ports
//! with an in-memory DynamoDB Local of its own; stopped (everything it
//! started) when the handle drops, also when a test fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chat_core::{App, Config, Tables};
use devtools::dynamodb_local::{client_for, free_port, quiet_app, repo_root};

pub struct LocalApi {
    child: Child,
    pub port: u16,
    /// Where its DynamoDB Local listens, for checking the tables directly.
    pub dynamodb_port: u16,
}

impl LocalApi {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// `make run` with more of its settings (`RELEASE`, `CONCURRENCY`, ...).
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let port = free_port();
        let dynamodb_port = free_port();
        let data_dir = std::env::temp_dir().join(format!("chat-api-e2e-{port}"));
        // setsid: the run gets a process group of its own, so the whole of
        // it can be signalled at once, as Ctrl-C signals a terminal's group.
        let mut child = user_command("setsid")
            .args(["make", "--no-print-directory", "run"])
            .current_dir(repo_root())
            .env("API_PORT", port.to_string())
            .env("DYNAMODB_PORT", dynamodb_port.to_string())
            .env("IN_MEMORY", "1")
            .env("RUN_OWNER_PID", std::process::id().to_string())
            .env("DATA_DIR", &data_dir)
            .env_remove("AWS_ENDPOINT_URL")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting make run");
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[make run] {line}");
                if line.contains("[run] ready:") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut api = LocalApi {
            child,
            port,
            dynamodb_port,
        };
        // The first run may compile the functions; later ones start in seconds.
        for _ in 0..900 {
            if ready_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
                return api;
            }
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!("make run exited before it was ready: {status}");
            }
        }
        panic!("make run was not ready within 15 minutes");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An [`App`] on the tables `make run` serves, to read them directly.
    pub fn tables(&self) -> App {
        let client = client_for(&format!("http://127.0.0.1:{}", self.dynamodb_port));
        quiet_app(Config::with_tables(Tables::with_prefix("")), client)
    }
}

impl Drop for LocalApi {
    /// Stops the run as Ctrl-C does (SIGINT to its process group) and waits
    /// until the whole group is gone: `make` at once, the script once it has
    /// stopped what it started. Where SIGINT is ignored (a shell's background
    /// job passes that on to its children), SIGTERM does the same.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |name: &str| {
            Command::new("kill")
                .args([name, "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        for (name, patience) in [("-INT", 100), ("-TERM", 300), ("-KILL", 50)] {
            signal(name);
            for _ in 0..patience {
                // Reaps make: a zombie would keep the group alive.
                let _ = self.child.try_wait();
                if !signal("-0") {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A command with the environment a user's shell has, not a test's.
///
/// Cargo gives a test the package's CARGO_* variables; some build scripts
/// rerun when those change, so a nested `cargo build` (in `make run`, or
/// run directly) would rebuild half the SDK.
pub fn user_command(program: &str) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let cargo_set = name.starts_with("CARGO_")
            && !name.starts_with("CARGO_HOME")
            && !name.starts_with("CARGO_TARGET_DIR");
        if cargo_set || name == "OUT_DIR" {
            command.env_remove(name.as_ref());
        }
    }
    command
}
