#!/usr/bin/env bash
# The build job (no secrets): decides what a push changed, lints the new releases and
# packs the registry inputs the signing job builds from.
#
# Usage: scripts/prepare.sh OUT_DIR     writes OUT_DIR/inputs.tar
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

rm -rf "$out/inputs"
mkdir -p "$out/inputs/registry"
git archive --format=tar "$sha" | tar -x -C "$out/inputs/registry"
rm -rf "$out/inputs/registry/.github" "$out/inputs/registry/scripts" "$out/inputs/registry/plugins"
printf '%s\n' "$scope" >"$out/inputs/scope"
printf '%s\n' "$sha" >"$out/inputs/sha"
tar -C "$out/inputs" -cf "$out/inputs.tar" registry scope sha
rm -rf "$out/inputs"
summary "### Build inputs"
summary "commit \`$sha\`, scope: $(printf '%s' "$scope" | tr '\n' ' ')${reason:+ ($reason)}"
printf '%s\n' "$out/inputs.tar"
