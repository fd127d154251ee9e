//! The crate's module graph, checked: no cycle between the top-level modules of `src/`,
//! every import between them allowed by the layer table `ALLOWED` below, and the sibling
//! modules of `INDEPENDENT` (the two backends, the two fronts) independent of each other.
//!
//! Run it with `scripts/check-layers` (or `cargo test --test layers`);
//! `scripts/check-layers --demo-cycle` shows that it fails when a cycle appears.
//!
//! How: `src/` is read as text (no `syn`). Each file is mapped to its module (`src/lib.rs`
//! is the crate root, `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`; `src/main.rs` and
//! `src/bin/` are binaries and skipped). Comments (doc comments included), string and
//! char literals are dropped; every path that starts with `crate::`, `super::` or `self::`
//! is then read, in `use` trees with nested braces and inline in code, relative to the
//! module it appears in (inline `mod x { .. }` blocks included), and resolved to the
//! longest module prefix that exists. Code under `#[cfg(test)]` counts: a test that imports
//! another layer is a dependency too.
//!
//! What the scan does not see: an import through an alias (`use crate::backend as b;`
//! then `b::local::X` counts as `backend` only), an item re-exported by the crate root
//! (`crate::Error` points at the root, which is no layer and is ignored), code generated
//! by macros, `#[path]` attributes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};

// ----------------------------------------------------------------------------------------
// The rules: edit these two tables when the layout changes.
// ----------------------------------------------------------------------------------------

/// In `ALLOWED`, lets a module import every other top-level module (only `app`, which
/// wires the layers together).
const ANY: &str = "*";

/// Each top-level module of `src/`, and the top-level modules it may import (by `use` or
/// by an inline `crate::..` / `super::..` path). A module missing from this table fails
/// the check: add it, with the shortest list that builds. The table itself must stay
/// acyclic (`unit::allowed_table_is_acyclic_and_names_each_module_once` checks it).
#[rustfmt::skip]
const ALLOWED: &[(&str, &[&str])] = &[
    ("config",        &[]),
    ("observability", &[]),
    ("domain",        &[]),
    ("proto",         &[]),
    ("twilio_api",    &["domain"]),
    ("backend",       &["domain", "twilio_api", "config", "observability"]),
    ("front",         &["domain", "backend", "twilio_api", "observability", "proto", "config"]),
    ("transport",     &["domain", "backend", "twilio_api", "front", "observability", "config"]),
    ("app",           &[ANY]),
];

/// Sibling modules that must not import each other: a top-level module, and those of its
/// children that are independent (what they share lives in the parent, or below it).
const INDEPENDENT: &[(&str, &[&str])] = &[
    ("backend", &["local", "twilio"]),
    ("front", &["grpc", "rest"]),
];

// ----------------------------------------------------------------------------------------
// The checks of this crate's `src/`.
// ----------------------------------------------------------------------------------------

#[test]
fn top_level_modules_are_acyclic() {
    let analysis = analyze(&crate_sources());
    if let Err(report) = check_acyclic(&analysis.top_level_graph()) {
        panic!("\n{report}");
    }
}

#[test]
fn top_level_modules_follow_the_layer_table() {
    let analysis = analyze(&crate_sources());
    if let Err(report) = check_layers(&analysis.top_level_graph(), ALLOWED) {
        panic!("\n{report}");
    }
}

#[test]
fn sibling_modules_are_independent() {
    let analysis = analyze(&crate_sources());
    if let Err(report) = check_independent(&analysis, INDEPENDENT) {
        panic!("\n{report}");
    }
}

