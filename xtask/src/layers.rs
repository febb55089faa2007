//! `cargo xtask layers`: the library's modules import only from their own layer or below.
//!
//! The layer order is written in `ARCHITECTURE.md`, in a fenced block whose info string is
//! `layers`: one layer per line, bottom first, the modules of a layer separated by spaces. A
//! line `allow <module> -> <module> <module>...` names the accepted exceptions (the crate error
//! wrapping the domain errors). A module is a top-level item of `netns-test/src/`: a file, or a
//! folder with everything in it. Imports are read as text: every `crate::<module>` path (and
//! `netns_test::<module>`, since the crate names itself), outside unit-test code, counts; a
//! `crate::Name` of something the crate root re-exports counts as an import from `lib`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::util::{Result, root};

/// The layer order: each module's layer (0 is the bottom), and the allowed upward imports.
#[derive(Debug, Default)]
pub(crate) struct Order {
    layer: BTreeMap<String, usize>,
    allowed: BTreeSet<(String, String)>,
}

/// One import that runs upward.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
    from_layer: usize,
    to_layer: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}` (layer {}) imports `crate::{}` (layer {}), which sits above it",
            self.file.display(),
            self.line,
            self.from,
            self.from_layer + 1,
            self.to,
            self.to_layer + 1
        )
    }
}

pub(crate) fn run() -> Result {
    let root = root();
    let architecture = root.join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&architecture)
        .map_err(|e| format!("reading {}: {e}", architecture.display()))?;
    let order = Order::parse(&text).map_err(|e| format!("{}: {e}", architecture.display()))?;
    let src = root.join("netns-test/src");
    let violations = check(&order, &src)?;
    if violations.is_empty() {
        eprintln!("xtask: layers: every import of netns-test/src runs down the order of ARCHITECTURE.md");
        return Ok(());
    }
    for violation in &violations {
        eprintln!("{violation}");
    }
    Err(format!("{} import(s) run up the layer order of ARCHITECTURE.md", violations.len()))
}

impl Order {
    /// Reads the `layers` block of `ARCHITECTURE.md`.
    pub(crate) fn parse(markdown: &str) -> Result<Order> {
        let mut lines = markdown.lines();
        lines
            .by_ref()
            .find(|line| line.trim_start().starts_with("```layers"))
            .ok_or("no ```layers block (one layer per line, bottom first)")?;
        let mut order = Order::default();
        let mut count = 0;
        for line in lines.by_ref() {
            let line = line.trim();
            if line.starts_with("```") {
                if count == 0 {
                    return Err("the ```layers block is empty".into());
                }
                return Ok(order);
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rule) = line.strip_prefix("allow ") {
                let (from, to) = rule
                    .split_once("->")
                    .ok_or_else(|| format!("`{line}`: expected `allow <module> -> <module>...`"))?;
                for target in to.split_whitespace() {
                    order.allowed.insert((from.trim().to_string(), target.to_string()));
                }
                continue;
            }
            for module in line.split_whitespace() {
                if order.layer.insert(module.to_string(), count).is_some() {
                    return Err(format!("module `{module}` is listed twice"));
                }
            }
            count += 1;
        }
        Err("the ```layers block is not closed".into())
    }
}

/// Every upward import in the crate under `src` (its `lib.rs` and the modules it declares).
pub(crate) fn check(order: &Order, src: &Path) -> Result<Vec<Violation>> {
    let modules = modules(src)?;
    let mut violations = Vec::new();
    for (module, files) in &modules {
        let Some(&from_layer) = order.layer.get(module) else {
            return Err(format!(
                "module `{module}` of {} is in no layer of ARCHITECTURE.md; add it",
                src.display()
            ));
        };
        for file in files {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            for (line, target) in imports(&text) {
                // `crate::Name` of an item the crate root re-exports imports from the root.
                let target = if modules.contains_key(&target) { target } else { "lib".to_string() };
                if &target == module {
                    continue;
                }
                let Some(&to_layer) = order.layer.get(&target) else { continue };
                if to_layer > from_layer && !order.allowed.contains(&(module.clone(), target.clone())) {
                    let file = file.strip_prefix(src).unwrap_or(file).to_path_buf();
                    violations.push(Violation {
                        file,
                        line,
                        from: module.clone(),
                        to: target,
                        from_layer,
                        to_layer,
                    });
                }
            }
        }
    }
    Ok(violations)
}

