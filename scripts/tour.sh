#!/usr/bin/env bash
# The tour: the whole key lifecycle on a fresh embedded keystore, with the
# `keystate` CLI. Each command is printed before it runs; expected refusals
# are checked by their exit code. Exits 0 only if every step behaved.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# KEYSTATE_BIN: a keystate binary already built (the test script passes the
# one its test build made, so the tour does not build it again).
bin="${KEYSTATE_BIN:-}"
if [ -z "$bin" ]; then
    echo "==> building the keystate CLI" >&2
    cargo build -p keystate --bin keystate >&2
    bin="${CARGO_TARGET_DIR:-$repo/target}/debug/keystate"
fi
[ -x "$bin" ] || { echo "tour: no binary at $bin" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/keystate-tour.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Nothing from the caller's environment leaks in.
unset KEYSTATE_HMK_PASSPHRASE KEYSTATE_KPK_PASSPHRASE KEYSTATE_PASSPHRASE
export KEYSTATE_KEYSTORE="$work/keys.db"

keystate() { "$bin" "$@"; }
show() { printf '\n+'; printf ' %q' "$@"; printf '\n'; }
say() { printf '\n# %s\n' "$*"; }
fail() { printf '\ntour: FAILED: %s\n' "$*" >&2; exit 1; }

# run CMD...: print it, run it, it must succeed.
run() { show "$@"; "$@" || fail "exit $? from: $*"; }

# refused CODE CMD...: print it, run it, it must fail with exit code CODE.
refused() {
    local want=$1 got=0
    shift
    show "$@"
    "$@" || got=$?
    [ "$got" -eq "$want" ] || fail "expected exit $want, got $got from: $*"
    echo "(refused with exit $got, as expected)"
}

# expect TEXT CMD...: print it, run it, its stdout must contain TEXT.
expect() {
    local text=$1 out
    shift
    show "$@"
    out=$("$@") || fail "exit $? from: $*"
    printf '%s\n' "$out"
    [[ "$out" == *"$text"* ]] || fail "expected \"$text\" in the output of: $*"
}

json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

say "A fresh keystore in $KEYSTATE_KEYSTORE (export KEYSTATE_KEYSTORE=...), random HMK and KPK"
run keystate init
run keystate group create backups --description "nightly images"

say "A key is born prelive, then activated"
expect prelive keystate key create backups k1
refused 6 keystate encrypt --group backups -i /dev/null   # no active key yet
expect "prelive -> active" keystate key set-state backups k1 active

say "Encrypt a backup image with the group's active key"
head -c 3000000 /dev/urandom >image.tar
run keystate encrypt --group backups --aad img-1 -i image.tar -o image.tar.ks

say "A second active key bumps the first to inactive (one active key per group)"
expect "active -> inactive" keystate key create backups k2 --state active
run keystate key list
expect '"state":"inactive"' keystate --json key show backups k1

say "The inactive key still restores what it encrypted"
run keystate decrypt --aad img-1 -i image.tar.ks -o restored.tar
run cmp image.tar restored.tar
printf '\n+ keystate encrypt --group backups <<<streamed | keystate decrypt\n'
[ "$(keystate encrypt --group backups <<<"streamed" | keystate decrypt)" = streamed ] || fail "stdin/stdout round trip"
echo streamed

say "Keys move one adjacent step at a time"
refused 5 keystate key set-state backups k2 deprecated

say "Suspected compromise: deprecate k1, every use is refused"
run keystate key set-state backups k1 deprecated
refused 6 keystate decrypt --aad img-1 -i image.tar.ks -o restored2.tar
[ ! -e restored2.tar ] || fail "a refused decrypt left an output file"
refused 7 keystate key delete backups k1   # only prelive or terminated keys may be deleted

say "Pass phrase keys can be recovered after deletion"
show export KEYSTATE_PASSPHRASE='<the tour pass phrase>'
export KEYSTATE_PASSPHRASE='tape 7 offsite'
expect "recoverable  yes" keystate key create backups weekly --passphrase --state active
tag=$(keystate --json key show backups weekly | json_field tag)
[ -n "$tag" ] || fail "no tag for key weekly"
echo "tag of weekly: $tag"
run keystate encrypt --group backups --aad img-2 -i image.tar -o weekly.ks
for state in inactive deprecated terminated; do
    run keystate key set-state backups weekly "$state"
done
run keystate key delete backups weekly
refused 3 keystate decrypt --aad img-2 -i weekly.ks -o weekly.tar   # its key is gone
show env KEYSTATE_PASSPHRASE='<wrong>' keystate key recover backups weekly --tag "$tag"
got=0
KEYSTATE_PASSPHRASE='tape 8 offsite' "$bin" key recover backups weekly --tag "$tag" || got=$?
[ "$got" -eq 8 ] || fail "expected exit 8 for a wrong pass phrase, got $got"
echo "(refused with exit $got, as expected)"
expect "inactive" keystate key recover backups weekly --tag "$tag"
run keystate decrypt --aad img-2 -i weekly.ks -o weekly.tar
run cmp image.tar weekly.tar
unset KEYSTATE_PASSPHRASE

say "Back to k2 for new backups"
expect "inactive -> active" keystate key set-state backups k2 active

say "Counts, and the rules the component enforces"
run keystate stats
run keystate policy

say "Quiesce: read-only so the files can be copied consistently"
run keystate quiesce
refused 10 keystate group create archive
run keystate key list --state active   # reads still work
run keystate unquiesce
run keystate group create archive

say "Machine-readable output"
expect '"name":"k2"' keystate --json key list --group backups --state active

printf '\ntour: every step behaved as expected\n'
