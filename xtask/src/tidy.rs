//! Tidy checks over the source tree, run as tests (rust-analyzer's habit).

#[cfg(test)]
mod tests {
    use walkdir::WalkDir;

    /// Every Rust file opens with a `//!` comment saying what it is for.
    #[test]
    fn every_rs_file_starts_with_an_inner_doc_comment() {
        let root = crate::workspace_root();
        let mut missing = Vec::new();
        let mut seen = 0;
        let walker = WalkDir::new(&root).into_iter().filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.depth() > 0 && (name.starts_with('.') || name == "target"))
        });
        for entry in walker {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|x| x != "rs") {
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(entry.path()).unwrap();
            if !text.starts_with("//!") {
                missing.push(
                    entry
                        .path()
                        .strip_prefix(&root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
        assert!(
            seen > 20,
            "the walk found only {seen} files; is the root right?"
        );
        assert!(
            missing.is_empty(),
            "files without a leading `//!`:\n{}",
            missing.join("\n")
        );
    }
}

#[cfg(test)]
mod ci_tests {
    /// README's test command is the one `.ci/run` runs, character for character.
    #[test]
    fn ci_runs_the_readme_test_command() {
        let root = crate::workspace_root();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
        let marker = "<!-- test-command -->";
        let after = readme
            .split_once(marker)
            .expect("README marks its test command with <!-- test-command -->")
            .1;
        let command = after
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("cargo "))
            .expect("a cargo command follows the marker");
        assert!(
            ci.lines().any(|l| l.trim() == command),
            ".ci/run must run `{command}` exactly as README.md writes it"
        );
    }
}
