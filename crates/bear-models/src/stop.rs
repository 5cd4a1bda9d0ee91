//! Stop sequences over a token stream: text is released only once it cannot be the start of a
//! stop sequence, so a stop sequence never reaches the caller even when split across tokens.

/// Holds back generated text that might begin a stop sequence.
#[derive(Debug)]
pub(crate) struct StopFilter {
    stops: Vec<String>,
    held: String,
}

/// What to do after feeding a piece of text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Emit this text (possibly empty) and continue.
    Emit(String),
    /// A stop sequence matched: emit this text, then finish.
    Stop(String),
}

impl StopFilter {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Feeds newly generated text.
    pub(crate) fn push(&mut self, piece: &str) -> Step {
        self.held.push_str(piece);
        if self.stops.is_empty() {
            return Step::Emit(std::mem::take(&mut self.held));
        }
        // The earliest stop sequence wins.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let out = self.held[..at].to_string();
            self.held.clear();
            return Step::Stop(out);
        }
        // Keep the longest suffix that is a proper prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        Step::Emit(out)
    }

    /// Releases whatever is held at the end of generation.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`, cut at a
/// char boundary.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&k| {
            let start = text.len() - k;
            text.is_char_boundary(start) && stop.starts_with(&text[start..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::new(&stops);
        let mut out = String::new();
        for p in pieces {
            match f.push(p) {
                Step::Emit(t) => out.push_str(&t),
                Step::Stop(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&f.finish());
        (out, false)
    }

    #[test]
    fn stop_sequences() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(
            run(&["END"], &["hello ", "E", "N", "D", "more"]),
            ("hello ".into(), true)
        );
        assert_eq!(run(&["END"], &["hello EN", "Dx"]), ("hello ".into(), true));
        assert_eq!(run(&["END"], &["EN", "d"]), ("ENd".into(), false));
        assert_eq!(
            run(&["\n\n", "###"], &["a\n", "b##", "#"]),
            ("a\nb".into(), true)
        );
        assert_eq!(run(&["ab"], &["xa"]), ("xa".into(), false));
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".into(), true));
    }
}
