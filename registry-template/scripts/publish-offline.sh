#!/usr/bin/env bash
# Builds and publishes the site on the operator's machine, with the offline targets key
# present: the first site of a new store (bootstrap), and whenever `targets` must be
# re-signed (before it expires, see `trellis-index status`, or after rotating a
# delegated role's key). CI never holds the targets key.
#
# Usage: scripts/publish-offline.sh     (from a clone of the registry, keys/ holding
#                                        the targets key and the online keys)
#
# Refuses unless the clone is clean and at origin's main branch (TRELLIS_MAIN_BRANCH):
# a site built from unpushed commits would publish releases the next CI build does not
# know. Then a full build, `verify`, and a push to the site branch.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

registry=$(pwd)
[ -f "$registry/trellis-registry.json" ] || die "run from the registry clone: no trellis-registry.json in $registry"
main=${TRELLIS_MAIN_BRANCH:-main}
git fetch --quiet --no-tags origin "+refs/heads/$main:refs/remotes/origin/$main"
if [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
    die "the clone has uncommitted changes; commit and push them first (git status)"
fi
head=$(git rev-parse HEAD)
if [ "$head" != "$(git rev-parse "refs/remotes/origin/$main")" ]; then
    die "HEAD ($head) is not origin/$main; push or pull first so the site matches what CI will build"
fi
targets=$(jq -r '.keys.targets.keys[0] // empty' trellis-registry.json)
if [ -z "$targets" ] || [ ! -f "$targets" ]; then
    die "the targets key (${targets:-keys.targets in trellis-registry.json}) is not here; run this on the machine holding it"
fi

work=$(mktemp -d)
cleanup() {
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    git branch --quiet -D "trellis-site-$$" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
if site_exists; then
    checkout_site "$work/site"
    first=no
else
    new_site "$work/site"
    first=yes
fi
mapfile -t now < <(now_args)
"$TRELLIS_INDEX" build "$registry" --out "$work/site" "${now[@]}"
"$TRELLIS_INDEX" verify "$work/site" --root "$registry/root/1.root.json" "${now[@]}"
report_site_size "$work/site"
if [ "$first" = yes ]; then
    publish_site "$work/site" "site: first build (${head:0:12})" "$head"
    note "published the first site to '$SITE_BRANCH'; enable GitHub Pages on that branch (README.md 'First publish')"
else
    publish_site "$work/site" "site: offline build (${head:0:12})" "$head"
    note "published to '$SITE_BRANCH'"
fi
