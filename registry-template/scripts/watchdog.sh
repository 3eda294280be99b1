#!/usr/bin/env bash
# The expiry watchdog: fails loudly before any role of the deployed site expires.
#
# Usage: scripts/watchdog.sh [SITE]   (from the registry checkout; SITE is the deployed
#                                      site's URL or a directory, default: base_url of
#                                      trellis-registry.json)
#
# Runs `trellis-index status`, which exits 1 when a role is overdue or an offline role
# (root, targets) is due within 30 days. Then it writes an issue body to
# TRELLIS_ISSUE_FILE (default $RUNNER_TEMP/trellis-expiry.md) with what must be
# re-signed, by when and how, adds it to the job summary and exits 1; the workflow opens
# the issue.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

site=${1:-}
issue=${TRELLIS_ISSUE_FILE:-${RUNNER_TEMP:-/tmp}/trellis-expiry.md}
args=(status .)
[ -z "$site" ] || args+=(--site "$site")
mapfile -t now < <(now_args)
status=0
"$TRELLIS_INDEX" "${args[@]}" "${now[@]}" --json >"$issue.json" || status=$?
if [ "$status" -gt 1 ]; then
    die "trellis-index status failed (exit $status): is the site reachable?"
fi
{
    printf '## Trellis site expiry\n\n| role | version | expires | re-sign by | days left | who |\n|---|---|---|---|---|---|\n'
    jq -r '.roles[] | "| \(.role)\(if .count > 1 then " (\(.count))" else "" end) | \(.version) | \(.expires) | \(.due) | \(.days_left)\(if .warning then " ⚠" else "" end) | \(.signer) |"' "$issue.json"
    printf '\n'
    jq -r '.roles[] | select(.warning) | "- **\(.role)** v\(.version): re-sign by \(.due): \(.action)"' "$issue.json"
} >"$issue"
rm -f "$issue.json"
summary "$(cat "$issue")"
if [ "$status" -eq 1 ]; then
    cat "$issue" >&2
    printf '::error::a role of the site must be re-signed soon; see the job summary\n' >&2
    exit 1
fi
note "every role is fresh"
