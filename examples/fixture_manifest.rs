//! Prints the manifest of a directory tree (see tests/integration/common/manifest.rs):
//! `cargo run --example fixture_manifest -- DIR`. Used by
//! tests/fixtures/make.sh to record what each fixture repository holds.

#[path = "../tests/integration/common/manifest.rs"]
mod manifest;

fn main() {
    let Some(root) = std::env::args_os().nth(1) else {
        eprintln!("usage: fixture_manifest DIR");
        std::process::exit(2);
    };
    match manifest::manifest(std::path::Path::new(&root)) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("fixture_manifest: {e}");
            std::process::exit(1);
        }
    }
}
