"""Auxiliary datasets in the docs/design.md dataset layout: ``images/``, ``labels/``, ``manifest.json``
(one entry per view). ``export`` writes them, ``read`` reads them (for training)."""
