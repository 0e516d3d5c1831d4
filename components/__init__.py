"""The logic of every pipeline step, as plain Python that imports no KFP.

Each sub-package is one step (ingest, init_model, train, evaluate, report);
the thin KFP wrappers that call them live in ``pipelines/``.
"""
