//! netc: a network and firewall config compiler for a small CloudStack site.
//!
//! The data goes one way: text → [`syntax`] (spanned AST) → [`check`] (the [`model`] and
//! every [`diag`]nostic) → [`render`] (each host's files) → [`output`] (the `out/` tree,
//! swapped in atomically) — and, on a host, → [`live`] (plan the changes against the kernel
//! and the files, apply them, undo them). [`review`] reads the model and changes nothing
//! (diff, query, graph). [`source`] holds the text diagnostics point into, [`report`] shows
//! them (text, JSON, GitHub annotations), [`config`] the build settings, [`tool`] runs the
//! external tools. The command line is the binary's own (`src/cli/`), on top of all of this.

#![forbid(unsafe_code)]

// pest is built without `std` (Cargo.toml): its derive then names `alloc` directly.
extern crate alloc;

pub mod check;
pub mod config;
pub mod diag;
pub mod live;
pub mod model;
pub mod output;
pub mod render;
pub mod report;
pub mod review;
pub mod source;
pub mod syntax;
pub mod tool;

use diag::{Code, Diag};
use source::{Source, Span};

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
                Span::new(at, at + '\u{fffd}'.len_utf8()),
                "invalid UTF-8 starts here",
            )
            .help("a topology is a UTF-8 text file; is this the right file?");
        return Compiled {
            source,
            diags: vec![d],
            topology: None,
        };
    }
    let file = match syntax::parse::parse(&source.text) {
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
