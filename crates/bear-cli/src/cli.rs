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
}

/// Sampling flags shared by `generate` and `chat`.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate [default: 256].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// 0 is greedy [default: 0.7].
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
