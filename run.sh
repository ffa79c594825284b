#!/usr/bin/env bash
# One command for one machine: venv, migrations, demo data, then web server and worker.
# Ctrl-C stops both (the terminal sends SIGINT to the whole process group).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PYTHON="$candidate"; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "xmflows needs Python 3.11 or newer" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi

export HOST="${HOST:-127.0.0.1}"
export PORT="${PORT:-8000}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://$HOST:$PORT}"
export DEBUG="${DEBUG:-true}"
export DJANGO_SETTINGS_MODULE=config.settings
if [ "$HOST" != "127.0.0.1" ] && [ "$HOST" != "localhost" ] && [ -z "${ALLOWED_HOSTS:-}" ]; then
  export ALLOWED_HOSTS="127.0.0.1,localhost,$HOST"
fi

PY=.venv/bin/python
$PY manage.py migrate --noinput >/dev/null
demo=$($PY manage.py seed_demo --json)
$PY - "$demo" <<'PYEOF'
import json, os, sys
demo = json.loads(sys.argv[1])
base = os.environ["PUBLIC_BASE_URL"]
print(f"""
xmflows is starting on {base}/

  Sign in:        {base}/accounts/login/  (workflows, reports; any user)
  Admin:          {base}/admin/
  Username:       {demo['admin_username']}
  Password:       {demo['admin_password']}
  API token:      {demo['api_token']}
  API docs:       {base}/api/v1/docs/
  Demo event URL: {demo['event_url']}

Try it:  curl -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: ""' \\
           --data-binary @tests/fixtures/salesforce/case_closed.xml {demo['event_url']}
Press Ctrl-C to stop.
""", flush=True)
PYEOF

# The supervisor starts the worker and the web server and stops both on Ctrl-C
# (config/supervisor.py says how, and why not in bash).
exec $PY -m config.supervisor "$HOST:$PORT"
