//! Counts in the messages' words: `1 epoch`, `3 epochs`.

/// `n` and the noun for it: `one` for 1, else `many`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
