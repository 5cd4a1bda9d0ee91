//! The command-line grammar, declared with clap's derive API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// BEAR: private AI for confidential documents. Runs entirely on this machine.
#[derive(Debug, Parser)]
#[command(name = "bear", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Configuration file [default: $XDG_CONFIG_HOME/bear/config.toml].
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "BEAR_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,

    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show this machine's hardware and BEAR's recommendations for it.
    Hw,
    /// List, inspect and check models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Generate text from a prompt, streaming it to stdout.
    Generate(GenerateArgs),
    /// Chat with a model: one message per line on stdin; `/exit` ends.
    Chat(ChatArgs),
    /// Embed texts; prints JSON.
    Embed(EmbedArgs),
    /// Find PII in a file.
    #[command(subcommand)]
    Pii(PiiCommand),
    /// Remove PII from a file (streams: files larger than memory work).
    Scrub(ScrubArgs),
    /// Put originals back in place of tokens made by `bear scrub --policy tokenize`.
    Restore(RestoreArgs),
    /// Write a redacted copy of a PDF or DOCX file: PII and listed terms removed, not covered
    ///
    /// Every PII finding (all types, or --entities) and every listed term is removed from the
    /// file; metadata, comments, tracked changes, attachments and hidden content are stripped;
    /// the log (type, page, count) goes to the audit trail.
    Redact(RedactArgs),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the keyring (master key, data keys) and API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List, inspect, validate and run sandboxed WebAssembly plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Ingest files and folders (documents, e-mails, scans, zip archives) into a collection.
    Ingest(IngestArgs),
    /// Search a collection: vector, full-text or hybrid.
    Search(SearchArgs),
    /// Ask a question; the answer streams, then its sources are listed.
    Ask(AskArgs),
    /// Fill a JSON schema from documents; a value not found in the text is dropped
    Extract(ExtractArgs),
    /// Review one whole document: a summary, its deadlines, parties or obligations, or your
    /// own instruction; every statement cites its page and is checked against the document
    Review(ReviewArgs),
    /// Compare a matter's documents in a grid: a row per document, a column per question or
    /// schema field, each cell checked against its document; export CSV or JSON
    Grid(GridArgs),
    /// List or remove ingested documents.
    #[command(subcommand)]
    Docs(DocsCommand),
    /// List, create, remove or export collections (one per matter).
    #[command(subcommand)]
    Collections(CollectionsCommand),
    /// Seal a data directory written by an earlier BEAR, in place: its collections, histories,
    /// uploads and workflow database (resumable; stop bear-server first).
    Migrate,
    /// Validate, run and control multi-agent workflows (JSON or YAML definitions).
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Show the workflow agents.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Start the REST server (`bear-server`, installed next to `bear`) in the foreground.
    Server(ServerArgs),
    /// Open the web app signed in: starts bear-server in the background if none runs, and
    /// opens the browser at a one-time sign-in link.
    Ui(UiArgs),
}

/// `bear ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Print the link instead of opening the browser.
    #[arg(long)]
    pub no_open: bool,
    /// Address a server started here listens on [default: server.bind, 127.0.0.1:8787].
    #[arg(long)]
    pub bind: Option<String>,
}

/// `bear server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on [default: server.bind, 127.0.0.1:8787].
    #[arg(long)]
    pub bind: Option<String>,
}

/// `bear workflow`.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a definition and report every problem with its path.
    Validate {
        /// The definition (`.json`, or YAML).
        file: PathBuf,
    },
    /// Run a workflow in this process until it ends (Ctrl-C cancels it).
    Run(WorkflowRunArgs),
    /// List runs, newest first.
    List {
        /// Only runs with this status (pending, running, paused, completed, failed,
        /// cancelled).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a run's progress: each step's status, agent, timing and output.
    Status {
        /// The run id.
        id: String,
    },
    /// Cancel a run: running steps stop, no new step starts.
    Cancel {
        /// The run id.
        id: String,
    },
    /// Pause a run: running steps finish, no new step starts.
    Pause {
        /// The run id.
        id: String,
    },
    /// Continue every interrupted run (its process died) in this process, one after another.
    Recover {
        /// Print each step's transitions on stderr.
        #[arg(long)]
        watch: bool,
    },
    /// Resume a paused run, or continue an interrupted one in this process.
    Resume {
        /// The run id.
        id: String,
        /// Print each step's transitions on stderr.
        #[arg(long)]
        watch: bool,
    },
}

