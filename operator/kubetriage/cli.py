"""The `kubetriage` command line.

Each sub-command is a thin shell over the package: parse arguments, call one function, print.
Exit codes: 0 done, 1 an unexpected failure, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kubetriage import __version__
from kubetriage.config import Settings, describe_settings, invalid_settings

if TYPE_CHECKING:
    from kubetriage.clients.snapshot import SnapshotReader
    from kubetriage.k8s.access import KubeObject
    from kubetriage.k8s.owners import WorkloadRef
    from kubetriage.models import DiagnosisReport

DESCRIPTION = """\
kubetriage diagnoses failing Kubernetes workloads (CrashLoopBackOff, OOMKilled, ImagePullBackOff,
Pending, stuck rollouts), writes the root cause and its evidence into DiagnosisReport resources,
and escalates every change that would touch production as a Linear issue instead of applying it.
"""
EXIT_FAILURE = 1
EXIT_USAGE = 2


# KIND/NAME as kubectl takes it (`deploy/api`, `deployment.apps/api`); NAME as the API names
# objects (a DNS subdomain: lowercase letters, digits, '-' and '.', at most 253 characters).
_TARGET = re.compile(
    r"(?P<kind>[A-Za-z][A-Za-z0-9]*)(?:\.[a-z0-9.-]+)?/(?P<name>[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)"
)


class _Refusal(Exception):
    """A command that cannot do what it was asked, for a reason its one line says."""


def _target(value: str) -> tuple[str, str]:
    """`(Kind, name)` of a KIND/NAME argument, the kind as the API names it; _Refusal when
    `value` is not one."""
    from kubetriage.k8s.owners import workload_kind  # noqa: PLC0415

    match = _TARGET.fullmatch(value)
    if match is None:
        raise _Refusal(
            f"--target {value!r} is not KIND/NAME (e.g. deployment/api; NAME as Kubernetes "
            "names objects: lowercase letters, digits, '-' and '.')"
        )
    return workload_kind(match["kind"]), match["name"]


def _cmd_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    from kubetriage.clients.snapshot import SnapshotError, SnapshotReader  # noqa: PLC0415
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415
    from kubetriage.reports.build import build_report  # noqa: PLC0415
    from kubetriage.reports.render.cli import to_json, to_table, to_yaml  # noqa: PLC0415

    try:
        target = _target(args.target) if args.target is not None else None
        reader = SnapshotReader.from_file(args.snapshot)
        checked = _checked(reader, target, args.namespace) if target else None
    except (_Refusal, SnapshotError) as error:
        print(f"kubetriage diagnose: {error}", file=sys.stderr)
        return EXIT_USAGE
    namespaces = [args.namespace] if args.namespace else None
    findings = diagnose(reader, Options.of(settings), namespaces=namespaces, target=target)
    reports = [build_report(finding) for finding in findings]
    if not reports and checked is not None and args.output == "table":
        sys.stdout.write(f"No problems found for {checked} in {args.snapshot}.\n")
    else:
        render = {"json": to_json, "yaml": to_yaml, "table": to_table}[args.output]
        sys.stdout.write(render(reports))
    if reader.skipped_items:
        print(
            f"kubetriage diagnose: skipped {reader.skipped_items} malformed item(s) "
            f"in {args.snapshot}",
            file=sys.stderr,
        )
    return 0


def _checked(reader: SnapshotReader, target: tuple[str, str], namespace: str | None) -> str:
    """What diagnosing `target` looks at, said for a person ("deployment/api in shop: checked
    the Deployment and its 3 pods"). _Refusal when the snapshot does not hold the target (the
    object, or a pod that belongs to it), or holds it as part of another workload, whose
    report it would be: reports are per workload, so "no problem" would be said of it wrongly.
    """
    from kubetriage.k8s.access import name_of, namespace_of  # noqa: PLC0415
    from kubetriage.k8s.owners import owning_workload  # noqa: PLC0415
    from kubetriage.namespaces import NamespaceSelection  # noqa: PLC0415

    kind, name = target
    spelled = f"{kind.lower()}/{name}"
    selection = NamespaceSelection.of([namespace] if namespace else None)
    pods: dict[str, int] = {}  # namespace -> the target's pods there
    for pod in reader.pods():
        workload = owning_workload(pod, reader)
        if (workload.kind.lower(), workload.name) == (kind.lower(), name) and selection.matches(
            workload.namespace
        ):
            pods[workload.namespace] = pods.get(workload.namespace, 0) + 1
            kind = workload.kind  # a custom kind as its owner references spell it
    objects = [
        obj
        for obj in reader.workloads(kind)
        if name_of(obj) == name and selection.matches(namespace_of(obj, ""))
    ]
    if kind == "CronJob" and objects:
        raise _Refusal(
            f"{spelled} is a CronJob; reports are per Job it starts: use --target job/NAME"
        )
    for obj in objects:
        owner = _report_owner(reader, obj, kind)
        if owner is not None and (owner.kind, owner.name) != (kind, name):
            theirs = f"{owner.kind.lower()}/{owner.name}"
            raise _Refusal(
                f"{spelled} belongs to {theirs} in {owner.namespace}; reports are per "
                f"workload: use --target {theirs}"
            )
    found = sorted({namespace_of(obj) for obj in objects} | set(pods))
    if not found:
        where = f" in namespace {namespace}" if namespace else ""
        raise _Refusal(f"{spelled} is not in {reader.source}{where}")
    count = sum(pods.values())
    its_pods = f"its {count} pod{'' if count == 1 else 's'}"
    if kind == "Pod":
        what = "the pod"
    elif objects:
        what = f"the {kind} and {its_pods}"
    else:
        what = f"{its_pods} (the {kind} itself is not in the snapshot)"
    return f"{spelled} in {', '.join(found)}: checked {what}"


def _report_owner(reader: SnapshotReader, obj: KubeObject, kind: str) -> WorkloadRef | None:
    """The workload whose report would tell of `obj`, when that is another one: a pod's
    workload, an owned ReplicaSet's Deployment; None for an object reports are about."""
    from kubetriage.k8s.access import as_dict, namespace_of, text  # noqa: PLC0415
    from kubetriage.k8s.owners import WorkloadRef, controller_of, owning_workload  # noqa: PLC0415

    if kind == "Pod":
        return owning_workload(obj, reader)
    owner = as_dict(controller_of(obj))
    if kind == "ReplicaSet" and owner.get("kind") == "Deployment" and text(owner.get("name")):
        return WorkloadRef(namespace_of(obj), "Deployment", owner["name"])
    return None