/// The crate's top-level modules and the files of each (unit-test files left out), read from
/// the `mod` declarations of `lib.rs`. `lib.rs` itself is the module `lib`.
fn modules(src: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>> {
    let lib = src.join("lib.rs");
    let text = std::fs::read_to_string(&lib).map_err(|e| format!("reading {}: {e}", lib.display()))?;
    let mut modules = BTreeMap::from([("lib".to_string(), vec![lib.clone()])]);
    for declaration in declarations(&text) {
        let files = match &declaration.path {
            Some(path) => vec![src.join(path)],
            None => {
                let file = src.join(format!("{}.rs", declaration.name));
                let dir = src.join(&declaration.name);
                let mut files = Vec::new();
                if file.is_file() {
                    files.push(file);
                }
                if dir.is_dir() {
                    files.extend(rust_files(&dir)?);
                }
                files
            }
        };
        if declaration.test_only {
            continue;
        }
        let mut kept = Vec::new();
        let mut skipped = BTreeSet::new();
        for file in &files {
            // Test-only submodules, declared `#[cfg(test)] mod x;`, are left out.
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            let dir = file.with_extension("");
            let base =
                if file.file_name().is_some_and(|n| n == "mod.rs") { file.parent() } else { Some(&*dir) };
            for inner in declarations(&text).into_iter().filter(|d| d.test_only) {
                if let Some(base) = base {
                    skipped.insert(base.join(format!("{}.rs", inner.name)));
                    skipped.insert(base.join(&inner.name).join("mod.rs"));
                }
            }
        }
        for file in files {
            if !skipped.contains(&file) {
                kept.push(file);
            }
        }
        modules.insert(declaration.name, kept);
    }
    Ok(modules)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// A `mod name;` declaration.
struct Declaration {
    name: String,
    path: Option<String>,
    test_only: bool,
}

/// The `mod name;` declarations of a file, with their `#[path]` and `#[cfg(test)]`.
fn declarations(text: &str) -> Vec<Declaration> {
    let mut out = Vec::new();
    let (mut path, mut test_only) = (None, false);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            path = rest.split('"').next().map(str::to_string);
            continue;
        }
        if line == "#[cfg(test)]" {
            test_only = true;
            continue;
        }
        if line.starts_with("#[") || line.starts_with("//") {
            continue;
        }
        let declaration = line
            .strip_prefix("pub(crate) mod ")
            .or_else(|| line.strip_prefix("pub mod "))
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = declaration {
            out.push(Declaration { name: name.trim().to_string(), path: path.take(), test_only });
        }
        path = None;
        test_only = false;
    }
    out
}

/// `(line, module)` for every `crate::module` or `netns_test::module` path in `text`, up to the
/// unit tests at the bottom (`#[cfg(test)]` followed by `mod tests`). Comments are skipped.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let code = without_strings(line.split("//").next().unwrap_or(""));
        let code = code.as_str();
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|(_, next)| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        for prefix in ["crate::", "netns_test::"] {
            let mut rest = code;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().next_back();
                let after = &rest[at + prefix.len()..];
                rest = after;
                // `::netns_test::x` or `crate::x`, not `my_crate::x`.
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push((index + 1, name));
                }
                // `use crate::{a, b::c}`: each item of the group.
                if let Some(group) = after.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or("");
                    for item in group.split(',') {
                        let name: String =
                            item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if !name.is_empty() {
                            out.push((index + 1, name));
                        }
                    }
                }
            }
        }
    }
    out
}

/// `line` with the contents of its string literals blanked out (messages name paths too).
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut inside, mut escaped) = (false, false);
    for c in line.chars() {
        match (inside, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, true, _) => escaped = false,
            (_, false, '"') => {
                inside = !inside;
                out.push(c);
            }
            (false, _, _) => out.push(c),
            (true, false, _) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "# Map\n\n```layers\nerror\nlow\nhigh\nlib\nallow error -> high\n```\n";

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-layers-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn an_upward_import_is_caught_with_its_line() {
        let src = tree(&[
            ("lib.rs", "mod error;\nmod low;\nmod high;\n"),
            ("error.rs", "use crate::high::HighError;\n"),
            ("low/mod.rs", "mod inner;\n"),
            (
                "low/inner.rs",
                "use crate::error::Error;\n\nfn f() { crate::high::g(); }\nuse crate::Reexported;\n\
                 const M: &str = \"a message naming crate::high\";\n",
            ),
            ("high.rs", "use crate::{error::Error, low};\n"),
        ]);
        let order = Order::parse(ORDER).unwrap();
        let violations = check(&order, &src).unwrap();
        assert_eq!(violations.len(), 2, "{violations:?}");
        let text = violations[0].to_string();
        assert!(
            text.starts_with("low/inner.rs:3: `low` (layer 2) imports `crate::high` (layer 3)"),
            "{text}"
        );
        // A name the crate root re-exports comes from the root, the top layer; a string
        // literal that names a path imports nothing.
        let text = violations[1].to_string();
        assert!(text.starts_with("low/inner.rs:4: `low` (layer 2) imports `crate::lib` (layer 4)"), "{text}");
        std::fs::remove_dir_all(src).unwrap();
    }

    #[test]
    fn unit_tests_and_test_only_files_are_left_out() {
        let src = tree(&[
            ("lib.rs", "mod error;\nmod low;\nmod high;\n"),
            ("error.rs", ""),
            (
                "low/mod.rs",
                "#[cfg(test)]\nmod lab;\n\n#[cfg(test)]\nmod tests {\n    use crate::high::x;\n}\n",
            ),
            ("low/lab.rs", "use crate::high::x;\n"),
            ("high.rs", "// crate::low is fine, and so is a comment: crate::high\n"),
        ]);
        let order = Order::parse(ORDER).unwrap();
        assert_eq!(check(&order, &src).unwrap(), []);
        std::fs::remove_dir_all(src).unwrap();
    }

    #[test]
    fn a_module_in_no_layer_is_an_error() {
        let src = tree(&[("lib.rs", "mod error;\nmod stray;\n"), ("error.rs", ""), ("stray.rs", "")]);
        let order = Order::parse(ORDER).unwrap();
        let error = check(&order, &src).unwrap_err();
        assert!(error.contains("module `stray`"), "{error}");
        std::fs::remove_dir_all(src).unwrap();
    }

    #[test]
    fn the_order_block_is_required() {
        assert!(Order::parse("no block here").is_err());
        assert!(Order::parse("```layers\n```\n").is_err());
        assert!(Order::parse("```layers\na\na\n```\n").unwrap_err().contains("twice"));
    }
}
