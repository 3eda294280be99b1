#!/usr/bin/env bash
# Writes the review of a review issue (the form .github/ISSUE_TEMPLATE/review.yml) to
# reviews/<plugin>/<login>.json of this checkout, checked like every review
# (`trellis-index reviews from-issue`, then the whole `reviews check`): the login is the
# issue's author from the event (issue.user.login), never a name typed into the form.
# Prints the file's path and sets the step output `path`; a refused review writes
# nothing and fails with the reason. .github/workflows/review.yml opens the pull request.
#
# Environment: GITHUB_EVENT_PATH (the issues event), GITHUB_OUTPUT (optional) and those
# of lib.sh.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

: "${GITHUB_EVENT_PATH:?GITHUB_EVENT_PATH must name the issue event}"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if ! path=$("$TRELLIS_INDEX" reviews from-issue "$GITHUB_EVENT_PATH" --registry . 2>"$errors"); then
    die "review refused: $(cat "$errors")"
fi
if ! "$TRELLIS_INDEX" reviews check . >/dev/null 2>"$errors"; then
    rm -f "$path"
    rmdir "$(dirname "$path")" 2>/dev/null || true
    die "the registry's reviews do not pass: $(cat "$errors")"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf 'path=%s\n' "$path" >>"$GITHUB_OUTPUT"
fi
summary "Review written: \`$path\`"
printf '%s\n' "$path"
