//! Link the `fracta` executable at a fixed address (not position-independent) on Linux.
//!
//! Every command is a new process, and a position-independent executable is relocated by the
//! loader at each start: some 44,000 relocations, which write to (and so copy) about 200 pages
//! of `.data.rel.ro` before `main` runs. Linked at a fixed address, the linker resolves them
//! once and the loader has nothing to do: `fracta --version` drops from 378 to 167 page faults
//! and a spawn's own time by about 1.5 ms (docs/src/performance.md). The code itself is still
//! compiled position-independent (as every crate is, proc macros included), so only the
//! executable's link changes; the shared libraries it loads keep their address randomisation.
//!
//! On Linux with glibc, `scripts/rustc-wrapper.sh` (which Cargo runs for the workspace's
//! crates) also links it statically, with no loader at all; this flag is what remains of that
//! where it cannot (`FRACTA_LINK=dynamic`, or no static glibc).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
