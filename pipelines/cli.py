"""The ``cptcorpus`` command line: one sub-command per stage, ``run`` for all of them in order.

Every stage takes ``--config``; ``--input`` and ``--output`` override the config so any stage can be
pointed at any Parquet of documents (or WARC files, for extract). ``--address`` / ``RAY_ADDRESS``
targets a Ray cluster; without it a local Ray runtime starts in-process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pipelines import commands, io, model_commands, registry
from pipelines.config import STAGES, Config, ConfigError, check_output_writable, load_config
from pipelines.registry import REGISTRY
from pipelines.runner import (
    FAILURES_NAME,
    STAGE_FAILURES_NAME,
    init_ray,
    run_shards,
    shutdown_ray,
    write_run_failures,
)
from pipelines.schema import SchemaError

log = logging.getLogger("cptcorpus")

EXIT_CONFIG = 2
EXIT_STRICT = 3
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def previous_stage_dir(config: Config, stage: str) -> str:
    """The output of the stage before ``stage`` among those the config enables (an optional stage
    such as ``decontaminate`` that is off is passed over)."""
    earlier = [s for s in REGISTRY[: STAGES.index(stage)] if s.enabled(config)]
    if not earlier:
        raise ConfigError(f"{stage}: no earlier stage to read from; pass --input")
    return config.stage_dir(earlier[-1].name)


def default_inputs(config: Config, stage: str) -> list[str]:
    """What ``stage`` reads when ``--input`` is not given, from its registry ``reads``."""
    reads = registry.get(stage).reads
    if reads == "input":
        if not config.input:
            raise ConfigError("input: no WARC inputs; set `input:` in the config or pass --input")
        from pipelines.commoncrawl import resolve_inputs

        return resolve_inputs(config)  # paths as given; a Common Crawl snapshot/index -> URLs or range plans
    if reads.startswith("stage:"):
        return [config.stage_dir(reads.removeprefix("stage:"))]
    return [previous_stage_dir(config, stage)]


def run_stage(config: Config, stage: str, inputs: list[str] | None = None, output: str | None = None,
              progress: bool = True) -> dict:
    """Run one stage with the config's defaults for inputs and output; returns its summary.

    Ray must be initialised (``main`` does it once per command).
    """
    spec = registry.get(stage)
    inputs = inputs or default_inputs(config, stage)
    output = output or config.stage_dir(stage)
    if spec.runs == "per_shard":
        summary = run_shards(spec.load()(config), inputs, output, config.ray, progress)
    else:  # a driver: plans its own phases of Ray tasks (dedup, shard, manifest)
        summary = spec.load()(config, inputs, output, progress)
    _print_summary(summary)
    return summary


def run_fused(config: Config, stages: list[str], progress: bool = True) -> list[dict]:
    """Run consecutive per-shard stages as one Ray task per input file (``ray.fuse_stages``).

    Same outputs, stats and summaries as running them one by one; see ``pipelines.runner.run_chain``.
    """
    from pipelines.runner import run_chain

    summaries = run_chain([registry.get(s).load()(config) for s in stages], default_inputs(config, stages[0]),
                          [config.stage_dir(s) for s in stages], config.ray, progress)
    for summary in summaries:
        _print_summary(summary)
    return summaries


def run_order(config: Config, from_stage: str, to_stage: str) -> list[str]:
    """The stages ``run`` executes: registry order, from..to, optional stages only when enabled."""
    chosen = STAGES[STAGES.index(from_stage) : STAGES.index(to_stage) + 1]
    return [s for s in chosen if registry.get(s).enabled(config) or s in (from_stage, to_stage)]


def plan_run(config: Config, stages: list[str]) -> list[list[str]]:
    """Group the stages of a run: consecutive per-shard stages together when fusing, else one by one.

    A stage whose tasks declare GPUs runs alone: a fused task would hold its GPU through minutes of
    CPU-bound extraction.
    """
    def fusible(stage: str) -> bool:
        spec = registry.get(stage)
        return spec.runs == "per_shard" and not spec.gpus(config)

    groups: list[list[str]] = []
    for stage in stages:
        if config.ray.fuse_stages and groups and fusible(stage) and fusible(groups[-1][-1]):
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return groups


def _print_summary(s: dict) -> None:
    stage = s.get("stage")
    if stage == "manifest":
        print(f"manifest: {s['shards']} shards, {s['tokens']} tokens", file=sys.stderr)
        return
    if stage == "shard":
        print(f"shard: {s['docs_in']} docs, {s['tokens']} tokens ({s['token_counter']}) in {len(s['shards'])} "
              f"shards, balance max/min {s['balance_max_over_min']}", file=sys.stderr)
        return
    line = f"{stage}: {s['docs_in']} docs in, {s['docs_out']} kept, {s['docs_rejected']} rejected; "
    if s.get("fused_with"):  # the wall time is the whole chain's: only the stage's own task time says its speed
        line += f"{s['docs_per_s_per_task']} docs/s, {s['mb_per_s_per_task']} MB/s per task"
    else:
        line += f"{s['docs_per_s']} docs/s, {s['mb_per_s']} MB/s ({s['docs_per_s_per_task']} docs/s per task)"
    shards = s.get("shards", {})
    if shards.get("skipped_complete"):
        line += f"; {shards['skipped_complete']}/{shards['total']} shards already complete"
    print(line, file=sys.stderr)
    fetch = s.get("counters", {}).get("fetch")
    if fetch:  # remote inputs: what the network cost, against fetching whole files
        whole = fetch.get("whole_file_bytes", 0)
        share = f" ({fetch.get('bytes_fetched', 0) / whole:.1%} of {whole / 1e6:.1f} MB of whole files)" if whole else ""
        print(f"  fetched {fetch.get('bytes_fetched', 0) / 1e6:.1f} MB in {fetch.get('requests', 0)} requests"
              f"{share}, {fetch.get('retries', 0)} retries", file=sys.stderr)
    if s.get("reasons"):
        print(f"  rejected by reason: {json.dumps(s['reasons'], ensure_ascii=False)}", file=sys.stderr)
    if s.get("failures_by_reason"):
        print(f"  failures (skipped, see failures.jsonl): {json.dumps(s['failures_by_reason'])}", file=sys.stderr)
    if stage == "decontaminate":
        _print_benchmarks(s.get("counters", {}))


def _print_benchmarks(counters: dict) -> None:
    """Per benchmark: documents hit, items found, a few of the n-grams that matched."""
    from pipelines.decontaminate import benchmark_report

    report = benchmark_report(counters)
    if not report:
        print("  no benchmark item found in any document", file=sys.stderr)
    for bench, r in sorted(report.items()):
        examples = "; ".join(f"'{e}'" for e in r["examples"][:3])
        print(f"  {bench}: {r['docs_hit']} documents hit, {r['items_found']} items found"
              + (f", e.g. {examples}" if examples else ""), file=sys.stderr)


def _add_common(p: argparse.ArgumentParser, with_io: bool = True) -> None:
    p.add_argument("--config", required=True, help="run config YAML (see configs/)")
    if with_io:
        p.add_argument("--input", nargs="+", action="extend", help="input paths/globs/URLs (override config)")
    p.add_argument("--output", help="output directory (override config); for `run`, the run directory")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local runtime)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray runtime")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file or record was skipped")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress details, and the traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cptcorpus", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for spec in REGISTRY:
        _add_common(sub.add_parser(spec.name, help=f"stage: {spec.help}"))
    p = sub.add_parser("run", help="run every stage in order (optional stages when enabled in the config)")
    _add_common(p, with_io=False)
    p.add_argument("--from-stage", choices=STAGES, default=STAGES[0])
    p.add_argument("--to-stage", choices=STAGES, default=STAGES[-1])
    sub.add_parser("stages", help="list the stages (name, how they run, what they read and write)")
    p = sub.add_parser("sample", help="write the bundled multilingual sample WARC files")
    p.add_argument("output", help="directory for sample-NNNN.warc.gz")
    p.add_argument("--files", type=int, default=4)
    p = sub.add_parser("validate", help="re-check a manifest's shards (checksums, rows, tokens)")
    p.add_argument("manifest")
    commands.add_parsers(sub)  # mix, plan-mixture, report, ...
    model_commands.add_parsers(sub)  # annotate, train-classifier, presets
    return parser


def _load(args: argparse.Namespace) -> Config:
    overrides = {}
    if args.command == "run" and args.output:
        overrides["output"] = args.output
    config = load_config(args.config, overrides)
    if args.address:
        config.ray.address = args.address
    if args.num_cpus:
        config.ray.num_cpus = args.num_cpus
    return config


def _save_resolved(config: Config, directory: str) -> None:
    io.ensure_dir(directory)
    io.write_text_atomic(os.path.join(directory, "config.resolved.yaml"), config.resolved_yaml())


def _validate(path: str) -> int:
    from pipelines.manifest import validate_manifest

    problems = validate_manifest(path)
    for problem in problems:
        print(f"INVALID {problem}")
    print(f"{path}: valid" if not problems else f"{path}: {len(problems)} problem(s)")
    return 1 if problems else 0


def _run(config: Config, args: argparse.Namespace, progress: bool) -> list[dict]:
    """``cptcorpus run``: the registry's stages in order, per-shard ones fused when configured."""
    summaries = []
    for group in plan_run(config, run_order(config, args.from_stage, args.to_stage)):
        if len(group) > 1:
            summaries += run_fused(config, group, progress)
        else:
            summaries.append(run_stage(config, group[0], progress=progress))
        write_run_failures(config)
    return summaries


