"""``python -m shared.worker``: run one job spec and exit 0 (done) or non-zero (failed)."""

import sys

from shared.worker.main import main

sys.exit(main())
