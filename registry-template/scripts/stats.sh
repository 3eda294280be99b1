#!/usr/bin/env bash
# The stats job: fetches the last days' access logs, adds their download counts to
# stats/ (`trellis-index stats ingest`) and pushes the change, whose publish then puts
# downloads and trending into the catalog and the storefront. See docs/DOWNLOAD-STATS.md.
#
# Usage: scripts/stats.sh      (from the checkout of the registry's default branch)
#
# TRELLIS_LOGS says where the logs are (a repository variable):
#   s3://bucket/prefix/     CloudFront standard logs, or Cloudflare Logpush to S3 or R2
#                           (R2: set TRELLIS_LOGS_ENDPOINT to the account's endpoint);
#                           needs the aws CLI and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
#                           of a read-only key
#   ssh://user@host/dir/    rotated nginx/Apache logs (access.log.N.gz, access.log.N) over
#                           rsync; needs the job's SSH key set up before this script
#   a directory             logs already on the runner (tests, other transports)
# TRELLIS_LOG_DAYS          days back to fetch (default 3: a missed run catches up; a log
#                           already ingested is skipped by its content, so overlap is safe)
# Only closed log files are read: a live access.log grows, so each fetch is a new file
# to ingest and its old lines would count twice.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

registry=$(pwd)
[ -f "$registry/trellis-registry.json" ] || die "run from the registry checkout: no trellis-registry.json in $registry"
source=${TRELLIS_LOGS:-}
[ -n "$source" ] || die "set the repository variable TRELLIS_LOGS to where the access logs are (docs/DOWNLOAD-STATS.md)"
days=${TRELLIS_LOG_DAYS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
logs="$work/logs"
mkdir -p "$logs"

case "$source" in
s3://*)
    endpoint=()
    if [ -n "${TRELLIS_LOGS_ENDPOINT:-}" ]; then
        endpoint=(--endpoint-url "$TRELLIS_LOGS_ENDPOINT")
    fi
    # CloudFront names files <distribution>.YYYY-MM-DD-HH.<id>.gz; Logpush puts them
    # under a YYYYMMDD folder: fetch what names one of the last days either way.
    include=()
    for n in $(seq 0 "$days"); do
        day=$(date -u -d "-$n day" +%Y-%m-%d)
        include+=(--include "*$day*" --include "*${day//-/}*")
    done
    aws s3 cp "${endpoint[@]}" --recursive --only-show-errors --exclude '*' "${include[@]}" "$source" "$logs/"
    ;;
ssh://*)
    rest=${source#ssh://}
    host=${rest%%/*}
    dir=/${rest#*/}
    rsync -a --include 'access.log.[0-9]*' --exclude '*' "$host:${dir%/}/" "$logs/"
    ;;
*)
    [ -d "$source" ] || die "TRELLIS_LOGS=$source is neither s3://, ssh:// nor a directory"
    cp -R "$source/." "$logs/"
    ;;
esac

mapfile -t files < <(find "$logs" -type f | sort)
if [ "${#files[@]}" -eq 0 ]; then
    warn "no log files found in $source for the last $days days"
    exit 0
fi
note "ingesting ${#files[@]} log file(s)"
"$TRELLIS_INDEX" stats ingest --registry "$registry" "${files[@]}"

if git -C "$registry" diff --quiet -- stats/ && [ -z "$(git -C "$registry" ls-files --others --exclude-standard -- stats/)" ]; then
    summary "stats: ${#files[@]} log file(s), nothing new"
    exit 0
fi
git -C "$registry" add stats/
git -C "$registry" -c user.name="trellis-stats" -c user.email="trellis-stats@users.noreply.github.com" \
    commit --quiet -m "stats: download counts from ${#files[@]} log file(s)"
git -C "$registry" push --quiet origin HEAD
summary "stats: ${#files[@]} log file(s) ingested and pushed; the publish workflow puts them in the catalog"
