# Shared by the Tools scripts: install what a fresh machine lacks.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '%s\n' "$*" >&2; }

# LMDB from Debian's liblmdb-dev (pkg-config name "lmdb"), and its command-line
# utilities (mdb_dump, mdb_stat) for inspecting stores and fixtures.
ensure_lmdb() {
    if pkg-config --exists lmdb 2>/dev/null && command -v mdb_dump >/dev/null 2>&1; then
        return 0
    fi
    log "ioasid: installing liblmdb-dev and lmdb-utils…"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "ioasid: pkg-config cannot find lmdb and apt-get is not available; install LMDB (liblmdb-dev) by hand"
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || true
    $sudo apt-get install -y -qq pkg-config liblmdb-dev lmdb-utils >&2
}

# strace, for the power-loss model tests (Tests/IOASIDStoreTests/PowerLossTests.swift),
# which replay a command's file system calls; they are skipped, saying so, without it.
ensure_strace() {
    if command -v strace >/dev/null 2>&1; then
        return 0
    fi
    log "ioasid: installing strace…"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "ioasid: strace is not installed and apt-get is not available; the power-loss tests will be skipped"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || true
    $sudo apt-get install -y -qq strace >&2 || log "ioasid: could not install strace; the power-loss tests will be skipped"
}

ensure_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        log "ioasid: Swift 6.1 or later must be on PATH"
        exit 3
    fi
}

# The flags of every release build (the tool as run and installed, the benchmarks,
# the crash and corruption runs), one array for all so that they share one build:
# the Swift runtime linked statically, and the C++ runtime too where its static
# archive is installed. Loading libstdc++.so, binding its symbols and relocating it
# took about a quarter of a short `ioasid` process (docs/benchmarks.md, "The C++
# runtime linked into the tool"). swiftc's link line asks for -lstdc++; a linker
# script of that name, in a directory that Package.swift puts first on release
# links when IOASID_LINK_DIR names it, stands for the archive. Sets RELEASE_FLAGS;
# exports IOASID_LINK_DIR only when the archive is there.
release_flags() {
    local dir="$ROOT/.build-link" swift_bin clang archive="" script tmp
    swift_bin="$(readlink -f "$(command -v swift)")"
    clang="$(dirname "$swift_bin")/clang"
    if [ -x "$clang" ]; then archive="$("$clang" -print-file-name=libstdc++.a 2>/dev/null || true)"; fi
    RELEASE_FLAGS=(-c release --static-swift-stdlib)
    unset IOASID_LINK_DIR
    # clang prints the bare name when it finds no archive: only an absolute path to a file counts.
    case "$archive" in /*) ;; *) archive="" ;; esac
    if [ -z "$archive" ] || [ ! -f "$archive" ]; then
        log "ioasid: no libstdc++.a (libstdc++-12-dev): the tool loads libstdc++.so at every start"
        return 0
    fi
    mkdir -p "$dir"
    script="$(printf 'INPUT("%s")' "$archive")"
    if [ "$(cat "$dir/libstdc++.so" 2>/dev/null)" != "$script" ]; then
        tmp="$(mktemp "$dir/libstdc++.so.XXXXXX")"
        printf '%s\n' "$script" >"$tmp"
        mv -f "$tmp" "$dir/libstdc++.so"
    fi
    export IOASID_LINK_DIR="$dir"
}