/// `bear workflow run`.
#[derive(Debug, Args)]
pub struct WorkflowRunArgs {
    /// The definition (`.json`, or YAML).
    pub file: PathBuf,
    /// A workflow input, as NAME=VALUE (VALUE is JSON if it parses as JSON); repeatable.
    #[arg(short, long, value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// Print each step's transitions on stderr as they happen.
    #[arg(long)]
    pub watch: bool,
}

/// `bear agents`.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List the agents: role, status, capacity and capabilities.
    List,
}

/// `--pii-policy` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PolicyChoice {
    /// Reversible vault tokens (needs the keyring).
    Tokenize,
    /// `[PERSON_1]` placeholders.
    Replace,
    /// Mask letters and digits.
    Mask,
    /// Keyed hashes (needs the keyring).
    Hash,
    /// `[REDACTED]`.
    Redact,
}

/// `bear ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders (folders are walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The collection [default: rag.default_collection]; created if missing.
    #[arg(short, long)]
    pub collection: Option<String>,
    /// Also remove documents whose files have vanished.
    #[arg(long)]
    pub sync: bool,
    /// PII policy for a new collection [default: rag.pii_policy].
    #[arg(long, value_enum)]
    pub pii_policy: Option<PolicyChoice>,
    /// Only ingest files matching this glob (repeatable; relative to each folder).
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip files and folders matching this glob (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeChoice {
    /// Nearest vectors by cosine.
    Vector,
    /// Nearest vectors by cosine, every vector compared (exact; no index).
    Exact,
    /// BM25 full-text search.
    Fulltext,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

impl From<ModeChoice> for bear_app::rag::Mode {
    fn from(m: ModeChoice) -> Self {
        match m {
            ModeChoice::Vector => Self::Vector,
            ModeChoice::Exact => Self::Exact,
            ModeChoice::Fulltext => Self::Fulltext,
            ModeChoice::Hybrid => Self::Hybrid,
        }
    }
}

/// Filters shared by `search` and `ask`.
#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// The collection [default: rag.default_collection].
    #[arg(short, long)]
    pub collection: Option<String>,
    /// Only this document (its id, from `bear docs list`).
    #[arg(long)]
    pub document: Option<String>,
    /// Only files modified on or after this date (YYYY-MM-DD).
    #[arg(long)]
    pub after: Option<String>,
    /// Only files modified on or before this date (YYYY-MM-DD).
    #[arg(long)]
    pub before: Option<String>,
    /// Only e-mails whose sender holds this text (case ignored), with their attachments.
    #[arg(long, value_name = "TEXT")]
    pub from: Option<String>,
    /// Only e-mails whose To or Cc holds this text.
    #[arg(long, value_name = "TEXT")]
    pub to: Option<String>,
    /// Only e-mails whose subject holds this text.
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Only e-mails sent on or after this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub sent_after: Option<String>,
    /// Only e-mails sent on or before this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub sent_before: Option<String>,
    /// Only the thread of this e-mail (its document id): replies and replied-to messages.
    #[arg(long, value_name = "ID")]
    pub thread: Option<String>,
}

impl FilterArgs {
    /// The e-mail part of the filter.
    pub fn mail(&self) -> Option<bear_app::rag::MailQuery> {
        Some(bear_app::rag::MailQuery {
            from: self.from.clone(),
            to: self.to.clone(),
            subject: self.subject.clone(),
            sent_after: self.sent_after.clone(),
            sent_before: self.sent_before.clone(),
            thread: self.thread.clone(),
        })
        .filter(|q| *q != bear_app::rag::MailQuery::default())
    }
}

/// `bear search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    /// Results, 1 to 100 [default: rag.top_k].
    #[arg(short, long)]
    pub k: Option<usize>,
    /// How to search.
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeChoice,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `bear ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// Sources to retrieve [default: rag.top_k].
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Generator model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Sampling (the default temperature for answers is 0).
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Keep every sentence of the answer, also those whose citation is not verified against
    /// its source (they are marked); by default only verified sentences are kept.
    #[arg(long)]
    pub no_strict: bool,
}

/// `bear extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The JSON schema to fill (a file, at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// One document (its id or its file's path) [default: every document of the matter].
    pub document: Option<String>,
    /// The matter [default: rag.default_collection].
    #[arg(short, long)]
    pub collection: Option<String>,
    /// Generator model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// Most tokens per document, 1 to 2048 [default: 512].
    #[arg(long)]
    pub max_tokens: Option<u32>,
}

/// `bear review`'s tasks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TaskChoice {
    /// What the document is, its parties and main terms.
    Summary,
    /// Every deadline, date and time limit.
    Deadlines,
    /// Every party, with its role.
    Parties,
    /// Every obligation, with who owes it.
    Obligations,
    /// Your own instruction (the argument after the document).
    Custom,
}

