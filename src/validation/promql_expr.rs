//! What a scale-down `expr` must be so that rsg's query wraps all of it: the query is
//! `<aggregator> by (group_id) (<expr>)` (or `rate(<expr>[<window>])` inside), so an
//! expression that closes a bracket it did not open, leaves one open, or comments out the rest
//! of the line would escape the aggregation (`up) or vector(1`) or break the query.

use std::fmt;

/// The longest expression accepted, in bytes.
pub const MAX_EXPR_BYTES: usize = 4096;

/// Why an expression cannot be wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprError {
    /// Longer than [`MAX_EXPR_BYTES`].
    TooLong(usize),
    /// A closing bracket with no matching opening one.
    UnmatchedClose(char),
    /// Opening brackets left unclosed.
    Unclosed(usize),
    /// A string literal that does not end.
    UnterminatedString,
    /// A `#` comment, which would hide the closing parenthesis of the query.
    Comment,
    /// A control character (a line break, for instance).
    ControlCharacter,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(len) => write!(f, "{len} bytes long; at most {MAX_EXPR_BYTES} are allowed"),
            Self::UnmatchedClose(c) => write!(f, "{c:?} closes a bracket the expression did not open; rsg wraps the expression in its aggregation, so brackets must balance"),
            Self::Unclosed(n) => write!(f, "{n} bracket(s) left open; brackets must balance"),
            Self::UnterminatedString => f.write_str("a string literal is not closed"),
            Self::Comment => f.write_str("a '#' comment would hide the rest of rsg's query"),
            Self::ControlCharacter => f.write_str("control characters (line breaks, tabs) are not allowed"),
        }
    }
}

/// Checks that `expr` can be wrapped: brackets balanced and matched outside string literals
/// (`"…"`, `'…'` with backslash escapes, `` `…` `` raw), no comment, no control character.
pub fn check_expr(expr: &str) -> Result<(), ExprError> {
    if expr.len() > MAX_EXPR_BYTES {
        return Err(ExprError::TooLong(expr.len()));
    }
    let mut open: Vec<char> = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c.is_control() {
            return Err(ExprError::ControlCharacter);
        }
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c)?,
            '#' => return Err(ExprError::Comment),
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let opener = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(opener) {
                    return Err(ExprError::UnmatchedClose(c));
                }
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(ExprError::Unclosed(open.len()))
    }
}

/// Consumes a string literal opened by `quote`, up to and including its closing quote.
fn skip_string(chars: &mut std::str::Chars<'_>, quote: char) -> Result<(), ExprError> {
    while let Some(c) = chars.next() {
        if c.is_control() {
            return Err(ExprError::ControlCharacter);
        }
        if c == '\\' && quote != '`' {
            if chars.next().is_none() {
                break;
            }
            continue;
        }
        if c == quote {
            return Ok(());
        }
    }
    Err(ExprError::UnterminatedString)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_expressions_pass() {
        for expr in [
            "vllm:num_requests_running",
            r#"sum by (pod) (rate(http_requests_total{code=~"5..", path="/a)"}[5m]))"#,
            r#"max_over_time(queue{job='x\'y'}[1m:10s])"#,
            "histogram_quantile(0.9, rate(latency_bucket[2m]))",
            "label_replace(up, \"a\", \"$1\", \"b\", `(.*)`)",
        ] {
            assert_eq!(check_expr(expr), Ok(()), "{expr}");
        }
    }

    #[test]
    fn expressions_that_would_escape_or_break_the_aggregation_are_refused() {
        assert_eq!(
            check_expr("up) or vector(1"),
            Err(ExprError::UnmatchedClose(')'))
        );
        assert_eq!(
            check_expr("up[5m]) + (x"),
            Err(ExprError::UnmatchedClose(')'))
        );
        assert_eq!(check_expr("(up"), Err(ExprError::Unclosed(1)));
        assert_eq!(
            check_expr("rate(up[1m)]"),
            Err(ExprError::UnmatchedClose(')'))
        );
        assert_eq!(check_expr("up # )"), Err(ExprError::Comment));
        assert_eq!(
            check_expr("up\n) or vector(1)"),
            Err(ExprError::ControlCharacter)
        );
        assert_eq!(
            check_expr(r#"up{a="b)"#),
            Err(ExprError::UnterminatedString)
        );
        assert_eq!(
            check_expr(r#"up{a="b\"}"#),
            Err(ExprError::UnterminatedString)
        );
        let long = "a".repeat(MAX_EXPR_BYTES + 1);
        assert_eq!(
            check_expr(&long),
            Err(ExprError::TooLong(MAX_EXPR_BYTES + 1))
        );
    }
}
