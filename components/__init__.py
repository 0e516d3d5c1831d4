"""Everything that runs inside a pipeline step, as plain Python that imports no KFP but for each step's
component.py, the thin spec the pipeline (pipelines/) is assembled from.

Two kinds of folder, each saying in its docstring who uses it:
- a step (plan, ingest, init_model, train, tune, step_cost, evaluate, trial_metrics, report, notify): its
  logic and its component.py; named as the pipeline's task, the cluster's resources and the timing lines name it;
- a library several steps share (shared, question, results, history), some of it also used on the host.

No step imports another step; a library imports no step.
"""