/// `bear review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The document (its id or its file's path); not with --run.
    #[arg(required_unless_present = "run")]
    pub document: Option<String>,
    /// The instruction of `--task custom`.
    pub instruction: Option<String>,
    /// What to do.
    #[arg(long, value_enum, default_value = "summary")]
    pub task: TaskChoice,
    /// The matter [default: rag.default_collection].
    #[arg(short, long)]
    pub collection: Option<String>,
    /// Generator model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// Most tokens of the result, 1 to 2048 [default: 512].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Keep every statement, also those whose citation is not verified (they are marked).
    #[arg(long)]
    pub no_strict: bool,
    /// Most tokens of passages one pass reads [default: what models.context_length leaves];
    /// a longer document is reviewed section by section as a workflow run.
    #[arg(long)]
    pub section_tokens: Option<u32>,
    /// Show the result of an earlier section-by-section review (its run id).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["document", "instruction"])]
    pub run: Option<String>,
}

/// `bear grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    /// A question, a column of its own (repeat it for more, at most 20).
    #[arg(
        short,
        long = "question",
        value_name = "QUESTION",
        required_unless_present = "schema"
    )]
    pub questions: Vec<String>,
    /// A JSON schema whose fields are the columns (instead of questions).
    #[arg(long, value_name = "FILE", conflicts_with = "questions")]
    pub schema: Option<PathBuf>,
    /// A document (its id or its file's path), a row of its own (repeat it) [default: every
    /// document of the matter].
    #[arg(short, long = "document", value_name = "DOC")]
    pub documents: Vec<String>,
    /// The matter [default: rag.default_collection].
    #[arg(short, long)]
    pub collection: Option<String>,
    /// Generator model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// Most tokens per answer or per document's values.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Write the grid as CSV to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// `bear docs ...`.
#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// List the documents in a collection.
    List {
        /// The collection [default: rag.default_collection].
        #[arg(short, long)]
        collection: Option<String>,
    },
    /// Remove a document (by id or by its file's path) and its chunks.
    Rm {
        /// The document id or path.
        document: String,
        /// The collection [default: rag.default_collection].
        #[arg(short, long)]
        collection: Option<String>,
    },
}

