//! CLIs installed from npm whose command is a Node shim in front of a native binary.
//!
//! `npm install @openai/codex` puts `bin/codex.js` on PATH: a Node script that finds the
//! platform package's binary (`@openai/codex-linux-x64/vendor/<triple>/bin/codex`), sets two
//! env vars and runs it. Starting Node for that costs 80–120 ms a run on a 2-core machine,
//! more than half of a one-turn Codex run against a local model. Fracta finds the binary the
//! way the shim does and starts it directly, with the env the shim would have given it; where
//! the layout is not the one the shim knows, it starts the shim as before.

use std::path::{Path, PathBuf};

/// The native binary to start instead of a shim, and the env the shim gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeStart {
    pub program: PathBuf,
    /// Env the shim sets for the binary.
    pub env: Vec<(String, String)>,
    /// Env the shim removes (the other package managers' markers).
    pub env_remove: Vec<String>,
}

/// The package-manager markers Codex's shim sets one of, and removes the others of.
const CODEX_MANAGERS: [&str; 4] = [
    "CODEX_MANAGED_BY_NPM",
    "CODEX_MANAGED_BY_BUN",
    "CODEX_MANAGED_BY_PNPM",
    "CODEX_MANAGED_BY_VITE_PLUS",
];

/// Codex's target triple and platform package on this machine, as its shim names them.
fn codex_platform() -> Option<(&'static str, &'static str)> {
    if cfg!(all(
        any(target_os = "linux", target_os = "android"),
        target_arch = "x86_64"
    )) {
        Some(("x86_64-unknown-linux-musl", "codex-linux-x64"))
    } else if cfg!(all(
        any(target_os = "linux", target_os = "android"),
        target_arch = "aarch64"
    )) {
        Some(("aarch64-unknown-linux-musl", "codex-linux-arm64"))
    } else if cfg!(all(target_os = "macos", target_arch = "x86_64")) {
        Some(("x86_64-apple-darwin", "codex-darwin-x64"))
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        Some(("aarch64-apple-darwin", "codex-darwin-arm64"))
    } else {
        None
    }
}

