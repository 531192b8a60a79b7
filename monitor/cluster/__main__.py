"""``python -m monitor.cluster --cluster URL --role ...`` (what ``ecg-monitor --cluster`` runs)."""

import sys

from monitor.cluster._cli import cluster_main

sys.exit(cluster_main())
