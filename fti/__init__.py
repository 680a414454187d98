"""The FTI platform's own package: its ground layer (``fti.ground``: settings, assets, dates,
files, validation, the Feast configuration and the feature contract) and its applications
(``fti.apps``: the command line, the demo and the platform page). ``python -m fti`` is the
command line. The pipelines (``feature_repo.jobs``, ``training``, ``serving``) sit between the
two: they import ground, and applications import them (docs/architecture.md)."""
