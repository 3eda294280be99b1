#!/usr/bin/env bash
# The publishing job (no signing key): puts the signed metadata and the prepared blobs
# onto the published site, verifies the result as a client would and pushes it to the
# site branch (GitHub Pages).
#
# Usage: scripts/publish.sh SIGNED_TAR BLOBS_TAR [PAGES_TAR [REMOVED_LIST]]
#
# Runs in a checkout holding scripts/ and root/ (the trusted root the result is verified
# against). SIGNED_TAR comes from scripts/sign.sh, BLOBS_TAR (packages and deltas only)
# from scripts/prepare.sh; a blob the signed index docs do not list with that hash and
# length makes `verify` fail, and nothing is pushed. PAGES_TAR (prepare.sh) holds the
# storefront: unsigned pages, assets and images, never under metadata/ or targets/, put
# down first so the signed files always win. REMOVED_LIST (prepare.sh's removed.txt)
# names the storefront files the build deleted, one a line: each is deleted from the
# site; one under metadata/, targets/ or .git/, or not a storefront path, refuses the
# whole publish. The commit pushed names GITHUB_SHA
# as its `Trellis-Source:` (the next build's scope starts there).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

usage="usage: publish.sh SIGNED_TAR BLOBS_TAR [PAGES_TAR [REMOVED_LIST]]"
signed=${1:?$usage}
blobs=${2:?$usage}
pages=${3:-}
removed=${4:-}
sha=${GITHUB_SHA:-$(git rev-parse HEAD)}
is_sha "$sha" || die "GITHUB_SHA '$sha' is not a commit id"
root=$(pwd)/root/1.root.json
[ -f "$root" ] || die "no root/1.root.json in the checkout: the publish job checks out scripts/ and root/"
work=$(mktemp -d)
cleanup() {
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Checks an archive: plain files under PREFIX (a regular expression) only.
check_archive() {
    local archive=$1 pattern=$2 line path
    tar -tvf "$archive" >"$work/listing" || die "$archive is not a tar archive"
    while IFS= read -r line; do
        case $line in
            -* | d*) ;;
            *) die "$archive: '$line' is not a plain file or directory" ;;
        esac
    done <"$work/listing"
    while IFS= read -r path; do
        [[ "$path" =~ $pattern ]] || die "$archive: '$path' is not allowed there"
    done < <(tar -tf "$archive")
}
check_archive "$signed" '^(\./)?((metadata|targets)(/[A-Za-z0-9][A-Za-z0-9._+-]*)*/?)?$'
check_archive "$blobs" '^targets(/[A-Za-z0-9][A-Za-z0-9._+-]*)*(/|\.zip|\.delta)$|^targets/?$'
# The pages' names, listed once: never `tar -tf | grep -q` under pipefail (grep's early
# exit kills tar with SIGPIPE, the pipeline fails and the check passes).
: >"$work/pages.names"
if [ -n "$pages" ]; then
    check_archive "$pages" '^([A-Za-z0-9_][A-Za-z0-9._+-]*)(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*/?$|^\.nojekyll$'
    tar -tf "$pages" >"$work/pages.names"
    if grep -Eq '^(\./)?(metadata|targets|\.git)(/|$)' "$work/pages.names"; then
        die "$pages: storefront files may not be under metadata/, targets/ or .git/"
    fi
fi
# A storefront path: what pages.tar may hold, but never .nojekyll or a directory.
page_pattern='^[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*$'
if [ -n "$removed" ]; then
    [ -f "$removed" ] || die "$removed: no such file (the removal list of prepare.sh)"
    line=0
    while IFS= read -r path || [ -n "$path" ]; do
        line=$((line + 1))
        [[ "$path" =~ $page_pattern ]] || die "$removed:$line: '$path' is not a storefront path; nothing published"
        case $path in
            metadata/* | targets/*) die "$removed:$line: '$path': published metadata and targets are never deleted; nothing published" ;;
        esac
        if grep -Fxq -- "$path" "$work/pages.names"; then
            die "$removed:$line: '$path' is both written (pages) and deleted; nothing published"
        fi
    done <"$removed"
fi
if [ -z "$(tar -tf "$signed" | grep -v '/$' | grep -v '^\.$' || true)" ]; then
    note "nothing to publish for $sha"
    summary "### Publish"
    summary "nothing to publish for \`$sha\`"
    exit 0
fi

checkout_site "$work/site"
if [ -n "$pages" ]; then
    tar -x -C "$work/site" --no-same-owner --no-same-permissions -f "$pages"
fi
tar -x -C "$work/site" --no-same-owner --no-same-permissions -f "$blobs"
if [ -n "$removed" ]; then
    deleted=0
    while IFS= read -r path || [ -n "$path" ]; do
        if git -C "$work/site" ls-files --error-unmatch -- "$path" >/dev/null 2>&1; then
            git -C "$work/site" rm -q -- "$path"
            deleted=$((deleted + 1))
        else
            note "$path is not on $SITE_BRANCH (deleted already)"
        fi
    done <"$removed"
    [ "$deleted" -eq 0 ] || note "deleted $deleted storefront file(s) the build removed"
fi
tar -x -C "$work/site" --no-same-owner --no-same-permissions -f "$signed"
mapfile -t now < <(now_args)
"$TRELLIS_INDEX" verify "$work/site" --root "$root" "${now[@]}" >&2 ||
    die "the signed site does not verify; not published"
report_site_size "$work/site"
summary "### Publish \`${sha:0:12}\`"
publish_site "$work/site" "site: ${sha:0:12}" "$sha"
summary "published to $SITE_BRANCH"
