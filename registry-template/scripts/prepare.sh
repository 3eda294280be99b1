#!/usr/bin/env bash
# The build job (no secrets): decides what a push changed, lints the new releases and
# builds the site *without signing it* (`trellis-index build --unsigned`): blobs, index
# docs, catalog documents and the unsigned payloads of every role that changes.
#
# Usage: scripts/prepare.sh OUT_DIR     writes OUT_DIR/unsigned.tar, blobs.tar, pages.tar
#                                       and removed.txt
#
# unsigned.tar: what the signing job checks and signs (metadata/ and every new target
# but packages and deltas); blobs.tar: the new packages and deltas, which only the
# publishing job receives (their hashes are in the index docs the signer checks);
# pages.tar: the storefront (HTML, assets, images; unsigned, for the publishing job);
# removed.txt: the storefront files the build deleted (the page of a plugin whose every
# release is now yanked, ...), one path a line, which the publishing job deletes from
# the site. The build never deletes under metadata/ or targets/ (write-once).
# All are empty when nothing is to be published.
#
# Runs in the checkout of the pushed commit made by actions/checkout (depth 1, only the
# triggering ref). Reads GITHUB_SHA, GITHUB_EVENT_NAME and GITHUB_EVENT_BEFORE (the
# commit the branch pointed to before the push). The scope is every plugin whose
# releases/ changed between BASE and SHA (every commit of the push, not only the
# last), where BASE is the commit the published site was built from (the
# `Trellis-Source:` trailer of the site branch), so a push whose publish failed is
# caught up by the next one; BEFORE when the site names none. A full build when BASE
# is all zeros (a new branch), unknown or not fetchable (a force push), when the event
# is not a push (schedule, manual run), or when anything else the site depends on
# changed (configuration, root, publishers, yanks, rollouts, blocklist). Nothing but
# documentation changed: scope "none".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

out=${1:?usage: prepare.sh OUT_DIR}
sha=${GITHUB_SHA:-$(git rev-parse HEAD)}
is_sha "$sha" || die "GITHUB_SHA '$sha' is not a commit id"
event=${GITHUB_EVENT_NAME:-push}
before=${GITHUB_EVENT_BEFORE:-}
if [ "$event" = push ] && fetch_site_ref; then
    built=$(site_source)
    if [ -n "$built" ] && [ "$built" != "$before" ]; then
        note "the site was built from $built (the push started at ${before:-?}): the scope starts there"
        before=$built
    fi
fi

if [ -n "$(git ls-tree -r --name-only "$sha" -- keys)" ]; then
    die "keys/ is committed: those private keys are public now; rotate them (docs/KEY-CEREMONY.md) and remove keys/ from git"
fi

scope=full
reason=""
changed=""
if [ "$event" != push ]; then
    reason="$event event"
elif [ -z "$before" ] || [ "$before" = "$ZERO_SHA" ] || ! is_sha "$before"; then
    reason="no previous commit for this push and no source commit on the site (before='${before}')"
elif ! git fetch --quiet --no-tags --depth=1 origin "$before" 2>/dev/null; then
    reason="the previous commit $before cannot be fetched (force push?)"
