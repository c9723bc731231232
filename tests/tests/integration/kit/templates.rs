//! Each template: generated, built, its own tests passed, its first events delivered end to end through
//! the dev loop, and (HTTP templates) every conformance check passed, batches included. The Python
//! project also goes through a signed release: its manifest signed with a new publisher key and the dev
//! registry requiring signatures, so the signature is checked on the manifest as the bridge registers it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::binaries::free_address;
use switchyard_tests::registries::ctl_binary;

/// One language at a time: they share the dev broker's port.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn kafka_port() -> String {
    std::env::var("SWITCHYARD_TEST_KIT_KAFKA_PORT").unwrap_or_else(|_| "19492".into())
}

/// Runs `command` in `dir` and fails the test with its output unless it succeeds.
fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "kit: {program} {} took {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    output
}

fn ctl(dir: &Path, args: &[&str]) -> Output {
    run(dir, ctl_binary().to_str().unwrap(), args, &[])
}

/// A fresh project of `lang` in a temporary folder; returns (its folder, the folder to clean up).
fn generate(lang: &str) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("switchyard-kit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&root).unwrap();
    let id = format!("kit-{lang}");
    ctl(&root, &["plugin", "new", &id, "--lang", lang]);
    (root.join(&id), root)
}

/// `switchyardctl dev -- <command>` until four calls were answered; returns its stdout.
fn dev(dir: &Path, plugin_url: Option<&str>, extra: &[&str], command: &[&str]) -> String {
    let logs = dir.join("dev-logs");
    let (registry, router, worker) = (
        free_address().to_string(),
        free_address().to_string(),
        free_address().to_string(),
    );
    let mut args = vec![
        "dev",
        "--exit-after",
        "4",
        "--startup-timeout",
        "5m",
        "--kafka-port",
        "",
        "--registry-listen",
        &registry,
        "--router-admin",
        &router,
        "--worker-admin",
        &worker,
        "--logs",
        logs.to_str().unwrap(),
    ];
    let port = kafka_port();
    args[6] = &port;
    if let Some(url) = plugin_url {
        args.extend(["--plugin-url", url]);
    }
    args.extend(extra);
    args.push("--");
    args.extend(command);
    let output = ctl(dir, &args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let submitted = stdout
        .lines()
        .find(|line| line.contains("response.submitted"))
        .unwrap_or_else(|| panic!("no response.submitted call in:\n{stdout}"));
    assert!(
        submitted.contains("-> done") && submitted.ends_with("1 result(s)"),
        "{submitted}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" -> done in ")).count(),
        4,
        "{stdout}"
    );
    stdout
}

/// The project's development signing secret (`.env`).
fn secret(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".env"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("SWITCHYARD_SIGNING_SECRET="))
        .expect("the secret in .env")
        .to_owned()
}

/// Starts the service on a free port; killed when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, command: &[&str]) -> (Service, String) {
    let address = free_address();
    let child = Command::new(command[0])
        .args(&command[1..])
        .env("PORT", address.port().to_string())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "{command:?} did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Service(child), url)
}

/// `plugin check --json` against the service, with batches turned on in its manifest first: every
/// check passes, none is skipped.
fn conformance(dir: &Path, command: &[&str]) {
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["batch"] = serde_json::json!({"max_events": 20, "max_wait_ms": 50});
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let (_service, url) = serve(dir, command);
    let output = ctl(
        dir,
        &[
            "--json",
            "plugin",
            "check",
            "--url",
            &url,
            "--secret",
            &secret(dir),
        ],
    );
    let report: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let not_passed: Vec<&Value> = report.iter().filter(|c| c["result"] != "pass").collect();
    assert!(
        not_passed.is_empty(),
        "{}",
        serde_json::to_string_pretty(&not_passed).unwrap()
    );
    assert!(
        report
            .iter()
            .any(|c| c["check"] == "a batch of two events is answered")
    );
}

#[test]
fn python_template_signed_release() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, root) = generate("python");
    run(&dir, "python3", &["-m", "venv", ".venv"], &[]);
    run(
        &dir,
        ".venv/bin/pip",
        &["install", "-q", "-r", "requirements.txt"],
        &[],
    );
    run(&dir, ".venv/bin/python", &["-m", "unittest"], &[]);
    // A signed release: a publisher key, the signed manifest, a registry that requires signatures.
    let keygen = [
        "plugin",
        "keygen",
        "--key-id",
        "kit-2026",
        "--out",
        "publisher.key",
        "--plugins",
        "kit-*",
    ];
    let trust = String::from_utf8(ctl(&dir, &keygen).stdout).unwrap();
    assert!(
        trust.starts_with("kit-2026 ") && trust.trim_end().ends_with(" kit-*"),
        "{trust}"
    );
    ctl(
        &dir,
        &["plugin", "sign", "manifest.json", "--key", "publisher.key"],
    );
    let url = format!("http://{}", free_address());
    dev(
        &dir,
        Some(&url),
        &["--require-signed", "--publisher", trust.trim()],
        &[".venv/bin/python", "app.py"],
    );
    conformance(&dir, &[".venv/bin/python", "app.py"]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn node_template() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, root) = generate("node");
    run(&dir, "npm", &["install", "--no-audit", "--no-fund"], &[]);
    run(&dir, "npm", &["test"], &[]);
    dev(
        &dir,
        Some(&format!("http://{}", free_address())),
        &[],
        &["node", "server.js"],
    );
    conformance(&dir, &["node", "server.js"]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn go_template() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, root) = generate("go");
    run(&dir, "go", &["build"], &[]);
    run(&dir, "go", &["test", "./..."], &[]);
    dev(
        &dir,
        Some(&format!("http://{}", free_address())),
        &[],
        &["./kit-go"],
    );
    conformance(&dir, &["./kit-go"]);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn rust_template() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, root) = generate("rust");
    let target = ctl_binary()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("kit-template");
    let target = target.to_str().unwrap();
    let env = [("CARGO_TARGET_DIR", target)];
    run(&dir, "cargo", &["build", "--offline"], &env);
    run(&dir, "cargo", &["test", "--offline"], &env);
    // In process: no --plugin-url, the folder's Cargo.toml says so.
    dev(
        &dir,
        None,
        &[],
        &[
            "env",
            &format!("CARGO_TARGET_DIR={target}"),
            "cargo",
            "run",
            "--offline",
        ],
    );
    std::fs::remove_dir_all(root).unwrap();
}
