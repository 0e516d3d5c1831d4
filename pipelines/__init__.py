"""The pipeline: the DAG (pipeline.py) and what a Kubeflow cluster needs to run it (cluster.py)."""
