//! From source text to the AST: lexing, parsing with recovery, and syntax diagnostics.

use crate::ast::{Module, Span};
use crate::diagnostic::{Code, Diagnostic};
use crate::lexer::{tokenize, LexError, LexErrorKind, Token};
use lalrpop_util::{lalrpop_mod, ErrorRecovery, ParseError};

lalrpop_mod!(
    #[allow(clippy::all, unused_parens)]
    grammar
);

/// Parses a `.qnn` file. Returns the syntax tree (possibly partial when syntax errors were
/// recovered from, `None` when the parser could not go on) and the syntax diagnostics.
pub fn parse(source: &str) -> (Option<Module>, Vec<Diagnostic>) {
    let (tokens, lex_errors) = tokenize(source);
    let mut diagnostics: Vec<Diagnostic> = lex_errors.iter().map(lex_diagnostic).collect();
    let mut recovered: Vec<ErrorRecovery<usize, Token<'_>, LexError>> = Vec::new();
    let result = grammar::ModuleParser::new().parse(&mut recovered, tokens.into_iter().map(Ok::<_, LexError>));
    for r in recovered {
        diagnostics.push(parse_diagnostic(r.error, source));
    }
    let module = match result {
        Ok(module) => Some(module),
        Err(e) => {
            diagnostics.push(parse_diagnostic(e, source));
            None
        }
    };
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    (module, diagnostics)
}

fn lex_diagnostic(e: &LexError) -> Diagnostic {
    let (message, label, hint) = match e.kind {
        LexErrorKind::InvalidCharacter => ("invalid character", "not part of any token", None),
        LexErrorKind::UnterminatedString => {
            ("unterminated string", "this string has no closing `\"` on its line", Some("close the string with `\"`"))
        }
        LexErrorKind::UnterminatedComment => ("unterminated block comment", "this comment is never closed", Some("end it with `*/`")),
        LexErrorKind::IntegerTooLarge => ("integer too large", "does not fit in 64 bits", None),
        LexErrorKind::InvalidEscape => (
            "invalid escape in string",
            "unknown escape sequence",
            Some("strings know the escapes \\n, \\t, \\\\ and \\\""),
        ),
    };
    let d = Diagnostic::new(Code::InvalidToken, e.span, message, label);
    match hint {
        Some(h) => d.with_hint(h),
        None => d,
    }
}

/// `"\"model\""` → "`model`", `ident` → "a name".
fn describe_terminal(t: &str) -> String {
    match t {
        "ident" => "a name".to_string(),
        "int" => "an integer".to_string(),
        "float" => "a number".to_string(),
        "string" => "a string".to_string(),
        "bits" => "`:R` (random bits)".to_string(),
        quoted => format!("`{}`", quoted.trim_matches('"')),
    }
}

fn expected_list(expected: &[String]) -> String {
    let mut items: Vec<String> = expected.iter().map(|t| describe_terminal(t)).collect();
    items.dedup();
    match items.len() {
        0 => String::new(),
        1 => format!("expected {}", items[0]),
        n if n <= 8 => format!("expected one of {}", items.join(", ")),
        _ => format!("expected one of {}, ...", items[..8].join(", ")),
    }
}

fn parse_diagnostic(e: ParseError<usize, Token<'_>, LexError>, source: &str) -> Diagnostic {
    match e {
        ParseError::InvalidToken { location } => {
            Diagnostic::new(Code::InvalidToken, Span::new(location, location + 1), "invalid token", "here")
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = location.min(source.len());
            Diagnostic::new(Code::UnexpectedEnd, Span::new(at, at), "unexpected end of file", expected_list(&expected))
        }
        ParseError::UnrecognizedToken { token: (l, token, r), expected } => {
            let d = Diagnostic::new(Code::UnexpectedToken, Span::new(l, r), format!("unexpected {token}"), expected_list(&expected));
            let digit_follows = source.get(r..).is_some_and(|rest| rest.trim_start().starts_with(|c: char| c.is_ascii_digit()));
            if token == Token::Colon && digit_follows {
                d.with_hint("random bits follow the rounding without spaces: `stochastic:9`")
            } else {
                d
            }
        }
        ParseError::ExtraToken { token: (l, token, r) } => {
            Diagnostic::new(Code::UnexpectedToken, Span::new(l, r), format!("unexpected {token}"), "expected the end of the file")
        }
        ParseError::User { error } => lex_diagnostic(&error),
    }
}
