"""Evaluate: every trained model on the test split in one TFMA run, summarised for the report, with the
per-example predictions and the paired significance tests the report's verdict rests on."""
