//! `bear pii detect`, `bear scrub`, `bear restore`, `bear redact`, `bear audit verify` and
//! `bear keys ...`.
//!
//! Every scrub and restore is audited (metadata only) before its output is committed when it
//! goes to a file; with `security.audit_fail_closed` (the default) an unwritable audit log
//! stops the command before any output.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bear_app::LoadedConfig;
use bear_app::keyring::{KeyringView, NewMaster};
use bear_app::pii::stream::{Input, StreamOptions};
use bear_core::{InvalidUtf8, PiiPolicy};
use bear_security::{KeySource, Keyring, SecretBytes};

use crate::cli::{
    AuditCommand, DetectArgs, KeysCommand, PiiCommand, PolicyArg, RedactArgs, RedactPolicyArg,
    RestoreArgs, ScrubArgs, Utf8Mode,
};
use crate::error::{Error, Result};
use crate::write_json;

fn sec_err(e: bear_security::Error) -> Error {
    Error::from(e)
}

/// `-` is standard input.
fn input(path: &Path) -> Input {
    if path == Path::new("-") {
        Input::Stdin
    } else {
        Input::File(path.into())
    }
}

fn utf8_mode(arg: Option<Utf8Mode>) -> Option<InvalidUtf8> {
    arg.map(|m| match m {
        Utf8Mode::Refuse => InvalidUtf8::Refuse,
        Utf8Mode::Replace => InvalidUtf8::Replace,
    })
}

/// The passphrase from `BEAR_PASSPHRASE`, else a prompt on the terminal that does not echo.
fn passphrase(prompt: &str, confirm: bool) -> Result<SecretBytes> {
    if let Some(p) = std::env::var_os("BEAR_PASSPHRASE") {
        let p = p.into_encoded_bytes();
        if p.is_empty() {
            return Err(Error::from(bear_security::Error::Setting {
                key: "BEAR_PASSPHRASE".into(),
                expected: "a non-empty passphrase".into(),
            }));
        }
        return Ok(SecretBytes::from_slice(&p));
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|_| {
            Error::from(bear_security::Error::Setting {
                key: "passphrase".into(),
                expected: "a passphrase typed at a terminal, BEAR_PASSPHRASE, or a key file \
                           (--key-file / security.key_file)"
                    .into(),
            })
        })
    };
    let mut first = read(prompt)?;
    if first.len() < 8 {
        zeroize_string(&mut first);
        return Err(Error::from(bear_security::Error::Setting {
            key: "passphrase".into(),
            expected: "at least 8 characters".into(),
        }));
    }
    if confirm {
        let mut again = read("Repeat the passphrase: ")?;
        let same = again == first;
        zeroize_string(&mut again);
        if !same {
            zeroize_string(&mut first);
            return Err(Error::from(bear_security::Error::Setting {
                key: "passphrase".into(),
                expected: "the same passphrase twice".into(),
            }));
        }
    }
    let secret = SecretBytes::from_slice(first.as_bytes());
    zeroize_string(&mut first);
    Ok(secret)
}

fn zeroize_string(s: &mut String) {
    zeroize::Zeroize::zeroize(s);
}

/// The key file given, else the one the keyring was made with (configured or the default),
/// else a passphrase read now.
fn key_source(loaded: &LoadedConfig, key_file: Option<&PathBuf>) -> Result<KeySource> {
    let path = loaded.config.security.keyring_path(&loaded.dirs);
    let by_file = match bear_app::keyring::key_file(loaded, key_file.cloned()) {
        Some(f) => Some(f),
        None => match Keyring::kind(&path) {
            Ok(bear_security::MasterKind::KeyFile) => {
                Some(loaded.config.security.key_file_path(&loaded.dirs))
            }
            _ => None,
        },
    };
    match by_file {
        Some(f) => Ok(KeySource::KeyFile(f)),
        None => Ok(KeySource::Passphrase(passphrase(
            "Keyring passphrase: ",
            false,
        )?)),
    }
}

