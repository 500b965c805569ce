"""``python -m ecgfounder`` (also what ``torchrun -m ecgfounder ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
