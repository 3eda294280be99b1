# shellcheck shell=bash
# Shared helpers of the pipeline scripts; sourced, never run. Bash, `set -euo pipefail`.
#
# Environment every script reads (GitHub Actions sets the GITHUB_* ones; the tests in
# the Trellis repository set them the same way):
#   TRELLIS_INDEX         the trellis-index binary (default: `trellis-index` on PATH)
#   TRELLIS_NOW           RFC 3339 time passed as --now (tests; default: the clock)
#   TRELLIS_SITE_BRANCH   the branch GitHub Pages serves (default: gh-pages)
#   GITHUB_STEP_SUMMARY   a file the job summary is appended to (optional)

TRELLIS_INDEX=${TRELLIS_INDEX:-trellis-index}
SITE_BRANCH=${TRELLIS_SITE_BRANCH:-gh-pages}
# shellcheck disable=SC2034 # used by the scripts that source this file
ZERO_SHA=0000000000000000000000000000000000000000
# The online roles: their keys come from repository secrets TRELLIS_<ROLE>_KEY.
# shellcheck disable=SC2034
ONLINE_ROLES=(snapshot timestamp bins publishers security)

die() {
    printf '::error::%s\n' "$*" >&2
    summary "**error:** $*"
    exit 1
}

warn() {
    printf '::warning::%s\n' "$*" >&2
    summary "**warning:** $*"
}

note() {
    printf '%s\n' "$*" >&2
}

# Appends a line to the job summary when there is one.
summary() {
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        printf '%s\n' "$*" >>"$GITHUB_STEP_SUMMARY"
    fi
}

# `--now TIME` when TRELLIS_NOW is set, for commands that take it.
now_args() {
    if [ -n "${TRELLIS_NOW:-}" ]; then
        printf '%s\n' --now "$TRELLIS_NOW"
    fi
}

is_sha() {
    [[ "$1" =~ ^[0-9a-f]{40}$ ]]
}

# Whether the remote has the site branch. Exit status 0 yes, 1 no; any other failure
# (network, authentication) stops the script: "no site" must never be a guess.
site_exists() {
    local status=0
    git ls-remote --exit-code --heads origin "refs/heads/$SITE_BRANCH" >/dev/null || status=$?
    case $status in
        0) return 0 ;;
        2) return 1 ;;
        *) die "cannot list the branches of origin (git ls-remote exit $status)" ;;
    esac
}

# Checks out the published site into DIR as a detached worktree of the current
# repository. actions/checkout fetches only the triggering ref, so the site branch is
# fetched here explicitly (depth 1: only its newest tree is needed). Stops with the
# bootstrap instructions when there is no site yet.
checkout_site() {
    local dir=$1
    if ! site_exists; then
        die "origin has no '$SITE_BRANCH' branch: the first site is built on the machine holding the offline targets key (scripts/publish-offline.sh, see README.md 'First publish'); CI only updates a published site"
    fi
    git fetch --quiet --no-tags --depth=1 origin "+refs/heads/$SITE_BRANCH:refs/remotes/origin/$SITE_BRANCH"
    git worktree add --quiet --detach "$dir" "refs/remotes/origin/$SITE_BRANCH"
    full_tree "$dir"
}

# A worktree added from a sparse checkout (the signing job checks out scripts/ only)
# inherits its patterns: the site needs every file.
full_tree() {
    local dir=$1
    if [ "$(git -C "$dir" config --get core.sparseCheckout || true)" = true ]; then
        git -C "$dir" sparse-checkout disable
    fi
}

# A new, empty worktree at DIR for the first site (no history on the site branch yet).
new_site() {
    local dir=$1
    git worktree add --quiet --detach "$dir" HEAD
    full_tree "$dir"
    git -C "$dir" switch --quiet --orphan "trellis-site-$$"
}

