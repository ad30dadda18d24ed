"""``python -m labelsplat.cli`` (what ``torchrun -m labelsplat.cli ...`` runs in each process)."""

from . import main

raise SystemExit(main())
