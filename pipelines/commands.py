"""Sub-commands that consume a finished run: ``mix``, ``plan-mixture``, ``report``, ``tokenizer-report``
and ``extend-vocab``.

They live here rather than in ``pipelines.cli`` so the stage CLI stays small; ``cli`` registers them
with ``add_parsers`` and hands them over with ``dispatch``. None of them starts Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipelines import io

COMMANDS = ("mix", "plan-mixture", "report", "tokenizer-report", "extend-vocab")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``mix``, ``plan-mixture`` and ``report`` on the cptcorpus parser."""
    p = sub.add_parser("mix", help="resolve a mixture recipe into mixture/<recipe>.mixture.json (+ exports)")
    p.add_argument("--recipe", required=True, help="mixture recipe YAML (see configs/mixture-demo.yaml)")
    p.add_argument("--manifest", help="corpus manifest.json (default: the --config run's, else the recipe's)")
    p.add_argument("--config", help="run config: its run directory's corpus/manifest.json is the corpus")
    p.add_argument("--output", help="directory for the mixture files (default: <run dir>/mixture)")
    p = sub.add_parser("plan-mixture", help="fit the D-CPT Law to pilot losses and recommend the domain share r")
    p.add_argument("--losses", required=True, help="CSV with columns N, D, r, general_loss, domain_loss")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="allowed relative rise of the general loss over the base (default 0.01 = 1%%)")
    p.add_argument("--base-general-loss", type=float, help="the base model's general loss (default: law at r=0)")
    p.add_argument("--target-n", type=float, help="model parameters of the real run (default: largest pilot N)")
    p.add_argument("--target-d", type=float, help="training tokens of the real run (default: largest pilot D)")
    p.add_argument("--epsilon", type=float, default=0.01, help="epsilon of the law's C/(r+eps)^gamma term")
    p.add_argument("--restarts", type=int, default=24, help="random restarts per fit")
    p.add_argument("--replay", action="store_true",
                   help="the pilots' general data is a replay set (e.g. English for a Portuguese CPT): also "
                   "report the replay share 1 - r, the ratio for the recipe's `replay: true` component")
    p.add_argument("--output", help="also write the plan as JSON here")
    p = sub.add_parser("report", help="write RUN_DIR/report/index.html with the run's plots")
    p.add_argument("run_dir", nargs="?", help="the run directory (runs/<name>)")
    p.add_argument("--config", help="run config, instead of RUN_DIR: report on its run directory")
    p.add_argument("--top", type=int, default=20, help="rules shown in the rejections plot")
    _add_tokenizer_parsers(sub)


