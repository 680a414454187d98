"""``python -m fti <command>``: the platform's small command line (see ``fti.cli``)."""

from fti.cli import main

raise SystemExit(main())
