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
from collections.abc import Callable

from pipelines import commands, io, model_commands
from pipelines.config import PER_SHARD_STAGES, STAGES, Config, ConfigError, load_config
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


def _stage_factories() -> dict[str, Callable[[Config], object]]:
    from pipelines.classify import ClassifyStage
    from pipelines.extract import ExtractStage
    from pipelines.filter import FilterStage
    from pipelines.langid import LangidStage

    return {"extract": ExtractStage, "langid": LangidStage, "filter": FilterStage,
            "classify": ClassifyStage}


def previous_stage_dir(config: Config, stage: str) -> str:
    idx = STAGES.index(stage)
    return config.stage_dir(STAGES[idx - 1])


def default_inputs(config: Config, stage: str) -> list[str]:
    if stage == "extract":
        if not config.input:
            raise ConfigError("input: no WARC inputs; set `input:` in the config or pass --input")
        from pipelines.commoncrawl import resolve_inputs

        return resolve_inputs(config)  # paths as given; a Common Crawl snapshot/index -> URLs or range plans
    if stage == "manifest":
        return [config.stage_dir("shard")]
    return [previous_stage_dir(config, stage)]


def run_stage(config: Config, stage: str, inputs: list[str] | None = None, output: str | None = None,
              progress: bool = True) -> dict:
    """Run one stage with the config's defaults for inputs and output; returns its summary."""
    inputs = inputs or default_inputs(config, stage)
    output = output or config.stage_dir(stage)
    if stage == "shard":
        from pipelines.shard import write_shards

        summary = write_shards(config, inputs, output)
    elif stage == "manifest":
        from pipelines.manifest import build_manifest

        manifest = build_manifest(config, inputs[0])
        summary = {"stage": "manifest", "shards": len(manifest["datasets"][0]["shards"]),
                   "tokens": manifest["datasets"][0]["totals"]["tokens"]}
    elif stage == "dedup":  # not one task per shard: phases of Ray tasks over shards and partitions
        from pipelines.dedup import run_dedup

        init_ray(config.ray)
        summary = run_dedup(config, inputs, output, progress)
    else:
        init_ray(config.ray)
        summary = run_shards(_stage_factories()[stage](config), inputs, output, config.ray, progress)
    _print_summary(summary)
    return summary


def run_fused(config: Config, stages: list[str], progress: bool = True) -> list[dict]:
    """Run consecutive per-shard stages as one Ray task per input file (``ray.fuse_stages``).

    Same outputs, stats and summaries as running them one by one; see ``pipelines.runner.run_chain``.
    """
    from pipelines.runner import run_chain

    init_ray(config.ray)
    factories = _stage_factories()
    summaries = run_chain([factories[s](config) for s in stages], default_inputs(config, stages[0]),
                          [config.stage_dir(s) for s in stages], config.ray, progress)
    for summary in summaries:
        _print_summary(summary)
    return summaries


def plan_run(config: Config, stages: list[str]) -> list[list[str]]:
    """Group the stages of a run: consecutive per-shard stages together when fusing, else one by one.

    Classify on GPUs runs alone: a fused task would hold its GPU through minutes of CPU-bound extraction.
    """
    def fusible(stage: str) -> bool:
        return stage in PER_SHARD_STAGES and not (stage == "classify" and config.classify.num_gpus)

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


def _add_common(p: argparse.ArgumentParser, with_io: bool = True) -> None:
    p.add_argument("--config", required=True, help="run config YAML (see configs/)")
    if with_io:
        p.add_argument("--input", nargs="+", action="extend", help="input paths/globs/URLs (override config)")
    p.add_argument("--output", help="output directory (override config); for `run`, the run directory")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local runtime)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray runtime")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file or record was skipped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cptcorpus", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        _add_common(sub.add_parser(stage, help=f"run the {stage} stage"))
    p = sub.add_parser("run", help="run every stage in order")
    _add_common(p, with_io=False)
    p.add_argument("--from-stage", choices=STAGES, default=STAGES[0])
    p.add_argument("--to-stage", choices=STAGES, default=STAGES[-1])
    p = sub.add_parser("sample", help="write the bundled multilingual sample WARC files")
    p.add_argument("output", help="directory for sample-NNNN.warc.gz")
    p.add_argument("--files", type=int, default=4)
    p = sub.add_parser("validate", help="re-check a manifest's shards (checksums, rows, tokens)")
    p.add_argument("manifest")
    from pipelines import commands, model_commands  # mix, plan-mixture, report; annotate, train, presets

    commands.add_parsers(sub)
    model_commands.add_parsers(sub)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sample":
            from pipelines.sample import write_sample

            for path in write_sample(args.output, n_files=args.files):
                print(path)
            return 0
        if args.command in commands.COMMANDS:
            return commands.dispatch(args)
        if args.command in model_commands.COMMANDS:
            return model_commands.dispatch(args)
        if args.command == "validate":
            from pipelines.manifest import validate_manifest

            problems = validate_manifest(args.manifest)
            for problem in problems:
                print(f"INVALID {problem}", file=sys.stderr)
            print("manifest valid" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
            return 1 if problems else 0
        config = _load(args)
        progress = not args.no_progress
        if args.command == "run":
            _save_resolved(config, config.run_dir)
            stages = STAGES[STAGES.index(args.from_stage) : STAGES.index(args.to_stage) + 1]
            for group in plan_run(config, list(stages)):
                if len(group) > 1:
                    run_fused(config, group, progress)
                else:
                    run_stage(config, group[0], progress=progress)
                write_run_failures(config)
            failures_dir = config.run_dir
        else:
            _save_resolved(config, args.output or config.run_dir)
            run_stage(config, args.command, args.input, args.output, progress)
            if args.output:
                return _strict_exit(args, args.output, STAGE_FAILURES_NAME)
            else:
                write_run_failures(config)
                failures_dir = config.run_dir
    except (ConfigError, SchemaError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        shutdown_ray()
    return _strict_exit(args, failures_dir)


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
            for f in files:
                print(f"  skipped: {f}", file=sys.stderr)
            return EXIT_STRICT
    return 0


if __name__ == "__main__":
    sys.exit(main())
