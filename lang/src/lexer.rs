//! Tokens of the `.qnn` language (logos) and the adapter that feeds them to the lalrpop parser.
//!
//! Whitespace, `// line` and `/* block */` comments are skipped. A lexing error does not stop
//! the lexer: the bad text becomes one error and lexing goes on after it.

use crate::ast::Span;
use logos::Logos;
use std::fmt;

/// Why a piece of text is not a token.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LexErrorKind {
    #[default]
    InvalidCharacter,
    UnterminatedString,
    UnterminatedComment,
    IntegerTooLarge,
    InvalidEscape,
}

/// A lexing error with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub span: Span,
}

fn parse_int<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<i64, LexErrorKind> {
    lex.slice().parse::<i64>().map_err(|_| LexErrorKind::IntegerTooLarge)
}

fn parse_bits<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<i64, LexErrorKind> {
    lex.slice()[1..].parse::<i64>().map_err(|_| LexErrorKind::IntegerTooLarge)
}

fn unterminated_string<'s>(_: &mut logos::Lexer<'s, Token<'s>>) -> Result<(), LexErrorKind> {
    Err(LexErrorKind::UnterminatedString)
}

fn unterminated_comment<'s>(_: &mut logos::Lexer<'s, Token<'s>>) -> Result<(), LexErrorKind> {
    Err(LexErrorKind::UnterminatedComment)
}

fn parse_float<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<f64, LexErrorKind> {
    lex.slice().parse::<f64>().map_err(|_| LexErrorKind::InvalidCharacter)
}

fn parse_string<'s>(lex: &mut logos::Lexer<'s, Token<'s>>) -> Result<String, LexErrorKind> {
    let raw = lex.slice();
    let inner = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            _ => return Err(LexErrorKind::InvalidEscape),
        }
    }
    Ok(out)
}

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexErrorKind)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
#[logos(skip r"/\*([^*]|\*+[^*/])*\*+/")]
pub enum Token<'s> {
    #[token("model")]
    Model,
    #[token("format")]
    Format,
    #[token("input")]
    Input,
    #[token("param")]
    Param,
    #[token("let")]
    Let,
    #[token("output")]
    Output,
    #[token("train")]
    Train,
    #[token("defaults")]
    Defaults,
    #[token("with")]
    With,

    #[regex("[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice())]
    Ident(&'s str),
    #[regex("[0-9]+", parse_int)]
    Int(i64),
    #[regex(r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?", parse_float)]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+", parse_float)]
    Float(f64),
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, parse_string)]
    Str(String),
    /// A string that reaches the end of its line without a closing quote.
    #[regex(r#""([^"\\\n]|\\[^\n])*"#, unterminated_string)]
    UnterminatedString,
    /// `/*` without its `*/`.
    #[regex(r"/\*([^*]|\*+[^*/])*\**", unterminated_comment)]
    UnterminatedComment,

    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    /// `:R` written without spaces after a rounding name: the random bits of `stochastic:R`.
    #[regex(":[0-9]+", parse_bits)]
    Bits(i64),
    #[token("=")]
    Eq,
    #[token("@")]
    At,
    #[token("-")]
    Minus,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Token::Model => "model",
            Token::Format => "format",
            Token::Input => "input",
            Token::Param => "param",
            Token::Let => "let",
            Token::Output => "output",
            Token::Train => "train",
            Token::Defaults => "defaults",
            Token::With => "with",
            Token::Ident(s) => return write!(f, "name `{s}`"),
            Token::Int(n) => return write!(f, "integer `{n}`"),
            Token::Float(x) => return write!(f, "number `{x}`"),
            Token::Str(_) => return f.write_str("string"),
            Token::UnterminatedString | Token::UnterminatedComment => return f.write_str("invalid text"),
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Lt => "<",
            Token::Gt => ">",
            Token::Comma => ",",
            Token::Semi => ";",
            Token::Colon => ":",
            Token::Bits(n) => return write!(f, "`:{n}`"),
            Token::Eq => "=",
            Token::At => "@",
            Token::Minus => "-",
        };
        write!(f, "`{text}`")
    }
}

/// Lexes the whole source: tokens as `(start, token, end)` for lalrpop, and lexing errors.
pub fn tokenize(source: &str) -> (Vec<(usize, Token<'_>, usize)>, Vec<LexError>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    let mut lex = Token::lexer(source);
    while let Some(result) = lex.next() {
        let range = lex.span();
        match result {
            Ok(token) => tokens.push((range.start, token, range.end)),
            Err(kind) => errors.push(LexError { kind, span: Span::new(range.start, range.end) }),
        }
    }
    (tokens, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_roundings_and_numbers_lex_as_expected() {
        let (tokens, errors) = tokenize("fp<6,5,nosub> stochastic:9 5e-4 0.1 nearest-away // c\n /* b */ \"w.npz\"");
        assert!(errors.is_empty(), "{errors:?}");
        let kinds: Vec<Token<'_>> = tokens.into_iter().map(|(_, t, _)| t).collect();
        assert_eq!(
            kinds,
            vec![
                Token::Ident("fp"),
                Token::Lt,
                Token::Int(6),
                Token::Comma,
                Token::Int(5),
                Token::Comma,
                Token::Ident("nosub"),
                Token::Gt,
                Token::Ident("stochastic"),
                Token::Bits(9),
                Token::Float(5e-4),
                Token::Float(0.1),
                Token::Ident("nearest"),
                Token::Minus,
                Token::Ident("away"),
                Token::Str("w.npz".into()),
            ]
        );
    }

    #[test]
    fn bad_text_is_reported_and_lexing_goes_on() {
        let (tokens, errors) = tokenize("a $ b \"open\n 99999999999999999999 /* never closed");
        let kinds: Vec<LexErrorKind> = errors.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                LexErrorKind::InvalidCharacter,
                LexErrorKind::UnterminatedString,
                LexErrorKind::IntegerTooLarge,
                LexErrorKind::UnterminatedComment
            ]
        );
        assert_eq!(tokens.len(), 2);
    }
}
