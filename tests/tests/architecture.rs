//! The runtime's modules form layers: each top-level module uses only modules
//! of lower layers, so the module graph has no cycle. Read from the source
//! (production code: `#[cfg(test)]` items are skipped), with every `crate::`
//! and `super::` path resolved, including those inside macro invocations.
//!
//! Imports must name the module that defines an item (`crate::otel::spans::X`),
//! not the crate root's re-export (`crate::X`), or the graph would hide edges.
//!
//! Run alone: `cargo test -p tests --test architecture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Lowest first. A module may use modules of lower layers only; modules of one
/// layer do not use each other. `docs/ARCHITECTURE.md` explains each.
const LAYERS: &[&[&str]] = &[
    &["error", "events"],
    &["handler"],
    &["endpoint"],
    &["otel", "asyncapi"],
    &["serving", "publisher"],
    &["jetstream", "broker_trace"],
    &["service"],
    &["telemetry"],
    &["testing"],
];

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats-otel-runtime/src")
}

/// The module path of a source file: `otel/spans.rs` is `[otel, spans]`.
fn module_path(file: &Path, src: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut path: Vec<String> =
        relative.iter().map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Where one file's code points: the top-level modules of every `crate::` or
/// `super::` path, resolved against the module it is written in.
struct Uses {
    /// The module being read (grows inside inline `mod` blocks).
    here: Vec<String>,
    targets: BTreeSet<String>,
}

impl Uses {
    /// Records a path given as its leading segments.
    fn record(&mut self, segments: &[String]) {
        let mut at = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => {
                let mut at = self.here.clone();
                at.pop();
                at
            }
            _ => return,
        };
        for segment in &segments[1..] {
            match segment.as_str() {
                "super" => {
                    at.pop();
                }
                "self" => {}
                _ => {
                    at.push(segment.clone());
                    break;
                }
            }
        }
        if let Some(top) = at.first() {
            self.targets.insert(top.clone());
        }
    }

    /// Paths inside a macro invocation's tokens (`matches!(x, crate::A::B)`).
    fn scan(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => self.scan(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" || ident == "super" => {
                    let mut segments = vec![ident.to_string()];
                    let mut rest = tokens[i + 1..].iter();
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (rest.next(), rest.next(), rest.next())
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                    }
                    if segments.len() > 1 {
                        self.record(&segments);
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr.meta.require_list().is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_paths(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => out.push([prefix.as_slice(), &[name.ident.to_string()]].concat()),
        syn::UseTree::Rename(rename) => out.push([prefix.as_slice(), &[rename.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(group) => {
            for item in &group.items {
                use_paths(item, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        self.here.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.here.pop();
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_cfg_test(&item.attrs) {
            return;
        }
        let mut paths = Vec::new();
        use_paths(&item.tree, &mut Vec::new(), &mut paths);
        for path in paths {
            self.record(&path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Every top-level module and the top-level modules it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = runtime_src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let here = module_path(&file, &src);
        let Some(top) = here.first().cloned() else { continue }; // lib.rs: the root re-exports everything
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut uses = Uses { here, targets: BTreeSet::new() };
        uses.visit_file(&parsed);
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses.targets.into_iter().filter(|target| *target != top));
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_uses_only_lower_layers() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        let Some(layer) = layer_of(module) else {
            wrong.push(format!("`{module}` is in no layer: add it to LAYERS and docs/ARCHITECTURE.md"));
            continue;
        };
        for target in targets {
            match layer_of(target) {
                None if graph.contains_key(target) => {}
                None => wrong.push(format!(
                    "`{module}` uses `crate::{target}`, a re-export at the crate root: import it from its module"
                )),
                Some(below) if below < layer => {}
                Some(_) => wrong.push(format!("`{module}` (layer {layer}) uses `{target}`, not below it")),
            }
        }
    }
    assert!(wrong.is_empty(), "the module graph breaks its layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_graph_is_read_from_the_source() {
    // Guards the reader itself: known edges are seen, so a silent parse of
    // nothing cannot pass the test above.
    let graph = module_graph();
    let uses = |from: &str, to: &str| graph.get(from).is_some_and(|targets| targets.contains(to));
    assert!(uses("jetstream", "serving"), "{graph:#?}");
    assert!(uses("otel", "endpoint"), "{graph:#?}");
    assert!(uses("service", "jetstream"), "{graph:#?}");
    assert!(LAYERS.iter().flat_map(|layer| layer.iter()).all(|module| graph.contains_key(*module)));
}
