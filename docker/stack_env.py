"""Write the compose stack's ``.env``: generated secrets and the host ports (``make stack-env``).

    python3 docker/stack_env.py [PATH]      # default .env beside docker-compose.yml

Standard library only (it runs before any virtualenv exists). An existing file is kept: delete it
to rotate the secrets (and the stack's volumes with ``make stack-down``: Postgres keeps the
password it was initialised with). The file is written readable by its owner only.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: host ports, all on 127.0.0.1; away from the usual 5432/6379/8080/5000/3000
PORTS = {
    "STACK_AIRFLOW_PORT": 28080,
    "STACK_MLFLOW_PORT": 25000,
    "STACK_SERVING_PORT": 23000,
    "STACK_SPARK_UI_PORT": 28081,
}


def generate() -> dict[str, str]:
    """Fresh secrets: hex tokens (safe in URLs and Feast's connection string), and a Fernet key."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "REDIS_PASSWORD": secrets.token_hex(24),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_hex(16),
    }


def render(values: dict[str, str], ports: dict[str, int] | None = None) -> str:
    lines = [
        "# The compose stack's secrets, written by `make stack-env`. Never commit this file.",
        "# Airflow's login: admin / AIRFLOW_ADMIN_PASSWORD.",
    ]
    lines += [f"{k}={v}" for k, v in values.items()]
    lines += ["", "# host ports (127.0.0.1 only)"]
    lines += [f"{k}={v}" for k, v in (ports or PORTS).items()]
    return "\n".join(lines) + "\n"


def write(path: Path, values: dict[str, str], ports: dict[str, int] | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render(values, ports))


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / ".env"
    if path.exists():
        print(f"{path} exists: keeping its secrets (delete it to generate new ones)")
        return 0
    write(path, generate())
    print(f"wrote {path} (generated secrets; Airflow's login is admin and AIRFLOW_ADMIN_PASSWORD)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
