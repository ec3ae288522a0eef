//! The few operating-system helpers Jaunt's programs share, so that each is
//! written (and tested) once: the wall clock as Unix time ([`clock`]), files
//! written whole and private ([`fs`]), and standard input and output as
//! non-blocking pipes for bulk relaying ([`stdio`]). Builds for Windows.

pub mod clock;
pub mod fs;
pub mod stdio;
