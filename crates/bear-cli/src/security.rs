//! `bear pii detect`, `bear scrub`, `bear restore`, `bear audit verify` and `bear keys ...`.
//!
//! Every scrub and restore is audited (metadata only) before its output is committed when it
//! goes to a file; with `security.audit_fail_closed` (the default) an unwritable audit log
//! stops the command before any output.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bear_core::{InvalidUtf8, PiiConfig, PiiPolicy};
use bear_security::audit::{self, AuditEvent, AuditLog};
use bear_security::{
    Detector, KeySource, Keyring, MasterKey, Scrubber, SecretBytes, Session, Vault,
};

use crate::cli::{
    AuditCommand, DetectArgs, KeysCommand, PiiCommand, PolicyArg, RestoreArgs, ScrubArgs, Utf8Mode,
};
use crate::error::{Error, Result};
use bear_app::LoadedConfig;

fn sec_err(e: bear_security::Error) -> Error {
    Error::from(e)
}

/// Opens the input: a file, or stdin for `-`.
fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = File::open(path).map_err(|e| {
        sec_err(bear_security::Error::Io {
            action: "cannot read",
            path: path.into(),
            source: e,
        })
    })?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
}

/// Checks a file input whole before anything is written, so a refused file leaves no partial
/// output: NUL bytes and (when refusing) invalid UTF-8. Stdin cannot be pre-checked.
fn precheck(path: &Path, invalid: InvalidUtf8) -> Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    let mut input = open_input(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(crate::Error::Output)?;
        if n == 0 {
            if !carry.is_empty() && invalid == InvalidUtf8::Refuse {
                return Err(sec_err(bear_security::Error::InvalidUtf8 { offset }));
            }
            return Ok(());
        }
        if let Some(p) = buf[..n].iter().position(|&b| b == 0) {
            return Err(sec_err(bear_security::Error::Binary {
                offset: offset + carry.len() as u64 + p as u64,
            }));
        }
        if invalid == InvalidUtf8::Refuse {
            carry.extend_from_slice(&buf[..n]);
            match std::str::from_utf8(&carry) {
                Ok(_) => {
                    offset += carry.len() as u64;
                    carry.clear();
                }
                Err(e) if e.error_len().is_some() => {
                    return Err(sec_err(bear_security::Error::InvalidUtf8 {
                        offset: offset + e.valid_up_to() as u64,
                    }));
                }
                Err(e) => {
                    // An incomplete sequence at the end: keep it for the next read.
                    let keep = carry.split_off(e.valid_up_to());
                    offset += carry.len() as u64;
                    carry = keep;
                }
            }
        } else {
            offset += n as u64;
        }
    }
}

fn utf8_mode(arg: Option<Utf8Mode>, config: &PiiConfig) -> InvalidUtf8 {
    match arg {
        Some(Utf8Mode::Refuse) => InvalidUtf8::Refuse,
        Some(Utf8Mode::Replace) => InvalidUtf8::Replace,
        None => config.invalid_utf8,
    }
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

fn key_source(loaded: &LoadedConfig, key_file: Option<&PathBuf>) -> Result<KeySource> {
    match key_file.or(loaded.config.security.key_file.as_ref()) {
        Some(f) => Ok(KeySource::KeyFile(f.clone())),
        None => Ok(KeySource::Passphrase(passphrase(
            "Keyring passphrase: ",
            false,
        )?)),
    }
}

pub(crate) fn open_keyring(loaded: &LoadedConfig, key_file: Option<&PathBuf>) -> Result<Keyring> {
    let path = loaded.config.security.keyring_path(&loaded.dirs);
    if !path.exists() {
        return Err(sec_err(bear_security::Error::NoKeyring { path }));
    }
    Keyring::open(&path, key_source(loaded, key_file)?).map_err(sec_err)
}

fn open_audit(loaded: &LoadedConfig, keyring: Option<&Keyring>) -> Result<AuditLog> {
    let sec = &loaded.config.security;
    AuditLog::open(
        &sec.audit_log_path(&loaded.dirs),
        sec.audit_fail_closed,
        keyring.map(|k| k.hmac_key("bear-audit-v1")),
    )
    .map_err(sec_err)
}

/// Where output goes: stdout, or a temporary file renamed into place on commit.
enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File(tempfile::NamedTempFile, PathBuf),
}