def _add_tokenizer_parsers(sub: argparse._SubParsersAction) -> None:
    """``tokenizer-report`` and ``extend-vocab`` (pipelines.tokenizer_report, pipelines.extend_vocab)."""
    p = sub.add_parser("tokenizer-report", help="tokens per word etc. per language and quality bucket, "
                       "for one or more tokenizer.json files, on a sample of the corpus")
    p.add_argument("--tokenizer", nargs="+", required=True, help="tokenizer.json file(s), compared side by side")
    p.add_argument("--manifest", required=True, help="the corpus manifest (runs/<name>/corpus/manifest.json)")
    p.add_argument("--sample-docs", type=int, default=2000, help="documents sampled (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="report JSON (default: <run>/report/tokenizer_report.json)")
    p = sub.add_parser("extend-vocab", help="add N target-language tokens to a BPE tokenizer, keeping base ids")
    p.add_argument("--base", required=True, help="the base model's tokenizer.json (BPE)")
    p.add_argument("--manifest", required=True, help="the corpus manifest (runs/<name>/corpus/manifest.json)")
    p.add_argument("--add", type=int, required=True, help="new tokens to add")
    p.add_argument("--output", required=True, help="directory for tokenizer.json, new_tokens.jsonl, report")
    p.add_argument("--lang", default="pt", help="target language, as in the corpus's lang column (default pt)")
    p.add_argument("--sample-docs", type=int, default=20_000, help="target-language documents sampled")
    p.add_argument("--holdout", type=float, default=0.1, help="share of them held out for the report")
    p.add_argument("--min-frequency", type=int, default=2, help="tokens a new merge must save on the sample")
    p.add_argument("--seed", type=int, default=0)


def dispatch(args: argparse.Namespace) -> int:
    """Run one of COMMANDS; returns the exit status (2 for bad input, with the reason on stderr)."""
    from pipelines.config import ConfigError
    from pipelines.filterexpr import FilterSyntaxError
    from pipelines.mixture import RecipeError
    from pipelines.planner import PlannerError
    from pipelines.tokenizer_report import TokenizerInputError

    try:
        if args.command == "mix":
            return _mix(args)
        if args.command == "plan-mixture":
            return _plan(args)
        if args.command == "report":
            from pipelines.report import write_report

            print(write_report(_run_dir(args), args.top))
            return 0
        if args.command in ("tokenizer-report", "extend-vocab"):
            return _tokenizers(args)
    except (RecipeError, PlannerError, FilterSyntaxError, FileNotFoundError, ConfigError,
            TokenizerInputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    raise ValueError(f"not a command of this module: {args.command}")


def _mix(args: argparse.Namespace) -> int:
    from pipelines.mixture import load_recipe, resolve_mixture

    manifest = args.manifest
    if manifest is None and args.config:
        manifest = os.path.join(_load_config(args.config).stage_dir("manifest"), "manifest.json")
    mixture = resolve_mixture(load_recipe(args.recipe), manifest, args.output)
    for c in mixture["components"]:
        print(f"{c['name']}: ratio {c['ratio']:g}, {c['tokens_available']:,} tokens available, "
              f"{c['tokens_taken']:,} taken, {c['epochs']:.2f} epochs", file=sys.stderr)
    for w in mixture["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"megatron --data-path {mixture['exports']['megatron']['data_path']}", file=sys.stderr)
    print(mixture["path"])
    return 0


def _tokenizers(args: argparse.Namespace) -> int:
    if args.command == "tokenizer-report":
        from pipelines import tokenizer_report as tr

        report = tr.tokenizer_report(args.tokenizer, args.manifest, args.sample_docs, args.seed)
        out = args.output or tr.default_output(args.manifest)
        io.write_json_atomic(out, report)
        print(tr.format_summary(report), file=sys.stderr)
        print(out)
        return 0
    from pipelines.extend_vocab import extend_vocab, format_summary

    report = extend_vocab(args.base, args.manifest, args.add, args.output, args.lang, args.sample_docs,
                          args.holdout, args.seed, args.min_frequency)
    print(format_summary(report), file=sys.stderr)
    print(args.output)
    return 0


def _load_config(path: str):
    """The run config, with its ``storage_options`` applied: its run directory may be on an object store."""
    from pipelines.config import load_config

    config = load_config(path)
    io.configure_storage(config.storage_options)
    return config


def _run_dir(args: argparse.Namespace) -> str:
    if args.run_dir:
        return args.run_dir
    if args.config:
        return _load_config(args.config).run_dir
    raise FileNotFoundError("report: give the run directory (cptcorpus report RUN_DIR) or --config CONFIG")


def replay_share(plan: dict) -> dict:
    """The replay view of a domain/general plan: in the D-CPT law's pilots the general data *is* what a
    replay component holds, so its recommended share is 1 - r and its feasible range mirrors r's."""
    low, high = plan["feasible_r"] if plan.get("feasible_r") else (plan["recommended_r"], plan["recommended_r"])
    return {"share": round(1.0 - plan["recommended_r"], 6), "feasible_share": [round(1.0 - high, 6),
                                                                                round(1.0 - low, 6)]}


def _plan(args: argparse.Namespace) -> int:
    from pipelines.planner import format_plan, plan_mixture, read_losses

    plan = plan_mixture(read_losses(args.losses), args.tolerance, args.base_general_loss, args.target_n,
                        args.target_d, args.epsilon, args.restarts)
    print(format_plan(plan))
    out = plan.to_dict()
    if args.replay:
        out["replay"] = replay_share(out)
        low, high = out["replay"]["feasible_share"]
        print(f"recommended replay share = {out['replay']['share']:.3f} (1 - r; feasible {low:.3f}-{high:.3f}): "
              "set it as the ratio of the recipe's `replay: true` component")
    if args.output:
        io.write_text_atomic(args.output, json.dumps(out, indent=2) + "\n")
    return 0
