#!/bin/sh
# Cargo compiles the workspace's own crates through this script (`build.rustc-workspace-wrapper`
# in .cargo/config.toml): `rustc-wrapper.sh RUSTC ARGS...`. It runs RUSTC with ARGS unchanged,
# except for the `fracta` executable on Linux with glibc, which it links statically:
#
#   -C target-feature=+crt-static -C relocation-model=static
#
# Every `fracta` command is a new process, and a dynamically linked one starts through the
# loader (libc, libm and libgcc_s mapped and bound, their start-up code run): statically linked,
# `fracta --version` takes ~0.4 ms less and a `fracta spawn` 0.6–1.0 ms less of its own time
# (release builds, docs/src/performance.md). Cargo has no stable way to give these flags to one
# crate: RUSTFLAGS reach proc macros too, which cannot be built with crt-static.
#
# Needs glibc's static library (`libc.a`: Debian's libc6-dev, Fedora's glibc-static); without
# it the executable is linked dynamically and a warning says so. FRACTA_LINK=dynamic asks for a
# dynamic link (a binary meant for other machines: a static glibc still loads the system's NSS
# modules, the same glibc version's, for user and host lookups /etc/passwd, /etc/hosts and DNS
# do not answer).
#
# Cargo does not know what this script decides: after changing it (or FRACTA_LINK), make Cargo
# link `fracta` again (`touch crates/cli/src/main.rs`).
rustc="$1"
shift

case " $* " in
*" --crate-name fracta "*) ;;
*) exec "$rustc" "$@" ;;
esac
# The executable and its unit-test harness, not a library or a `--print` query.
case " $* " in
*" --crate-type bin "* | *" --test "*) ;;
*) exec "$rustc" "$@" ;;
esac
if [ "${FRACTA_LINK:-static}" = dynamic ]; then
  exec "$rustc" "$@"
fi

# The target: `--target T` if given, else the host.
target=""
prev=""
for a in "$@"; do
  if [ "$prev" = --target ]; then target="$a"; fi
  case "$a" in --target=*) target="${a#--target=}" ;; esac
  prev="$a"
done
cfg=$("$rustc" --print cfg ${target:+--target "$target"} 2>/dev/null)
case "$cfg" in
*'target_os="linux"'*) ;;
*) exec "$rustc" "$@" ;;
esac
case "$cfg" in
*'target_env="gnu"'*) ;;
*) exec "$rustc" "$@" ;;
esac

libc=$(${CC:-cc} -print-file-name=libc.a 2>/dev/null)
case "$libc" in
/*) ;;
*)
  echo "warning: glibc's static library (libc.a) was not found: fracta is linked dynamically, and each of its commands starts ~0.4 ms slower (install libc6-dev or glibc-static, or set FRACTA_LINK=dynamic to silence this)" >&2
  exec "$rustc" "$@"
  ;;
esac
exec "$rustc" "$@" -C target-feature=+crt-static -C relocation-model=static
