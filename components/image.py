"""The container image every component runs in, named once, and the decorator that gives it to them.

Each step's `component.py` declares its KFP component with `@component`.
KFP ships a component function's source, not its module, to the task's
process or container, so the functions import what they call inside their
bodies. No task ever runs this placeholder: the cluster compile step gives
every task one of the pinned images built from containers/, `optbench run
--runner docker` gives every task the CPU image built from this commit, and the default
subprocess runner uses this machine's interpreter.
"""

import functools

from kfp import dsl

IMAGE = "python:3.11-slim"

component = functools.partial(dsl.component, base_image=IMAGE, install_kfp_package=False)
