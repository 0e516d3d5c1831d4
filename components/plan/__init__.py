"""Plan: suites (YAML) validated and expanded into the trials the pipeline trains."""
