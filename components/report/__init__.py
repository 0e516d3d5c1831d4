"""Report: rank the trained variants and publish the comparison (tables, charts, verdict, Markdown, HTML).

Imports neither TensorFlow nor KFP (but for its component.py), so it is quick to run and to test on its own.

Used by: steps.
"""
