"""Ingest: resolve an MNIST source, validate it, write TFRecords with Apache Beam."""