/// `bear collections ...`.
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// List collections with their sizes.
    List,
    /// Create an empty collection.
    Create {
        /// The name: a-z, 0-9, `-`, `_`.
        name: String,
        /// PII policy [default: rag.pii_policy].
        #[arg(long, value_enum)]
        pii_policy: Option<PolicyChoice>,
    },
    /// Remove a collection and everything in it.
    Rm {
        /// The name.
        name: String,
    },
    /// Write an unsealed LanceDB copy of a collection that other LanceDB clients (Python
    /// `lancedb`) can open. Text stays as stored (PII scrubbed under its policy). Audited.
    Export {
        /// The collection.
        name: String,
        /// A new (or empty) folder for the copy.
        dir: PathBuf,
    },
}

/// `bear plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins in the plugin directories, with their status.
    List,
    /// Show a plugin's manifest: tools, capabilities, dependencies.
    Info {
        /// A plugin name, or the path of a plugin directory.
        plugin: String,
    },
    /// Validate a plugin fully: manifest, hash, signature, module, dependencies.
    Validate {
        /// A plugin name, or the path of a plugin directory.
        plugin: String,
    },
    /// Run one tool of a plugin in the sandbox.
    Run {
        /// A plugin name, or the path of a plugin directory.
        plugin: String,
        /// The tool.
        tool: String,
        /// The input JSON (`-` reads it from stdin).
        #[arg(long, default_value = "{}")]
        input: String,
    },
}

/// `bear pii ...`.
#[derive(Debug, Subcommand)]
pub enum PiiCommand {
    /// List the PII found in FILE (`-` for stdin): type, position, score; never the values
    /// unless --show-values.
    Detect(DetectArgs),
}

/// What to do with input that is not UTF-8.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Utf8Mode {
    /// Refuse the input.
    Refuse,
    /// Replace invalid bytes with U+FFFD.
    Replace,
}

/// `bear pii detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The file, or `-` for stdin.
    pub input: PathBuf,
    /// Also print each finding's text (it is PII: take care where the output goes).
    #[arg(long)]
    pub show_values: bool,
    /// Input that is not UTF-8 [default: pii.invalid_utf8, refuse].
    #[arg(long, value_enum)]
    pub invalid_utf8: Option<Utf8Mode>,
}

/// A scrubbing policy.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PolicyArg {
    /// `[PERSON_1]`, numbered consistently through the file.
    Replace,
    /// `****1234`.
    Mask,
    /// A keyed hash (needs the keyring).
    Hash,
    /// `[REDACTED]`.
    Redact,
    /// Reversible tokens stored in the encrypted vault (needs the keyring).
    Tokenize,
}

/// `bear scrub`.
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// The file, or `-` for stdin.
    pub input: PathBuf,
    /// Policy for every entity type [default: pii.default_policy and pii.policies].
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// Write the scrubbed text here (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Input that is not UTF-8 [default: pii.invalid_utf8, refuse].
    #[arg(long, value_enum)]
    pub invalid_utf8: Option<Utf8Mode>,
    /// Key file instead of a passphrase [default: security.key_file].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// How a removed value looks in a redacted PDF.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RedactPolicyArg {
    /// A black box where the value was.
    Box,
    /// White space where the value was.
    Blank,
}

/// `bear redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// The PDF or DOCX file.
    pub input: PathBuf,
    /// Where to write the redacted copy (written only when nothing is left in).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// How removed values look in a PDF [default: box]; in a DOCX they become `[REDACTED]`.
    #[arg(long, value_enum)]
    pub policy: Option<RedactPolicyArg>,
    /// A term to remove besides the PII (a party's name, a matter number); repeat for more.
    #[arg(long = "term", value_name = "TERM")]
    pub terms: Vec<String>,
    /// A file of terms to remove, one per line.
    #[arg(long, value_name = "FILE")]
    pub terms_file: Option<PathBuf>,
    /// Only these PII types, comma-separated (EMAIL,PERSON,IBAN,...) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub entities: Vec<String>,
    /// Remove only the terms, no PII.
    #[arg(long)]
    pub terms_only: bool,
}

