#!/usr/bin/env bash
# Installs the trellis-index the operator reviewed, never a moving branch head.
#
#   TRELLIS_REV      (required) the reviewed trellis commit, 40 hex digits (repository
#                    variable); the install is cached per revision (actions/cache on
#                    ~/.trellis) so scheduled jobs do not compile it again
#   TRELLIS_SHA256   (recommended) SHA-256 of the trellis-index binary: checked after a
#                    download, after a build and on every cache hit (a poisoned cache
#                    is refused)
#   TRELLIS_URL      a prebuilt trellis-index for this runner (https://…, a release asset
#                    of that revision); needs TRELLIS_SHA256. Without it the builder is
#                    compiled from TRELLIS_REV with `cargo install --locked`.
#   TRELLIS_GIT      the trellis repository (default https://github.com/trellis-store/trellis)
#   TRELLIS_HOME     install root (default ~/.trellis)
#
# Prints the binary's path; adds its directory to GITHUB_PATH when that is set.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

rev=${TRELLIS_REV:-}
if ! is_sha "$rev"; then
    die "set the repository variable TRELLIS_REV to the reviewed trellis commit (40 lowercase hex digits); got '${rev}'"
fi
expected=${TRELLIS_SHA256:-}
if [ -n "$expected" ] && ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]]; then
    die "TRELLIS_SHA256 must be 64 lowercase hex digits; got '$expected'"
fi
home=${TRELLIS_HOME:-$HOME/.trellis}
bin_dir="$home/$rev/bin"
binary="$bin_dir/trellis-index"

check_sum() {
    local file=$1 what=$2 actual
    actual=$(sha256sum "$file" | cut -d' ' -f1)
    if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
        rm -f "$file"
        die "$what: trellis-index has SHA-256 $actual, TRELLIS_SHA256 says $expected; refusing it"
    fi
    printf '%s' "$actual"
}

if [ -x "$binary" ]; then
    sum=$(check_sum "$binary" "cached $binary")
    note "trellis-index $rev from the cache (sha256 $sum)"
elif [ -n "${TRELLIS_URL:-}" ]; then
    [ -n "$expected" ] || die "TRELLIS_URL is set but TRELLIS_SHA256 is not: a downloaded builder must be checked"
    mkdir -p "$bin_dir"
    curl --fail --silent --show-error --location --proto '=https,file' --output "$binary.part" "$TRELLIS_URL" ||
        die "downloading $TRELLIS_URL failed"
    check_sum "$binary.part" "$TRELLIS_URL" >/dev/null
    chmod 0755 "$binary.part"
    mv "$binary.part" "$binary"
    note "trellis-index $rev downloaded from $TRELLIS_URL (sha256 $expected)"
else
    git_url=${TRELLIS_GIT:-https://github.com/trellis-store/trellis}
    cargo install --quiet --locked --git "$git_url" --rev "$rev" --root "$home/$rev" trellis-index
    sum=$(check_sum "$binary" "built from $git_url@$rev")
    note "trellis-index $rev built from source (sha256 $sum; set TRELLIS_SHA256 to pin it)"
fi
if [ -n "${GITHUB_PATH:-}" ]; then
    printf '%s\n' "$bin_dir" >>"$GITHUB_PATH"
fi
printf '%s\n' "$binary"
