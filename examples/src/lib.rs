//! bear-examples: no library of its own; see the programs in `examples/examples/` (`cargo run -p bear-examples --example NAME`).
