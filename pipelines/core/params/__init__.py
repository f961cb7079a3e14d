"""The schema of ``params.yaml``: one module per section, each setting declared once.

Each section of ``params.yaml`` has its module here (``merge.py`` for ``merge:``), holding
the section's typed class with every key's type, range, default and help. A stage module
imports only the sections it reads, so ``dvc.yaml`` (``python -m pipelines.ops.stagedeps``)
makes a change to one section's schema rerun only the stages that read that section.
``load.py`` puts the sections together (``Params``) and reads the file (``load_params``);
the CLI and the flows call it and hand each stage its typed sections.
"""
