-- MLflow's backend store lives beside Airflow's metadata, in a database of its own
CREATE DATABASE mlflow;
