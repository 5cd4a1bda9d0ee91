//! The environment llama.cpp's OpenMP runtime must start with.
//!
//! llama.cpp (built with OpenMP: llama-cpp-2's `openmp` feature) decodes on a team of threads
//! that meet at a barrier after each operation of the graph. A thread waiting there spins
//! 300,000 times (libgomp's default, milliseconds on current CPUs) before it sleeps. When
//! another process wants a core, the spinning threads keep the one they wait for from running:
//! on this 2-core machine, with one busy process beside bear-server, 300 tokens of
//! SmolLM2-135M took 32 s (the request waited for the other process to end). With
//! `GOMP_SPINCOUNT=3000` they took 3.9 to 5.3 s, and 2.0 s on an idle machine as before.
//!
//! libgomp reads its variables once, when it is loaded, before `main`; so a binary that
//! generates text calls [`reexec_with_openmp_env`] first thing and runs again with them set.
//! A variable the user set is kept as it is.

use std::ffi::OsString;

/// The OpenMP variables BEAR starts llama.cpp with, unless the user set them.
pub const OPENMP_ENV: [(&str, &str); 1] = [("GOMP_SPINCOUNT", "3000")];

/// The variables of [`OPENMP_ENV`] missing from an environment read through `get`.
fn missing(get: impl Fn(&str) -> Option<OsString>) -> Vec<(&'static str, &'static str)> {
    OPENMP_ENV
        .into_iter()
        .filter(|(k, _)| get(k).is_none())
        .collect()
}

/// Runs this program again with [`OPENMP_ENV`] set, same arguments and process id, when a
/// variable is missing; returns when none is (or on a platform without `exec`). Call it first
/// thing in `main`, before any thread starts. An error means the program could not be run
/// again: text generation still works, it only slows badly while other programs use the CPU.
pub fn reexec_with_openmp_env() -> crate::Result<()> {
    let missing = missing(|k| std::env::var_os(k));
    if missing.is_empty() {
        return Ok(());
    }
    reexec(&missing).map_err(crate::Error::Restart)
}

#[cfg(unix)]
fn reexec(vars: &[(&str, &str)]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args).envs(vars.iter().copied());
    Err(cmd.exec())
}

#[cfg(not(unix))]
fn reexec(_: &[(&str, &str)]) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_variables_the_user_did_not_set_are_added() {
        assert_eq!(missing(|_| None), vec![("GOMP_SPINCOUNT", "3000")]);
        assert!(missing(|_| Some("300000".into())).is_empty());
    }
}
