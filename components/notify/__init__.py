"""Notify: the exit task of a cluster run, which alerts the webhook when the run failed.

Its logic is shared with the report step (which alerts on a finished run) and the local runner (which
alerts on a failed local run), so it lives in the shared library.

Used by: steps.
"""
