//! Writes `docs/schemas/`: the JSON Schema of every message type's envelope, of the
//! envelope in general and of the reply, generated from the Rust types
//! (`common::message_schemas`). Run it after changing a message type; a unit test in
//! `common` fails while the checked-in files differ from the code.
//!
//! `cargo run -p tests --bin schemas [-- <dir>]` (default: the workspace's `docs/schemas`).

use anyhow::Context;
use std::{collections::BTreeSet, path::PathBuf};

fn main() -> anyhow::Result<()> {
    // `cargo run` sets CARGO_MANIFEST_DIR at run time too; prefer it, so a binary built
    // from another checkout never writes into that checkout.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../docs/schemas"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = common::message_schemas::files();
    let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    // A message type that no longer exists must not leave its schema behind.
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|e| e == "json")
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !names.contains(n));
        if stale {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            println!("removed {}", path.display());
        }
    }
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {} schemas to {}", files.len(), dir.display());
    Ok(())
}
