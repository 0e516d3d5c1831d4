"""Report: rank the trained variants and publish the comparison (tables, charts, significance, Markdown, HTML).

Imports neither TensorFlow nor KFP, so it is quick to run and to test on its own.
"""
from components.report.build import build_report, format_table, load_inputs, load_predictions

__all__ = ["build_report", "format_table", "load_inputs", "load_predictions"]
