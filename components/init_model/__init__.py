"""Init model: the initial weights that every optimizer of a seed starts from.

Used by: steps.
"""
