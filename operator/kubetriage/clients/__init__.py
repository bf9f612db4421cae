"""I/O behind small clients: the cluster as playbooks read it (`kube`, live; `snapshot`, a
captured file; `capture`, the recorder that writes one), the index of scheduled pods kept from
the watch (`scheduled`), and Prometheus (`prometheus`)."""
