"""The `kubetriage` command line.

Each sub-command is a thin shell over the package: parse arguments, call one function, print.
Exit codes: 0 done, 1 an unexpected failure, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from kubetriage import __version__
from kubetriage.config import Settings, describe_settings, invalid_settings

DESCRIPTION = """\
kubetriage diagnoses failing Kubernetes workloads (CrashLoopBackOff, OOMKilled, ImagePullBackOff,
Pending, stuck rollouts), writes the root cause and its evidence into DiagnosisReport resources,
and escalates every change that would touch production as a Linear issue instead of applying it.
"""
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _target(value: str) -> tuple[str, str]:
    kind, sep, name = value.partition("/")
    if not sep or not kind or not name:
        raise argparse.ArgumentTypeError(f"expected KIND/NAME, e.g. deployment/api; got {value!r}")
    return kind, name


def _cmd_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    from kubetriage.clients.snapshot import SnapshotError, SnapshotReader  # noqa: PLC0415
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415
    from kubetriage.reports.build import build_report  # noqa: PLC0415
    from kubetriage.reports.render.cli import to_json, to_table, to_yaml  # noqa: PLC0415

    try:
        reader = SnapshotReader.from_file(args.snapshot)
    except SnapshotError as error:
        print(f"kubetriage diagnose: {error}", file=sys.stderr)
        return EXIT_USAGE
    namespaces = [args.namespace] if args.namespace else None
    findings = diagnose(reader, Options.of(settings), namespaces=namespaces, target=args.target)
    reports = [build_report(finding) for finding in findings]
    render: Callable[..., str] = {"json": to_json, "yaml": to_yaml, "table": to_table}[args.output]
    sys.stdout.write(render(reports))
    if reader.skipped_items:
        print(
            f"kubetriage diagnose: skipped {reader.skipped_items} malformed item(s) "
            f"in {args.snapshot}",
            file=sys.stderr,
        )
    return 0


def _live_reader(settings: Settings) -> Any:
    from kubernetes import config as kube_config  # noqa: PLC0415

    from kubetriage.clients.kube import LiveClusterReader  # noqa: PLC0415
    from kubetriage.runtime.handlers import memory_history  # noqa: PLC0415

    try:
        api = kube_config.new_client_from_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException as error:
        raise SystemExit(f"kubetriage: no usable kubeconfig: {error}") from error
    return LiveClusterReader(
        api, cluster_name=settings.cluster_name, history=memory_history(settings)
    )


def _cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415
    from kubetriage.reports.build import NotDryRun, build_report  # noqa: PLC0415
    from kubetriage.reports.render.cli import to_json, to_table, to_yaml  # noqa: PLC0415

    namespaces = [args.namespace] if args.namespace else settings.namespaces or None
    findings = diagnose(_live_reader(settings), Options.of(settings), namespaces=namespaces)
    render: Callable[..., str] = {"json": to_json, "yaml": to_yaml, "table": to_table}[args.output]
    sys.stdout.write(render([build_report(f, not_dry_run=NotDryRun.SCAN) for f in findings]))
    return 0


def _cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    import json  # noqa: PLC0415

    from kubetriage.clients.capture import RecordingReader  # noqa: PLC0415
    from kubetriage.diagnosis import Options, diagnose  # noqa: PLC0415

    recorder = RecordingReader(_live_reader(settings))
    findings = diagnose(
        recorder.as_reader(),
        Options.of(settings),
        namespaces=[args.namespace],
        target=args.target,
    )
    document = json.dumps(recorder.snapshot(), indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(document)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(document)
    kind, name = args.target
    print(
        f"captured {kind}/{name} in {args.namespace}: {len(findings)} problem(s); "
        f"replay with: kubetriage diagnose --snapshot {args.output}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(_args: argparse.Namespace, settings: Settings) -> int:
    import kubetriage.runtime.handlers  # noqa: F401, PLC0415 (registers the handlers)
    from kubetriage.runtime.logs import configure_logging  # noqa: PLC0415
    from kubetriage.runtime.metrics import serve as serve_metrics  # noqa: PLC0415
    from kubetriage.runtime.runner import run  # noqa: PLC0415

    configure_logging(settings.log_format)
    serve_metrics(settings.metrics_port)
    # Alone, kopf; with KUBETRIAGE_LEADER_ELECTION, kopf only while this replica holds the Lease.
    return run(settings)


def _cmd_playbooks(_args: argparse.Namespace, _settings: Settings) -> int:
    from kubetriage.playbooks import playbooks_markdown  # noqa: PLC0415

    sys.stdout.write(playbooks_markdown())
    return 0


Command = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Command] = {
    "diagnose": _cmd_diagnose,
    "run": _cmd_run,
    "scan": _cmd_scan,
    "capture": _cmd_capture,
    "playbooks": _cmd_playbooks,
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
    diagnose.add_argument("--target", type=_target, metavar="KIND/NAME", help="only this workload")
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
    capture.add_argument("target", type=_target, metavar="KIND/NAME")
    capture.add_argument("-n", "--namespace", required=True)
    capture.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="file, or - for stdout"
    )

    commands.add_parser("playbooks", help="print every playbook as Markdown")
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
