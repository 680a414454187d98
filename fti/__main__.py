"""``python -m fti <command>``: the platform's small command line (see ``fti.apps.cli``)."""

from fti.apps.cli import main

raise SystemExit(main())
