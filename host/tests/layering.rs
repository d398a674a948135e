//! The floors of ARCHITECTURE.md hold: every top-level module of host/src is in the floor
//! table, and no module imports one of a higher floor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `module -> floor`, from the table in ARCHITECTURE.md.
fn floors() -> HashMap<String, usize> {
    let text = std::fs::read_to_string(root().join("../ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut map = HashMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(floor) = cells[1].parse::<usize>() else { continue };
        for m in cells[2].split(',') {
            map.insert(m.trim().trim_matches('`').to_string(), floor);
        }
    }
    assert!(map.len() >= 8, "ARCHITECTURE.md: found no floor table ({map:?})");
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of host/src belongs to (`cli` for the command line).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    match first.as_str() {
        "bin" => Some("cli".into()),
        "lib.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Every `<prefix>::name` in `text` (outside comments): the names a file reaches.
fn reached(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(k) = rest.find(prefix) {
            let before_ok = k == 0 || !rest[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            rest = &rest[k + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // `use crate::{a, b}`: every name in the braces.
            if before_ok && name.is_empty() && rest.starts_with('{') {
                let inner = rest[1..].split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let n: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !n.is_empty() {
                        out.push((i + 1, n));
                    }
                }
            }
            if before_ok && !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

#[test]
fn imports_only_point_down() {
    let floors = floors();
    let src = root().join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines().filter(|l| l.starts_with("pub mod ") || l.starts_with("mod ")) {
        let m = line.trim_start_matches("pub ").trim_start_matches("mod ").trim_end_matches(';');
        assert!(floors.contains_key(m), "host/src/lib.rs declares `{m}`, which the floor table of ARCHITECTURE.md does not list");
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let Some(module) = module_of(rel) else { continue };
        let own = *floors.get(&module).unwrap_or_else(|| panic!("{}: module `{module}` is not in the floor table", rel.display()));
        let text = std::fs::read_to_string(f).unwrap();
        let prefix = if module == "cli" { "percept::" } else { "crate::" };
        for (line, name) in reached(&text, prefix) {
            if let Some(&floor) = floors.get(&name) {
                if floor > own {
                    wrong.push(format!("host/src/{}:{line}: `{module}` (floor {own}) uses `{name}` (floor {floor})", rel.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports that point up the floors:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    // The scanner must find both forms, or the test above could not fail.
    let found = reached("use crate::pipeline::demo;\nuse crate::{gpu, fit::ridge};\nlet x = crate::sim::f(); // crate::nn", "crate::");
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["pipeline", "gpu", "fit", "sim"]);
}

#[test]
fn no_source_file_is_over_400_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 400).then(|| format!("{} ({n} lines)", f.strip_prefix(root()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 400 lines: {long:?}");
}
