"""Seeds until decided: after the run's own seeds and after each added round, a group-sequential look that
decides each optimizer against the leader and names the variants that train one more seed.

Used by: steps.
"""
