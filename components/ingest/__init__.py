"""Ingest: resolve an MNIST source, validate it, write TFRecords with Apache Beam.

Used by: steps, host (`optbench run` and `optbench estimate` check a data source and count its training
split before anything runs).
"""