def _kube_api(command: str) -> Any:
    """An API client of the cluster of $KUBECONFIG; exits 1 with one line when there is none."""
    from kubetriage.clients.kubeconfig import NoClusterError, kubeconfig_client  # noqa: PLC0415

    try:
        return kubeconfig_client()
    except NoClusterError as error:
        raise SystemExit(f"kubetriage {command}: {error}") from error


def _live_reader(command: str, settings: Settings) -> tuple[Any, str]:
    """A live reader of the cluster of $KUBECONFIG, and the address of its apiserver."""
    from kubetriage.clients.kube import LiveClusterReader  # noqa: PLC0415
    from kubetriage.runtime.handlers import memory_history  # noqa: PLC0415

    api = _kube_api(command)
    return LiveClusterReader(
        api, cluster_name=settings.cluster_name, history=memory_history(settings)
    ), api.configuration.host


def _unreadable_cluster(command: str, host: str, error: BaseException) -> SystemExit:
    """Exit 1 with one line saying whether the cluster did not answer or refused a read."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    cause = error.__cause__
    if isinstance(cause, ApiException):
        return SystemExit(f"kubetriage {command}: the cluster at {host} refused a read: {error}")
    # urllib3's MaxRetryError says why in its `reason`; its text repeats the whole request.
    why = getattr(cause, "reason", None) or cause or error
    return SystemExit(
        f"kubetriage {command}: the cluster at {host} does not answer: {' '.join(str(why).split())}"
    )


def _cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    from kubetriage.clients.kube import ClusterReadError  # noqa: PLC0415
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415
    from kubetriage.reports.build import NotDryRun, build_report  # noqa: PLC0415
    from kubetriage.reports.render.cli import to_json, to_table, to_yaml  # noqa: PLC0415

    namespaces = [args.namespace] if args.namespace else settings.namespaces or None
    reader, host = _live_reader("scan", settings)
    try:
        findings = diagnose(reader, Options.of(settings), namespaces=namespaces)
    except ClusterReadError as error:
        raise _unreadable_cluster("scan", host, error) from error
    render: Callable[..., str] = {"json": to_json, "yaml": to_yaml, "table": to_table}[args.output]
    sys.stdout.write(render([build_report(f, not_dry_run=NotDryRun.SCAN) for f in findings]))
    return 0


def _cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    import json  # noqa: PLC0415

    from kubetriage.clients.capture import RecordingReader  # noqa: PLC0415
    from kubetriage.clients.kube import ClusterReadError  # noqa: PLC0415
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415

    try:
        target = _target(args.target)
    except _Refusal as error:
        print(f"kubetriage capture: {error}", file=sys.stderr)
        return EXIT_USAGE
    reader, host = _live_reader("capture", settings)
    recorder = RecordingReader(reader)
    try:
        findings = diagnose(
            recorder.as_reader(), Options.of(settings), namespaces=[args.namespace], target=target
        )
    except ClusterReadError as error:
        raise _unreadable_cluster("capture", host, error) from error
    document = json.dumps(recorder.snapshot(), indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(document)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(document)
    print(
        f"captured {args.target} in {args.namespace}: {len(findings)} problem(s); "
        f"replay with: kubetriage diagnose --snapshot {args.output}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(_args: argparse.Namespace, settings: Settings) -> int:
    import kubetriage.runtime.handlers  # noqa: F401, PLC0415 (registers the handlers)
    from kubetriage.clients.kubeconfig import NoClusterError  # noqa: PLC0415
    from kubetriage.runtime.logs import configure_logging  # noqa: PLC0415
    from kubetriage.runtime.metrics import serve as serve_metrics  # noqa: PLC0415
    from kubetriage.runtime.runner import run  # noqa: PLC0415

    configure_logging(settings.log_format)
    serve_metrics(settings.metrics_port)
    # Alone, kopf; with KUBETRIAGE_LEADER_ELECTION, kopf only while this replica holds the Lease.
    try:
        return run(settings)
    except NoClusterError as error:
        print(f"kubetriage run: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _cmd_playbooks(_args: argparse.Namespace, _settings: Settings) -> int:
    from kubetriage.playbooks import playbooks_markdown  # noqa: PLC0415

    sys.stdout.write(playbooks_markdown())
    return 0


def _cmd_plans(args: argparse.Namespace, _settings: Settings) -> int:
    from kubetriage.reports.render.plan import (  # noqa: PLC0415
        PlanConflictError,
        plan_path,
        plan_update,
    )

    reports, unreadable = _stored_reports(args.namespace)
    directory = Path(args.dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"kubetriage plans: cannot use --dir {args.dir}: {error}", file=sys.stderr)
        return EXIT_USAGE
    for problem in unreadable:
        print(f"kubetriage plans: {problem}", file=sys.stderr)
    exit_code = EXIT_USAGE if unreadable else 0
    for report in reports:
        path = plan_path(directory, report)
        subject = f"{report.metadata.namespace}/{report.metadata.name}"
        try:
            update = plan_update(report, path.read_text("utf-8") if path.exists() else None)
        except (OSError, UnicodeDecodeError, PlanConflictError) as error:
            print(f"kubetriage plans: {subject}: {path} left alone: {error}", file=sys.stderr)
            exit_code = EXIT_USAGE
            continue
        if update is None:
            continue  # nothing changed since the plan's last entry
        try:
            _write_atomically(path, update.text)
        except OSError as error:
            print(f"kubetriage plans: {subject}: cannot write {path}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"{'wrote' if update.created else 'updated'} {path}: {update.headline}")
    return exit_code


def _stored_reports(namespace: str | None) -> tuple[list[DiagnosisReport], list[str]]:
    """The cluster's DiagnosisReports (of one namespace, or all), read leniently and sorted by
    namespace and name, and one line for each that cannot be read. Exits 1 with one line when
    the cluster cannot be asked."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    from kubetriage import models  # noqa: PLC0415
    from kubetriage.reports.store import ReportStore  # noqa: PLC0415

    api = _kube_api("plans")
    try:
        items = ReportStore(api).list(namespace)
    except ApiException as error:
        if error.status == 404:
            raise SystemExit("kubetriage plans: the cluster has no DiagnosisReport CRD") from error
        raise SystemExit(
            f"kubetriage plans: listing DiagnosisReports was refused: {error.status} {error.reason}"
        ) from error
    except (HTTPError, OSError) as error:
        why = getattr(error, "reason", None) or error  # urllib3's MaxRetryError wraps the cause
        raise SystemExit(
            f"kubetriage plans: the cluster at {api.configuration.host} does not answer: {why}"
        ) from error
    finally:
        api.close()
    reports: list[DiagnosisReport] = []
    unreadable: list[str] = []
    for item in sorted(items, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"])):
        try:
            reports.append(models.DiagnosisReport.read(item))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            unreadable.append(
                f"{item['metadata']['namespace']}/{item['metadata']['name']}: unreadable, "
                f"not planned: {where}: {first['msg']}"
            )
    return reports, unreadable


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` by one rename, so that a plan is never left half written."""
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


Command = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Command] = {
    "diagnose": _cmd_diagnose,
    "run": _cmd_run,
    "scan": _cmd_scan,
    "capture": _cmd_capture,
    "playbooks": _cmd_playbooks,
    "plans": _cmd_plans,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="kubetriage",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kubetriage {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    diagnose = commands.add_parser(
        "diagnose",
        help="diagnose a captured snapshot offline and print the reports",
        description="Run the playbooks over a snapshot file (a v1 List as `kubectl get -o json` "
        "or `kubetriage capture` writes it) and print the DiagnosisReports they produce.",
    )
    diagnose.add_argument("--snapshot", required=True, metavar="FILE", help="snapshot JSON file")
    diagnose.add_argument(
        "--target",
        metavar="KIND/NAME",
        help="only this workload; an error when the snapshot does not hold it",
    )
    diagnose.add_argument("-n", "--namespace", help="only this namespace")
    diagnose.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "yaml"],
        default="table",
        help="table (default) for people; json/yaml print a v1 List of DiagnosisReport objects",
    )

    commands.add_parser(
        "run",
        help="run the operator (watches pods and Deployments, writes DiagnosisReports)",
        description="Run the operator against the cluster of $KUBECONFIG (or in-cluster). "
        "Settings come from environment variables:",
        epilog=describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    scan = commands.add_parser(
        "scan", help="one pass over the live cluster, printing what the operator would write"
    )
    scan.add_argument("-n", "--namespace", help="only this namespace")
    scan.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    capture = commands.add_parser(
        "capture", help="write a snapshot of what the playbooks read for one workload"
    )
    capture.add_argument("target", metavar="KIND/NAME")
    capture.add_argument("-n", "--namespace", required=True)
    capture.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="file, or - for stdout"
    )

    commands.add_parser("playbooks", help="print every playbook as Markdown")

    plans = commands.add_parser(
        "plans",
        help="write one Markdown incident plan per DiagnosisReport (the fallback without Linear)",
        description="Read the DiagnosisReports of the cluster of $KUBECONFIG and write one "
        "Markdown plan per report, DIR/NOW-incident-<namespace>-<report>.md: objective, status "
        "and timestamped updates. A later run appends one entry per report that changed and "
        "writes nothing for one that did not. Prints one line per file written or updated.",
    )
    plans.add_argument("--dir", required=True, metavar="DIR", help="where the plans are kept")
    plans.add_argument("-n", "--namespace", help="only the reports of this namespace")
    return parser


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    from kubetriage.diagnosis import PlaybookError  # noqa: PLC0415

    handler = _COMMANDS[args.command]
    try:
        return handler(args, settings)
    except PlaybookError as error:
        # A bug of kubetriage, said in one line with the workload it met, not a traceback.
        print(f"kubetriage {args.command}: {error.subject.target}: {error}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings()
    except ValidationError as error:
        # Every command reads the same settings, and none runs on a setting it cannot read.
        print(f"kubetriage: {invalid_settings(error)}", file=sys.stderr)
        return EXIT_USAGE
    return _run_command(args, settings)


if __name__ == "__main__":
    sys.exit(main())
