"""The KFP layer: thin component wrappers and the pipeline DAG."""
