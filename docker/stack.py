"""Build, start, wait for and stop the compose stack (``make stack-*``, tests/stack, bench/stack.py).

    python3 docker/stack.py base               # the public base images, or local stand-ins
    python3 docker/stack.py build [IMAGE...]   # base, spark, airflow, serving, training (CPU)
    python3 docker/stack.py up                 # compose up, then wait until every service is healthy
    python3 docker/stack.py down               # compose down -v (volumes removed)

Standard library only. The Docker client is ``$DOCKER``, else Debian's ``/usr/bin/docker`` when
present (a newer client first on PATH may lack BuildKit's builder), else ``docker``; compose is
``$COMPOSE``, else ``docker-compose``. ``$FTI_STACK_PROJECT`` names the compose project
(default ``fti``), ``$FTI_STACK_ENV_FILE`` the env file (default ``.env``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
WHEELS = ROOT / "docker" / "wheels"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

#: public images the Dockerfiles and docker-compose.yml start from
PYTHON_BASE = "python:3.11-slim-bookworm"
DEBIAN_BASE = "debian:bookworm-slim"
POSTGRES = "postgres:15-bookworm"
REDIS = "redis:7.0-bookworm"

#: image name -> (Dockerfile, build args); built in this order (later ones start from earlier)
IMAGES: dict[str, tuple[str, dict[str, str]]] = {
    "base": ("docker/base/Dockerfile", {}),
    "spark": ("docker/spark/Dockerfile", {"BASE_IMAGE": "{prefix}base:{tag}"}),
    "airflow": ("docker/airflow/Dockerfile", {"BASE_IMAGE": "{prefix}spark:{tag}"}),
    "serving": ("docker/serving/Dockerfile", {"BASE_IMAGE": "{prefix}base:{tag}"}),
    "training": ("docker/training/Dockerfile", {"VARIANT": "cpu"}),
}


class StackError(RuntimeError):
    pass


def docker() -> str:
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def compose_bin() -> str:
    return os.environ.get("COMPOSE", "docker-compose")


def engine_problem() -> str | None:
    """None when a container engine and docker-compose answer, else what to install or start."""
    if shutil.which(docker()) is None:
        return (
            "no container engine: install Docker (Debian: apt-get install docker.io "
            "docker-compose debootstrap) and start it (dockerd)"
        )
    if shutil.which(compose_bin()) is None:
        return "no docker-compose: install it (Debian: apt-get install docker-compose)"
    try:
        proc = subprocess.run(
            [docker(), "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "the container engine does not answer (docker info timed out)"
    if proc.returncode != 0:
        return f"the container engine is not running (start dockerd): {proc.stderr.strip()[:300]}"
    return None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKER_BUILDKIT"] = "1"
    env["COMPOSE_DOCKER_CLI_BUILD"] = "1"
    # docker-compose 1.29 shells out to `docker` for builds: Debian's client first
    env["PATH"] = f"{Path(docker()).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(
    cmd: list[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**_env(), **(env or {})},
        text=True,
        capture_output=capture,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        out = ((proc.stdout or "") + (proc.stderr or ""))[-6000:]
        raise StackError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{out}")
    return proc


def have_image(tag: str) -> bool:
    return run([docker(), "image", "inspect", tag], check=False).returncode == 0


def pull(tag: str) -> bool:
    return run([docker(), "pull", tag], check=False, timeout=900).returncode == 0


def ensure_bases() -> dict[str, str]:
    """The public base images: present, pulled, or (no registry reachable) local stand-ins.
    Returns tag -> how it was obtained."""
    how: dict[str, str] = {}
    missing = []
    for tag in (PYTHON_BASE, DEBIAN_BASE, POSTGRES, REDIS):
        if have_image(tag):
            how[tag] = "present"
        elif pull(tag):
            how[tag] = "pulled"
        else:
            missing.append(tag)
    debian = [t for t in missing if t in (PYTHON_BASE, DEBIAN_BASE)]
    if debian:
        run(["bash", "docker/standin-base.sh", *debian], env={"DOCKER": docker()}, timeout=1800)
        how.update(dict.fromkeys(debian, "stand-in (debootstrap)"))
    for tag, folder in ((POSTGRES, "postgres"), (REDIS, "redis")):
        if tag in missing:
            build_one(tag, f"docker/standin/{folder}/Dockerfile", {"BASE_IMAGE": DEBIAN_BASE})
            how[tag] = "stand-in (built on debian:bookworm-slim)"
    return how


def wheelhouse_ready() -> bool:
    return any(WHEELS.glob("torch-*.whl"))


def build_one(tag: str, dockerfile: str, args: dict[str, str], no_cache: bool = False) -> float:
    """``docker build`` with BuildKit; the host CA bundle as the ``ca_bundle`` build secret.
    Returns the seconds it took."""
    cmd = [docker(), "build", "--progress=plain", "-f", dockerfile, "-t", tag]
    if no_cache:
        cmd.append("--no-cache")
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    bundle = Path(os.environ.get("FTI_STACK_CA_BUNDLE", CA_BUNDLE))
    if bundle.is_file():
        cmd += ["--secret", f"id=ca_bundle,src={bundle}"]
    started = time.monotonic()
    run([*cmd, "."], timeout=3600)
    return time.monotonic() - started


def image_tag(name: str) -> str:
    prefix = os.environ.get("FTI_IMAGE_PREFIX", "fti-")
    tag = os.environ.get("FTI_IMAGE_TAG", "latest")
    return f"{prefix}{name}:{'cpu' if name == 'training' and tag == 'latest' else tag}"


def build(names: list[str] | None = None, no_cache: bool = False) -> dict[str, float]:
    """Build the images (all, in dependency order, by default); returns seconds per image."""
    prefix = os.environ.get("FTI_IMAGE_PREFIX", "fti-")
    tag = os.environ.get("FTI_IMAGE_TAG", "latest")
    extra = {"PIP_EXTRA_ARGS": "--no-index"} if wheelhouse_ready() else {}
    times = {}
    for name in names or list(IMAGES):
        dockerfile, args = IMAGES[name]
        args = {k: v.format(prefix=prefix, tag=tag) for k, v in args.items()}
        times[name] = build_one(image_tag(name), dockerfile, {**extra, **args}, no_cache)
    return times


def image_sizes(names: list[str] | None = None) -> dict[str, int]:
    out = {}
    for name in names or list(IMAGES):
        proc = run([docker(), "image", "inspect", "--format", "{{.Size}}", image_tag(name)])
        out[name] = int(proc.stdout.strip())
    return out


# ------------------------------------------------------------------------------ compose


class Stack:
    """One compose project of docker-compose.yml with one env file."""

    def __init__(
        self,
        project: str | None = None,
        env_file: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ):
        self.project = project or os.environ.get("FTI_STACK_PROJECT", "fti")
        self.env_file = Path(env_file or os.environ.get("FTI_STACK_ENV_FILE", ROOT / ".env"))
        self.extra_env = extra_env or {}

    def compose(
        self, *args: str, check: bool = True, timeout: float | None = 600, capture: bool = True
    ) -> subprocess.CompletedProcess:
        cmd = [
            compose_bin(),
            "-p",
            self.project,
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(self.env_file),
            *args,
        ]
        return run(cmd, check=check, timeout=timeout, capture=capture, env=self.extra_env)

    def up(self, *services: str) -> None:
        if not self.env_file.exists():
            raise StackError(f"{self.env_file} is missing: run make stack-env")
        self.compose("up", "-d", "--no-build", *services, timeout=900)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", check=False, timeout=300)

    def containers(self) -> dict[str, dict]:
        """service -> {id, status, health, exit_code} of this project's containers."""
        ids = self.compose("ps", "-q", "-a", check=False).stdout.split()
        if not ids:
            ids = self.compose("ps", "-q", check=False).stdout.split()
        out = {}
        if not ids:
            return out
        proc = run([docker(), "inspect", *ids])
        for c in json.loads(proc.stdout):
            service = c["Config"]["Labels"].get("com.docker.compose.service", c["Name"])
            state = c["State"]
            out[service] = {
                "id": c["Id"],
                "status": state["Status"],
                "health": (state.get("Health") or {}).get("Status"),
                "exit_code": state.get("ExitCode"),
                "restarts": c.get("RestartCount", 0),
            }
        return out

    def wait_healthy(self, timeout: float = 900) -> float:
        """Seconds until every service is healthy (one-shot services: exited 0). Raises with the
        logs of the services that are not, on timeout or when one exits with an error."""
        started = time.monotonic()
        expected = set(self.services())
        while True:
            state = self.containers()
            waiting = []
            for service in expected:
                c = state.get(service)
                if c is None:
                    waiting.append(f"{service}: no container")
                elif c["health"] == "healthy":
                    continue
                elif c["status"] == "exited" and c["exit_code"] == 0 and service.endswith("-init"):
                    continue
                elif c["status"] == "exited" and (
                    c["exit_code"] != 0 or not service.endswith("-init")
                ):
                    raise StackError(
                        f"{service} exited with {c['exit_code']}\n" + self.logs(service)
                    )
                else:
                    waiting.append(f"{service}: {c['status']}/{c['health']}")
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                bad = [w.split(":")[0] for w in waiting]
                raise StackError(
                    f"not healthy after {timeout:.0f} s: {', '.join(waiting)}\n"
                    + "\n".join(self.logs(s) for s in bad)
                )
            time.sleep(3)

    def services(self) -> list[str]:
        return self.compose("config", "--services").stdout.split()

    def logs(self, *services: str, tail: int | None = 200) -> str:
        args = ["logs", "--no-color"] + ([f"--tail={tail}"] if tail else []) + list(services)
        proc = self.compose(*args, check=False, timeout=120)
        return f"----- logs of {' '.join(services) or 'every service'} -----\n{proc.stdout}{proc.stderr}"

    def exec(self, service: str, *cmd: str, check: bool = True, timeout: float = 300):
        return self.compose("exec", "-T", service, *cmd, check=check, timeout=timeout)


