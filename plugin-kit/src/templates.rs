//! The project templates of `switchyardctl plugin new`: the files of `plugin-kit/templates/<lang>/`,
//! embedded at build time, with their tokens replaced.
//!
//! | Token | Becomes |
//! | --- | --- |
//! | `__PLUGIN_ID__` | the plugin id, `hello-world` |
//! | `__PLUGIN_NAME__` | its display name, `Hello world` |
//! | `__PLUGIN_MODULE__` | the id as an identifier, `hello_world` |
//! | `__PLUGIN_TYPE__` | the id as a type name, `HelloWorld` |
//! | `__SWITCHYARD_PATH__` | the Switchyard checkout the Rust template's path dependencies point at |
//!
//! Tokens are replaced in contents and in paths, and a `.tmpl` suffix is dropped (`go.mod.tmpl` is kept
//! under that name here so that Go tooling never takes the template for a module of this repository).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use switchyard_schemas::ids::check_plugin_id;
use thiserror::Error;

/// Every template file: (language, path inside the template, contents).
const FILES: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// A template's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// An HTTP service on Python's standard library and `standardwebhooks`.
    Python,
    /// An HTTP service on `node:http` and `standardwebhooks`.
    Node,
    /// An HTTP service on `net/http` and the Standard Webhooks Go library.
    Go,
    /// An in-process plugin on the runtime's `Plugin` trait.
    Rust,
}

impl Lang {
    /// Every language, in the order the docs list them.
    pub const ALL: [Lang; 4] = [Lang::Python, Lang::Node, Lang::Go, Lang::Rust];

    /// The name on the command line and of the template's folder.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Node => "node",
            Lang::Go => "go",
            Lang::Rust => "rust",
        }
    }

    /// Whether the plugin is an HTTP service (behind the bridge) rather than an in-process worker.
    pub fn is_http(self) -> bool {
        self != Lang::Rust
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = TemplateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Lang::ALL
            .into_iter()
            .find(|lang| lang.as_str() == text)
            .ok_or_else(|| TemplateError::Lang(text.to_owned()))
    }
}

/// Why a project could not be written.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// Not one of the four languages.
    #[error("{0:?} is not a template language (python, node, go, rust)")]
    Lang(String),
    /// Not a plugin id.
    #[error("{0:?} is not a plugin id (1-64 lowercase letters, digits and '-', starting with a letter)")]
    Id(String),
    /// A display name the templates cannot quote.
    #[error("{0:?}: a display name may not contain '\"', '\\' or control characters")]
    Name(String),
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty: choose another --dir or remove it")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What a new project is made of.
#[derive(Debug, Clone)]
pub struct Project {
    /// The plugin id.
    pub id: String,
    /// Its display name; empty: made from the id (`hello-world` -> `Hello world`).
    pub name: String,
    /// The language.
    pub lang: Lang,
    /// The Switchyard checkout (the Rust template's path dependencies).
    pub switchyard_path: PathBuf,
    /// Files written besides the template's, e.g. `.env` with the development signing secret.
    pub extra_files: Vec<(String, String)>,
}

impl Project {
    /// The project's files: relative path and contents, tokens replaced.
    pub fn render(&self) -> Result<Vec<(PathBuf, Vec<u8>)>, TemplateError> {
        check_plugin_id(&self.id).map_err(|_| TemplateError::Id(self.id.clone()))?;
        if self.name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(TemplateError::Name(self.name.clone()));
        }
        let name = if self.name.trim().is_empty() {
            display_name(&self.id)
        } else {
            self.name.clone()
        };
        let tokens = [
            ("__PLUGIN_ID__", self.id.clone()),
            ("__PLUGIN_NAME__", name),
            ("__PLUGIN_MODULE__", self.id.replace('-', "_")),
            ("__PLUGIN_TYPE__", type_name(&self.id)),
            ("__SWITCHYARD_PATH__", self.switchyard_path.display().to_string()),
        ];
        let replace = |text: &str| {
            tokens
                .iter()
                .fold(text.to_owned(), |text, (token, value)| text.replace(token, value))
        };
        let mut files: Vec<(PathBuf, Vec<u8>)> = FILES
            .iter()
            .filter(|(lang, _, _)| *lang == self.lang.as_str())
            .map(|(_, path, bytes)| {
                let path = replace(path.strip_suffix(".tmpl").unwrap_or(path));
                let bytes = match std::str::from_utf8(bytes) {
                    Ok(text) => replace(text).into_bytes(),
                    Err(_) => bytes.to_vec(),
                };
                (PathBuf::from(path), bytes)
            })
            .collect();
        files.extend(
            self.extra_files
                .iter()
                .map(|(path, text)| (PathBuf::from(path), text.clone().into_bytes())),
        );
        Ok(files)
    }

    /// Writes the project into `dir`, which must not exist or be empty; returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, TemplateError> {
        let files = self.render()?;
        let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
        if occupied {
            return Err(TemplateError::Exists(dir.to_owned()));
        }
        let mut written = Vec::with_capacity(files.len());
        for (relative, bytes) in files {
            let path = dir.join(&relative);
            let failed = |source| TemplateError::Write {
                path: path.clone(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            std::fs::write(&path, bytes).map_err(failed)?;
            written.push(relative);
        }
        Ok(written)
    }
}

