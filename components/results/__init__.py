"""What a comparison's results are and how they read: the comparison row, the paired significance
tests, and the tables, charts and page templates both reports are drawn with.

Used by: steps, host (the report step and the run history; `optbench run` prints the row table).
"""
