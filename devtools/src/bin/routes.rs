//! `make routes`: writes the local router of `make run` (the workspace
//! manifest's `[workspace.metadata.lambda.watch.router]`) from the one list
//! of routes, `shared/src/routes.rs`. With `--check`, writes nothing and
//! fails if the manifest is not what it would write.

use devtools::dynamodb_local::repo_root;

fn main() {
    let check = std::env::args().any(|arg| arg == "--check");
    let path = repo_root().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).expect("reading Cargo.toml");
    let written = devtools::routes::with_router(&manifest).unwrap_or_else(|why| {
        eprintln!("[routes] {}: {why}", path.display());
        std::process::exit(2)
    });
    if written == manifest {
        println!("[routes] the router in Cargo.toml is up to date");
    } else if check {
        eprintln!("[routes] the router in Cargo.toml is stale: run make routes");
        std::process::exit(1);
    } else {
        std::fs::write(&path, written).expect("writing Cargo.toml");
        println!("[routes] the router in Cargo.toml is written from shared/src/routes.rs");
    }
}
