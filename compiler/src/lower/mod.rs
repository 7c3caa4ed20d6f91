//! Lowering into the IR: [`from_lang`] turns a checked `.qnn` model into a function of the
//! `nn` dialect; [`build`] is the small builder that it and the rewriting passes use to
//! create ops.

pub mod build;
pub mod from_lang;

pub use from_lang::lower_model;
