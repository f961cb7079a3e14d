"""The ``tsepipe`` command: the layer above the stage code (``pipelines``) and the flows.

``pipelines`` never imports ``flows`` and ``flows`` never imports this package; the CLI
sees both: a stage command calls a ``pipelines`` function, ``tsepipe run`` a flow.
"""
