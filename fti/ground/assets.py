"""The Airflow assets that link the three pipelines (cheap to import: DAG files use it)."""

from airflow.sdk import Asset

#: emitted by feature_pipeline when a data interval's features are published and materialized
FEATURES = Asset(name="fti_features", uri="fti://features/flight_delay_v1", group="fti")
#: emitted by training_pipeline when a new champion model is promoted
MODEL = Asset(name="fti_model", uri="fti://models/flight_delay/champion", group="fti")
#: emitted by inference_pipeline when inputs drift past the threshold for several days in a row
DRIFT = Asset(name="fti_drift", uri="fti://monitoring/flight_delay/drift", group="fti")
#: emitted by inference_pipeline when the live model's realised ROC AUC falls below its promise
PERFORMANCE = Asset(
    name="fti_performance", uri="fti://monitoring/flight_delay/performance", group="fti"
)