def _warn_if_empty(summaries: list[dict]) -> None:
    """A run that ends with no documents is almost always a config mistake (a language code, a threshold)."""
    last = next((s for s in reversed(summaries) if "docs_out" in s), None)
    if last is not None and last["docs_in"] and not last["docs_out"]:
        print(f"warning: {last['stage']} kept 0 of {last['docs_in']} documents; check its rejection reasons "
              "above (e.g. langid.languages uses ISO 639-1 codes such as `pt`)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, SchemaError, FileNotFoundError) as err:
        log.info("error details", exc_info=True)  # shown with -v
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        shutdown_ray()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sample":
        from pipelines.demo.sample import write_sample

        for path in write_sample(args.output, n_files=args.files):
            print(path)
        return 0
    if args.command == "stages":
        print(registry.markdown_table())
        return 0
    if args.command in commands.COMMANDS:
        return commands.dispatch(args)
    if args.command in model_commands.COMMANDS:
        return model_commands.dispatch(args)
    if args.command == "validate":
        return _validate(args.manifest)
    config = _load(args)
    io.configure_storage(config.storage_options)
    progress = not args.no_progress
    run_dir = args.output if args.command != "run" and args.output else config.run_dir
    check_output_writable(run_dir)
    _save_resolved(config, run_dir)
    init_ray(config.ray)  # the one place a command connects to (or starts) Ray
    if args.command == "run":
        _warn_if_empty(_run(config, args, progress))
        print(config.run_dir)
        return _strict_exit(args, config.run_dir)
    run_stage(config, args.command, args.input, args.output, progress)
    if args.output:
        return _strict_exit(args, args.output, STAGE_FAILURES_NAME)
    write_run_failures(config)
    return _strict_exit(args, config.run_dir)


def _strict_exit(args: argparse.Namespace, directory: str, name: str = FAILURES_NAME) -> int:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as fh:
        failures = [json.loads(line) for line in fh if line.strip()]
    if failures:
        files = sorted({f["file"] for f in failures})
        print(f"{len(failures)} skipped file(s)/record(s) in {len(files)} file(s); see {path}", file=sys.stderr)
        if args.strict:
            for file in files:
                print(f"  {_file_verdict(file, failures)}: {file}", file=sys.stderr)
            return EXIT_STRICT
    return 0


def _file_verdict(file: str, failures: list[dict]) -> str:
    """"skipped", or "partially read (N records kept)" for a file that failed after some records were read."""
    kept = max((int(f.get("records_kept") or 0) for f in failures if f["file"] == file), default=0)
    return f"partially read ({kept} records kept)" if kept else "skipped"


if __name__ == "__main__":
    sys.exit(main())
