"""The inference pipeline (I): the BentoML service over Feast online features, rollout, batch
scoring and monitoring. Not built yet: see the inference-pipeline issue."""