/// The keyring for the application: opened (asking for its passphrase if it has one), or
/// made under a new key file on a first run, which is said once on stderr.
pub(crate) fn unlock(loaded: &LoadedConfig) -> Result<Keyring> {
    let unlocked = bear_app::keyring::open_or_create(loaded, || {
        passphrase("Keyring passphrase: ", false).map_err(into_app)
    })?;
    if let Some(f) = &unlocked.created_key_file {
        eprintln!("{}", bear_app::keyring::created_notice(f));
    }
    Ok(unlocked.keyring)
}

pub(crate) fn open_keyring(loaded: &LoadedConfig, key_file: Option<&PathBuf>) -> Result<Keyring> {
    Ok(bear_app::keyring::open(loaded, || {
        key_source(loaded, key_file).map_err(into_app)
    })?)
}

/// Where output goes: stdout, or a temporary file renamed into place on commit.
pub(crate) enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File(tempfile::NamedTempFile, PathBuf),
}

impl Sink {
    pub(crate) fn new(output: Option<&Path>) -> Result<Self> {
        match output {
            None => Ok(Self::Stdout(BufWriter::new(std::io::stdout()))),
            Some(p) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
                    sec_err(bear_security::Error::Io {
                        action: "cannot write in",
                        path: dir.into(),
                        source: e,
                    })
                })?;
                Ok(Self::File(tmp, p.into()))
            }
        }
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(w) => w,
            Self::File(t, _) => t.as_file_mut(),
        }
    }

    pub(crate) fn commit(self) -> Result<()> {
        match self {
            Self::Stdout(mut w) => w.flush().map_err(Error::Output),
            Self::File(t, path) => {
                t.as_file().sync_all().map_err(Error::Output)?;
                t.persist(&path).map_err(|e| {
                    sec_err(bear_security::Error::Io {
                        action: "cannot write",
                        path,
                        source: e.error,
                    })
                })?;
                Ok(())
            }
        }
    }
}

/// Runs `bear pii ...`.
pub(crate) fn pii(
    loaded: &LoadedConfig,
    cmd: PiiCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        PiiCommand::Detect(args) => detect(loaded, args, json, out),
    }
}

fn detect(loaded: &LoadedConfig, args: DetectArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let found = bear_app::pii::stream::detect(
        loaded,
        &input(&args.input),
        args.show_values,
        utf8_mode(args.invalid_utf8),
    )?;
    if json {
        return write_json(out, &found);
    }
    for i in &found.findings {
        write!(
            out,
            "{}:{}\t{}\t{:.2}\t{}",
            i.line, i.column, i.entity, i.score, i.recognizer
        )?;
        if let Some(v) = &i.value {
            write!(out, "\t{v}")?;
        }
        writeln!(out)?;
    }
    let summary: Vec<String> = found
        .counts
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    eprintln!(
        "{} finding(s){}; risk {}",
        found.findings.len(),
        if summary.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.join(", "))
        },
        name_of(&found.risk)
    );
    Ok(())
}