# The registry commit the published site was built from: the `Trellis-Source:` trailer
# of the site branch's newest commit (empty when there is none). Needs the site branch
# fetched (checkout_site or fetch_site_ref).
site_source() {
    local source
    # `sed -n 1p` reads to the end: `head` would leave git writing into a closed pipe
    # (SIGPIPE, status 141 under pipefail).
    source=$(git log -1 --format='%(trailers:key=Trellis-Source,valueonly)' "refs/remotes/origin/$SITE_BRANCH" 2>/dev/null | sed -n 1p)
    source=${source//[[:space:]]/}
    if is_sha "$source"; then printf '%s' "$source"; fi
}

# Fetches the site branch's newest commit (no worktree); status 1 when there is none.
fetch_site_ref() {
    site_exists || return 1
    git fetch --quiet --no-tags --depth=1 origin "+refs/heads/$SITE_BRANCH:refs/remotes/origin/$SITE_BRANCH"
}

# Commits everything in the site worktree DIR and pushes it to the site branch, with
# the registry commit SOURCE it was built from as a `Trellis-Source:` trailer (the
# next build's scope starts there). Refuses to publish anything that looks like a
# private key.
publish_site() {
    local dir=$1 message=$2 source=$3
    local leaked
    # `-print -quit`: the first match, no pipe into `head` (two matches would kill find
    # with SIGPIPE and the script with status 141 instead of this refusal).
    leaked=$(find "$dir" -path "$dir/.git" -prune -o -type f -name '*.key' -print -quit)
    if [ -n "$leaked" ]; then
        die "refusing to publish: $leaked looks like a private key"
    fi
    local large
    large=$(find "$dir" -path "$dir/.git" -prune -o -type f -size +100M -print -quit)
    if [ -n "$large" ]; then
        die "refusing to push: ${large#"$dir"/} is over GitHub's 100 MiB file limit; serve this site from object storage or a CDN (docs/HOSTING.md)"
    fi
    touch "$dir/.nojekyll"
    git -C "$dir" add -A
    if git -C "$dir" diff --cached --quiet; then
        note "site unchanged: nothing to push"
        return 0
    fi
    git -C "$dir" -c user.name=trellis-bot -c user.email=trellis-bot@users.noreply.github.com \
        commit --quiet -m "$message" -m "Trellis-Source: $source"
    if ! git -C "$dir" push --quiet origin "HEAD:refs/heads/$SITE_BRANCH"; then
        die "pushing the site to '$SITE_BRANCH' failed (another writer pushed first?); re-run the workflow"
    fi
}

# Writes the online keys found in the environment into REGISTRY/keys/ (mode 0600):
# TRELLIS_<ROLE>_KEY for the first key file of a role, TRELLIS_<ROLE>_KEY_<N> for the
# Nth, at the paths keys.<role> of trellis-registry.json lists. Each must be a plain
# file name under keys/: a secret is never written anywhere else (a configuration
# naming ../site/x.key would otherwise publish it). A role without a secret stays
# offline (the build refuses only if that role must change).
write_online_keys() {
    local registry=$1
    shift
    local role upper index variable file listed
    (umask 077 && mkdir -p "$registry/keys")
    for role in "$@"; do
        upper=$(printf '%s' "$role" | tr '[:lower:]' '[:upper:]')
        listed=$(jq -r --arg role "$role" '.keys[$role].keys[]? // empty' "$registry/trellis-registry.json") ||
            die "trellis-registry.json: cannot read keys.$role"
        index=0
        while IFS= read -r file; do
            [ -n "$file" ] || continue
            index=$((index + 1))
            if ! [[ "$file" =~ ^keys/[A-Za-z0-9][A-Za-z0-9._-]*\.key$ ]]; then
                die "trellis-registry.json: keys.$role names '$file'; online key files must be keys/NAME.key"
            fi
            variable="TRELLIS_${upper}_KEY"
            if [ "$index" -gt 1 ]; then variable="${variable}_$index"; fi
            if [ -z "${!variable:-}" ]; then
                note "no secret $variable: the $role key $file stays offline"
                continue
            fi
            (umask 077 && printf '%s' "${!variable}" >"$registry/$file")
        done <<<"$listed"
    done
}

# Appends the site's size to the summary and warns past GitHub Pages' limit
# (1 GB published site; TRELLIS_SITE_LIMIT_BYTES overrides it, e.g. for a CDN bucket).
report_site_size() {
    local dir=$1
    local limit=${TRELLIS_SITE_LIMIT_BYTES:-1000000000}
    local bytes
    bytes=$(du -sb --exclude=.git "$dir" | cut -f1)
    summary "site size: $bytes bytes (limit $limit)"
    if [ "$bytes" -gt $((limit * 8 / 10)) ]; then
        warn "the site is $bytes bytes, over 80% of the $limit-byte limit of GitHub Pages; serve it from object storage or a CDN (docs/HOSTING.md)"
    fi
}
