//! The import graph of `src/` between its top-level modules (DESIGN.md, "one direction of
//! flow"): no circle, and the base layers (`plan`, `syntax`, `template`, `transform`,
//! `config`) reach nothing above them. Reads the sources as text: every `crate::<module>`
//! outside comments and unit-test code counts as an arrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The base layers, and which of them each may use.
const BASE: &[(&str, &[&str])] = &[
    ("plan", &[]),
    ("syntax", &["plan"]),
    ("template", &["plan"]),
    ("transform", &["plan"]),
    ("config", &["plan"]),
];

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn add_file(graph: &mut Graph, src: &Path, path: &Path) {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a component");
    let module = first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned();
    let text = std::fs::read_to_string(path).expect("readable source");
    // Unit tests may reach anything (the simulator, test servers).
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !target.is_empty() && target != module {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(relative.display().to_string());
            }
        }
    }
}

fn walk(graph: &mut Graph, src: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        // Test-only files: `mod tests;` modules and their folders.
        if name == "tests" || name == "tests.rs" {
            continue;
        }
        if path.is_dir() {
            walk(graph, src, &path);
        } else if name.ends_with(".rs") {
            add_file(graph, src, &path);
        }
    }
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    walk(&mut graph, &src, &src);
    graph
}

/// Whether `to` can be reached from `from`, and through which modules.
fn path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_owned()]];
    while let Some(trail) = stack.pop() {
        let last = trail.last().expect("non-empty").clone();
        for next in graph.get(&last).into_iter().flat_map(BTreeMap::keys) {
            let mut longer = trail.clone();
            longer.push(next.clone());
            if next == to {
                return Some(longer);
            }
            if seen.insert(next.clone()) {
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let graph = graph();
    assert!(graph.contains_key("exec"), "the graph was read: {graph:?}");
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|module| path(&graph, module, module))
        .map(|trail| trail.join(" -> "))
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn base_layers_reach_nothing_above_them() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (base, allowed) in BASE {
        for (target, files) in graph.get(*base).into_iter().flatten() {
            if !allowed.contains(&target.as_str()) {
                wrong.push(format!("{base} -> {target} in {files:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "arrows up from a base layer: {wrong:#?}");
}