/// A unit enum's wire name (`high`, `tokenize`).
fn name_of(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn policy_of(p: PolicyArg) -> PiiPolicy {
    match p {
        PolicyArg::Replace => PiiPolicy::Replace,
        PolicyArg::Mask => PiiPolicy::Mask,
        PolicyArg::Hash => PiiPolicy::Hash,
        PolicyArg::Redact => PiiPolicy::Redact,
        PolicyArg::Tokenize => PiiPolicy::Tokenize,
    }
}

/// Runs `bear scrub`: the output is committed (renamed into place) only once the run is
/// audited.
pub(crate) fn scrub(
    loaded: &LoadedConfig,
    args: ScrubArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let options = StreamOptions {
        policy: args.policy.map(policy_of),
        invalid_utf8: utf8_mode(args.invalid_utf8),
    };
    let key_file = args.key_file.clone();
    let keys = || open_keyring(loaded, key_file.as_ref()).map_err(into_app);
    let mut sink = Sink::new(args.output.as_deref())?;
    let report =
        bear_app::pii::stream::scrub(loaded, &input(&args.input), options, keys, sink.writer())?;
    sink.commit()?;
    if json {
        return write_json(out, &report);
    }
    let total: u32 = report.counts.values().sum();
    eprintln!(
        "scrubbed {total} finding(s) from {} bytes; risk {}",
        report.bytes_in,
        name_of(&report.risk)
    );
    Ok(())
}

/// Runs `bear redact`: the copy is renamed into place only once it is written and audited.
pub(crate) fn redact(
    loaded: &LoadedConfig,
    args: RedactArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            sec_err(bear_security::Error::Io {
                action: "cannot read",
                path: path.into(),
                source: e,
            })
        })
    };
    let mut terms = args.terms;
    if let Some(f) = &args.terms_file {
        let listed = String::from_utf8_lossy(&read(f)?).into_owned();
        terms.extend(listed.lines().map(str::to_string));
    }
    let request = bear_app::redact::RedactRequest {
        filename: args.input.display().to_string(),
        content: read(&args.input)?,
        terms,
        entities: args.entities,
        terms_only: args.terms_only,
        style: match args.policy {
            Some(RedactPolicyArg::Blank) => bear_rag::redact::Style::Blank,
            _ => bear_rag::redact::Style::Box,
        },
    };
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let mut done = rt.block_on(app.redact(&bear_app::Viewer::Local, request))?;
    let mut sink = Sink::new(Some(&args.output))?;
    sink.writer()
        .write_all(&done.content)
        .map_err(Error::Output)?;
    sink.commit()?;
    if json {
        done.content.clear();
        return write_json(out, &done);
    }
    writeln!(
        out,
        "removed {} value(s); wrote {}",
        done.removed,
        args.output.display()
    )?;
    for e in &done.log {
        let page = e.page.map(|p| format!(" on page {p}")).unwrap_or_default();
        writeln!(out, "  {} x {}{page}", e.count, e.kind)?;
    }
    if !done.stripped.is_empty() {
        writeln!(out, "stripped: {}", done.stripped.join(", "))?;
    }
    Ok(())
}

/// The CLI's error as the application's, for callbacks the application calls.
pub(crate) fn into_app(e: Error) -> bear_app::Error {
    match e {
        Error::App(e) => e,
        other => bear_app::Error::Core(bear_core::Error::backend(other.kind(), other.to_string())),
    }
}

/// Runs `bear restore`.
pub(crate) fn restore(
    loaded: &LoadedConfig,
    args: RestoreArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let keyring = open_keyring(loaded, args.key_file.as_ref())?;
    let mut sink = Sink::new(args.output.as_deref())?;
    let done =
        bear_app::pii::stream::restore(loaded, &input(&args.input), &keyring, sink.writer())?;
    sink.commit()?;
    if json && args.output.is_some() {
        return write_json(out, &done);
    }
    Ok(())
}

/// Runs `bear audit ...`.
pub(crate) fn audit_cmd(
    loaded: &LoadedConfig,
    cmd: AuditCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        AuditCommand::Verify { path } => {
            let report = bear_app::audit::verify(loaded, path.as_deref())?;
            if json {
                return write_json(out, &report);
            }
            writeln!(
                out,
                "ok: {} record(s) verified{}; head {}",
                report.records,
                if report.head_checked {
                    " up to the recorded head"
                } else {
                    " (no head file)"
                },
                &report.head[..16.min(report.head.len())]
            )?;
            Ok(())
        }
    }
}

/// Where a new master key comes from: a key file (created if absent) or a new passphrase.
fn new_master(key_file: Option<PathBuf>) -> Result<NewMaster> {
    match key_file {
        Some(f) => Ok(NewMaster::KeyFile(f)),
        None => Ok(NewMaster::Passphrase(passphrase(
            "New keyring passphrase: ",
            true,
        )?)),
    }
}

