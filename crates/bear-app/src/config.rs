//! Loading the configuration: the TOML file, then `BEAR_*` overrides, then XDG directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use bear_core::{Config, Dirs};

use crate::error::{Error, Result};

/// The configuration in force for one command, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged configuration.
    pub config: Config,
    /// Directories after `[paths]` and `BEAR_*` overrides.
    pub dirs: Dirs,
    /// The file that was read, if any.
    pub source: Option<PathBuf>,
}

/// Loads the configuration. An explicitly named file must exist; the default file may not.
pub fn load(
    explicit: Option<&Path>,
    lookup: impl Fn(&str) -> Option<OsString> + Copy,
) -> Result<LoadedConfig> {
    let base = Dirs::from_env(lookup)?;
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (base.config_file.clone(), false),
    };
    let (mut config, source) = match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| Error::ConfigRead {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file is not UTF-8 text",
                ),
            })?;
            let config = Config::from_toml_str(&text, &path)?;
            config.validate(&path.display().to_string())?;
            (config, Some(path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            (Config::default(), None)
        }
        Err(source) => return Err(Error::ConfigRead { path, source }),
    };
    config.apply_env(lookup)?;
    let dirs = config.dirs(&base);
    Ok(LoadedConfig {
        config,
        dirs,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_home(home: &'static str) -> impl Fn(&str) -> Option<OsString> + Copy {
        move |k| (k == "HOME").then(|| OsString::from(home))
    }

    #[test]
    fn missing_default_file_means_defaults() {
        let loaded = load(None, env_with_home("/nonexistent-home")).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.source.is_none());
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let err = load(Some(Path::new("/no/such/bear.toml")), env_with_home("/h")).unwrap_err();
        assert!(err.to_string().contains("/no/such/bear.toml"), "{err}");
        assert_eq!(err.kind(), bear_core::ErrorKind::Config);
    }

    #[test]
    fn corrupt_file_is_an_error_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bear.toml");
        std::fs::write(&path, "[hw\nthreads = 2\n").unwrap();
        let err = load(Some(&path), env_with_home("/h")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 1"), "{msg}");
        assert!(msg.contains("bear.toml"), "{msg}");
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let err = load(Some(&path), env_with_home("/h")).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn invalid_value_is_reported_with_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bear.toml");
        std::fs::write(&path, "[models]\ncontext_length = 3\n").unwrap();
        let err = load(Some(&path), env_with_home("/h")).unwrap_err();
        assert!(err.to_string().contains("models.context_length"), "{err}");
    }
}
