//! `flexc serve` on the real SmolLM2-Instruct as clients meet it: the Python
//! `openai` package (installed from PyPI into a venv under the target dir),
//! `curl` for the raw wire format and errors, a bounded load test (4
//! clients, 200 requests, every answer checked against its prompt run
//! alone, memory flat), and graceful shutdown on SIGTERM with a stream in
//! flight.

use flexc_testsuite::cached;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

const SMOLLM: &str = "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf";
const OPENAI: &str = "openai==3.63.0";

/// A running server, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(model: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flexc"))
        .arg("serve")
        .arg(model)
        .args(["--port", "0", "--threads", "2", "--ctx", "1024"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flexc serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines.next().expect("flexc serve printed its address before exiting").expect("read stderr");
        eprintln!("server: {line}");
        if let Some(u) = line.strip_prefix("flexc serve: listening on ") {
            break u.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || lines.for_each(|l| eprintln!("server: {}", l.unwrap_or_default())));
    Server { child, url }
}

/// The venv's python with `openai` installed (created once per target dir).
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
        let py = venv.join("bin/python");
        let has = |py: &Path| Command::new(py).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
        if !has(&py) {
            let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 runs").success();
            assert!(ok, "python3 -m venv {} failed", venv.display());
            let ok = Command::new(&py).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", OPENAI]).status().expect("pip runs").success();
            assert!(ok, "pip install {OPENAI} failed");
        }
        py
    })
    .clone()
}

fn client_script(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/openai_client.py");
    let status = Command::new(python()).arg(script).args(args).status().expect("python runs");
    assert!(status.success(), "openai client checks failed: {args:?}");
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "300", "-w", "\n%{http_code}"]).args(args).output().expect("curl is installed (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn openai_client_and_curl() {
    let Some(model) = cached(SMOLLM) else { return };
    let s = start(&model, &["--alias", "smollm2"]);
    client_script(&["clients", &s.url]);

    let (body, code) = curl(&[&format!("{}/health", s.url)]);
    assert_eq!((body.as_str(), code.as_str()), (r#"{"status":"ok"}"#, "200"));
    let chat = format!("{}/v1/chat/completions", s.url);
    let hdr = "Content-Type: application/json";
    let (body, code) = curl(&["-H", hdr, "-d", r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}"#, &chat]);
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "smollm2");
    assert_eq!(v["usage"]["completion_tokens"], 4, "{body}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // Streaming: data lines of chunks, then [DONE].
    let (body, code) = curl(&["-N", "-H", hdr, "-d", r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"stream":true}"#, &chat]);
    assert_eq!(code, "200");
    let data: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, v["choices"][0]["message"]["content"].as_str().unwrap());
    // Errors: OpenAI-shaped bodies and statuses.
    for (req, status, what) in [
        ("{not json", "400", "invalid request body"),
        (r#"{"messages":[]}"#, "400", "at least one message"),
        (r#"{"messages":[{"role":"user","content":"Hi"}],"top_p":2}"#, "400", "top_p must be"),
        (r#"{"messages":[{"role":"user","content":"Hi"}],"stop":["a","b","c","d","e"]}"#, "400", "at most 4"),
        (r#"{"messages":[{"role":"user","content":"Hi"}],"temperature":"hot"}"#, "400", "invalid request body"),
    ] {
        let (body, code) = curl(&["-H", hdr, "-d", req, &chat]);
        assert_eq!(code, status, "{req}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("error bodies are JSON");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains(what), "{req}: {body}");
    }
    let long = format!(r#"{{"prompt":"{}"}}"#, "word ".repeat(1100));
    let (body, code) = curl(&["-H", hdr, "-d", &long, &format!("{}/v1/completions", s.url)]);
    assert_eq!(code, "400");
    assert!(body.contains("context_length_exceeded"), "{body}");
    let (body, code) = curl(&[&format!("{}/v1/nothing", s.url)]);
    assert_eq!(code, "404", "{body}");
}

#[test]
fn bounded_load_matches_lone_runs() {
    let Some(model) = cached(SMOLLM) else { return };
    let s = start(&model, &["--alias", "smollm2"]);
    let pid = s.child.id().to_string();
    client_script(&["load", &s.url, &pid, "4", "200", "900"]);
}

#[test]
fn sigterm_finishes_the_stream_in_flight() {
    let Some(model) = cached(SMOLLM) else { return };
    let mut s = start(&model, &[]);
    let chat = format!("{}/v1/chat/completions", s.url);
    let streaming = std::thread::spawn(move || {
        curl(&["-N", "-H", "Content-Type: application/json", "-d", r#"{"messages":[{"role":"user","content":"Count to twenty."}],"max_tokens":40,"temperature":0,"stream":true}"#, &chat])
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ok = Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().expect("kill runs").success();
    assert!(ok);
    let (body, code) = streaming.join().unwrap();
    assert_eq!(code, "200");
    assert!(body.trim_end().ends_with("data: [DONE]"), "the stream in flight completes: {body}");
    let status = s.child.wait().expect("the server exits");
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}