/// Runs `bear keys ...`.
pub(crate) fn keys(
    loaded: &LoadedConfig,
    cmd: KeysCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let changed = match cmd {
        KeysCommand::Init { key_file } => {
            let master = new_master(bear_app::keyring::key_file(loaded, key_file))?;
            bear_app::keyring::init(loaded, master)?
        }
        KeysCommand::Rotate {
            collection,
            master,
            new_key_file,
            key_file,
        } => {
            let mut ring = open_keyring(loaded, key_file.as_ref())?;
            if master {
                bear_app::keyring::rotate_master(loaded, &mut ring, new_master(new_key_file)?)?
            } else {
                bear_app::keyring::rotate(loaded, &mut ring, &collection)?
            }
        }
        KeysCommand::Passphrase { key_file } => {
            let mut ring = open_keyring(loaded, key_file.as_ref())?;
            let new = passphrase("New keyring passphrase: ", true)?;
            bear_app::keyring::protect_with_passphrase(loaded, &mut ring, new)?
        }
        KeysCommand::Status { key_file } => {
            let ring = open_keyring(loaded, key_file.as_ref())?;
            return print_status(&KeyringView::of(&ring), json, out);
        }
        other => return api_keys(loaded, other, json, out),
    };
    if let Some(f) = &changed.created_key_file {
        eprintln!(
            "created key file {} (mode 0600); back it up: without it the keyring cannot be opened",
            f.display()
        );
    }
    if json {
        return write_json(out, &changed);
    }
    print_status(&changed.keyring, json, out)
}

/// Runs `bear keys api-create|api-list|api-revoke`.
fn api_keys(
    loaded: &LoadedConfig,
    cmd: KeysCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        KeysCommand::ApiCreate { role, label } => {
            let made = bear_app::keys::create(loaded, &role, &label)?;
            if json {
                write_json(out, &made.shown())?;
            } else {
                writeln!(out, "{}", made.key.reveal())?;
                eprintln!(
                    "API key {} ({:?}) created; it is shown only now, store it safely",
                    made.record.id, made.record.role
                );
            }
            say_server_told(&made.server);
            Ok(())
        }
        KeysCommand::ApiList => {
            let keys = bear_app::keys::list(loaded)?;
            if json {
                return write_json(out, &keys);
            }
            for k in keys {
                writeln!(out, "{}\t{:?}\t{}", k.id, k.role, k.label)?;
            }
            Ok(())
        }
        KeysCommand::ApiRevoke { id } => {
            let app = crate::app(loaded)?;
            let told = bear_app::keys::revoke(&app, &id)?;
            if !json {
                writeln!(out, "revoked {id}")?;
            }
            say_server_told(&told);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Says on stderr whether a running bear-server took a key change. The key file is already
/// changed: a server that could not be told is a warning, not a failure.
fn say_server_told(told: &bear_app::keys::ServerTold) {
    match told {
        bear_app::keys::ServerTold::NoServer => {}
        bear_app::keys::ServerTold::Reloaded(_) => {
            eprintln!("the running bear-server now uses the changed keys")
        }
        bear_app::keys::ServerTold::Failed(why) => eprintln!(
            "warning: the running bear-server did not take the change ({why}); restart it"
        ),
    }
}

fn print_status(view: &KeyringView, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        return write_json(out, view);
    }
    let s = &view.status;
    writeln!(out, "keyring     {}", s.path.display())?;
    match s.pbkdf2_iterations {
        Some(n) => writeln!(
            out,
            "master key  passphrase (PBKDF2-HMAC-SHA256, {n} iterations)"
        )?,
        None => writeln!(out, "master key  key file")?,
    }
    if s.collections.is_empty() {
        writeln!(
            out,
            "collections none yet (data keys are made on first use)"
        )?;
    }
    for c in &s.collections {
        writeln!(
            out,
            "collection  {}: key {} ({} retired), {} message(s) reserved",
            c.name, c.current_key, c.retired_keys, c.messages
        )?;
    }
    let locked = if view.mlock {
        "yes"
    } else {
        "no (RLIMIT_MEMLOCK refused; raise ulimit -l)"
    };
    writeln!(out, "mlock       {locked}")?;
    Ok(())
}
