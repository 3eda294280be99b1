#!/usr/bin/env bash
# The pull-request check: every submitted release against the BASE branch's publisher
# records, every changed record as a valid extension of the base's, and the manual
# review the store's policy asks for. Runs without any registry key.
#
# Usage: PR_NUMBER=N scripts/check-pr.sh
#
# Runs from a checkout of the BASE branch (the workflow uses `pull_request_target`, so
# this script and the workflow are the base branch's: a pull request cannot change the
# check that judges it). The pull request is only read, never run: its merge commit
# (refs/pull/N/merge, which GitHub keeps) is fetched and checked out beside, and the
# base is that commit's first parent.
#
# Environment:
#   PR_NUMBER             the pull request
#   PR_LABELS             its labels, comma-separated
#   TRELLIS_REVIEW_LABEL  the label a maintainer adds after an approving review
#                         (default: trellis-reviewed); CODEOWNERS names the maintainers
#   TRELLIS_COMMENT_FILE  where the comment body is written (default:
#                         $RUNNER_TEMP/trellis-check.md); the workflow posts it
#   TRELLIS_SANDBOX       1: also run each package's Linux entry point in the
#                         sandbox (`lint --sandbox`: bubblewrap + strace on the runner)
#
# Manual review (the label is required) when a pull request: adds a publisher (first
# submission), grows a plugin's permissions over its newest published release, asks for
# a high-risk permission, adds a remote package (`.remote.json`: not fetched here, so
# neither linted nor its permissions read), or changes anything but releases/ and
# publishers/ (operator files: configuration, root, yanks, blocklist, workflows, scripts),
# or adds, edits or removes a review (reviews/<plugin>/<login>.json: a maintainer
# moderates, and checks the login is the author of the review issue).
# Reviews: when a pull request touches reviews/, `trellis-index reviews check` runs on
# its merge commit; its count, the touched plugins' ratings and every problem go to the
# summary, and any problem refuses the pull request (six stars, a plugin or version the
# registry does not have, raw HTML, a file not named after its author, ...).
# Refused outright: a record that does not extend the base's (a pull request cannot add
# its own key), a package that fails lint or whose signature does not verify under the
# records (lint includes the static capability analysis: a binary or script using a
# capability no declared permission allows; and the scanners `trellis-registry.json`
# configures), a changed or removed published package.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

label=${TRELLIS_REVIEW_LABEL:-trellis-reviewed}
comment=${TRELLIS_COMMENT_FILE:-${RUNNER_TEMP:-/tmp}/trellis-check.md}
case $TRELLIS_INDEX in
    /*) ;;
    */*) TRELLIS_INDEX=$(cd "$(dirname "$TRELLIS_INDEX")" && pwd)/$(basename "$TRELLIS_INDEX") ;;
