//! `bear ui`: the web app, signed in, for the user at this machine. Asks the running
//! bear-server for a one-time sign-in link through the control socket; when none runs, starts
//! one in the background (its log in `<data>/server.log`) and asks again once it answers.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bear_app::LoadedConfig;
use bear_app::control::LoginLink;

use crate::cli::UiArgs;
use crate::error::{Error, Result};
use crate::write_json;

/// How long a server started here may take to answer.
const START_WITHIN: Duration = Duration::from_secs(120);

/// Runs `bear ui`.
pub(crate) fn run(
    loaded: &LoadedConfig,
    config: Option<&Path>,
    args: UiArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let ask = || bear_app::ui::login_link(loaded, Duration::from_secs(30));
    let link = match ask()? {
        Some(link) => link,
        None => {
            start_server(loaded, config, args.bind.as_deref())?;
            wait_for(ask)?
        }
    };
    if json {
        return write_json(out, &link);
    }
    writeln!(out, "{}", link.url)?;
    eprintln!(
        "a one-time sign-in link, good for {} s (bear-server pid {})",
        link.expires_in, link.server_pid
    );
    if !args.no_open {
        open_browser(&link.url);
    }
    Ok(())
}

/// Starts bear-server (next to `bear`) detached, its output appended to `<data>/server.log`.
fn start_server(loaded: &LoadedConfig, config: Option<&Path>, bind: Option<&str>) -> Result<()> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name(format!("bear-server{}", std::env::consts::EXE_SUFFIX));
    std::fs::create_dir_all(&loaded.dirs.data_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(loaded.dirs.data_dir.join("server.log"))?;
    let mut cmd = Command::new(&server);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    if let Some(b) = bind {
        cmd.args(["--bind", b]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| {
            Error::from(bear_core::Error::backend(
                bear_core::ErrorKind::Unavailable,
                format!("cannot start {}: {e}", server.display()),
            ))
        })?;
    eprintln!("started bear-server in the background (its log: server.log in the data directory)");
    Ok(())
}

/// Asks until the started server answers, or [`START_WITHIN`] has passed.
fn wait_for(ask: impl Fn() -> bear_app::Result<Option<LoginLink>>) -> Result<LoginLink> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(link) = ask()? {
            return Ok(link);
        }
        if started.elapsed() > START_WITHIN {
            return Err(Error::from(bear_core::Error::backend(
                bear_core::ErrorKind::Unavailable,
                "bear-server did not start within 2 minutes; see server.log in the data directory",
            )));
        }
        // Polling a socket that does not exist yet: nothing to wait on but time.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Opens `url` in the desktop's browser; says so when it cannot.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let opened = Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !opened.is_ok_and(|s| s.success()) {
        eprintln!("could not open a browser ({opener}); open the link above yourself");
    }
}