/// Every `.rs` file of `src/` that is a module of the library, in path order.
fn crate_sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    collect_rust_files(&src, &mut files);
    files.sort();
    let sources: Vec<Source> = files
        .iter()
        .filter_map(|path| {
            let module = module_path(path.strip_prefix(&src).ok()?)?;
            let text = fs::read_to_string(path)
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            let file = path.strip_prefix(root).ok()?.to_string_lossy();
            Some(Source {
                module,
                file: file.replace('\\', "/"),
                text,
            })
        })
        .collect();
    assert!(
        sources.iter().any(|source| source.module.is_empty()),
        "no src/lib.rs under {}",
        root.display()
    );
    sources
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The module a file under `src/` is, from its path relative to `src/`; `None` for the
/// binaries (`main.rs`, `bin/`) and what is not a `.rs` file.
fn module_path(relative: &Path) -> Option<ModPath> {
    let mut parts = relative
        .iter()
        .map(|part| part.to_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    match (parts.first().map(String::as_str), stem) {
        (None, "main") | (Some("bin"), _) => None,
        (None, "lib") => Some(Vec::new()),
        (None, "mod") => None,
        (_, "mod") => Some(parts),
        _ => {
            parts.push(stem.to_owned());
            Some(parts)
        }
    }
}

// ----------------------------------------------------------------------------------------
// The analysis: sources in, references between modules out.
// ----------------------------------------------------------------------------------------

/// A module path, one segment per element; empty for the crate root.
type ModPath = Vec<String>;

/// A rule table: `ALLOWED` or `INDEPENDENT`.
type Table<'a> = &'a [(&'a str, &'a [&'a str])];

/// One module's source, and the file to name in messages.
#[derive(Debug)]
struct Source {
    module: ModPath,
    file: String,
    text: String,
}

/// Where a reference is: the file, and the line of the reference's last module segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A path in module `from` that names module `to` (or an item of it).
#[derive(Debug)]
struct Reference {
    from: ModPath,
    to: ModPath,
    site: Site,
}

#[derive(Debug)]
struct Analysis {
    /// Every module: one per source, its inline `mod x { .. }` blocks, their ancestors.
    modules: BTreeSet<ModPath>,
    /// Every reference to a module other than the crate root, in source order.
    references: Vec<Reference>,
}

/// A path as the scan read it, made absolute: each segment with its line.
type Segments = Vec<(String, usize)>;

fn analyze(sources: &[Source]) -> Analysis {
    let mut modules = BTreeSet::new();
    let mut found = Vec::new();
    for source in sources {
        let scan = scan(&source.module, &lex(&source.text));
        modules.insert(source.module.clone());
        modules.extend(scan.inline_modules);
        found.extend(
            scan.paths
                .into_iter()
                .map(|(from, path)| (source, from, path)),
        );
    }
    let ancestors: Vec<ModPath> = modules
        .iter()
        .flat_map(|module| (1..module.len()).map(|n| module[..n].to_vec()))
        .collect();
    modules.extend(ancestors);

    let references = found
        .into_iter()
        .filter_map(|(source, from, path)| {
            // The longest prefix of the path that is a module; none (but the root): ignored.
            let len = (1..=path.len()).rev().find(|&n| {
                let prefix: ModPath = path[..n].iter().map(|(name, _)| name.clone()).collect();
                modules.contains(&prefix)
            })?;
            Some(Reference {
                from,
                to: path[..len].iter().map(|(name, _)| name.clone()).collect(),
                site: Site {
                    file: source.file.clone(),
                    line: path[len - 1].1,
                },
            })
        })
        .collect();
    Analysis {
        modules,
        references,
    }
}

impl Analysis {
    /// The graph between top-level modules: a reference from `a::..` to `b::..` is an edge
    /// `a -> b`. References from the crate root, and within one top-level module, are none.
    fn top_level_graph(&self) -> Graph {
        let mut graph = Graph {
            nodes: self
                .modules
                .iter()
                .filter_map(|module| module.first().cloned())
                .collect(),
            edges: BTreeMap::new(),
        };
        for reference in &self.references {
            let (Some(from), Some(to)) = (reference.from.first(), reference.to.first()) else {
                continue;
            };
            if from != to {
                graph.add_edge(from, to, reference.site.clone());
            }
        }
        graph.finish();
        graph
    }
}

/// A directed graph between names, each edge with the sites that make it.
#[derive(Debug, Default)]
struct Graph {
    nodes: BTreeSet<String>,
    edges: BTreeMap<String, BTreeMap<String, Vec<Site>>>,
}

impl Graph {
    fn add_edge(&mut self, from: &str, to: &str, site: Site) {
        self.nodes.insert(from.to_owned());
        self.nodes.insert(to.to_owned());
        self.edges
            .entry(from.to_owned())
            .or_default()
            .entry(to.to_owned())
            .or_default()
            .push(site);
    }

    /// Sorts and deduplicates each edge's sites.
    fn finish(&mut self) {
        for sites in self.edges.values_mut().flat_map(BTreeMap::values_mut) {
            sites.sort();
            sites.dedup();
        }
    }

    fn successors<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a String> + use<'a> {
        self.edges.get(node).into_iter().flat_map(BTreeMap::keys)
    }

    fn sites(&self, from: &str, to: &str) -> &[Site] {
        self.edges
            .get(from)
            .and_then(|targets| targets.get(to))
            .map_or(&[], Vec::as_slice)
    }

    /// The nodes reachable from `start` in one or more steps.
    fn reachable(&self, start: &str) -> BTreeSet<&String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&String> = self.successors(start).collect();
        while let Some(node) = queue.pop_front() {
            if seen.insert(node) {
                queue.extend(self.successors(node));
            }
        }
        seen
    }

    /// A shortest path `from -> .. -> to` through `within` only, both ends included.
    fn shortest_path(&self, from: &str, to: &str, within: &BTreeSet<&String>) -> Vec<String> {
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = vec![to.to_owned()];
                let mut at = to;
                while at != from {
                    at = previous[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return path;
            }
            for next in self.successors(node) {
                if within.contains(next) && next != from && !previous.contains_key(next.as_str()) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        Vec::new()
    }

    /// The cycles to report: for every edge that lies on a cycle, the shortest cycle
    /// through that edge. Each cycle is listed once, starting at its smallest node,
    /// without repeating it at the end; shortest cycles first.
    fn cycles(&self) -> Vec<Vec<String>> {
        let reach: BTreeMap<&String, BTreeSet<&String>> = self
            .nodes
            .iter()
            .map(|node| (node, self.reachable(node)))
            .collect();
        let mut cycles = BTreeSet::new();
        for (from, targets) in &self.edges {
            // The strongly connected component of `from`.
            let component: BTreeSet<&String> = reach[from]
                .iter()
                .copied()
                .filter(|&other| reach[other].contains(from))
                .collect();
            for to in targets.keys().filter(|&to| component.contains(to)) {
                // `to -> .. -> from`, then the edge `from -> to` closes it.
                let mut cycle = self.shortest_path(to, from, &component);
                let smallest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(smallest);
                cycles.insert(cycle);
            }
        }
        let mut cycles: Vec<_> = cycles.into_iter().collect();
        cycles.sort_by_key(Vec::len);
        cycles
    }
}

// ----------------------------------------------------------------------------------------
// The checks, on an analysis: `Err` holds the report.
// ----------------------------------------------------------------------------------------

fn check_acyclic(graph: &Graph) -> Result<(), String> {
    let cycles = graph.cycles();
    if cycles.is_empty() {
        return Ok(());
    }
    let mut report = format!(
        "{} cycle(s) between the top-level modules of src/ (every edge that lies on a cycle, \
         in its shortest cycle; each edge with the first file:line that makes it):\n",
        cycles.len()
    );
    for cycle in &cycles {
        let closed: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(String::as_str)
            .collect();
        writeln!(report, "cycle: {}", closed.join(" -> ")).unwrap();
        for pair in closed.windows(2) {
            let sites = graph.sites(pair[0], pair[1]);
            write!(report, "    {} -> {}: {}", pair[0], pair[1], sites[0]).unwrap();
            if sites.len() > 1 {
                write!(report, " (and {} more)", sites.len() - 1).unwrap();
            }
            report.push('\n');
        }
    }
    Err(report)
}

fn check_layers(graph: &Graph, table: Table<'_>) -> Result<(), String> {
    let rules: BTreeMap<&str, &[&str]> = table.iter().copied().collect();
    let mut report = String::new();
    for node in &graph.nodes {
        if !rules.contains_key(node.as_str()) {
            writeln!(
                report,
                "module `{node}` is not in the layer table: add it to ALLOWED at the top of \
                 tests/layers.rs, with the top-level modules it may import"
            )
            .unwrap();
        }
    }
    for (from, targets) in &graph.edges {
        let Some(allowed) = rules.get(from.as_str()) else {
            continue;
        };
        for (to, sites) in targets {
            if allowed.contains(&ANY) || allowed.contains(&to.as_str()) {
                continue;
            }
            let may = if allowed.is_empty() {
                "nothing".to_owned()
            } else {
                allowed.join(", ")
            };
            writeln!(
                report,
                "{from} -> {to} is not allowed ({from} may import: {may}), at:"
            )
            .unwrap();
            for site in sites {
                writeln!(report, "    {site}").unwrap();
            }
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "imports between top-level modules of src/ that the layer table does not allow:\n\
             {report}"
        ))
    }
}

fn check_independent(analysis: &Analysis, table: Table<'_>) -> Result<(), String> {
    let mut edges: BTreeMap<(String, String), Vec<&Site>> = BTreeMap::new();
    for reference in &analysis.references {
        let (from, to) = (&reference.from, &reference.to);
        if from.len() < 2 || to.len() < 2 || from[0] != to[0] || from[1] == to[1] {
            continue;
        }
        let independent = table.iter().any(|(parent, children)| {
            from[0] == *parent
                && children.contains(&from[1].as_str())
                && children.contains(&to[1].as_str())
        });
        if independent {
            edges
                .entry((from[..2].join("::"), to[..2].join("::")))
                .or_default()
                .push(&reference.site);
        }
    }
    if edges.is_empty() {
        return Ok(());
    }
    let mut report =
        "sibling modules that must stay independent (INDEPENDENT in tests/layers.rs) import \
         each other:\n"
            .to_owned();
    for ((from, to), mut sites) in edges {
        sites.sort();
        sites.dedup();
        writeln!(report, "{from} -> {to}, at:").unwrap();
        for site in sites {
            writeln!(report, "    {site}").unwrap();
        }
    }
    Err(report)
}

// ----------------------------------------------------------------------------------------
// Reading Rust source as text: a lexer that drops comments and literals, and a scan of
// its tokens for module paths.
// ----------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    /// Any other punctuation, a literal, a lifetime.
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn char_at(chars: &[char], i: usize) -> char {
    chars.get(i).copied().unwrap_or('\0')
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The tokens of `text` that matter for paths, each with its line (from 1). Comments
/// (`//`, `///`, `//!`, nested `/* */`) are skipped; string, raw string, byte string and
/// char literals become `Tok::Other`, so nothing inside them counts.
fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| char_at(&chars, i);
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let tok = match c {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                i = skip_block_comment(&chars, i, &mut line);
                continue;
            }
            '"' => {
                i = skip_string(&chars, i + 1, &mut line);
                Tok::Other
            }
            '\'' => {
                i = skip_quote(&chars, i);
                Tok::Other
            }
            ':' if at(i + 1) == ':' => {
                i += 2;
                Tok::PathSep
            }
            '{' | '}' | ',' | ';' | '*' => {
                i += 1;
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    _ => Tok::Star,
                }
            }
            _ if is_ident_start(c) => {
                if let Some(end) = skip_raw_string(&chars, i, &mut line) {
                    i = end;
                    Tok::Other
                } else {
                    let start = i;
                    while is_ident_continue(at(i)) {
                        i += 1;
                    }
                    let mut word: String = chars[start..i].iter().collect();
                    // A raw identifier: `r#type` is `type`.
                    if word == "r" && at(i) == '#' && is_ident_start(at(i + 1)) {
                        let start = i + 1;
                        i = start;
                        while is_ident_continue(at(i)) {
                            i += 1;
                        }
                        word = chars[start..i].iter().collect();
                    }
                    Tok::Ident(word)
                }
            }
            _ if c.is_ascii_digit() => {
                while is_ident_continue(at(i)) {
                    i += 1;
                }
                Tok::Other
            }
            _ => {
                i += 1;
                Tok::Other
            }
        };
        tokens.push(Token {
            tok,
            line: start_line,
        });
    }
    tokens
}

