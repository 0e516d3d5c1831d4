"""Trial metrics: one trial's test metrics and confusion matrix, for the KFP UI.

Used by: steps.
"""