impl Sink {
    fn new(output: Option<&Path>) -> Result<Self> {
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

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(w) => w,
            Self::File(t, _) => t.as_file_mut(),
        }
    }

    fn commit(self) -> Result<()> {
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
    let invalid = utf8_mode(args.invalid_utf8, &loaded.config.pii);
    precheck(&args.input, invalid)?;
    let detector = Detector::new(&loaded.config.pii).map_err(sec_err)?;
    let mut input = open_input(&args.input)?;
    let mut detection = bear_app::pii::Detection::new(&detector, args.show_values);
    for_each_chunk(&mut input, invalid, |text| {
        detection.feed(text);
        Ok(())
    })?;
    let found = detection.finish();
    if json {
        return crate::write_json(out, &found);
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
        serde_json::to_value(found.risk)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    );
    Ok(())
}

/// Feeds the input to `f` in newline-aligned UTF-8 chunks (the scrubber's own chunking).
fn for_each_chunk(
    input: &mut dyn Read,
    invalid: InvalidUtf8,
    f: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    bear_security::scrub::for_each_chunk(input, invalid, f).map(|_| ())
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

/// Runs `bear scrub`.
pub(crate) fn scrub(
    loaded: &LoadedConfig,
    args: ScrubArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut config = loaded.config.pii.clone();
    if let Some(p) = args.policy {
        config.default_policy = policy_of(p);
        config.policies.clear();
    }
    let invalid = utf8_mode(args.invalid_utf8, &config);
    let needs_keys = config.default_policy == PiiPolicy::Tokenize
        || config.default_policy == PiiPolicy::Hash
        || config
            .policies
            .values()
            .any(|p| matches!(p, PiiPolicy::Tokenize | PiiPolicy::Hash));
    let mut keyring = if needs_keys {
        Some(open_keyring(loaded, args.key_file.as_ref())?)
    } else {
        None
    };
    let audit = open_audit(loaded, keyring.as_ref())?;
    precheck(&args.input, invalid)?;

    let vault_path = loaded.config.security.vault_path(&loaded.dirs);
    let vault = match &keyring {
        Some(k) => Some(Arc::new(Mutex::new(
            Vault::load(&vault_path, k).map_err(sec_err)?,
        ))),
        None => None,
    };
    let hash_key = match &keyring {
        Some(k) => k.hmac_key("bear-scrub-hash-v1"),
        None => bear_security::crypto::ephemeral_hmac_key().map_err(sec_err)?,
    };
    let detector = Arc::new(Detector::new(&config).map_err(sec_err)?);
    let scrubber = Scrubber::new(detector, config, hash_key, vault.clone()).map_err(sec_err)?;
    let mut session = Session::new().map_err(sec_err)?;
    let mut input = open_input(&args.input)?;
    let mut sink = Sink::new(args.output.as_deref())?;
    let report = scrubber
        .scrub_stream(&mut input, sink.writer(), invalid, &mut session)
        .map_err(sec_err)?;
    if let (Some(v), Some(k)) = (&vault, keyring.as_mut()) {
        let mut v = v.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.is_dirty() {
            v.save(&vault_path, k).map_err(sec_err)?;
        }
    }
    audit
        .record(AuditEvent {
            actor: "cli".into(),
            action: "pii.scrub".into(),
            outcome: "ok".into(),
            entities: report.counts.clone(),
            input_len: report.bytes_in,
            output_len: report.bytes_out,
            input_hmac: None,
        })
        .map_err(sec_err)?;
    sink.commit()?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&report).unwrap_or_default()
        )?;
    } else {
        let total: u32 = report.counts.values().sum();
        eprintln!(
            "scrubbed {total} finding(s) from {} bytes; risk {}",
            report.bytes_in,
            serde_json::to_value(report.risk)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs `bear restore`.
pub(crate) fn restore(loaded: &LoadedConfig, args: RestoreArgs, out: &mut dyn Write) -> Result<()> {
    let keyring = open_keyring(loaded, args.key_file.as_ref())?;
    let audit = open_audit(loaded, Some(&keyring))?;
    precheck(&args.input, InvalidUtf8::Refuse)?;
    let vault =
        Vault::load(&loaded.config.security.vault_path(&loaded.dirs), &keyring).map_err(sec_err)?;
    let mut input = open_input(&args.input)?;
    let mut sink = Sink::new(args.output.as_deref())?;
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    {
        let w = sink.writer();
        for_each_chunk(&mut input, InvalidUtf8::Refuse, |text| {
            let restored = vault.restore(text);
            bytes_in += text.len() as u64;
            bytes_out += restored.len() as u64;
            w.write_all(restored.as_bytes()).map_err(Error::Output)
        })?;
    }
    audit
        .record(AuditEvent {
            actor: "cli".into(),
            action: "vault.restore".into(),
            outcome: "ok".into(),
            entities: BTreeMap::new(),
            input_len: bytes_in,
            output_len: bytes_out,
            input_hmac: None,
        })
        .map_err(sec_err)?;
    sink.commit()?;
    let _ = out;
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
            let path = path.unwrap_or_else(|| loaded.config.security.audit_log_path(&loaded.dirs));
            let report = audit::verify(&path).map_err(sec_err)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                )?;
            } else {
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
            }
            Ok(())
        }
    }
}

