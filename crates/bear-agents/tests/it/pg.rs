//! A throw-away PostgreSQL cluster for one test: Debian's server binaries, a data directory in
//! a temp dir, a loopback port, password authentication; stopped when dropped. As root (CI),
//! the server runs as the `postgres` user, since PostgreSQL refuses to run as root. Also
//! included by bear-server's tests (`#[path]`), so it uses only std, anyhow and tempfile.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The test cluster's superuser and password (loopback only, gone with the test).
const USER: &str = "bear";
const PASSWORD: &str = "bear-test-password";

pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Creates and starts a cluster, waiting until it accepts connections.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let bin = server_bin()?;
        let dir = tempfile::tempdir()?;
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD)?;
        let data = dir.path().join("data");
        if as_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path()))?;
        }
        run(pg(&bin, "initdb")
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data))?;
        let server = Self {
            port: free_port()?,
            dir,
            bin,
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts the server (again, after [`Postgres::kill`]) on the same port and data.
    pub(crate) fn restart(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(pg(&self.bin, "pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options, "start"]))
    }

    /// A URL of database `postgres`, with the password.
    pub(crate) fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// A URL of `database` on this cluster.
    pub(crate) fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates a database, for a test that wants a fresh one (through `psql`, which comes
    /// with the server, so this file needs no client library and other test crates include it).
    pub(crate) fn create_database(&self, name: &str) -> anyhow::Result<String> {
        run(Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .env("PGPASSWORD", PASSWORD))?;
        Ok(self.url_of(name))
    }

    /// The password, which errors must never show.
    pub(crate) fn password(&self) -> &'static str {
        PASSWORD
    }

    /// Stops the server at once, as a crash or a lost host would.
    pub(crate) fn kill(&self) {
        let _ = pg(&self.bin, "pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`).
fn server_bin() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .with_context(|| {
            format!(
                "{} not found: install Debian's postgresql (.ci/setup)",
                root.display()
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("no PostgreSQL server under {}", root.display()),
    }
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A server program, run as `postgres` when this process is root. Its output goes to files
/// or nowhere: an inherited stdout would keep the test runner's pipe open.
fn pg(bin: &Path, program: &str) -> Command {
    let mut c = if as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    c.stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> anyhow::Result<()> {
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