esac
pr=${PR_NUMBER:-}
[[ "$pr" =~ ^[0-9]+$ ]] || die "PR_NUMBER '$pr' is not a pull request number"
work=$(mktemp -d)
cleanup() {
    git worktree remove --force "$work/pr" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
git fetch --quiet --no-tags --depth=1 origin "+refs/pull/$pr/merge:refs/remotes/pull/$pr/merge" ||
    die "pull request $pr has no merge commit (refs/pull/$pr/merge): resolve its conflicts with the base branch"
merge=$(git rev-parse "refs/remotes/pull/$pr/merge")
parents=$(git cat-file -p "$merge" | sed -n 's/^parent //p')
[ "$(printf '%s\n' "$parents" | wc -l)" -eq 2 ] || die "refs/pull/$pr/merge is not a merge commit"
# The first parent, without a pipe into `head`: under pipefail a writer that outlives
# its reader dies of SIGPIPE (bash writes line by line) and the script exits 141.
base=${parents%%$'\n'*}
is_sha "$base" || die "base '$base' is not a commit id"
git fetch --quiet --no-tags --depth=1 origin "$base"
git worktree add --quiet --detach "$work/pr" "$merge"
full_tree "$work/pr"
base_checkout=$(pwd)
cd "$work/pr"

mkdir -p "$work/base" "$work/records"
root=$(git ls-tree --name-only "$base" root/ | sort -V | tail -n 1)
[ -n "$root" ] || die "the base branch has no root/N.root.json"
git show "$base:$root" >"$work/base/root.json"

# The base branch's record of VENDOR into $work/base/VENDOR.json; status 1 when the
# base has none (a first submission).
base_record() {
    local vendor=$1
    [ -s "$work/base/$vendor.json" ] && return 0
    git show "$base:publishers/$vendor.json" >"$work/base/$vendor.json.part" 2>/dev/null || {
        rm -f "$work/base/$vendor.json.part"
        return 1
    }
    mv "$work/base/$vendor.json.part" "$work/base/$vendor.json"
}

problems=()
review=()
rows=()
releases=()
reviewed_plugins=()
changed=$(git diff --name-status --no-renames "$base" HEAD)
while IFS=$'\t' read -r status path; do
    [ -n "${path:-}" ] || continue
    case $path in
        publishers/*.json)
            vendor=${path#publishers/}
            vendor=${vendor%.json}
            if ! [[ "$vendor" =~ ^[a-z][a-z0-9-]*$ ]]; then
                problems+=("$path: not a publisher record name")
                continue
            fi
            if [ "$status" = D ]; then
                problems+=("$path: a publisher record is never removed (revoke its keys instead)")
                continue
            fi
            git show "HEAD:$path" >"$work/records/$vendor.json"
            trusted=()
            if base_record "$vendor"; then
                trusted=(--trusted "$work/base/$vendor.json")
            else
                review+=("first submission of publisher **$vendor**")
            fi
            if ! out=$("$TRELLIS_INDEX" publisher check "$work/records/$vendor.json" "${trusted[@]}" --root "$work/base/root.json" 2>&1); then
                problems+=("$path: ${out//$'\n'/ }")
            fi
            ;;
        releases/*/*)
            rel=${path#releases/}
            id=${rel%%/*}
            file=${rel#*/}
            if ! [[ "$id" =~ ^[a-z][a-z0-9-]*\.[a-z][a-z0-9.-]*$ ]]; then
                problems+=("$path: not under releases/<plugin id>/")
                continue
            fi
            case $status:$file in
                A:*.zip | A:*.zip.dsse | M:*.zip.dsse) releases+=("releases/$id/${file%.dsse}") ;;
                A:*.remote.json)
                    rows+=("| $id ${file%.remote.json} | remote package: fetched and checked at build only | | |")
                    review+=("$id ${file%.remote.json} is a remote package (\`$path\`): this check cannot lint it or read its permissions; review them before merging")
                    ;;
                *:*.zip | *:*.remote.json) problems+=("$path: a published package never changes ($status); publish a new version, or yank this one") ;;
                D:*.zip.dsse) problems+=("$path: a release's signature is never removed; re-sign it instead") ;;
                *) problems+=("$path: expected <version>.zip, <version>.zip.dsse or <version>.remote.json") ;;
            esac
            ;;
        reviews/*)
            rel=${path#reviews/}
            case $status in
                A) what="new review" ;;
                D) what="removed review" ;;
                *) what="changed review" ;;
            esac
            review+=("$what \`$path\`: a maintainer moderates it (its author must be the review issue's)")
            [[ "$rel" == */* ]] && reviewed_plugins+=("${rel%%/*}")
            ;;
        docs/* | README* | plugins/*) ;;
        *) review+=("operator file \`$path\` changed") ;;
    esac
done <<<"$changed"

# Each submitted package, once, against the records as the base branch has them.
mapfile -t releases < <(printf '%s\n' "${releases[@]+"${releases[@]}"}" | sed '/^$/d' | sort -u)
for package in "${releases[@]+"${releases[@]}"}"; do
    id=${package#releases/}
    id=${id%%/*}
    vendor=${id%%.*}
    version=$(basename "$package" .zip)
    if [ ! -f "$package" ]; then
        problems+=("$package.dsse: no package $package beside it")
        continue
    fi
    if [ ! -f "publishers/$vendor.json" ]; then
        problems+=("$package: no publisher record publishers/$vendor.json (add it in this pull request: trellis-index publisher init)")
        continue
    fi
    trusted=()
    if base_record "$vendor"; then
        trusted=(--trusted-publisher "$work/base/$vendor.json")
    fi
    status=0
    # Scanners as the BASE branch configures them (a pull request cannot switch them
    # off); the sandboxed run when the runner has bubblewrap and strace.
    analysis=(--registry "$base_checkout")
    [ "${TRELLIS_SANDBOX:-}" = 1 ] && analysis+=(--sandbox)
    "$TRELLIS_INDEX" lint "$package" --json --publisher "publishers/$vendor.json" "${trusted[@]}" \
        --root "$work/base/root.json" "${analysis[@]}" >"$work/lint.json" 2>"$work/lint.err" || status=$?
    if [ "$status" -gt 1 ] || ! jq -e . "$work/lint.json" >/dev/null 2>&1; then
        problems+=("$package: $(tr '\n' ' ' <"$work/lint.err")")
        rows+=("| $id $version | refused | | |")
        continue
    fi
    errors=$(jq '[.problems[] | select(.severity == "error")] | length' "$work/lint.json")
    warnings=$(jq '[.problems[] | select(.severity == "warning")] | length' "$work/lint.json")
    signature=$(jq -r '.signature.status + (if .signature.publisher then " (" + .signature.publisher + ")" else "" end)' "$work/lint.json")
    perms=$(jq -r '[.permissions[] | .permission + (if .risk == "high" then " **high**" else "" end)] | join(", ")' "$work/lint.json")
    rows+=("| $id $version | $errors error(s), $warnings warning(s) | $signature | ${perms:-none} |")
    if [ "$status" -ne 0 ] || [ "$errors" -ne 0 ]; then
        while IFS= read -r line; do problems+=("$package: $line"); done < <(jq -r '.problems[] | select(.severity == "error") | .path + ": " + .message' "$work/lint.json")
        [ "$errors" -ne 0 ] || problems+=("$package: lint refused it")
    fi
    if [ "$signature" != "verified ($vendor)" ]; then
        problems+=("$package: the developer signature does not verify under publishers/$vendor.json (signature: $signature)")
    fi
    while IFS= read -r high; do
        [ -n "$high" ] && review+=("$id $version asks for the high-risk permission \`$high\`")
    done < <(jq -r '.permissions[] | select(.risk == "high") | .permission' "$work/lint.json")
    # Permission growth over the newest release the base branch has.
    previous=$(git ls-tree --name-only "$base" "releases/$id/" | sed -n 's#.*/\(.*\)\.zip$#\1#p' | sort -V | tail -n 1)
    if [ -n "$previous" ] && [ "$previous" != "$version" ]; then
        git show "$base:releases/$id/$previous.zip" >"$work/previous.zip"
        "$TRELLIS_INDEX" lint "$work/previous.zip" --json >"$work/previous.json" 2>/dev/null || true
        added=$(jq -r --slurpfile old "$work/previous.json" \
            '[.permissions[].permission] - [($old[0].permissions // [])[].permission] | join(", ")' "$work/lint.json")
        [ -z "$added" ] || review+=("$id $version asks for permissions $previous did not: \`$added\`")
    fi
