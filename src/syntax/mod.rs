//! Text → spanned syntax tree, and back to canonical text.
//!
//! [`parse`] lowers pest's pairs to the [`ast`], one function per grammar rule; [`layout`]
//! (`netc fmt`) prints pest's concrete tree, comments included, in the canonical layout.
//! Nothing here gives values meaning: that is the checker's work.

pub mod ast;
pub mod layout;
pub mod parse;
