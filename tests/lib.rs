//! Support for the end-to-end tests and benchmarks in this folder: they
//! run the real `waymark` binary, built once per process in the profile
//! they were built in, start it as a daemon on a free port, and talk to it
//! over HTTP/1.1 with a small keep-alive client. [`browser`] drives a
//! headless Chromium for what is seen in a browser.

pub mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `waymark` binary of this build, built if needed: a release build
/// for benchmarks (which run from `target/release`), else a debug one.
pub fn waymark() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps/..");
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut args = vec![
            "build",
            "--quiet",
            "-p",
            "waymark-engine",
            "--bin",
            "waymark",
        ];
        if release {
            args.push("--release");
        }
        let status = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building waymark failed");
        let binary = dir.join(format!("waymark{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.exists(), "no binary at {}", binary.display());
        binary
    })
}

/// Runs `waymark ARGS…` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(waymark())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("waymark runs")
}

/// A fresh directory under the target dir, removed and recreated.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target").join("e2e").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A scratch dir for a daemon: `scripts/FILE` for each (file, text) of
/// `scripts`, and `waymark.toml` with the data dir and scripts folder
/// beside it, then `config`.
pub fn daemon_dir(name: &str, scripts: &[(&str, &str)], config: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).expect("scripts dir");
    for (file, text) in scripts {
        std::fs::write(dir.join("scripts").join(file), text).expect("a script");
    }
    std::fs::write(
        dir.join("waymark.toml"),
        format!("data_dir = \"./data\"\nscripts = \"./scripts\"\n\n{config}"),
    )
    .expect("the config");
    dir
}

/// Sends the daemon SIGTERM and waits for it to exit; whether it exited 0.
pub fn terminate(daemon: &mut std::process::Child) -> bool {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    daemon.wait().expect("the daemon is ours").success()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `waymark run --config waymark.toml` in `dir` on `port`, its
/// stderr appended to `log`, and waits until it accepts connections.
pub fn start_daemon(dir: &Path, port: u16, log: &Path) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the daemon's log file");
    let mut command = Command::new(waymark());
    command
        .args([
            "run",
            "--config",
            "waymark.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    // Every WAYMARK_… variable is a config layer to the daemon (a bench's
    // WAYMARK_BENCH_SECONDS would be an unknown key): the config file rules.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WAYMARK_") {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().expect("waymark starts");
    wait_for("the daemon to listen", Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the daemon exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

/// Polls `condition` every 20 ms until it holds; panics after `deadline`.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_with_headers(port, method, path, body);
    (status, body)
}

/// [`http`], also returning the answer's headers (names in lower case).
pub fn http_with_headers(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = Client::new(port)
        .request_with_headers(method, path, &[], body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// An answer's status, headers (names in lower case) and body.
pub type FullAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// How far a failed request got: whether the daemon may have taken it.
#[derive(Debug)]
pub enum RequestError {
    /// No connection: the request was never sent.
    Connect(std::io::Error),
    /// Sent (perhaps in part), but no whole answer came back.
    Answer(std::io::Error),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Connect(e) => write!(f, "cannot connect: {e}"),
            RequestError::Answer(e) => write!(f, "no answer: {e}"),
        }
    }
}

/// A minimal HTTP/1.1 client on one keep-alive connection to loopback,
/// reconnecting after an error. Enough for the daemon's JSON answers,
/// which always carry a `Content-Length`.
pub struct Client {
    port: u16,
    connection: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            connection: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Sends one request and reads its answer: (status, body).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), RequestError> {
        self.request_with_headers(method, path, headers, body)
            .map(|(status, _, body)| (status, body))
    }

    /// [`Client::request`], also returning the answer's headers (names in
    /// lower case).
    pub fn request_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<FullAnswer, RequestError> {
        if self.connection.is_none() {
            let stream =
                TcpStream::connect(("127.0.0.1", self.port)).map_err(RequestError::Connect)?;
            stream.set_nodelay(true).map_err(RequestError::Connect)?;
            stream
                .set_read_timeout(Some(self.timeout))
                .map_err(RequestError::Connect)?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().expect("connected above");
        let result = exchange(connection, method, path, headers, body);
        if result.is_err() {
            self.connection = None;
        }
        result.map_err(RequestError::Answer)
    }
}

fn exchange(
    connection: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<FullAnswer> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = connection.get_mut();
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let broken =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    if connection.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken("a status line"))?;
    let mut length = None;
    let mut answer_headers = Vec::new();
    loop {
        line.clear();
        if connection.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
            answer_headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = length.ok_or_else(|| broken("a Content-Length"))?;
    let mut body = vec![0; length];
    connection.read_exact(&mut body)?;
    Ok((status, answer_headers, body))
}

/// A loopback HTTP server standing in for a provider: answers every
/// request with the status in `status`, counting requests.
pub fn provider(
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use std::io::{BufRead, BufReader, Read};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    requests.fetch_add(1, Ordering::SeqCst);
                    let code = status.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                    );
                    let _ = reader.get_mut().write_all(answer.as_bytes());
                    break;
                }
            }
        }
    });
    port
}

/// Serves a loopback stand-in of a provider on a thread of its own:
/// `serve` gets a listener on a free port (axum's `serve(listener, …)`,
/// say) and runs on a current-thread tokio runtime. Its base URL.
pub fn serve_on_loopback<F, Fut>(serve: F) -> String
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            serve(listener).await;
        });
    });
    format!("http://{addr}")
}