# ------------------------------------------------------------------------------ Airflow


class AirflowAPI:
    """Airflow 3's REST API (/api/v2) with a JWT from /auth/token."""

    def __init__(self, url: str, password: str):
        self.url, self.password, self.token = url, password, None

    def _request(self, method: str, path: str, body=None, auth: bool = True):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.login()}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def login(self) -> str:
        if self.token is None:
            self.token = self._request(
                "POST", "/auth/token", {"username": "admin", "password": self.password}, auth=False
            )["access_token"]
        return self.token

    def get(self, path):
        return self._request("GET", path)

    def post(self, path, body):
        return self._request("POST", path, body)

    def patch(self, path, body):
        return self._request("PATCH", path, body)

    def delete(self, path):
        return self._request("DELETE", path)

    def drop_queued_events(self, dag_id: str) -> None:
        """Forget the asset events queued for ``dag_id`` (404: there were none)."""
        try:
            self.delete(f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise

    def wait_dags(self, dag_ids, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing and time.monotonic() < deadline:
            for dag_id in list(missing):
                try:
                    self.get(f"/api/v2/dags/{dag_id}")
                    missing.remove(dag_id)
                except urllib.error.HTTPError:
                    pass
            time.sleep(3)
        if missing:
            raise StackError(f"DAGs not parsed after {timeout:.0f} s: {missing}")
        errors = self.get("/api/v2/importErrors")
        if errors["total_entries"]:
            raise StackError(f"DAG import errors: {errors}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: str | None = None) -> str:
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date})
        return run["dag_run_id"]

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def state(self, dag_id: str, run_id: str) -> str:
        return self.get(self.run_path(dag_id, run_id))["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(self.run_path(dag_id, run_id) + "/taskInstances")["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        try:
            got = self.get(path)
        except urllib.error.HTTPError as e:
            return f"(log unavailable: {e.code})"
        content = got.get("content")
        if isinstance(content, list):
            return "\n".join(
                str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content
            )
        return str(content)

    def wait_run(
        self, dag_id: str, run_id: str, stack: Stack | None = None, timeout: float = 1200
    ) -> str:
        """Wait for the run to end; its state. Raises ``StackError`` when it did not succeed,
        with the failed tasks' logs (and, given ``stack``, the scheduler's log)."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            try:
                state = self.state(dag_id, run_id)
            except (OSError, urllib.error.HTTPError):
                state = "unreachable"
            if state in ("success", "failed"):
                break
            time.sleep(5)
        if state != "success":
            self.token = None
            report = [f"{dag_id} {run_id}: {state}"]
            try:
                for ti in self.task_instances(dag_id, run_id):
                    report.append(f"  {ti['task_id']}: {ti['state']} (try {ti['try_number']})")
                    if ti["state"] in ("failed", "up_for_retry", "running"):
                        report.append(
                            self.task_log(dag_id, run_id, ti["task_id"], max(ti["try_number"], 1))[
                                -6000:
                            ]
                        )
            except (OSError, urllib.error.HTTPError) as e:
                report.append(f"(task instances unavailable: {e})")
            if stack is not None:
                report.append(stack.logs("airflow-scheduler", "spark-worker", "serving", tail=150))
            raise StackError("\n".join(report))
        return state

    def run_once(
        self,
        dag_id: str,
        logical_date: str | None = None,
        stack: Stack | None = None,
        timeout: float = 1200,
    ) -> str:
        """Trigger ``dag_id`` by hand and wait for success: unpaused for the run, its queued
        asset events dropped first (so only this run runs), paused again after; the run id."""
        self.drop_queued_events(dag_id)
        self.set_paused(dag_id, False)
        run_id = self.trigger(dag_id, logical_date)
        try:
            self.wait_run(dag_id, run_id, stack, timeout)
        finally:
            self.set_paused(dag_id, True)
        return run_id


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("base", "build", "up", "down", "wait"):
        print(__doc__)
        return 2
    problem = engine_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        if argv[0] == "base":
            for tag, how in ensure_bases().items():
                print(f"{tag}: {how}")
        elif argv[0] == "build":
            for name, seconds in build(argv[1:] or None).items():
                print(f"{image_tag(name)} built in {seconds:.0f} s")
        elif argv[0] == "up":
            stack = Stack()
            stack.up()
            print(f"healthy after {stack.wait_healthy():.0f} s")
        elif argv[0] == "wait":
            print(f"healthy after {Stack().wait_healthy():.0f} s")
        else:
            Stack().down()
    except StackError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
