#!/usr/bin/env bash
# Runs an `airflow` subcommand. The simple auth manager reads its users' passwords from a JSON
# file: it is written here, readable by this user only, from _AIRFLOW_ADMIN_PASSWORD, which is
# then removed from the environment so no task process inherits it.
set -euo pipefail
if [[ -n "${_AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
  file=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/passwords.json}
  umask 077
  python - "$file" <<'PY'
import json, os, sys
user = os.environ.get("_AIRFLOW_ADMIN_USER", "admin")
with open(sys.argv[1], "w") as f:
    json.dump({user: os.environ["_AIRFLOW_ADMIN_PASSWORD"]}, f)
PY
  unset _AIRFLOW_ADMIN_PASSWORD
  umask 022
fi
case "${1:-}" in
  --help|"") echo "usage: fti-airflow api-server | scheduler | dag-processor | triggerer | AIRFLOW_SUBCOMMAND..." ;;
  bash|python|sh) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
