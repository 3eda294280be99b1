#!/usr/bin/env bash
# The signing job: builds the site from the inputs the build job packed, signs it with
# the online keys and pushes it to the site branch (GitHub Pages).
#
# Usage: scripts/publish.sh INPUTS_TAR
#
# Runs in a checkout that holds only scripts/ (the workflow's sparse checkout): the
# registry comes from INPUTS_TAR (scripts/prepare.sh), the previous site from the site
# branch (fetched here: actions/checkout fetches only the triggering ref). Keys come
# from the environment (TRELLIS_SNAPSHOT_KEY, TRELLIS_TIMESTAMP_KEY, TRELLIS_BINS_KEY,
# TRELLIS_PUBLISHERS_KEY, TRELLIS_SECURITY_KEY), are written into a private temporary
# directory and deleted right after the build, whatever happens. The offline targets
# key is never here: when targets must be re-signed the build says so and
# scripts/publish-offline.sh does it on the operator's machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

inputs=${1:?usage: publish.sh INPUTS_TAR}
work=$(mktemp -d)
cleanup() {
    rm -rf "$work/registry/keys"
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/in"
tar -x -C "$work/in" -f "$inputs" registry scope sha
mv "$work/in/registry" "$work/registry"
sha=$(cat "$work/in/sha")
is_sha "$sha" || die "inputs: '$sha' is not a commit id"
only=()
scope=$(cat "$work/in/scope")
case $scope in
    full) ;;
    none)
        note "nothing the site depends on changed in $sha"
        summary "### Publish"
        summary "nothing to publish for \`$sha\`"
        exit 0
        ;;
    *)
        while IFS= read -r id; do
            [[ "$id" =~ ^[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9.-]*$ ]] || die "inputs: scope line '$id' is not a plugin id"
            only+=(--only "$id")
        done <<<"$scope"
        ;;
esac
if [ -e "$work/registry/keys" ]; then
    die "inputs: the registry carries a keys/ directory; refusing to sign with keys that came with the inputs"
fi

checkout_site "$work/site"
write_online_keys "$work/registry" "${ONLINE_ROLES[@]}"
mapfile -t now < <(now_args)
status=0
"$TRELLIS_INDEX" build "$work/registry" --out "$work/site" "${only[@]}" "${now[@]}" >"$work/build.log" 2>&1 || status=$?
rm -rf "$work/registry/keys"
cat "$work/build.log" >&2
summary "### Publish \`${sha:0:12}\`"
summary '```'
summary "$(cat "$work/build.log")"
summary '```'
if [ "$status" -ne 0 ]; then
    if grep -q "targets metadata must be re-signed" "$work/build.log"; then
        die "the offline targets role must be re-signed: run scripts/publish-offline.sh on the machine holding the targets key (docs/KEY-CEREMONY.md, 'Calendar')"
    fi
    die "trellis-index build failed (exit $status); the published site is unchanged"
fi
"$TRELLIS_INDEX" verify "$work/site" --root "$work/registry/root/1.root.json" "${now[@]}" >&2 ||
    die "the built site does not verify; not published"
report_site_size "$work/site"
publish_site "$work/site" "site: ${sha:0:12}" "$sha"
summary "published to $SITE_BRANCH"
