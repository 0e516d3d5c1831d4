"""The history of runs: each run's record, what changed since the runs before it, and trends across runs.

Used by: steps, host (the report step compares with earlier runs; `optbench runs`, `optbench report
--compare` and the cluster commands read records outside any pipeline).
"""
