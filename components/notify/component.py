"""The notify step as a KFP component: the exit task that alerts the webhook when a cluster run failed.

An exit task runs after the pipeline's body however it ended, so a failed run still notifies; it sees only
pipeline parameters and the body's final status (KFP gives an exit task no outputs of the tasks it guards).
A run that succeeded is left alone: its report step already sent "finished" or "changed". The webhook URL
comes from the environment (shared/notify.py says why never as a parameter).
"""

from kfp import dsl

from optbench.components.image import component


@component
def notify(status: dsl.PipelineTaskFinalStatus, suite: str, run_name: str) -> str:
    """Alert the webhook that the run failed, with KFP's error message and the run's resource name; returns
    what happened ("" when the run succeeded or no webhook is configured). Never fails: a webhook that is
    down is no reason to mark the run's clean-up failed."""
    from optbench.components.shared.notify import message, post

    if status.state == "SUCCEEDED":
        return ""
    error = status.error_message or f"the run ended {status.state}"
    return post(message("failed", suite, run_name, error=error, job=status.pipeline_job_resource_name or ""))
