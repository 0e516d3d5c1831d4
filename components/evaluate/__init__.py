"""Evaluate: every trained model on the test split in one TFMA run, summarised for the report, and the
per-example predictions the report's significance tests rest on.

Used by: steps.
"""
