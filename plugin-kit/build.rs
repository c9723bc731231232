//! Embeds `templates/<lang>/**` into the crate: a generated table of (language, relative path, bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Build outputs and dependency folders that a template directory may hold after someone tried it in place.
const SKIPPED: &[&str] = &["node_modules", "target", ".venv", "__pycache__"];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("templates");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for path in files {
        let relative = path.strip_prefix(&root).unwrap();
        let mut parts = relative.components();
        let lang = parts.next().unwrap().as_os_str().to_str().unwrap().to_owned();
        let inner = parts.as_path().to_str().unwrap().replace('\\', "/");
        writeln!(
            table,
            "    ({lang:?}, {inner:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("templates.rs");
    std::fs::write(out, table).unwrap();
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap();
        if SKIPPED.contains(&name) {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.parent() != Some(root) {
            files.push(path);
        }
    }
}
