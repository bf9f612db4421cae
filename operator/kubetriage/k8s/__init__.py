"""The one tolerant layer over Kubernetes objects, read as the plain dicts the API returns.

Snapshots and API objects may hold anything: every reader here takes a malformed field as
absent instead of raising, so one broken object degrades a diagnosis and never stops it.
Playbooks, detection, the reports and the runtime read objects only through these modules:

- `access`: fields, containers and their statuses, conditions, pod templates.
- `events`: Events about an object, their time and count, whichever API wrote them.
- `owners`: the workload a pod belongs to (`WorkloadRef`, one resolver for every kind).
- `history`: a Deployment's revisions and the difference between two pod templates.
- `quantities`: resource quantities, parsed as the apiserver does and written as people do.
- `resources`: what a pod requests, as the scheduler and the quota admission count it.
- `scheduling`: where a pod may run: node affinity against labels, taints against tolerations.
- `selectors`: label selectors, equality- and set-based, as kubectl accepts them.
- `time`: timestamps as the API writes them.
"""
