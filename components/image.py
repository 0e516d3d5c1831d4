"""The container image every component runs in, named once, and the decorator that gives it to them.

Each step's `component.py` declares its KFP component with `@component`.
KFP ships a component function's source, not its module, to the task's
process or container, so the functions import what they call inside their
bodies. On a cluster the compile step (pipelines/cluster.py) replaces this
image with the pinned images built from containers/; local runs use this
machine's interpreter and ignore it.
"""

import functools

from kfp import dsl

IMAGE = "python:3.11-slim"

component = functools.partial(dsl.component, base_image=IMAGE, install_kfp_package=False)