/// If `program` is Codex's npm shim (`@openai/codex/bin/codex.js`, through any links), the
/// native binary it would run and the env it would give it.
pub fn codex_native(program: &Path) -> Option<NativeStart> {
    let (triple, package) = codex_platform()?;
    let shim = std::fs::canonicalize(program).ok()?;
    let bin = shim.parent()?;
    let root = bin.parent()?;
    let is_shim = shim.file_name()? == "codex.js"
        && bin.file_name()? == "bin"
        && root.file_name()? == "codex"
        && root.parent()?.file_name()? == "@openai";
    if !is_shim {
        return None;
    }
    // `require.resolve("@openai/codex-<platform>/package.json")` from the shim: the
    // `node_modules` of each folder up from it (a `node_modules` folder gets none of its
    // own); the package's own `vendor` folder if no platform package is found.
    let vendor = bin
        .ancestors()
        .filter(|d| d.file_name().is_none_or(|n| n != "node_modules"))
        .map(|d| d.join("node_modules").join("@openai").join(package))
        .find(|p| p.join("package.json").is_file())
        .map_or_else(|| root.join("vendor"), |p| p.join("vendor"));
    let native = vendor.join(triple).join("bin").join("codex");
    if !crate::launch::is_executable(&native) {
        return None;
    }
    // The shim names the package manager that installed it; pnpm and bun by where their
    // stores put packages, npm otherwise (also when it cannot tell).
    let text = root.to_string_lossy();
    let manager = if text.contains("/node_modules/.pnpm/") {
        "CODEX_MANAGED_BY_PNPM"
    } else if text.contains("/.bun/install/global") {
        "CODEX_MANAGED_BY_BUN"
    } else {
        "CODEX_MANAGED_BY_NPM"
    };
    Some(NativeStart {
        program: native,
        env: vec![
            (
                "CODEX_MANAGED_PACKAGE_ROOT".to_string(),
                root.display().to_string(),
            ),
            (manager.to_string(), "1".to_string()),
        ],
        env_remove: CODEX_MANAGERS
            .iter()
            .filter(|m| **m != manager)
            .map(|m| m.to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `node_modules` as `npm ci` lays it out: the shim, its platform package beside it, and
    /// `.bin/codex` a link to the shim.
    fn npm_layout(dir: &Path) -> (PathBuf, PathBuf) {
        let (triple, package) = codex_platform().unwrap();
        let nm = dir.join("node_modules");
        write(
            &nm.join("@openai/codex/bin/codex.js"),
            "#!/usr/bin/env node\n",
            0o755,
        );
        write(&nm.join("@openai/codex/package.json"), "{}", 0o644);
        write(
            &nm.join("@openai").join(package).join("package.json"),
            "{}",
            0o644,
        );
        let native = nm
            .join("@openai")
            .join(package)
            .join("vendor")
            .join(triple)
            .join("bin/codex");
        write(&native, "", 0o755);
        std::fs::create_dir_all(nm.join(".bin")).unwrap();
        std::os::unix::fs::symlink("../@openai/codex/bin/codex.js", nm.join(".bin/codex")).unwrap();
        (nm.join(".bin/codex"), native)
    }

    #[test]
    fn codex_shim_is_skipped_for_its_platform_binary_with_the_shims_env() {
        let dir = tempfile::tempdir().unwrap();
        let (on_path, native) = npm_layout(dir.path());
        let root = std::fs::canonicalize(dir.path().join("node_modules/@openai/codex")).unwrap();
        let start = codex_native(&on_path).expect("the shim is recognised");
        assert_eq!(start.program, std::fs::canonicalize(&native).unwrap());
        assert_eq!(
            start.env,
            vec![
                (
                    "CODEX_MANAGED_PACKAGE_ROOT".to_string(),
                    root.display().to_string()
                ),
                ("CODEX_MANAGED_BY_NPM".to_string(), "1".to_string()),
            ]
        );
        assert_eq!(
            start.env_remove,
            [
                "CODEX_MANAGED_BY_BUN",
                "CODEX_MANAGED_BY_PNPM",
                "CODEX_MANAGED_BY_VITE_PLUS"
            ]
        );
    }

    #[test]
    fn anything_but_the_shim_with_its_binary_is_started_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (on_path, native) = npm_layout(dir.path());
        // The native binary itself, or a script of the user's named codex.
        assert_eq!(codex_native(&native), None);
        let own = dir.path().join("bin/codex");
        write(&own, "#!/bin/sh\n", 0o755);
        assert_eq!(codex_native(&own), None);
        // The platform binary missing or not executable: the shim says what is wrong.
        std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(codex_native(&on_path), None);
        std::fs::remove_file(&native).unwrap();
        assert_eq!(codex_native(&on_path), None);
    }

    #[test]
    fn a_pnpm_store_is_searched_up_from_the_shim_and_named_in_the_env() {
        let (triple, package) = codex_platform().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // pnpm: each package in `.pnpm/<name>@<version>/node_modules/`, its dependencies
        // beside it there.
        let store = dir
            .path()
            .join("node_modules/.pnpm/@openai+codex@1.0.0/node_modules/@openai");
        write(&store.join("codex/bin/codex.js"), "", 0o755);
        write(&store.join(package).join("package.json"), "{}", 0o644);
        let native = store
            .join(package)
            .join("vendor")
            .join(triple)
            .join("bin/codex");
        write(&native, "", 0o755);
        let start = codex_native(&store.join("codex/bin/codex.js")).unwrap();
        assert_eq!(start.program, std::fs::canonicalize(&native).unwrap());
        assert_eq!(start.env[1].0, "CODEX_MANAGED_BY_PNPM");
        assert!(
            start
                .env_remove
                .contains(&"CODEX_MANAGED_BY_NPM".to_string())
        );
    }

    /// The pinned Codex in this repository's node_modules (`npm ci`): its shim is the layout
    /// this module knows.
    #[test]
    fn the_pinned_codex_shim_leads_to_its_native_binary() {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/codex");
        assert!(bin.exists(), "no {} (run `npm ci`)", bin.display());
        let start = codex_native(&bin).expect("the pinned Codex's shim is recognised");
        let (triple, _) = codex_platform().unwrap();
        assert!(
            start.program.ends_with(Path::new(triple).join("bin/codex")),
            "{}",
            start.program.display()
        );
    }
}
