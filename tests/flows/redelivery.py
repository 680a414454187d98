"""Feature-pipeline histories in a home of their own, run by ``tests/test_quarantine.py`` in a
child process (Airflow reads its configuration and the feature repo its paths once per process).

``python tests/flows/redelivery.py clean HOME GOOD LAST``: 2013-01-01..LAST from GOOD.
``python tests/flows/redelivery.py redelivered HOME GOOD BAD LAST``: 2013-01-01..02 from GOOD;
2013-01-03 from BAD (it halts and is quarantined); 2013-01-04 (it must wait); then the source
is corrected and ``python -m fti redeliver --day 2013-01-03`` runs; then the days after it to
LAST. The last line printed is ``RESULT <json>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

mode, home, good = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
bad = Path(sys.argv[4]) if mode == "redelivered" else None
last = date.fromisoformat(sys.argv[-1])
for key in [k for k in os.environ if k.startswith(("FTI_", "AIRFLOW"))]:
    del os.environ[key]
os.environ.update(FTI_HOME=str(home), FTI_SPARK_MASTER="local[2]", FTI_SOURCE_DIR=str(good))

from fti.ground.airflow_env import airflow_env  # noqa: E402
from fti.ground.settings import get_settings  # noqa: E402

os.environ.update(airflow_env(get_settings()))
bin_dir = str(Path(sys.executable).parent)
os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

from fti.apps import cli  # noqa: E402
from fti.apps.demo import run_days  # noqa: E402


def source(folder: Path) -> None:
    os.environ["FTI_SOURCE_DIR"] = str(folder)
    get_settings.cache_clear()


def days(first: date, through: date) -> list:
    return [(str(d), s) for d, s in run_days(first, through, get_settings())]


out: dict = {}
if mode == "clean":
    out["days"] = days(date(2013, 1, 1), last)
else:
    out["clean"] = days(date(2013, 1, 1), date(2013, 1, 2))
    source(bad)
    out["halted"] = days(date(2013, 1, 3), date(2013, 1, 3))
    out["waits"] = days(date(2013, 1, 4), date(2013, 1, 4))
    out["redeliver_before_fix"] = cli.main(["redeliver", "--day", "2013-01-04"])
    source(good)
    out["redeliver"] = cli.main(["redeliver", "--day", "2013-01-03"])
    out["after"] = days(date(2013, 1, 4), last)
    out["redeliver_again"] = cli.main(["redeliver", "--day", "2013-01-03"])
print("RESULT " + json.dumps(out), flush=True)
sys.exit(0)
