"""The application layer: recipes (YAML -> typed dataclasses), the end-to-end run and the command line.

It uses the library (:mod:`r2kd_hf`); the library never imports it. Entry points: ``scripts/distill.py`` (what
``accelerate launch scripts/distill.py --recipe ...`` runs), the ``r2kd-distill`` / ``r2kd-train-teacher`` console
commands, and :func:`r2kd_hf.app.pipeline.run` from Python.
"""