done

# Reviews, as the merged registry would publish them.
review_lines=()
if [ ${#reviewed_plugins[@]} -gt 0 ]; then
    mapfile -t reviewed_plugins < <(printf '%s\n' "${reviewed_plugins[@]}" | sort -u)
    status=0
    "$TRELLIS_INDEX" reviews check "$work/pr" --json >"$work/reviews.json" 2>"$work/reviews.err" || status=$?
    if [ "$status" -gt 1 ] || ! jq -e '.reviews' "$work/reviews.json" >/dev/null 2>&1; then
        problems+=("reviews: trellis-index reviews check failed: $(tr '\n' ' ' <"$work/reviews.err")")
    else
        review_lines+=("$(jq -r '.reviews' "$work/reviews.json") review(s) checked")
        for plugin in "${reviewed_plugins[@]}"; do
            review_lines+=("$(jq -r --arg p "$plugin" '.ratings[$p] as $r
                | if $r then "| \($p) | \($r.tenths / 10 | floor).\($r.tenths % 10) stars | \($r.count) visible | \($r.histogram | map(tostring) | join(" / ")) |"
                  else "| \($p) | no visible review | | |" end' "$work/reviews.json")")
        done
        while IFS= read -r line; do
            [ -n "$line" ] && problems+=("$line")
        done < <(jq -r --arg prefix "$work/pr/" '.problems[] | (.path | ltrimstr($prefix)) + ": " + .reason' "$work/reviews.json")
    fi
fi

labelled=no
IFS=',' read -r -a labels <<<"${PR_LABELS:-}"
for name in "${labels[@]+"${labels[@]}"}"; do
    [ "$name" = "$label" ] && labelled=yes
done
if [ ${#review[@]} -gt 0 ] && [ "$labelled" = no ]; then
    problems+=("needs manual review: a maintainer (CODEOWNERS) reviews, approves and adds the label \`$label\`")
fi

{
    printf '## Trellis submission check\n\n'
    if [ ${#rows[@]} -gt 0 ]; then
        printf '| release | lint | signature | permissions |\n|---|---|---|---|\n'
        printf '%s\n' "${rows[@]}"
        printf '\n'
    fi
    if [ ${#review_lines[@]} -gt 0 ]; then
        printf '### Reviews\n\n%s\n\n' "${review_lines[0]}"
        printf '| plugin | rating | reviews | 1 to 5 stars |\n|---|---|---|---|\n'
        printf '%s\n' "${review_lines[@]:1}"
        printf '\n'
    fi
    if [ ${#review[@]} -gt 0 ]; then
        printf '### Manual review required (%s)\n\n' "$([ "$labelled" = yes ] && echo "label \`$label\` present" || echo "label \`$label\` missing")"
        printf -- '- %s\n' "${review[@]}"
        printf '\n'
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        printf '### Refused\n\n'
        printf -- '- %s\n' "${problems[@]}"
    else
        printf '**Passed.** The build checks everything again on merge.\n'
    fi
} >"$comment"
summary "$(cat "$comment")"
cat "$comment"
[ ${#problems[@]} -eq 0 ] || exit 1
