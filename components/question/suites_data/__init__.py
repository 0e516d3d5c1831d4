"""The suites shipped with optbench (copy one, edit it, pass it with --suite FILE)."""
