"""Evaluate: every trained model on the test split in one TFMA run, summarised for the report."""
