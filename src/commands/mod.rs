//! One file per subcommand: each turns parsed arguments into work and output.

pub mod verify;
