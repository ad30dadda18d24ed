"""Auxiliary datasets in the DESIGN.md dataset layout: ``images/``, ``labels/``, ``manifest.json``
(one entry per view). ``export`` writes them, ``read`` reads them (for training)."""
