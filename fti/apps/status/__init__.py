"""The platform page shown inside the Airflow web UI ("FTI platform" in the navigation).

:mod:`fti.apps.status.sections` reads the platform's state live from its own stores (Airflow's
metadata DB, the Feast registry and offline store, the validation reports, the MLflow registry,
the live history, the service, the monitoring reports); :mod:`fti.apps.status.app` serves it as an
HTML page and as JSON, every route behind Airflow's own authentication. The plugin that mounts
it in Airflow's API server is ``plugins/fti_platform.py``.
"""
