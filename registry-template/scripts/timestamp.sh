#!/usr/bin/env bash
# The timestamp job: re-signs metadata/timestamp.json of the published site, well
# inside its expiry (expiry_days.timestamp, 2 days by default), so clients never see a
# frozen registry when nothing is published.
#
# Usage: scripts/timestamp.sh      (from the checkout of the registry's default branch)
#
# Needs TRELLIS_TIMESTAMP_KEY (and TRELLIS_TIMESTAMP_KEY_N when keys.timestamp lists N
# files); no other key. The site branch is fetched here (actions/checkout fetches only
# the triggering ref).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

registry=$(pwd)
[ -f "$registry/trellis-registry.json" ] || die "run from the registry checkout: no trellis-registry.json in $registry"
[ -n "${TRELLIS_TIMESTAMP_KEY:-}" ] || die "the secret TRELLIS_TIMESTAMP_KEY is not set"
work=$(mktemp -d)
cleanup() {
    rm -rf "$registry/keys"
    git worktree remove --force "$work/site" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
if [ -e "$registry/keys" ]; then
    die "$registry/keys exists in the checkout; refusing to mix it with the timestamp key"
fi

checkout_site "$work/site"
write_online_keys "$registry" timestamp
mapfile -t now < <(now_args)
signed=$("$TRELLIS_INDEX" timestamp "$registry" --site "$work/site" "${now[@]}")
rm -rf "$registry/keys"
note "$signed"
summary "### Timestamp"
summary "$signed"
# The site still holds what it was built from: carry the trailer over.
publish_site "$work/site" "timestamp: $signed" "$(site_source)"
