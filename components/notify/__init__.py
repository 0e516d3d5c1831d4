"""Notify: the exit task of a cluster run, which alerts the webhook when the run failed.

Its logic is components/shared/notify.py, shared with the report step (which alerts on a finished run) and
the local runner (which alerts on a failed local run).
"""