/// `bear restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The file, or `-` for stdin.
    pub input: PathBuf,
    /// Write the restored text here (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Key file instead of a passphrase [default: security.key_file].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// `bear audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; names the first bad line.
    Verify {
        /// The log [default: security.audit_log, <data_dir>/audit/audit.jsonl].
        path: Option<PathBuf>,
    },
}

/// `bear keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the keyring, with a passphrase (prompted, or BEAR_PASSPHRASE) or a key file.
    Init {
        /// Use this key file (created with mode 0600 if absent) instead of a passphrase.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Rotate a collection's data key, or with --master the master key.
    Rotate {
        /// The collection whose data key to rotate [default: vault].
        #[arg(long, default_value = "vault", conflicts_with = "master")]
        collection: String,
        /// Re-wrap every data key under a new master key (new passphrase or --new-key-file).
        #[arg(long)]
        master: bool,
        /// The new key file for --master (created if absent).
        #[arg(long, value_name = "FILE", requires = "master")]
        new_key_file: Option<PathBuf>,
        /// The current key file [default: security.key_file].
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Protect the keyring with a passphrase instead of its key file (a generated key file is
    /// then overwritten and removed).
    Passphrase {
        /// The current key file [default: security.key_file, or the generated one].
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Show the keyring: master key source, collections, key ids, message counts.
    Status {
        /// Key file instead of a passphrase [default: security.key_file].
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Make an API key for bear-server; it is shown once (also `bear keys create`).
    #[command(alias = "create")]
    ApiCreate {
        /// admin, user or read-only.
        #[arg(long, default_value = "user")]
        role: String,
        /// A label to recognise it by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List API keys (ids and roles; keys themselves are never stored).
    ApiList,
    /// Revoke an API key by id.
    ApiRevoke {
        /// The id `api-list` shows.
        id: String,
    },
}

/// Sampling flags shared by `generate` and `chat`.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate, 1 to 4096 [default: 100; ask and chat: 256].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// 0 is greedy [default: 0.7; ask: 0].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1] [default: 0.95].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens; 0 disables [default: 40].
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Repetition penalty; 1 disables [default: 1.1].
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop before this text (repeatable); it never appears in the output.
    #[arg(long)]
    pub stop: Vec<String>,
}

/// `bear generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// The prompt, or `-` to read it from stdin.
    pub prompt: String,
    /// Send the prompt as is, without the model's chat template (for base models and
    /// hand-written templates).
    #[arg(long)]
    pub raw: bool,
    /// Constrain the output to JSON valid under the JSON schema in this file (at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// `bear chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Model id [default: models.default_generator].
    #[arg(short, long)]
    pub model: Option<String>,
    /// A system message that opens the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// `bear embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model id [default: models.default_embedder].
    #[arg(short, long)]
    pub model: Option<String>,
    /// The texts to embed.
    #[arg(required = true)]
    pub texts: Vec<String>,
}

/// `bear models ...`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the models directory.
    List,
    /// Show one model's metadata.
    Show {
        /// Model id, as `bear models list` prints it.
        id: String,
    },
    /// Say whether a model file fits in this machine's memory, and why.
    Fit(FitArgs),
    /// Load a model in the running bear-server and keep it there (pinned: no keep-alive, no
    /// eviction); `models.preload` in the configuration does it at every start.
    Load(PinArgs),
    /// Unpin a model and unload it from the running bear-server.
    Unload(PinArgs),
}

/// `bear models load|unload ID [--wait SECS]`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Model id, as `bear models list` prints it.
    pub id: String,
    /// Seconds to wait for the running bear-server to confirm it.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait: u64,
}

/// `bear models fit PATH [--ctx N]`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The model file (.gguf, .onnx, .safetensors).
    pub path: PathBuf,
    /// Context length in tokens [default: models.context_length from config, 2048].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub ctx: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}
