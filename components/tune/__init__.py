"""Tune, then confirm: choose each optimizer's learning rate on validation, then re-run the choice on every seed.

Used by: steps.
"""
