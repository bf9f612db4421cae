"""What keeps each root cause from coming back: the prevention measures an incident's close-out
suggests (DESIGN.md section 5, "resolution and prevention measures").

They are suggestions for a person, never applied by kubetriage: each names a guard the team can
add (a probe, an alert, a policy, a check in CI) for the category of the incident just resolved.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubetriage.models import Category

C = Category

PREVENTION: Mapping[Category, tuple[str, ...]] = {
    C.CRASHLOOP_COMMAND_NOT_FOUND: (
        "Start the image in CI with the manifest's command and args (a smoke test), so a "
        "missing binary fails the build, not the rollout.",
        "Keep the Deployment's progressDeadlineSeconds and a rollout alert, so a bad revision "
        "stops at its first pods.",
    ),
    C.CRASHLOOP_PERMISSION_DENIED: (
        "Build the image with the entrypoint executable and owned by the user it runs as "
        "(runAsUser); check it in CI under the pod's securityContext.",
    ),
    C.CRASHLOOP_LIVENESS_PROBE_FAILURE: (
        "Give slow starts a startupProbe, so the livenessProbe only judges a started app.",
        "Keep the liveness check cheap and local (no dependency calls), with a timeout above "
        "the app's worst pause.",
    ),
    C.CRASHLOOP_MISSING_CONFIGURATION: (
        "Validate the configuration the app needs at deploy time (a schema check of the "
        "ConfigMap in CI, required env vars in the chart's values schema).",
        "Reference configuration by version (a new ConfigMap name per change) so a rollout "
        "never runs against a half-changed one.",
    ),
    C.CRASHLOOP_DEPENDENCY_UNAVAILABLE: (
        "Retry the dependency at start with back-off instead of exiting, and report it through "
        "readiness rather than a crash.",
        "Alert on the dependency's ready endpoints (its Service), not only on its clients.",
    ),
    C.CRASHLOOP_EXITED_IMMEDIATELY: (
        "Run one-shot work as a Job or CronJob, not as a Deployment.",
    ),
    C.CRASHLOOP_SEGFAULT: (
        "Keep a core dump or crash report path (an emptyDir) and symbols for the image, so "
        "the next crash can be read.",
        "Test the image on every architecture and base image it ships for.",
    ),
    C.CRASHLOOP_APPLICATION_ERROR: (
        "Alert on restarts (kube_pod_container_status_restarts_total) per workload, so the "
        "next crash loop pages before users notice.",
        "Roll out with maxUnavailable 0 and a progress deadline, so a failing revision leaves "
        "the old pods serving.",
    ),
    C.OOM_LIMIT_TOO_LOW: (
        "Size memory limits from the observed peak of container_memory_working_set_bytes with "
        "headroom, and review them when the load changes.",
        "Alert when a container's working set passes 90% of its limit.",
    ),
    C.OOM_MEMORY_LEAK: (
        "Alert on a steadily growing working set long before the limit (a week-over-week "
        "trend), and take heap profiles while it grows.",
    ),
    C.OOM_NODE_PRESSURE: (
        "Give every container a memory request close to what it uses, so the scheduler does "
        "not overpack nodes.",
        "Set a LimitRange with default requests and limits in the namespace.",
    ),
    C.IMAGEPULL_NOT_FOUND: (
        "Deploy images by digest from CI, after the push succeeded, never by a hand-typed tag.",
    ),
    C.IMAGEPULL_UNAUTHORIZED: (
        "Attach the pull secret to the namespace's ServiceAccount, and alert before registry "
        "tokens expire.",
    ),
    C.IMAGEPULL_REGISTRY_UNREACHABLE: (
        "Mirror the images the cluster needs into a registry inside the network, and probe it "
        "from the nodes.",
    ),
    C.IMAGEPULL_RATE_LIMITED: (
        "Pull through an authenticated account or a pull-through cache instead of anonymous pulls.",
    ),
    C.IMAGEPULL_INVALID_REFERENCE: (
        "Lint image references in CI (a regex or `crane digest`) before they reach a manifest.",
    ),
    C.PENDING_INSUFFICIENT_RESOURCES: (
        "Let a cluster autoscaler add nodes to the pool, and alert on pods Pending longer than "
        "a few minutes.",
        "Keep requests close to real use so capacity is not reserved for nothing.",
    ),
    C.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY: (
        "Check requests against the largest node of the target pool in CI or with a "
        "LimitRange maximum.",
    ),
    C.PENDING_NODE_SELECTOR_MISMATCH: (
        "Keep node labels under the node pool's configuration (not by hand), and check "
        "selectors against them in CI.",
    ),
    C.PENDING_UNTOLERATED_TAINT: (
        "Document each pool's taints and the tolerations a workload needs, in the chart that "
        "deploys it.",
    ),
    C.PENDING_UNBOUND_PVC: (
        "Keep one default StorageClass and check claims' storageClassName against the "
        "cluster's classes at deploy time.",
    ),
    C.PENDING_NO_NODES: (
        "Alert on nodes NotReady or cordoned for longer than a maintenance window, and keep "
        "a minimum node count in the pool.",
    ),
    C.PENDING_VOLUME_MOUNT_FAILURE: (
        "Deploy a workload's ConfigMaps and Secrets with it (one chart or kustomization), so "
        "none is missing when its pods start.",
    ),
    C.ROLLOUT_QUOTA_EXCEEDED: (
        "Alert when a namespace's ResourceQuota usage passes 80% of hard, and size the quota "
        "for a rollout's surge.",
    ),
    C.ROLLOUT_BAD_REVISION: (
        "Gate rollouts on readiness (minReadySeconds, progressDeadlineSeconds) and roll back "
        "automatically in the delivery tool when the deadline passes.",
    ),
    C.ROLLOUT_ADMISSION_WEBHOOK_FAILURE: (
        "Run admission webhooks with at least two replicas and a PodDisruptionBudget, alert "
        "on their Service having no ready endpoints, and exempt kube-system and the webhook's "
        "own namespace with a namespaceSelector.",
    ),
    C.ROLLOUT_ADMISSION_DENIED: (
        "Run the same policies in CI against the rendered manifests (gator, kyverno test, "
        "kubectl apply --dry-run=server), so a denied template never reaches the cluster.",
    ),
    C.ROLLOUT_POD_SECURITY_VIOLATION: (
        "Label staging namespaces with the same pod-security enforce level as production, and "
        "render the chart with the restricted securityContext by default.",
    ),
    C.ROLLOUT_LIMIT_RANGE_VIOLATION: (
        "Check the chart's resources against the namespace's LimitRange in CI (kubectl apply "
        "--dry-run=server), and publish each namespace's limits to the teams that deploy there.",
    ),
    C.ROLLOUT_SERVICE_ACCOUNT_MISSING: (
        "Create a workload's ServiceAccount in the same chart or kustomization as the workload, "
        "so the two can never be deployed apart.",
    ),
    C.EVICTION_MEMORY_PRESSURE: (
        "Set every container's memory request to its observed peak (a VPA in recommendation "
        "mode gives the figure), so the scheduler never packs a node past its memory.",
    ),
    C.EVICTION_PID_PRESSURE: (
        "Set the kubelet's podPidsLimit, and alert on a pod's process count growing.",
    ),
    C.EVICTION_DISK_PRESSURE: (
        "Give containers that write to local disk ephemeral-storage requests and limits, and "
        "alert on node filesystem use above 80%.",
    ),
    C.EVICTION_EPHEMERAL_STORAGE_LIMIT: (
        "Write working data to a volume sized for it (an emptyDir with a sizeLimit, or a "
        "claim), and alert on a pod's ephemeral-storage use nearing its limit.",
    ),
    C.EVICTION_NODE_NOT_READY: (
        "Spread replicas across zones with a topologySpreadConstraint and a "
        "PodDisruptionBudget, and alert on a node NotReady for more than a minute.",
    ),
    C.CONFIG_MISSING_SECRET: (
        "Deploy a workload's Secrets with it (one chart, or an ExternalSecret in the same "
        "release), so none is missing when its pods start.",
    ),
    C.CONFIG_MISSING_CONFIG_MAP: (
        "Deploy a workload's ConfigMaps with it (one chart or kustomization), and check every "
        "configMapKeyRef against the rendered manifests in CI.",
    ),
    C.CONFIG_MISSING_KEY: (
        "Check every secretKeyRef and configMapKeyRef key against the keys the release creates "
        "(a CI step over the rendered manifests), or mark keys that may be absent optional.",
    ),
    C.CONFIG_RUN_AS_NON_ROOT: (
        "Build images with a numeric non-root USER, and run them in CI under the pod's "
        "securityContext (runAsNonRoot).",
    ),
    C.CONFIG_INVALID: (
        "Apply manifests with a server-side dry run in CI, so the kubelet is never the first "
        "to read them.",
    ),
    C.NOTREADY_READINESS_PROBE_FAILURE: (
        "Keep the readiness check cheap, with a timeout above the app's worst pause, and alert "
        "on a Service's ready endpoints falling below what it needs.",
    ),
    C.NOTREADY_PROBE_MISCONFIGURED: (
        "Name probe ports (`port: http`) instead of numbers, so a probe follows the container "
        "port it checks; test the probe's path in CI.",
    ),
    C.NOTREADY_DEPENDENCY_UNAVAILABLE: (
        "Alert on the dependency's ready endpoints (its Service), and decide per dependency "
        "whether its loss should take this app out of its Service.",
    ),
}


def prevention_for(category: Category) -> tuple[str, ...]:
    """The measures that keep `category` from coming back; () when none is known."""
    return PREVENTION.get(category, ())
