//! The plugin manifest (`plugin.toml`): identity, tools with their JSON schemas, requested
//! capabilities, dependencies, the wasm file's sha256 and an optional Ed25519 signature.
//!
//! ```toml
//! name = "citations"
//! version = "0.1.0"
//! description = "Extracts ECLI and statute references."
//! wasm = "citations.wasm"
//! sha256 = "<64 hex>"
//! signature = "<128 hex>"          # optional; see `Manifest::signed_message`
//!
//! [capabilities]
//! memory_mb = 64
//! time_ms = 2000
//! fuel = 1_000_000_000             # optional instruction budget
//! max_output_kb = 1024
//! env = ["LANG"]
//! dirs = [{ host = "data", guest = "/data", mode = "ro" }]
//!
//! [dependencies]
//! textutils = ">=0.2, <0.4"
//!
//! [[tools]]
//! name = "extract"
//! description = "Find citations in a text."
//! input_schema = { type = "object", required = ["text"] }
//! output_schema = { type = "object" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest memory limit a manifest may request.
pub const MAX_MEMORY_MB: u32 = 4096;
/// Largest time limit a manifest may request.
pub const MAX_TIME_MS: u64 = 600_000;

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirMode {
    /// Read only.
    Ro,
    /// Read and write.
    Rw,
}

/// A directory the plugin asks to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The host directory, relative to the plugin's directory or absolute.
    pub host: PathBuf,
    /// Where the plugin sees it (an absolute guest path such as `/data`).
    pub guest: String,
    /// Access.
    pub mode: DirMode,
}

/// What a plugin asks for. Everything else is denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Directories.
    pub dirs: Vec<DirGrant>,
    /// Environment variables passed through from the host, by name.
    pub env: Vec<String>,
    /// Linear memory limit.
    pub memory_mb: u32,
    /// Wall-clock limit per call.
    pub time_ms: u64,
    /// Optional instruction budget per call (needs a host with fuel enabled).
    pub fuel: Option<u64>,
    /// Largest output per call.
    pub max_output_kb: u32,
    /// Host functions the module may import from the `bear` module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<HostFn>,
}

/// A host function a plugin can ask for. Only these exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostFn {
    /// `bear.log(level, ptr, len) -> i32`: a log line, rate-limited per call; the lines are
    /// returned to the caller with the result, never written to BEAR's own logs.
    Log,
    /// `bear.scrub(ptr, len, out_ptr, out_cap) -> i32`: the host's PII scrubber on UTF-8 text.
    Scrub,
}

impl HostFn {
    /// The import name in the `bear` module.
    pub fn import_name(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Scrub => "scrub",
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            env: Vec::new(),
            memory_mb: 64,
            time_ms: 2000,
            fuel: None,
            max_output_kb: 1024,
            host: Vec::new(),
        }
    }
}

/// One tool the plugin exports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDecl {
    /// Name, unique within the plugin.
    pub name: String,
    /// One sentence.
    pub description: String,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One paragraph.
    pub description: String,
    /// The wasm file, relative to the manifest.
    pub wasm: PathBuf,
    /// Lower-case hex sha256 of the wasm file.
    pub sha256: String,
    /// Hex Ed25519 signature of [`Manifest::signed_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Requested capabilities.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Other plugins this one needs, by name, as semver requirements.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Exported tools.
    pub tools: Vec<ToolDecl>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Manifest {
    /// Parses and validates a manifest's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: path.into(),
            reason,
        };
        let m: Manifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !valid_name(&m.name) {
            return Err(bad(
                "`name` must be 1-64 lower-case letters, digits, `-` or `_`".into(),
            ));
        }
        semver::Version::parse(&m.version)
            .map_err(|e| bad(format!("`version` is not a semantic version: {e}")))?;
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("`sha256` must be 64 hex digits".into()));
        }
        if m.wasm.is_absolute()
            || m.wasm
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad(
                "`wasm` must be a path inside the plugin's directory".into()
            ));
        }
        if m.tools.is_empty() {
            return Err(bad("a plugin must export at least one tool".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &m.tools {
            if !valid_name(&t.name) || !names.insert(&t.name) {
                return Err(bad(format!(
                    "tool names must be unique lower-case identifiers (`{}`)",
                    t.name
                )));
            }
            for (which, schema) in [("input", &t.input_schema), ("output", &t.output_schema)] {
                if !schema.is_object() {
                    return Err(bad(format!(
                        "tool `{}`: `{which}_schema` must be a JSON Schema object",
                        t.name
                    )));
                }
            }
        }
        let c = &m.capabilities;
        if c.memory_mb == 0 || c.memory_mb > MAX_MEMORY_MB {
            return Err(bad(format!("`memory_mb` must be 1..={MAX_MEMORY_MB}")));
        }
        if c.time_ms == 0 || c.time_ms > MAX_TIME_MS {
            return Err(bad(format!("`time_ms` must be 1..={MAX_TIME_MS}")));
        }
        if c.max_output_kb == 0 || c.max_output_kb > 1 << 20 {
            return Err(bad("`max_output_kb` must be 1..=1048576".into()));
        }
        if c.fuel == Some(0) {
            return Err(bad("`fuel` must be positive".into()));
        }
        for v in &c.env {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(format!("`env` entry `{v}` is not a variable name")));
            }
        }
        for d in &c.dirs {
            if !d.guest.starts_with('/') || d.guest.split('/').any(|s| s == "..") {
                return Err(bad(format!(
                    "guest path `{}` must be absolute without `..`",
                    d.guest
                )));
            }
        }
        for (dep, req) in &m.dependencies {
            if !valid_name(dep) {
                return Err(bad(format!("dependency `{dep}` is not a plugin name")));
            }
            semver::VersionReq::parse(req).map_err(|e| {
                bad(format!(
                    "dependency `{dep}`: `{req}` is not a version requirement: {e}"
                ))
            })?;
        }
        Ok(m)
    }

    /// Reads and validates `plugin.toml` at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The bytes an Ed25519 signature covers: a domain tag and the SHA-256 of the manifest's
    /// canonical JSON without its signature, so every field (capabilities included) is signed,
    /// and through `sha256` the wasm file too.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let json = serde_json::to_vec(&unsigned).unwrap_or_default();
        format!(
            "bear-plugin-manifest-v1\n{}",
            bear_security::sign::sha256_hex(&json)
        )
        .into_bytes()
    }
}
