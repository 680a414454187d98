"""The inference pipeline (I): the BentoML service over Feast online features
(``serving.service``, ``serving.features``), the served model (``serving.model``), rollout by
runtime (``serving.rollout``), batch scoring (``serving.batch``), monitoring
(``serving.monitoring``) and the DAG's steps (``serving.pipeline``)."""
