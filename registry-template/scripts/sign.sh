#!/usr/bin/env bash
# The signing job: checks what the build job prepared and signs it with the online keys.
#
# Usage: scripts/sign.sh UNSIGNED_TAR OUT_DIR     writes OUT_DIR/signed.tar
#
# Runs in a checkout of the pushed commit *without* releases/ and plugins/ (the
# workflow's sparse checkout): the configuration, roots, publisher records, yanks,
# rollouts and blocklist come from git, never from the build job. UNSIGNED_TAR
# (scripts/prepare.sh) holds only metadata/ and small targets: no package ever reaches
# this job. `trellis-index sign-prepared` refuses, naming the file, anything a
# compromised build job could forge (a release not signed by its developer under the
# publisher record, a published release changed or dropped, a yank, role, version or
# delegation other than the registry's) and signs nothing then; the expiry dates are
# its own. Keys come from the environment (TRELLIS_SNAPSHOT_KEY, TRELLIS_TIMESTAMP_KEY,
# TRELLIS_BINS_KEY, TRELLIS_PUBLISHERS_KEY, TRELLIS_SECURITY_KEY), are written into
# keys/ (mode 0600) and deleted right after signing, whatever happens. signed.tar holds
# the signed metadata and the documents it checked; scripts/publish.sh publishes it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

unsigned=${1:?usage: sign.sh UNSIGNED_TAR OUT_DIR}
out=${2:?usage: sign.sh UNSIGNED_TAR OUT_DIR}
registry=$(pwd)
[ -f "$registry/trellis-registry.json" ] || die "run from the registry checkout: no trellis-registry.json in $registry"
if [ -e "$registry/keys" ]; then
    die "keys/ exists in the checkout before any secret was written; refusing to sign with keys that did not come from the secrets"
fi
work=$(mktemp -d)
cleanup() {
    rm -rf "$registry/keys"
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Only metadata/ and targets/ paths, no '..', no links: anything else is refused
# before a byte is extracted.
tar -tvf "$unsigned" >"$work/listing" || die "$unsigned is not a tar archive"
while IFS= read -r line; do
    case $line in
        -* | d*) ;;
        *) die "$unsigned: '$line' is not a plain file or directory" ;;
    esac
done <"$work/listing"
while IFS= read -r path; do
    if ! [[ "$path" =~ ^(metadata|targets)(/[A-Za-z0-9][A-Za-z0-9._+-]*)*/?$ ]]; then
        die "$unsigned: '$path' is not a file of metadata/ or targets/"
    fi
done < <(tar -tf "$unsigned")
mkdir "$work/prepared"
tar -x -C "$work/prepared" --no-same-owner --no-same-permissions -f "$unsigned"
rm -f "$out/signed.tar"
if [ ! -d "$work/prepared/metadata" ]; then
    note "nothing prepared to sign"
    summary "### Sign"
    summary "nothing to sign"
    tar -cf "$out/signed.tar" -T /dev/null
    exit 0
fi

checkout_site "$work/site"
write_online_keys "$registry" "${ONLINE_ROLES[@]}"
mapfile -t now < <(now_args)
status=0
"$TRELLIS_INDEX" sign-prepared "$registry" --site "$work/site" --prepared "$work/prepared" --out "$work/signed" "${now[@]}" >"$work/sign.log" 2>&1 || status=$?
rm -rf "$registry/keys"
cat "$work/sign.log" >&2
summary "### Sign"
summary '```'
summary "$(cat "$work/sign.log")"
summary '```'
[ "$status" -eq 0 ] || die "the prepared build was refused (exit $status); nothing was signed, the published site is unchanged"
mkdir -p "$work/signed"
tar -C "$work/signed" -cf "$out/signed.tar" .
printf '%s\n' "$out/signed.tar"
