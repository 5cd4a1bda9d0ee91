//! Where bench reports go: each bench's markdown is printed, saved as
//! `<target>/bench-<name>.md`, and written into its block of `docs/benchmarks.md` (between
//! `<!-- bench:<name> -->` and `<!-- /bench:<name> -->`), so the document's tables are the
//! latest run's, written by the code that measured them; the prose around the blocks is kept.

use anyhow::Context;

use crate::plugins::target_dir;

/// The document the reports are written into.
pub(crate) fn document() -> std::path::PathBuf {
    crate::workspace_root().join("docs/benchmarks.md")
}

/// Prints `report`, saves it, and replaces the `name` block of docs/benchmarks.md with it.
pub(crate) fn publish(name: &str, report: &str) -> anyhow::Result<()> {
    println!("{report}");
    let saved = target_dir().join(format!("bench-{name}.md"));
    std::fs::write(&saved, report)?;
    let path = document();
    let doc = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let stamp = chrono::Utc::now().format("%Y-%m-%d");
    let body = format!("Written by `cargo xtask bench {name}` on {stamp}.\n\n{report}");
    std::fs::write(&path, replace_block(&doc, name, &body)?)?;
    eprintln!(
        "saved     {} and its block in {}",
        saved.display(),
        path.display()
    );
    Ok(())
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    )
}

/// `doc` with the text between `name`'s markers replaced by `body`.
pub(crate) fn replace_block(doc: &str, name: &str, body: &str) -> anyhow::Result<String> {
    let (open, close) = markers(name);
    let start = doc
        .find(&open)
        .with_context(|| format!("docs/benchmarks.md has no `{open}` marker"))?
        + open.len();
    let end = doc[start..]
        .find(&close)
        .with_context(|| format!("docs/benchmarks.md has no `{close}` after `{open}`"))?
        + start;
    Ok(format!(
        "{}\n{}\n{}",
        &doc[..start],
        body.trim(),
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_replaces_only_its_block() {
        let doc = "# B\n\nprose\n<!-- bench:api -->\nold\n<!-- /bench:api -->\nmore prose\n";
        let new = replace_block(doc, "api", "| new |\n").unwrap();
        assert_eq!(
            new,
            "# B\n\nprose\n<!-- bench:api -->\n| new |\n<!-- /bench:api -->\nmore prose\n"
        );
        assert_eq!(
            replace_block(&new, "api", "| new |").unwrap(),
            new,
            "idempotent"
        );
        assert!(replace_block(doc, "rag", "x").is_err());
    }

    /// The benches that publish a report, in the document's order.
    const SECTIONS: &[&str] = &[
        "models", "security", "plugins", "rag", "agents", "api", "seal",
    ];

    #[test]
    fn the_document_has_a_block_for_every_bench() {
        let doc = std::fs::read_to_string(document()).unwrap();
        for name in SECTIONS {
            let (open, close) = markers(name);
            let (Some(a), Some(b)) = (doc.find(&open), doc.find(&close)) else {
                panic!("docs/benchmarks.md lacks the `{name}` block");
            };
            assert!(a < b, "`{name}`: markers out of order");
        }
    }
}
