#!/bin/sh
# The container's entrypoint.
#
#   magpie-entrypoint [serve|demo|admin|backup|restore|...] [args]   runs `magpie ...`
#   magpie-entrypoint --log-level ...                               `magpie serve --log-level ...`
#   magpie-entrypoint healthcheck                                   exit 0 when GET /ready is 200
#
# Settings and secrets are the node's own business (MAGPIE_* variables, MAGPIE_*_FILE for
# secrets): this script checks nothing Magpie checks itself, so a bad value is reported once,
# by Magpie, in one line. It execs, so the node receives SIGTERM directly and drains.
set -eu

healthcheck() {
    port="${MAGPIE_API_PORT:-5001}"
    exec python3 - "$port" <<'PY'
import sys
import urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/ready"
try:
    with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - our own node
        sys.exit(0 if answer.status == 200 else 1)
except OSError as exc:
    print(f"healthcheck: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

case "${1:-serve}" in
    healthcheck)
        healthcheck
        ;;
    -*)
        exec magpie serve "$@"
        ;;
    *)
        if [ "$#" -eq 0 ]; then
            set -- serve
        fi
        exec magpie "$@"
        ;;
esac