else
    changed=$(git diff --name-only --no-renames "$before" "$sha")
    ids=()
    while IFS= read -r path; do
        [ -n "$path" ] || continue
        case $path in
            releases/*/*)
                id=${path#releases/}
                id=${id%%/*}
                [[ "$id" =~ ^[a-z0-9][a-z0-9-]*\.[a-z0-9][a-z0-9.-]*$ ]] || die "releases/$id: not a plugin id"
                ids+=("$id")
                ;;
            plugins/* | docs/* | README* | .github/* | scripts/* | CODEOWNERS | LICENSE*) ;;
            *)
                reason="$path changed"
                ids=()
                break
                ;;
        esac
    done <<<"$changed"
    if [ -z "$reason" ]; then
        if [ ${#ids[@]} -eq 0 ]; then
            scope=none
        else
            scope=$(printf '%s\n' "${ids[@]}" | sort -u)
        fi
    fi
fi
case $scope in
    full) note "scope: full build ($reason)" ;;
    none) note "scope: nothing the site depends on changed" ;;
    *) note "scope: $(printf '%s' "$scope" | tr '\n' ' ')" ;;
esac

# Lint every release this push added, against the publisher records it was merged with.
if [ -n "$changed" ]; then
    while IFS= read -r path; do
        case $path in
            releases/*/*.zip) ;;
            *) continue ;;
        esac
        [ -f "$path" ] || continue
        id=${path#releases/}
        id=${id%%/*}
        vendor=${id%%.*}
        "$TRELLIS_INDEX" lint "$path" --publisher "publishers/$vendor.json" ||
            die "$path does not pass lint; the site was not changed"
    done <<<"$changed"
fi

summary "### Build"
summary "commit \`$sha\`, scope: $(printf '%s' "$scope" | tr '\n' ' ')${reason:+ ($reason)}"
rm -f "$out/unsigned.tar" "$out/blobs.tar" "$out/pages.tar" "$out/removed.txt"
if [ "$scope" = none ]; then
    note "nothing to publish for $sha"
    summary "nothing to publish for \`$sha\`"
    tar -cf "$out/unsigned.tar" -T /dev/null
    tar -cf "$out/blobs.tar" -T /dev/null
    tar -cf "$out/pages.tar" -T /dev/null
    : >"$out/removed.txt"
    exit 0
fi
only=()
if [ "$scope" != full ]; then
    while IFS= read -r id; do only+=(--only "$id"); done <<<"$scope"
fi

work=$(mktemp -d)
cleanup() {
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# The registry at SHA, without anything a key could hide in: the build uses no key.
mkdir "$work/registry"
git archive --format=tar "$sha" | tar -x -C "$work/registry"
rm -rf "$work/registry/keys" "$work/registry/.github" "$work/registry/scripts" "$work/registry/plugins"
checkout_site "$work/site"
mapfile -t now < <(now_args)
status=0
"$TRELLIS_INDEX" build "$work/registry" --out "$work/site" --unsigned "${only[@]}" "${now[@]}" >"$work/build.log" 2>&1 || status=$?
cat "$work/build.log" >&2
summary '```'
summary "$(cat "$work/build.log")"
summary '```'
if [ "$status" -ne 0 ]; then
    if grep -q "targets metadata must be re-signed" "$work/build.log"; then
        die "the offline targets role must be re-signed: run scripts/publish-offline.sh on the machine holding the targets key (docs/KEY-CEREMONY.md, 'Calendar')"
    fi
    die "trellis-index build failed (exit $status); the published site is unchanged"
fi
# Every file the build added or changed, split by who needs it.
git -C "$work/site" add -A
git -C "$work/site" diff --cached --name-only --no-renames -z --diff-filter=AM >"$work/changed"
: >"$work/unsigned.list"
: >"$work/blobs.list"
: >"$work/pages.list"
while IFS= read -r -d '' path; do
    case $path in
        targets/*.zip | targets/*.delta) printf '%s\n' "$path" >>"$work/blobs.list" ;;
        metadata/* | targets/*) printf '%s\n' "$path" >>"$work/unsigned.list" ;;
        # The storefront: HTML, assets and images served beside the metadata. Not signed
        # (clients never read them); publish.sh refuses pages under metadata/ or targets/.
        *) printf '%s\n' "$path" >>"$work/pages.list" ;;
    esac
done <"$work/changed"
tar -C "$work/site" -cf "$out/unsigned.tar" --verbatim-files-from -T "$work/unsigned.list"
tar -C "$work/site" -cf "$out/blobs.tar" --verbatim-files-from -T "$work/blobs.list"
tar -C "$work/site" -cf "$out/pages.tar" --verbatim-files-from -T "$work/pages.list"
# Every storefront file the build deleted. A deletion under metadata/ or targets/ would
# be a builder bug (published files are write-once): it is reported, never carried.
git -C "$work/site" diff --cached --name-only --no-renames -z --diff-filter=D >"$work/deleted"
: >"$out/removed.txt"
while IFS= read -r -d '' path; do
    case $path in
        metadata/* | targets/*) warn "the build deleted $path; published metadata and targets are never deleted" ;;
        *) printf '%s\n' "$path" >>"$out/removed.txt" ;;
    esac
done <"$work/deleted"
summary "prepared $(wc -l <"$work/unsigned.list") file(s) to sign, $(wc -l <"$work/blobs.list") blob(s), $(wc -l <"$work/pages.list") storefront file(s) and $(wc -l <"$out/removed.txt") removal(s)"
printf '%s\n' "$out/unsigned.tar" "$out/blobs.tar" "$out/pages.tar" "$out/removed.txt"