fn audit_keys(loaded: &LoadedConfig, keyring: Option<&Keyring>, action: &str) -> Result<()> {
    open_audit(loaded, keyring)?
        .record(AuditEvent {
            actor: "cli".into(),
            action: action.into(),
            outcome: "ok".into(),
            ..AuditEvent::default()
        })
        .map_err(sec_err)
}

fn new_key_file(path: &Path) -> Result<()> {
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::Output)?;
        }
        MasterKey::generate_key_file(path).map_err(sec_err)?;
        eprintln!(
            "created key file {} (mode 0600); back it up: without it the keyring cannot be opened",
            path.display()
        );
    }
    Ok(())
}

/// The source of a new master key: a key file (created if absent) or a new passphrase.
fn new_master_source(key_file: Option<PathBuf>) -> Result<KeySource> {
    match key_file {
        Some(f) => {
            new_key_file(&f)?;
            Ok(KeySource::KeyFile(f))
        }
        None => Ok(KeySource::Passphrase(passphrase(
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
    let sec = &loaded.config.security;
    let ring_path = sec.keyring_path(&loaded.dirs);
    match cmd {
        KeysCommand::Init { key_file } => {
            let source = new_master_source(key_file.or(sec.key_file.clone()))?;
            if let Some(dir) = ring_path.parent() {
                std::fs::create_dir_all(dir).map_err(Error::Output)?;
            }
            let ring = Keyring::create(&ring_path, source).map_err(sec_err)?;
            audit_keys(loaded, Some(&ring), "keys.init")?;
            print_status(&ring, json, out)
        }
        KeysCommand::Rotate {
            collection,
            master,
            new_key_file: new_kf,
            key_file,
        } => {
            let mut ring = open_keyring(loaded, key_file.as_ref())?;
            if master {
                let source = new_master_source(new_kf)?;
                ring.rotate_master(source).map_err(sec_err)?;
                audit_keys(loaded, Some(&ring), "keys.rotate_master")?;
            } else {
                ring.rotate(&collection).map_err(sec_err)?;
                audit_keys(loaded, Some(&ring), "keys.rotate")?;
            }
            print_status(&ring, json, out)
        }
        KeysCommand::Status { key_file } => {
            let ring = open_keyring(loaded, key_file.as_ref())?;
            print_status(&ring, json, out)
        }
        KeysCommand::ApiCreate { role, label } => {
            let made = bear_app::keys::create(loaded, &role, &label)?;
            if json {
                let body = serde_json::json!({ "key": made.key.reveal(), "record": made.record });
                writeln!(out, "{body}")?;
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
                writeln!(out, "{}", serde_json::to_string(&keys).unwrap_or_default())?;
            } else {
                for k in keys {
                    writeln!(out, "{}\t{:?}\t{}", k.id, k.role, k.label)?;
                }
            }
            Ok(())
        }
        KeysCommand::ApiRevoke { id } => {
            let told = bear_app::keys::revoke(loaded, &id)?;
            if !json {
                writeln!(out, "revoked {id}")?;
            }
            say_server_told(&told);
            Ok(())
        }
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

fn print_status(ring: &Keyring, json: bool, out: &mut dyn Write) -> Result<()> {
    let s = ring.status();
    if json {
        writeln!(out, "{}", serde_json::to_string(&s).unwrap_or_default())?;
        return Ok(());
    }
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
    let locked = if bear_security::secret::mlock_refused() {
        "no (RLIMIT_MEMLOCK refused; raise ulimit -l)"
    } else {
        "yes"
    };
    writeln!(out, "mlock       {locked}")?;
    Ok(())
}

/// A scrubber for one policy, with the keyring and token vault it needs (tokenize and hash),
/// for commands that scrub on the way to storage (`bear ingest`) or restore for the user.
pub(crate) struct ScrubSetup {
    pub(crate) scrubber: Arc<Scrubber>,
    keyring: Option<Keyring>,
    vault: Option<Arc<Mutex<Vault>>>,
    vault_path: PathBuf,
    audit: AuditLog,
}

impl ScrubSetup {
    /// Builds the scrubber for `policy`, opening the keyring and vault when the policy needs
    /// them.
    pub(crate) fn new(loaded: &LoadedConfig, policy: PiiPolicy) -> Result<Self> {
        let mut config = loaded.config.pii.clone();
        config.default_policy = policy;
        config.policies.clear();
        let keyring = if matches!(policy, PiiPolicy::Tokenize | PiiPolicy::Hash) {
            Some(open_keyring(loaded, None)?)
        } else {
            None
        };
        let audit = open_audit(loaded, keyring.as_ref())?;
        let vault_path = loaded.config.security.vault_path(&loaded.dirs);
        let vault = match &keyring {
            Some(k) if policy == PiiPolicy::Tokenize => Some(Arc::new(Mutex::new(
                Vault::load(&vault_path, k).map_err(sec_err)?,
            ))),
            _ => None,
        };
        let hash_key = match &keyring {
            Some(k) => k.hmac_key("bear-scrub-hash-v1"),
            None => bear_security::crypto::ephemeral_hmac_key().map_err(sec_err)?,
        };
        let detector = Arc::new(Detector::new(&config).map_err(sec_err)?);
        let scrubber =
            Arc::new(Scrubber::new(detector, config, hash_key, vault.clone()).map_err(sec_err)?);
        Ok(Self {
            scrubber,
            keyring,
            vault,
            vault_path,
            audit,
        })
    }

    /// Persists new vault tokens (sealed under the keyring).
    pub(crate) fn save(&mut self) -> Result<()> {
        if let (Some(v), Some(k)) = (&self.vault, self.keyring.as_mut()) {
            let mut v = v.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if v.is_dirty() {
                v.save(&self.vault_path, k).map_err(sec_err)?;
            }
        }
        Ok(())
    }

    /// Writes an audit record (metadata only), failing closed as configured.
    pub(crate) fn audit(
        &self,
        action: &str,
        outcome: &str,
        input_len: u64,
        output_len: u64,
    ) -> Result<()> {
        self.audit
            .record(AuditEvent {
                actor: "cli".into(),
                action: action.into(),
                outcome: outcome.into(),
                entities: BTreeMap::new(),
                input_len,
                output_len,
                input_hmac: None,
            })
            .map_err(sec_err)
    }
}
