"""Plan: validate the form as the CLI does, expand the suite into the trials the pipeline fans out over,
and write the settings every later step reads (plan.json).

Used by: steps.
"""