/// Past the (nested) block comment that starts at `i`.
fn skip_block_comment(chars: &[char], i: usize, line: &mut usize) -> usize {
    let mut i = i + 2;
    let mut depth = 1;
    while i < chars.len() && depth > 0 {
        match (chars[i], char_at(chars, i + 1)) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
            }
            (c, _) => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// Past the end of the string whose content starts at `i` (after its opening quote).
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if char_at(chars, i + 1) == '\n' {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    chars.len()
}

/// Past the char literal (`'x'`, `'\n'`, `'\u{1F600}'`) or the lifetime (`'a`) at `i`.
fn skip_quote(chars: &[char], i: usize) -> usize {
    if char_at(chars, i + 1) == '\\' {
        let mut i = i + 3;
        while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
            i += 1;
        }
        return i + 1;
    }
    if char_at(chars, i + 2) == '\'' {
        return i + 3;
    }
    let mut i = i + 1;
    while is_ident_continue(char_at(chars, i)) {
        i += 1;
    }
    i
}

/// Past the raw string (`r"..."`, `r#"..."#`, `br".."`, `cr".."`) at `i`, if one is there.
fn skip_raw_string(chars: &[char], i: usize, line: &mut usize) -> Option<usize> {
    let mut i = i;
    if matches!(chars[i], 'b' | 'c') {
        i += 1;
    }
    if char_at(chars, i) != 'r' {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if char_at(chars, i) != '"' {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|n| char_at(chars, i + n) == '#') {
            return Some(i + 1 + hashes);
        }
        if chars[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    Some(chars.len())
}

/// What the scan of one file finds.
#[derive(Debug, Default)]
struct Scan {
    /// The inline modules (`mod x { .. }`), as absolute paths.
    inline_modules: Vec<ModPath>,
    /// Each path that starts with `crate`, `super` or `self`: the module it appears in,
    /// and the path made absolute (not yet resolved to a module).
    paths: Vec<(ModPath, Segments)>,
}

fn tok_at(tokens: &[Token], i: usize) -> Option<&Tok> {
    tokens.get(i).map(|token| &token.tok)
}

/// The paths in one file of module `module`, and its inline modules.
fn scan(module: &[String], tokens: &[Token]) -> Scan {
    let mut found = Scan::default();
    // The inline modules the scan is in: name, and the brace depth of their body.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let current = |inline: &[(String, usize)]| -> ModPath {
        module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect()
    };
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Ident(word) if word == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (tok_at(tokens, i + 1), tok_at(tokens, i + 2))
                {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    found.inline_modules.push(current(&inline));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && tok_at(tokens, i + 1) == Some(&Tok::PathSep)
                    && (i == 0 || tokens[i - 1].tok != Tok::PathSep) =>
            {
                let from = current(&inline);
                let mut paths = Vec::new();
                use_tree(tokens, &mut i, Vec::new(), &mut paths);
                for path in paths {
                    if let Some(absolute) = absolute(&from, &path) {
                        found.paths.push((from.clone(), absolute));
                    }
                }
                continue;
            }
            Tok::Open => depth += 1,
            Tok::Close => {
                if inline.last().is_some_and(|&(_, body)| body == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Reads the path or `use` tree at `tokens[*i]` under `prefix`, pushing every full path it
/// names to `out` (`a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`; `a::*` and
/// `a::b as c` are `a` and `a::b`). Leaves `*i` past what it read; always advances.
fn use_tree(tokens: &[Token], i: &mut usize, mut path: Segments, out: &mut Vec<Segments>) {
    let start = *i;
    loop {
        match tok_at(tokens, *i) {
            Some(Tok::Ident(name)) => {
                path.push((name.clone(), tokens[*i].line));
                *i += 1;
                if tok_at(tokens, *i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                if matches!(tok_at(tokens, *i), Some(Tok::Ident(word)) if word == "as") {
                    *i += 2;
                }
                break;
            }
            Some(Tok::Open) => {
                *i += 1;
                while let Some(tok) = tok_at(tokens, *i) {
                    match tok {
                        Tok::Close => {
                            *i += 1;
                            return;
                        }
                        // A `use` tree cut short: stop at its end.
                        Tok::Semi => return,
                        Tok::Comma => *i += 1,
                        _ => {
                            let before = *i;
                            use_tree(tokens, i, path.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
                return;
            }
            Some(Tok::Star) => {
                *i += 1;
                break;
            }
            // The end of the path (`crate::x::f::<T>`), or no tree at all here.
            _ if *i == start => return,
            _ => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// `path` (starting with `crate`, `super` or `self`) as an absolute path, from module
/// `from`; `None` if it does not start so or climbs above the crate root.
fn absolute(from: &[String], path: &[(String, usize)]) -> Option<Segments> {
    let ((first, line), rest) = path.split_first()?;
    let at_line = |module: &[String]| -> Segments {
        module.iter().map(|name| (name.clone(), *line)).collect()
    };
    let mut out = match first.as_str() {
        "crate" => Vec::new(),
        "self" => at_line(from),
        "super" => at_line(from.split_last()?.1),
        _ => return None,
    };
    let mut leading = true;
    for (name, line) in rest {
        match name.as_str() {
            "super" if leading => {
                out.pop()?;
            }
            // `a::{self, ..}` is `a`.
            "self" => {}
            _ => {
                leading = false;
                out.push((name.clone(), *line));
            }
        }
    }
    Some(out)
}

// ----------------------------------------------------------------------------------------
// Tests of the analysis itself, on sources in memory.
// ----------------------------------------------------------------------------------------

mod unit {
    use super::*;

    /// Sources from (module path, text) pairs; `a::b` is in file `src/a/b.rs`, the root
    /// (`""`) in `src/lib.rs`.
    fn sources(modules: &[(&str, &str)]) -> Vec<Source> {
        modules
            .iter()
            .map(|&(module, text)| Source {
                module: split(module),
                file: if module.is_empty() {
                    "src/lib.rs".to_owned()
                } else {
                    format!("src/{}.rs", module.replace("::", "/"))
                },
                text: text.to_owned(),
            })
            .collect()
    }

    fn split(module: &str) -> ModPath {
        module
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Every reference as `from -> to @ line`, in source order.
    fn references(modules: &[(&str, &str)]) -> Vec<String> {
        analyze(&sources(modules))
            .references
            .iter()
            .map(|r| {
                format!(
                    "{} -> {} @ {}",
                    r.from.join("::"),
                    r.to.join("::"),
                    r.site.line
                )
            })
            .collect()
    }

    /// The top-level edges, as `from -> to`.
    fn edges(modules: &[(&str, &str)]) -> Vec<String> {
        let graph = analyze(&sources(modules)).top_level_graph();
        graph
            .edges
            .iter()
            .flat_map(|(from, targets)| targets.keys().map(move |to| format!("{from} -> {to}")))
            .collect()
    }

    const LEAVES: &[(&str, &str)] = &[("", ""), ("a", ""), ("b", ""), ("c", ""), ("d", "")];

    fn with_leaves<'a>(modules: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all: Vec<(&str, &str)> = LEAVES
            .iter()
            .copied()
            .filter(|(name, _)| modules.iter().all(|(module, _)| module != name))
            .collect();
        all.extend_from_slice(modules);
        all
    }

    #[test]
    fn module_paths_follow_the_file_layout() {
        let module = |path: &str| module_path(Path::new(path)).map(|m| m.join("::"));
        assert_eq!(module("lib.rs").as_deref(), Some(""));
        assert_eq!(module("main.rs"), None);
        assert_eq!(module("bin/tool.rs"), None);
        assert_eq!(module("config.rs").as_deref(), Some("config"));
        assert_eq!(module("backend/mod.rs").as_deref(), Some("backend"));
        assert_eq!(
            module("backend/local.rs").as_deref(),
            Some("backend::local")
        );
        assert_eq!(module("front/grpc/mod.rs").as_deref(), Some("front::grpc"));
        assert_eq!(module("notes.md"), None);
    }

    #[test]
    fn comments_doc_comments_and_literals_are_ignored() {
        let text = r###"//! Module docs name [`crate::b`].
/// An item's docs name crate::b::X.
// use crate::b;
/* crate::b /* nested: crate::b */ still a comment: crate::b */
const S: &str = "crate::b::X";
const R: &str = r#"crate::b " still raw: crate::b"#;
const B: &[u8] = br"crate::b";
const Q: char = '"';
const E: char = '\'';
fn f<'a>(x: &'a str) -> &'a str { x }
use crate::c;
"###;
        assert_eq!(references(&with_leaves(&[("a", text)])), ["a -> c @ 11"]);
    }

    #[test]
    fn nested_brace_use_trees_are_expanded() {
        let text = "use crate::{\n    b::B,\n    c::{C, d::{self, D}},\n    e as _,\n};";
        let modules = with_leaves(&[("a", text), ("c::d", ""), ("e", "")]);
        assert_eq!(
            references(&modules),
            [
                "a -> b @ 2",
                "a -> c @ 3",
                "a -> c::d @ 3",
                "a -> c::d @ 3",
                "a -> e @ 4"
            ]
        );
    }

    #[test]
    fn inline_paths_are_references() {
        let text = "fn f() {\n    crate::b::COUNTER.inc();\n    let _ = crate::c::new::<u8>();\n    \
                    let _ = crate::d::State { x: 1 };\n    let _ = Self::X + self.y;\n}";
        assert_eq!(
            references(&with_leaves(&[("a", text)])),
            ["a -> b @ 2", "a -> c @ 3", "a -> d @ 4"]
        );
    }

    #[test]
    fn super_resolves_relative_to_the_module() {
        let in_a_b = "use super::c::C;\nuse super::super::x::Y;\nuse super::{Z, c};";
        let in_a = "use super::x::W;\nuse self::b::B;";
        let modules = [
            ("", ""),
            ("a", in_a),
            ("a::b", in_a_b),
            ("a::c", ""),
            ("x", ""),
        ];
        assert_eq!(
            references(&modules),
            [
                "a -> x @ 1",
                "a -> a::b @ 2",
                "a::b -> a::c @ 1",
                "a::b -> x @ 2",
                "a::b -> a @ 3",
                "a::b -> a::c @ 3",
            ]
        );
    }

    #[test]
    fn super_in_an_inline_module_is_relative_to_it() {
        let text = "pub struct T;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    \
                    use super::super::c::C;\n    fn f() { if true { let _ = ('{', \"}\", '}'); } }\n}\nuse super::d::D;";
        let modules = with_leaves(&[("a", ""), ("a::b", text), ("a::c", ""), ("a::d", "")]);
        assert_eq!(
            references(&modules),
            [
                "a::b::tests -> a::b @ 4",
                "a::b::tests -> a::c @ 5",
                "a::b -> a::d @ 8"
            ]
        );
    }

    #[test]
    fn references_resolve_to_the_longest_existing_module() {
        let text = "use crate::backend::local::LocalBackend;\nuse crate::backend::Backend;";
        let with_local = [
            ("", ""),
            ("app", text),
            ("backend", ""),
            ("backend::local", ""),
        ];
        assert_eq!(
            references(&with_local),
            ["app -> backend::local @ 1", "app -> backend @ 2"]
        );
        let without_local = [("", ""), ("app", text), ("backend", "")];
        assert_eq!(
            references(&without_local),
            ["app -> backend @ 1", "app -> backend @ 2"]
        );
        // Items of the crate root (re-exports) are no module: no reference.
        assert!(references(&[("", ""), ("app", "use crate::Error;")]).is_empty());
    }

    #[test]
    fn top_level_graph_ignores_self_edges_and_the_root() {
        let modules = [
            ("", "pub use a::X;\nfn f() { crate::a::f() }"),
            (
                "a",
                "use self::inner::Y;\nuse crate::a::inner::Z;\nuse crate::b;",
            ),
            ("a::inner", "use super::super::b::B;"),
            ("b", ""),
        ];
        assert_eq!(edges(&modules), ["a -> b"]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_sites() {
        let modules = with_leaves(&[
            ("a", "use crate::b::B;"),
            ("b", "//! b\n\nuse crate::c::C;\nfn f() { crate::c::g() }"),
            ("c", "fn f() {\n    crate::a::h();\n}"),
        ]);
        let graph = analyze(&sources(&modules)).top_level_graph();
        let report = check_acyclic(&graph).unwrap_err();
        assert!(report.contains("cycle: a -> b -> c -> a\n"), "{report}");
        assert!(report.contains("    a -> b: src/a.rs:1\n"), "{report}");
        assert!(
            report.contains("    b -> c: src/b.rs:3 (and 1 more)\n"),
            "{report}"
        );
        assert!(report.contains("    c -> a: src/c.rs:2\n"), "{report}");
    }

    #[test]
    fn every_edge_on_a_cycle_is_reported() {
        let modules = with_leaves(&[
            ("a", "use crate::b::B;"),
            ("b", "use crate::a::A;\nuse crate::c::C;"),
            ("c", "use crate::b::B;\nuse crate::d::D;"),
        ]);
        let graph = analyze(&sources(&modules)).top_level_graph();
        let cycles: Vec<String> = graph.cycles().iter().map(|c| c.join(" -> ")).collect();
        assert_eq!(cycles, ["a -> b", "b -> c"]);
    }

    #[test]
    fn an_acyclic_crate_passes() {
        let modules = with_leaves(&[
            ("a", "use crate::b::B;\nuse crate::c::C;"),
            ("b", "use crate::c::C;"),
            ("c", "use crate::d::{self, D};"),
            ("d", "mod tests { use super::*; }"),
        ]);
        let analysis = analyze(&sources(&modules));
        assert_eq!(check_acyclic(&analysis.top_level_graph()), Ok(()));
    }

    #[test]
    fn the_layer_table_is_enforced() {
        let modules = with_leaves(&[
            ("a", "use crate::b::B;\nuse crate::c::C;\nuse crate::d;"),
            ("b", "use crate::c::C;"),
            ("c", "\nuse crate::d::D;\nfn f() { crate::d::g() }"),
            ("d", ""),
        ]);
        let graph = analyze(&sources(&modules)).top_level_graph();
        let table: Table<'_> = &[("a", &[ANY]), ("b", &["c"]), ("c", &[]), ("d", &[])];
        let report = check_layers(&graph, table).unwrap_err();
        assert!(
            report.ends_with(
                "c -> d is not allowed (c may import: nothing), at:\n    src/c.rs:2\n    \
                 src/c.rs:3\n"
            ),
            "{report}"
        );
        assert_eq!(report.matches("not allowed").count(), 1, "{report}");

        let table: Table<'_> = &[("a", &[ANY]), ("b", &["c"]), ("c", &["d"]), ("d", &[])];
        assert_eq!(check_layers(&graph, table), Ok(()));
    }

    #[test]
    fn a_module_missing_from_the_table_fails() {
        let modules = with_leaves(&[("a", "use crate::b::B;")]);
        let graph = analyze(&sources(&modules)).top_level_graph();
        let table: Table<'_> = &[("a", &["b"]), ("b", &[]), ("c", &[])];
        let report = check_layers(&graph, table).unwrap_err();
        assert!(
            report.contains("module `d` is not in the layer table: add it to ALLOWED"),
            "{report}"
        );
        assert_eq!(report.matches("not in the layer table").count(), 1);
    }

    #[test]
    fn sibling_modules_must_not_import_each_other() {
        let modules = [
            ("", ""),
            (
                "backend",
                "pub mod local;\npub mod twilio;\nuse self::local::L;",
            ),
            (
                "backend::local",
                "use super::Shared;\nuse super::twilio::T;",
            ),
            (
                "backend::twilio",
                "use crate::backend::local::{\n    L,\n};",
            ),
            ("backend::shared", "use super::local::L;"),
            ("front", ""),
            ("front::grpc", "use crate::backend::local::L;"),
        ];
        let analysis = analyze(&sources(&modules));
        let report = check_independent(&analysis, INDEPENDENT).unwrap_err();
        assert!(
            report.ends_with(
                "backend::local -> backend::twilio, at:\n    src/backend/local.rs:2\n\
                 backend::twilio -> backend::local, at:\n    src/backend/twilio.rs:1\n"
            ),
            "{report}"
        );
        // Through the parent is fine; so is a path to a sibling that is no module.
        let fine = [
            ("", ""),
            (
                "backend::local",
                "use super::Shared;\nuse super::twilio::T;",
            ),
        ];
        assert_eq!(
            check_independent(&analyze(&sources(&fine)), INDEPENDENT),
            Ok(())
        );
    }

    #[test]
    fn allowed_table_is_acyclic_and_names_each_module_once() {
        let names: BTreeSet<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
        assert_eq!(names.len(), ALLOWED.len(), "a module twice in ALLOWED");
        let mut graph = Graph::default();
        for (from, allowed) in ALLOWED {
            for to in *allowed {
                assert!(
                    *to == ANY || names.contains(to),
                    "{from} may import `{to}`, which is not in ALLOWED"
                );
                let targets: Vec<&str> = if *to == ANY {
                    names.iter().copied().filter(|name| name != from).collect()
                } else {
                    vec![*to]
                };
                for target in targets {
                    graph.add_edge(
                        from,
                        target,
                        Site {
                            file: "ALLOWED".to_owned(),
                            line: 0,
                        },
                    );
                }
            }
        }
        assert_eq!(check_acyclic(&graph), Ok(()));
        for (parent, _) in INDEPENDENT {
            assert!(names.contains(parent), "INDEPENDENT names `{parent}`");
        }
    }
}
