"""Train: one training run (an optimizer variant and a seed) from the shared initial weights.

Used by: steps.
"""
