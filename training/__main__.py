"""``python -m training ...``: the training entry point (see training.train)."""

from training.train import main

raise SystemExit(main())
