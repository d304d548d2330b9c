//! netc: a network and firewall config compiler for a small CloudStack site.
//!
//! The pipeline runs one way: text → [`parse`] (spanned AST) → [`check`] (model and every
//! diagnostic) → [`render`] (each host's files) → [`output`] (the `out/` tree, swapped in
//! atomically).
//!
//! Review tools read the model: [`diff`], [`query`], [`fmt`] (on the concrete syntax),
//! [`graph`]. Live hosts: [`plan`] (what would change, each step with its inverse, from
//! [`net`] for links/addresses/routes, [`iptables_plan`], [`agent_properties`] and the
//! files) and [`apply`] (run the steps, undo on failure), through [`netlink`] and
//! [`install`].

// pest is built without `std` (Cargo.toml): its derive then names `alloc` directly.
extern crate alloc;

pub mod agent_properties;
pub mod apply;
pub mod ast;
pub mod check;
pub mod config;
pub mod diag;
pub mod diff;
pub mod fmt;
pub mod graph;
pub mod install;
pub mod iptables_plan;
pub mod model;
pub mod net;
pub mod netlink;
pub mod output;
pub mod parse;
pub mod plan;
pub mod query;
pub mod render;

use diag::{Code, Diag, Source};
use model::Topology;

/// The outcome of compiling one topology file.
pub struct Compiled {
    pub source: Source,
    /// Errors and warnings, in source order.
    pub diags: Vec<Diag>,
    /// Present only when there are no errors.
    pub topology: Option<Topology>,
}

impl Compiled {
    pub fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }
    pub fn warnings(&self) -> usize {
        self.diags.len() - self.errors()
    }
}

/// Parses and checks a topology. `name` is how the file is named in diagnostics and in the
/// "generated from" header of every artefact.
pub fn compile(name: &str, bytes: &[u8]) -> Compiled {
    let (source, utf8_error) = match std::str::from_utf8(bytes) {
        Ok(text) => (Source::new(name, text), None),
        Err(e) => (
            Source::new(name, String::from_utf8_lossy(bytes).into_owned()),
            Some(e),
        ),
    };
    if let Some(e) = utf8_error {
        // The lossy text has one replacement character (3 bytes) where the bad bytes began.
        let at = e.valid_up_to();
        let d = Diag::new(Code::NotUtf8, "the file is not UTF-8 text")
            .label(
                ast::Span::new(at, at + '\u{fffd}'.len_utf8()),
                "invalid UTF-8 starts here",
            )
            .help("a topology is a UTF-8 text file; is this the right file?");
        return Compiled {
            source,
            diags: vec![d],
            topology: None,
        };
    }
    let file = match parse::parse(&source.text) {
        Ok(file) => file,
        Err(d) => {
            return Compiled {
                source,
                diags: vec![d],
                topology: None,
            };
        }
    };
    let checked = check::check(&file, &source);
    Compiled {
        source,
        diags: checked.diags,
        topology: checked.topology,
    }
}