/// `hello-world` -> `Hello world`.
fn display_name(id: &str) -> String {
    let spaced = id.replace('-', " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `hello-world` -> `HelloWorld`; a part that starts with a digit keeps it (`v2-sync` -> `V2Sync`).
fn type_name(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(lang: Lang) -> Project {
        Project {
            id: "hello-world".into(),
            name: String::new(),
            lang,
            switchyard_path: PathBuf::from("/src/switchyard"),
            extra_files: vec![(".env".into(), "SWITCHYARD_SIGNING_SECRET=whsec_x\n".into())],
        }
    }

    #[test]
    fn every_language_has_a_manifest_a_readme_a_dockerfile_and_ignores_its_env_file() {
        for lang in Lang::ALL {
            let files = project(lang).render().unwrap();
            let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
            for required in [
                "manifest.json",
                "README.md",
                "Dockerfile",
                ".gitignore",
                ".dockerignore",
                ".env",
            ] {
                assert!(
                    names.iter().any(|n| n == required),
                    "{lang}: {required} missing in {names:?}"
                );
            }
            for (path, bytes) in &files {
                let text = String::from_utf8_lossy(bytes);
                assert!(
                    !text.contains("__PLUGIN_"),
                    "{lang}: a token is left in {}",
                    path.display()
                );
                assert!(
                    !path.display().to_string().ends_with(".tmpl"),
                    "{}",
                    path.display()
                );
            }
            let ignore = files.iter().find(|(p, _)| p == Path::new(".gitignore")).unwrap();
            assert!(
                String::from_utf8_lossy(&ignore.1)
                    .lines()
                    .any(|l| l.trim() == ".env"),
                "{lang}"
            );
            let manifest = files
                .iter()
                .find(|(p, _)| p == Path::new("manifest.json"))
                .unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(&manifest.1).unwrap();
            assert_eq!(manifest["id"], "hello-world", "{lang}");
            assert_eq!(manifest["name"], "Hello world", "{lang}");
            let range = manifest["contract"].as_str().unwrap();
            switchyard_schemas::publisher::check_contract(range).unwrap();
        }
    }

    #[test]
    fn names_are_made_from_the_id_and_bad_ids_are_refused() {
        assert_eq!(display_name("hello-world"), "Hello world");
        assert_eq!(type_name("hello-world"), "HelloWorld");
        assert_eq!(type_name("v2-sync"), "V2Sync");
        let mut bad = project(Lang::Python);
        bad.id = "Hello".into();
        assert!(matches!(bad.render(), Err(TemplateError::Id(_))));
        let mut quoted = project(Lang::Node);
        quoted.name = "Say \"hi\"".into();
        assert!(matches!(quoted.render(), Err(TemplateError::Name(_))));
        assert!(matches!("cobol".parse::<Lang>(), Err(TemplateError::Lang(_))));
    }

    #[test]
    fn a_project_is_not_written_over_a_non_empty_directory() {
        let dir = std::env::temp_dir().join(format!("switchyard-kit-{}", uuid::Uuid::new_v4()));
        let written = project(Lang::Go).write(&dir).unwrap();
        assert!(written.iter().any(|p| p == Path::new("go.mod")));
        assert!(dir.join("go.sum").exists());
        assert!(matches!(
            project(Lang::Go).write(&dir),
            Err(TemplateError::Exists(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
