"""I/O behind small clients: the cluster (live and snapshot), Prometheus, Linear."""
