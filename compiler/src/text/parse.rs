//! The parser of the textual IR (grammar in spec/ir.md): a hand-written recursive descent
//! over bytes that builds a [`Module`] directly, resolves value names by scope, checks each
//! op's written signature against its operands' types, and reports the first error as a
//! [`Diagnostic`] with an exact byte span and a hint. It never panics, whatever the input.

use crate::dialect;
use crate::diag::Diagnostic;
use crate::ir::{Arith, Attr, BlockId, Chunk, Dim, Func, Module, RegionId, RoundTo, Span, TensorType, Type, ValueId};
use qc_runtime::numerics::{suggest, Format, Rounding};
use std::collections::{BTreeMap, HashMap};

/// Parses a whole module.
pub fn parse_module(source: &str) -> Result<Module, Diagnostic> {
    let mut p = Parser { src: source, pos: 0, module: Module::new(), scopes: Vec::new(), depth: 0 };
    p.skip_trivia();
    while p.pos < p.src.len() {
        p.func()?;
        p.skip_trivia();
    }
    Ok(p.module)
}

/// Regions and attributes may nest this deep (deeper input is an error, not a stack overflow).
const MAX_DEPTH: usize = 64;

type PResult<T> = Result<T, Diagnostic>;

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    module: Module,
    /// Names visible in each enclosing block, innermost last.
    scopes: Vec<HashMap<String, ValueId>>,
    depth: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'s> Parser<'s> {
    // ---- characters -------------------------------------------------------------------

    fn skip_trivia(&mut self) {
        loop {
            let rest = &self.src.as_bytes()[self.pos..];
            if let Some(b) = rest.first().filter(|b| b.is_ascii_whitespace()) {
                let _ = b;
                self.pos += 1;
            } else if rest.starts_with(b"//") {
                self.pos += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            } else {
                return;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    /// The span of the character at the cursor (empty at the end of input).
    fn here(&self) -> Span {
        let len = self.src[self.pos..].chars().next().map_or(0, char::len_utf8);
        self.pos..self.pos + len
    }

    fn error(&self, code: &'static str, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, message, Some(span), label)
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        let found = match self.src[self.pos..].chars().next() {
            None => "the end of the input".to_string(),
            Some(c) => format!("`{c}`"),
        };
        self.error("P001", format!("expected {expected}, found {found}"), self.here(), format!("expected {expected}"))
    }

    /// Skips trivia, then consumes `token` if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_trivia();
        if self.src[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> PResult<Span> {
        self.skip_trivia();
        let start = self.pos;
        if self.eat(token) {
            Ok(start..self.pos)
        } else {
            Err(self.unexpected(&format!("`{token}`")))
        }
    }

    /// `[A-Za-z0-9_]` plus `extra` bytes, at least one.
    fn word_with(&mut self, extra: &[u8], what: &str) -> PResult<(&'s str, Span)> {
        self.skip_trivia();
        let start = self.pos;
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && (is_word_byte(bytes[self.pos]) || extra.contains(&bytes[self.pos])) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected(what));
        }
        Ok((&self.src[start..self.pos], start..self.pos))
    }

    /// A word optionally followed by a balanced `<...>` (format syntax), e.g. `fp<6,5,nosub>`.
    fn spelled(&mut self, what: &str) -> PResult<(&'s str, Span)> {
        let (_, span) = self.word_with(b"-:", what)?;
        let start = span.start;
        if self.peek() == Some(b'<') {
            let mut depth = 0usize;
            while let Some(b) = self.peek() {
                self.pos += 1;
                match b {
                    b'<' => depth += 1,
                    b'>' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b'\n' | b'{' | b'}' | b'(' | b')' => {
                        self.pos -= 1;
                        break;
                    }
                    _ => {}
                }
            }
            if depth != 0 {
                return Err(self.error("P001", format!("`{}` is missing its closing `>`", &self.src[start..self.pos]), start..self.pos, "unclosed `<`"));
            }
        }
        Ok((&self.src[start..self.pos], start..self.pos))
    }

    fn nest(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("P015", format!("nesting deeper than {MAX_DEPTH} levels"), self.here(), "too deep"));
        }
        Ok(())
    }

    // ---- leaves -----------------------------------------------------------------------

    fn format(&mut self) -> PResult<Format> {
        let (text, span) = self.spelled("a format")?;
        Format::parse(text).map_err(|e| {
            self.error("P005", format!("invalid format `{text}`: {}", e.message), span, "not a format")
                .with_hint(e.suggestion.map(|s| format!("did you mean `{s}`?")))
        })
    }

    fn rounding(&mut self) -> PResult<Rounding> {
        let (text, span) = self.word_with(b"-:", "a rounding mode")?;
        Rounding::parse(text).map_err(|e| {
            self.error("P006", format!("invalid rounding mode `{text}`"), span, "not a rounding mode").with_hint(Some(e))
        })
    }

    fn unsigned(&mut self, what: &str) -> PResult<(u64, Span)> {
        self.skip_trivia();
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.unexpected(what));
        }
        let text = &self.src[start..self.pos];
        text.parse().map(|n| (n, start..self.pos)).map_err(|_| {
            self.error("P008", format!("`{text}` is too large"), start..self.pos, "integer overflow")
        })
    }

    fn ty(&mut self) -> PResult<Type> {
        self.skip_trivia();
        let start = self.pos;
        if self.src[self.pos..].starts_with("tensor<") {
            self.pos += "tensor<".len();
            let mut dims = Vec::new();
            loop {
                self.skip_trivia();
                match self.peek() {
                    Some(b'?') => {
                        self.pos += 1;
                        dims.push(Dim::Dynamic);
                    }
                    Some(b) if b.is_ascii_digit() => dims.push(Dim::Fixed(self.unsigned("a dimension")?.0)),
                    _ => break,
                }
                if self.peek() != Some(b'x') {
                    return Err(self.unexpected("`x` after a dimension"));
                }
                self.pos += 1;
            }
            let format = self.format()?;
            self.expect(">")?;
            return Ok(Type::Tensor(TensorType::new(dims, format)));
        }
        let (text, span) = self.spelled("a type")?;
        match text {
            "index" => Ok(Type::Index),
            "real" => Ok(Type::Real),
            _ => match Format::parse(text) {
                Ok(f) => Ok(Type::Scalar(f)),
                Err(e) => {
                    let hint = e.suggestion.map(|s| format!("did you mean `{s}`?")).unwrap_or_else(|| {
                        "a type is `tensor<DIMSxFORMAT>`, a format (a scalar), `index` or `real`".into()
                    });
                    Err(self.error("P007", format!("unknown type `{text}`"), start..span.end, "not a type").with_hint(Some(hint)))
                }
            },
        }
    }

    /// `(T, ...)`.
    fn type_list(&mut self) -> PResult<Vec<Type>> {
        self.expect("(")?;
        let mut types = Vec::new();
        if !self.eat(")") {
            loop {
                types.push(self.ty()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(types)
    }

    // ---- values -----------------------------------------------------------------------

    fn value_name(&mut self) -> PResult<(&'s str, Span)> {
        self.skip_trivia();
        let start = self.pos;
        if self.peek() != Some(b'%') {
            return Err(self.unexpected("a value (`%name`)"));
        }
        self.pos += 1;
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && is_word_byte(bytes[self.pos]) {
            self.pos += 1;
        }
        if self.pos == start + 1 {
            return Err(self.error("P001", "a value name is empty", start..self.pos, "expected a name after `%`"));
        }
        Ok((&self.src[start + 1..self.pos], start..self.pos))
    }

    fn lookup(&self, name: &str, span: Span) -> PResult<ValueId> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied()).ok_or_else(|| {
            self.error("P003", format!("use of undefined value `%{name}`"), span, "not defined before this use")
                .with_hint(Some("a value is visible after its definition, in the same block and in regions nested there".into()))
        })
    }

    fn define(&mut self, name: &str, span: Span, v: ValueId) -> PResult<()> {
        if self.scopes.iter().any(|s| s.contains_key(name)) {
            return Err(self.error("P004", format!("`%{name}` is already defined"), span, "redefined here")
                .with_hint(Some("SSA values are defined once; pick another name".into())));
        }
        self.module.values[v].name = Some(name.to_string());
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_string(), v);
        }
        Ok(())
    }

    // ---- structure --------------------------------------------------------------------

    fn func(&mut self) -> PResult<()> {
        let kw = self.expect("func")?;
        self.skip_trivia();
        if self.peek() != Some(b'@') {
            return Err(self.unexpected("a function name (`@name`)"));
        }
        self.pos += 1;
        let (name, name_span) = self.word_with(b"", "a function name")?;
        self.expect("(")?;
        let mut params = Vec::new();
        if !self.eat(")") {
            loop {
                let (pname, pspan) = self.value_name()?;
                self.expect(":")?;
                params.push((pname, pspan, self.ty()?));
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.expect("->")?;
        let results = self.type_list()?;
        let body = self.module.new_region();
        let entry = self.module.new_block(body, params.iter().map(|p| p.2.clone()).collect());
        self.scopes.push(HashMap::new());
        for (i, (pname, pspan, _)) in params.into_iter().enumerate() {
            let v = self.module.blocks[entry].args[i];
            self.define(pname, pspan, v)?;
        }
        self.expect("{")?;
        self.blocks(body, Some(entry))?;
        self.module.funcs.push(Func { name: name.to_string(), body, results, span: Some(kw.start..name_span.end) });
        Ok(())
    }

    /// Blocks up to the closing `}`. The first block may be unlabelled. For a function body
    /// `entry` is its entry block, whose scope (the parameters) the caller has pushed; every
    /// block's scope is popped when the next label or the closing `}` is reached.
    fn blocks(&mut self, region: RegionId, entry: Option<BlockId>) -> PResult<()> {
        let base = self.scopes.len() - usize::from(entry.is_some());
        let mut current = entry;
        loop {
            self.skip_trivia();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    if self.module.regions[region].blocks.is_empty() {
                        self.module.new_block(region, Vec::new());
                    }
                    self.scopes.truncate(base);
                    return Ok(());
                }
                Some(b'^') => {
                    self.scopes.truncate(base);
                    current = Some(self.label(region)?);
                }
                None => return Err(self.unexpected("`}` closing the region")),
                _ => {
                    let block = match current {
                        Some(b) => b,
                        None => {
                            self.scopes.push(HashMap::new());
                            let b = self.module.new_block(region, Vec::new());
                            current = Some(b);
                            b
                        }
                    };
                    self.op(block)?;
                }
            }
        }
    }

    /// `^name(%a: T, ...):` — a new block in `region`, its scope pushed.
    fn label(&mut self, region: RegionId) -> PResult<BlockId> {
        self.pos += 1;
        self.word_with(b"", "a block name")?;
        let mut args = Vec::new();
        if self.eat("(") && !self.eat(")") {
            loop {
                let (name, span) = self.value_name()?;
                self.expect(":")?;
                args.push((name, span, self.ty()?));
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.expect(":")?;
        let block = self.module.new_block(region, args.iter().map(|a| a.2.clone()).collect());
        self.scopes.push(HashMap::new());
        for (i, (name, span, _)) in args.into_iter().enumerate() {
            let v = self.module.blocks[block].args[i];
            self.define(name, span, v)?;
        }
        Ok(block)
    }

    fn op(&mut self, block: BlockId) -> PResult<()> {
        self.skip_trivia();
        let start = self.pos;
        let mut result_names = Vec::new();
        if self.peek() == Some(b'%') {
            loop {
                result_names.push(self.value_name()?);
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("=")?;
        }
        let (name, name_span) = self.word_with(b".", "an op name (`dialect.op`)")?;
        let Some(def) = dialect::lookup(name) else {
            let hint = dialect::suggest(name).map(|s| format!("did you mean `{s}`?"));
            return Err(self.error("P002", format!("unknown op `{name}`"), name_span, "not a registered op").with_hint(
                hint.or_else(|| Some("ops are `dialect.name` with dialect func, nn, q or kernel (see spec/ir.md)".into())),
            ));
        };
        let mut operands = Vec::new();
        self.skip_trivia();
        if self.peek() == Some(b'%') {
            loop {
                let (n, span) = self.value_name()?;
                operands.push((self.lookup(n, span.clone())?, span));
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.skip_trivia();
        let attrs = if self.peek() == Some(b'{') { self.dict()? } else { BTreeMap::new() };
        self.expect(":")?;
        let sig_start = self.pos;
        let operand_types = self.type_list()?;
        self.expect("->")?;
        self.skip_trivia();
        let result_types = if self.peek() == Some(b'(') { self.type_list()? } else { vec![self.ty()?] };
        let end = self.pos;
        if operand_types.len() != operands.len() {
            return Err(self.error(
                "P010",
                format!("`{name}` has {} operand(s) but its signature lists {} type(s)", operands.len(), operand_types.len()),
                sig_start..end,
                "this signature",
            ));
        }
        for ((v, span), declared) in operands.iter().zip(&operand_types) {
            let actual = self.module.ty(*v);
            if actual != declared {
                return Err(self.error(
                    "P011",
                    format!("`{}` has type `{actual}` but the signature says `{declared}`", &self.src[span.clone()]),
                    span.clone(),
                    format!("this is `{actual}`"),
                ));
            }
        }
        if result_types.len() != result_names.len() {
            return Err(self.error(
                "P010",
                format!("{} result name(s) for {} result type(s)", result_names.len(), result_types.len()),
                start..end,
                "this op",
            ));
        }
        let mut regions = Vec::new();
        self.skip_trivia();
        while self.peek() == Some(b'{') {
            self.pos += 1;
            self.nest()?;
            let region = self.module.new_region();
            self.blocks(region, None)?;
            self.depth -= 1;
            regions.push(region);
            self.skip_trivia();
        }
        let op = self.module.new_op(def, operands.into_iter().map(|o| o.0).collect(), result_types, attrs, regions, Some(start..end));
        self.module.append_op(block, op);
        for (i, (rname, rspan)) in result_names.into_iter().enumerate() {
            let v = self.module.ops[op].results[i];
            self.define(rname, rspan, v)?;
        }
        Ok(())
    }

    // ---- attributes -------------------------------------------------------------------

    /// `{key = value, ...}`.
    fn dict(&mut self) -> PResult<BTreeMap<String, Attr>> {
        self.expect("{")?;
        self.nest()?;
        let mut map = BTreeMap::new();
        if !self.eat("}") {
            loop {
                let (key, span) = self.word_with(b"", "an attribute name")?;
                self.expect("=")?;
                let value = self.attr()?;
                if map.insert(key.to_string(), value).is_some() {
                    return Err(self.error("P009", format!("attribute `{key}` is given twice"), span, "repeated"));
                }
                if self.eat("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        self.depth -= 1;
        Ok(map)
    }

    fn attr(&mut self) -> PResult<Attr> {
        self.skip_trivia();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => self.string().map(Attr::Str),
            Some(b'[') => {
                self.pos += 1;
                self.nest()?;
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.attr()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                self.depth -= 1;
                Ok(Attr::Array(items))
            }
            Some(b'{') => self.dict().map(Attr::Dict),
            Some(b'#') => {
                self.pos += 1;
                let (kind, span) = self.word_with(b"", "`arith` or `chunk`")?;
                self.expect("<")?;
                let attr = match kind {
                    "arith" => Attr::Arith(self.arith(start)?),
                    "chunk" => Attr::Chunk(self.chunk_body()?),
                    _ => {
                        return Err(self.error("P009", format!("unknown attribute `#{kind}`"), span, "not an attribute kind")
                            .with_hint(Some("structured attributes are `#arith<...>` and `#chunk<...>`".into())))
                    }
                };
                self.expect(">")?;
                Ok(attr)
            }
            Some(b) if b == b'-' || b.is_ascii_digit() => self.number(),
            _ => {
                let (text, span) = self.spelled("an attribute value")?;
                match text {
                    "inf" => return Ok(Attr::Float(f64::INFINITY)),
                    "nan" => return Ok(Attr::Float(f64::NAN)),
                    _ => {}
                }
                if let Ok(r) = Rounding::parse(text) {
                    return Ok(Attr::Rounding(r));
                }
                Format::parse(text).map(Attr::Format).map_err(|e| {
                    self.error("P009", format!("`{text}` is neither a rounding mode nor a format: {}", e.message), span, "unknown value")
                        .with_hint(Some(e.suggestion.map_or_else(
                            || "an attribute is a number, a string, a format, a rounding mode, [...], {...} or #arith<...>".to_string(),
                            |s| format!("did you mean `{s}`?"),
                        )))
                })
            }
        }
    }

    fn number(&mut self) -> PResult<Attr> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        if self.src[self.pos..].starts_with("-inf") {
            self.pos += 4;
            return Ok(Attr::Float(f64::NEG_INFINITY));
        }
        if bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let mut float = false;
        while let Some(&b) = bytes.get(self.pos) {
            let exponent_sign = (b == b'-' || b == b'+') && matches!(bytes[self.pos - 1], b'e' | b'E');
            if b.is_ascii_digit() || exponent_sign {
                self.pos += 1;
            } else if matches!(b, b'.' | b'e' | b'E') {
                float = true;
                self.pos += 1;
            } else {
                break;
            }
        }
        let text = &self.src[start..self.pos];
        let bad = |p: &Self| p.error("P008", format!("`{text}` is not a number"), start..p.pos, "malformed number");
        if float {
            text.parse().map(Attr::Float).map_err(|_| bad(self))
        } else {
            text.parse().map(Attr::Int).map_err(|_| bad(self))
        }
    }

    fn string(&mut self) -> PResult<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return Err(self.error("P013", "unterminated string", start..self.pos, "this string is not closed"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self.src[self.pos..].chars().next();
                    self.pos += e.map_or(0, char::len_utf8);
                    out.push(match e {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        _ => {
                            return Err(self.error("P013", "unknown escape in a string", self.pos - 2..self.pos, "use \\\" \\\\ \\n or \\t"))
                        }
                    });
                }
                c => out.push(c),
            }
        }
    }

    /// `FORMAT @ ROUNDING`.
    fn round_to(&mut self) -> PResult<RoundTo> {
        let format = self.format()?;
        self.expect("@")?;
        Ok(RoundTo { format, rounding: self.rounding()? })
    }

    /// The inside of `#chunk<N @ FORMAT @ ROUNDING>`.
    fn chunk_body(&mut self) -> PResult<Chunk> {
        let (size, _) = self.unsigned("the chunk size")?;
        self.expect("@")?;
        let RoundTo { format, rounding } = self.round_to()?;
        Ok(Chunk { size, format, rounding })
    }

    /// The inside of `#arith<...>`; `start` is the `#`.
    fn arith(&mut self, start: usize) -> PResult<Arith> {
        const FIELDS: [&str; 6] = ["mul", "acc", "chunk", "out", "fma", "stream"];
        let mut mul = None;
        let mut acc = None;
        let mut chunk: Option<(u64, Format, Option<Rounding>)> = None;
        let mut out = None;
        let mut fma = false;
        let mut stream = None;
        let mut seen = Vec::new();
        loop {
            let (key, span) = self.word_with(b"", "an #arith field")?;
            if seen.contains(&key) {
                return Err(self.error("P009", format!("`{key}` is given twice in #arith"), span, "repeated"));
            }
            seen.push(key);
            match key {
                "fma" => fma = true,
                "mul" | "acc" | "chunk" | "out" | "stream" => {
                    self.expect("=")?;
                    match key {
                        "mul" => {
                            self.skip_trivia();
                            mul = Some(if self.src[self.pos..].starts_with("exact") {
                                self.pos += "exact".len();
                                None
                            } else {
                                Some(self.round_to()?)
                            });
                        }
                        "acc" => acc = Some(self.round_to()?),
                        "chunk" => {
                            let (size, _) = self.unsigned("the chunk size")?;
                            self.expect("@")?;
                            let format = self.format()?;
                            let rounding = if self.eat("@") { Some(self.rounding()?) } else { None };
                            chunk = Some((size, format, rounding));
                        }
                        "out" => out = Some(self.rounding()?),
                        _ => {
                            let (n, nspan) = self.unsigned("a stream number")?;
                            stream = Some(u32::try_from(n).map_err(|_| {
                                self.error("P008", format!("stream {n} does not fit in 32 bits"), nspan, "too large")
                            })?);
                        }
                    }
                }
                _ => {
                    return Err(self.error("P009", format!("`{key}` is not a field of #arith"), span, "unknown field").with_hint(Some(
                        match suggest::closest(key, FIELDS) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("fields: {}", FIELDS.join(", ")),
                        },
                    )))
                }
            }
            self.skip_trivia();
            if self.peek() == Some(b'>') {
                break;
            }
            self.expect(",")?;
        }
        let (Some(mul), Some(acc)) = (mul, acc) else {
            return Err(self.error("P009", "#arith needs both `mul` and `acc`", start..self.pos + 1, "incomplete #arith")
                .with_hint(Some("e.g. #arith<mul=exact, acc=fp32 @ nearest>".into())));
        };
        let chunk = chunk.map(|(size, format, rounding)| Chunk { size, format, rounding: rounding.unwrap_or(acc.rounding) });
        Ok(Arith { mul, acc, chunk, out: out.unwrap_or(Rounding::Nearest), fma, stream })
    }
}
