"""Sub-commands that make models and presets: ``annotate``, ``train-classifier``, ``derive-preset``.

The classifier recipe of ClassiCC-PT / FineWeb-Edu: an LLM scores a reproducible sample 0-5
(``annotate``), a fastText model learns the scores (``train-classifier``), the ``classify`` stage
scores the corpus. ``derive-preset`` writes filter thresholds for a new language from known-good text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from pipelines import io

COMMANDS = ("annotate", "train-classifier", "derive-preset", "train-extractor")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help="score a reproducible sample 0-5 with an LLM (OpenAI-compatible API)")
    p.add_argument("--config", required=True)
    p.add_argument("--property", required=True, help="edu, stem, toxic, or a custom name with annotate.prompt_files")
    p.add_argument("--sample", type=int, required=True, help="documents to annotate")
    p.add_argument("--input", nargs="+", help="Parquet documents (default: the run's filter/*.parquet)")
    p.add_argument("--output", help="annotations JSONL (default: <run>/annotations/<property>.jsonl)")
    p = sub.add_parser("train-classifier", help="train a fastText classifier from labelled Parquet/JSONL")
    p.add_argument("--input", nargs="+", required=True, help="Parquet/JSONL with text + label (or score)")
    p.add_argument("--output", required=True, help="directory for model.bin, report.json, model_card.json")
    p.add_argument("--label-column", default="label")
    p.add_argument("--score-column", help="a 0-5 score column to binarise (or bucket) instead of labels")
    p.add_argument("--binarize", type=float, default=3, help="score >= this is positive (default 3)")
    p.add_argument("--buckets", help="comma-separated bucket edges for multi-class scores, e.g. 1,2,3,4,5")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--quantize", action="store_true", help="also write a quantised model.ftz")
    p = sub.add_parser("derive-preset", help="derive a language's filter thresholds from known-good text")
    p.add_argument("--input", nargs="+", required=True, help="Parquet with a text column of good documents")
    p.add_argument("--lang", required=True)
    p.add_argument("--quantile", type=float, default=0.02, help="share of good text each threshold may reject")
    p.add_argument("--output", required=True, help="preset YAML to write (e.g. presets/xx.yaml; use it with filter.preset_dir)")
    p = sub.add_parser("train-extractor", help="train `extract.extractor: fast` from WARCs (labels: trafilatura)")
    p.add_argument("--input", nargs="+", required=True, help="WARC files or globs of HTML pages to learn from")
    p.add_argument("--output", required=True, help="model JSON to write (use it with extract.fast_model)")
    p.add_argument("--lang", nargs="+", help="languages whose stop words the features use (default: all we have)")
    p.add_argument("--holdout", type=float, default=0.25, help="share of sites held out for the agreement report")
    p.add_argument("--seed", type=int, default=0)


def dispatch(args: argparse.Namespace) -> int:
    from pipelines.config import ConfigError

    try:
        if args.command == "annotate":
            return _annotate(args)
        if args.command == "train-classifier":
            return _train(args)
        if args.command == "derive-preset":
            return _derive(args)
        if args.command == "train-extractor":
            return _train_extractor(args)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    raise ValueError(f"not a command of this module: {args.command}")


def _annotate(args: argparse.Namespace) -> int:
    from classifiers.annotate import annotate, sample_documents
    from pipelines.config import load_config

    config = load_config(args.config)
    cfg = config.annotate
    inputs = io.expand_inputs(args.input or [config.stage_dir("filter")], (".parquet",))
    docs = sample_documents(inputs, args.sample, seed=cfg.seed)
    template = None
    if args.property in cfg.prompt_files:
        template = Path(cfg.prompt_files[args.property]).read_text(encoding="utf-8")
    out = args.output or os.path.join(config.run_dir, "annotations", f"{args.property}.jsonl")
    io.ensure_dir(os.path.dirname(out) or ".")
    results, stats = annotate(
        docs, property=args.property, base_url=cfg.base_url, model=cfg.model, api_key_env=cfg.api_key_env,
        concurrency=cfg.concurrency, max_retries=cfg.max_retries, timeout_s=cfg.timeout_s,
        cache_path=os.path.join(os.path.dirname(out), "cache.jsonl"), prompt_template=template,
        max_chars=cfg.max_chars)
    text_by_id = {d["id"]: d["text"] for d in docs}
    lines = [json.dumps({"id": r["id"], "text": text_by_id[r["id"]], "score": r["score"], "status": r["status"],
                         "property": args.property}, ensure_ascii=False) + "\n"
             for r in results]
    io.write_text_atomic(out, "".join(lines))
    io.write_json_atomic(out.removesuffix(".jsonl") + ".stats.json", stats)
    print(f"annotated {len(results)} documents -> {out}", file=sys.stderr)
    print(json.dumps({k: v for k, v in stats.items() if not isinstance(v, dict | list)}), file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from classifiers.train import train_classifier

    buckets = [float(b) for b in args.buckets.split(",")] if args.buckets else None
    result = train_classifier(
        args.input, args.output, label_column=args.label_column, score_column=args.score_column,
        binarize_threshold=args.binarize, buckets=buckets, test_fraction=args.test_fraction, seed=args.seed,
        epoch=args.epoch, lr=args.lr, wordNgrams=args.word_ngrams, dim=args.dim, quantize=args.quantize)
    print(json.dumps({"model": str(result["model_path"]), "metrics": result.get("metrics"), "sizing": result["sizing"]},
                     default=str, indent=2))
    return 0


def _derive(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from filters import derive_preset

    texts: list[str] = []
    for path in io.expand_inputs(args.input, (".parquet",)):
        texts.extend(t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t)
    preset = derive_preset(texts, args.lang, quantile=args.quantile)
    header = (f"# Derived by `cptcorpus derive-preset` from {len(texts)} reference documents "
              f"(quantile {args.quantile}).\n")
    io.ensure_dir(os.path.dirname(args.output) or ".")
    io.write_text_atomic(args.output, header + yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _train_extractor(args: argparse.Namespace) -> int:
    from pipelines.extract import WARC_SUFFIXES
    from pipelines.fast_extract.train import STOP_LANGS, train_extractor

    langs = args.lang or list(STOP_LANGS)
    unknown = sorted(set(langs) - set(STOP_LANGS))
    if unknown:
        raise ValueError(f"--lang: no stop words for {', '.join(unknown)}; expected some of {', '.join(STOP_LANGS)}")
    if not 0 < args.holdout < 1:
        raise ValueError(f"--holdout: got {args.holdout}; expected a share between 0 and 1")
    inputs = io.expand_inputs(args.input, WARC_SUFFIXES)
    report = train_extractor(inputs, args.output, langs, holdout=args.holdout, seed=args.seed)
    print(json.dumps({"model": args.output, "held_out": report["agreement_held_out"]["all"],
                      "threshold": report["threshold"]}, indent=2))
    return 0
