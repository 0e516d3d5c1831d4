"""The question a comparison asks: its options (declared once, for the CLI, run.json and the cluster
config), the suites that hold them and their expansion into trials, and the pipeline's form.

Used by: steps, host (the plan step validates the form as `optbench run` and `optbench compile` do).
"""
