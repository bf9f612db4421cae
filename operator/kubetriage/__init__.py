"""kubetriage: diagnoses failing Kubernetes workloads and escalates production changes to Linear."""

__version__ = "0.1.0"
