"""The run report: one self-contained ``RUN_DIR/report/index.html`` with the plots a data lead asks for.

Sections: the document funnel per stage, rejections per rule (top N), the language distribution,
score histograms, duplicate-cluster sizes, shard token balance, skipped files/records and resolved
mixtures. Figures are PNGs (matplotlib, Agg backend: no display needed) embedded as base64, so the
file can be mailed or attached to a ticket as is.

Sources, cheapest first: the stage ``_summary.json`` files and ``corpus/manifest.json`` (small
aggregates), falling back to a bounded sample of the shards' small columns (never ``text``) when the
manifest is missing. Every section is independent: a stage that did not run or a column that is
absent turns into a one-line note, never a failed report.
"""

from __future__ import annotations

import base64
import glob
import html
import io as _io
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from pipelines import io

log = logging.getLogger("cptcorpus")

STAGE_DIRS = (("extract", "extract"), ("langid", "langid"), ("filter", "filter"), ("classify", "classify"),
              ("dedup", "dedup"), ("shard", "corpus"))
SAMPLE_ROWS = 200_000  # rows read from shards when there is no manifest: enough for histograms
REPORT_NAME = "index.html"




class RunData:
    """What the report reads from a run directory, loaded once; any part may be missing."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.summaries = {stage: s for stage, d in STAGE_DIRS
                          if (s := io.read_json(os.path.join(run_dir, d, "_summary.json")))}
        self.manifest = io.read_json(os.path.join(run_dir, "corpus", "manifest.json"))
        self.mixtures = [m for p in sorted(glob.glob(os.path.join(run_dir, "mixture", "*.mixture.json")))
                         if (m := io.read_json(p))]
        self._sample = None

    @property
    def dataset(self) -> dict | None:
        return self.manifest["datasets"][0] if self.manifest and self.manifest.get("datasets") else None

    def sample(self) -> dict[str, np.ndarray | list]:
        """Small columns of up to SAMPLE_ROWS corpus rows (only when the manifest lacks what is needed)."""
        if self._sample is None:
            wanted = ("lang", "edu_score", "stem_score", "toxic_score", "dup_cluster_size", "token_count")
            cols: dict[str, list] = {}
            rows = 0
            for path in io.list_parquet(os.path.join(self.run_dir, "corpus")):
                names = io.read_parquet_schema(path).names
                table = io.read_parquet(path, columns=[c for c in wanted if c in names])
                for c in table.column_names:
                    cols.setdefault(c, []).extend(table.column(c).to_pylist()[: SAMPLE_ROWS - rows])
                rows += table.num_rows
                if rows >= SAMPLE_ROWS:
                    break
            self._sample = cols
        return self._sample


# ---------------------------------------------------------------------------------------------
# figures


def _png(fig: object) -> str:
    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _bar(labels: list[str], values: list[float], title: str, xlabel: str = "", horizontal: bool = False,
         color: str = "#4C72B0") -> str:
    import matplotlib.pyplot as plt

    if horizontal:
        fig, ax = plt.subplots(figsize=(8, max(2.0, 0.3 * len(labels) + 1)))
        ax.barh(range(len(labels)), values, color=color)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
    else:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(labels) + 2), 3.4))
        ax.bar(range(len(labels)), values, color=color)
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0, ha="right"
                      if len(labels) > 6 else "center", fontsize=8)
        ax.set_ylabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    return _png(fig)


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# sections: each returns HTML, or raises LookupError with the reason it has nothing to show


def section_funnel(run: RunData, top_n: int) -> str:
    if not run.summaries:
        raise LookupError("no stage summaries (_summary.json) found: has the run started?")
    rows, labels, kept = [], [], []
    for stage, _ in STAGE_DIRS:
        s = run.summaries.get(stage)
        if not s:
            continue
        rows.append([stage, s.get("docs_in", 0), s.get("docs_out", 0), s.get("docs_rejected", 0),
                     f"{s.get('docs_out', 0) / max(s.get('docs_in', 0), 1):.1%}"])
        labels.append(stage)
        kept.append(s.get("docs_out", 0))
    first = run.summaries.get("extract") or next(iter(run.summaries.values()))
    labels.insert(0, "records in")
    kept.insert(0, first.get("records_in") or first.get("docs_in", 0))
    return _img(_bar(labels, kept, "documents kept after each stage", "documents"), "funnel") + _table(
        ["stage", "docs in", "docs out", "rejected", "kept"], rows)


def section_rejections(run: RunData, top_n: int) -> str:
    reasons: Counter = Counter()
    for stage, s in run.summaries.items():
        for reason, count in (s.get("reasons") or {}).items():
            reasons[f"{stage}: {reason}"] += count
    if not reasons:
        raise LookupError("no rejections recorded")
    top = reasons.most_common(top_n)
    note = f"<p>top {len(top)} of {len(reasons)} rules; {sum(reasons.values()):,} rejections in all.</p>"
    total = sum(reasons.values())
    return note + _img(_bar([k for k, _ in top], [v for _, v in top], "rejections per rule", "documents",
                            horizontal=True, color="#C44E52"), "rejections") + _table(
        ["stage: rule", "documents", "share of rejections"], [[k, v, f"{v / total:.1%}"] for k, v in top])


def section_languages(run: RunData, top_n: int) -> str:
    if run.dataset and run.dataset.get("by_language"):
        by = {k: v["tokens"] for k, v in run.dataset["by_language"].items()}
        what, source = "tokens", "manifest"
    elif (run.summaries.get("langid") or {}).get("counters", {}).get("lang"):
        by = run.summaries["langid"]["counters"]["lang"]
        what, source = "documents", "langid summary"
    elif run.sample().get("lang"):
        by = Counter(x or "und" for x in run.sample()["lang"])
        what, source = "documents (sample)", "corpus shards"
    else:
        raise LookupError("no language information (no manifest, langid summary or lang column)")
    top = sorted(by.items(), key=lambda kv: -kv[1])[:top_n]
    total = sum(by.values()) or 1
    return (f"<p>{what} per language, from the {source}.</p>"
            + _img(_bar([k for k, _ in top], [v for _, v in top], "language distribution", what), "languages")
            + _table(["language", what, "share"], [[k, v, f"{v / total:.1%}"] for k, v in top]))


def section_scores(run: RunData, top_n: int) -> str:
    import matplotlib.pyplot as plt

    hists: dict[str, tuple[list[str], list[float]]] = {}
    if run.dataset and run.dataset.get("by_score"):
        for col, buckets in run.dataset["by_score"].items():
            items = sorted(((k, v["rows"]) for k, v in buckets.items() if k != "null"),
                           key=lambda kv: float(kv[0].split("-")[0]) if kv[0][0].isdigit() else -1)
            hists[col] = ([k for k, _ in items], [v for _, v in items])
    else:
        sample = run.sample()
        for col in ("edu_score", "stem_score", "toxic_score"):
            values = np.array([v for v in sample.get(col, []) if v is not None], dtype=float)
            if len(values):
                counts, edges = np.histogram(values, bins=10, range=(0, 1))
                hists[col] = ([f"{a:.1f}-{b:.1f}" for a, b in zip(edges[:-1], edges[1:], strict=True)],
                              counts.tolist())
    if not hists:
        raise LookupError("no score columns (the classify stage did not run or wrote no scores)")
    fig, axes = plt.subplots(1, len(hists), figsize=(4.2 * len(hists), 3.2), squeeze=False)
    for ax, (col, (labels, counts)) in zip(axes[0], hists.items(), strict=True):
        ax.bar(range(len(labels)), counts, color="#55A868")
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_title(col)
        ax.set_ylabel("documents")
    return _img(_png(fig), "score histograms")


def section_duplicates(run: RunData, top_n: int) -> str:
    if run.dataset and run.dataset.get("by_dup_cluster_size"):
        items = [(k, v["rows"]) for k, v in run.dataset["by_dup_cluster_size"].items() if k != "null"]
    else:
        sizes = [s for s in run.sample().get("dup_cluster_size", []) if s]
        if not sizes:
            raise LookupError("no dup_cluster_size column (the dedup stage did not run)")
        from pipelines.shard import cluster_size_label

        counts = Counter(cluster_size_label(s) for s in sizes)
        items = sorted(counts.items(), key=lambda kv: int(kv[0].split("-")[0]))
    if not items:
        raise LookupError("no cluster sizes recorded")
    singles = sum(v for k, v in items if k == "1")
    total = sum(v for _, v in items) or 1
    return (f"<p>{1 - singles / total:.1%} of kept documents had near-duplicates (cluster size &gt; 1).</p>"
            + _img(_bar([k for k, _ in items], [v for _, v in items], "kept documents by duplicate-cluster size",
                        "documents", color="#8172B2"), "duplicate clusters"))


def section_balance(run: RunData, top_n: int) -> str:
    shards = (run.dataset or {}).get("shards") or (run.summaries.get("shard") or {}).get("shards")
    if not shards:
        raise LookupError("no shards (the shard stage did not run)")
    tokens = [s["tokens"] for s in shards]
    nonempty = [t for t in tokens if t]
    ratio = max(nonempty) / max(min(nonempty), 1) if nonempty else float("nan")
    labels = [s["path"].removeprefix("shard-").removesuffix(".parquet") for s in shards]
    if len(labels) > 200:  # keep the figure readable for big corpora: a histogram of shard sizes
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist(tokens, bins=40, color="#4C72B0")
        ax.set_xlabel("tokens per shard")
        ax.set_title("shard token balance")
        img = _png(fig)
    else:
        img = _bar(labels, tokens, "tokens per shard", "tokens")
    return (f"<p>{len(shards)} shards, {sum(tokens):,} tokens; max/min = {ratio:.4f}; "
            f"mean {np.mean(tokens):,.0f} tokens per shard.</p>" + _img(img, "shard balance"))


def section_failures(run: RunData, top_n: int) -> str:
    path = os.path.join(run.run_dir, "failures.jsonl")
    if not io.isfile(path):
        raise LookupError("no failures.jsonl")
    reasons: Counter = Counter()
    with io.open_input(path, "r", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    reasons[json.loads(line).get("reason", "?")] += 1
                except json.JSONDecodeError:
                    reasons["unparseable line"] += 1
    if not reasons:
        return "<p>nothing was skipped.</p>"
    return _table(["reason", "files/records skipped"], [[k, v] for k, v in reasons.most_common(top_n)])


def section_mixtures(run: RunData, top_n: int) -> str:
    if not run.mixtures:
        raise LookupError("no resolved mixtures (mixture/*.mixture.json)")
    out = []
    for m in run.mixtures:
        rows = [[c["name"], c.get("filter") or "", c["ratio"], c["tokens_available"], c["tokens_taken"], c["epochs"]]
                for c in m["components"]]
        out.append(f"<h3>{html.escape(m['recipe'])}</h3>"
                   + _table(["component", "filter", "ratio", "tokens available", "tokens taken", "epochs"], rows)
                   + "".join(f"<p class=warn>warning: {html.escape(w)}</p>" for w in m.get("warnings", [])))
    return "".join(out)


def section_tokenizers(run: RunData, top_n: int) -> str:
    """Tokenizer fit, from ``report/tokenizer_report.json`` (written by ``cptcorpus tokenizer-report``)."""
    from pipelines.tokenizer_report import REPORT_NAME as TOKENIZER_REPORT

    rep = io.read_json(os.path.join(run.run_dir, "report", TOKENIZER_REPORT))
    if not rep:
        raise LookupError("no report/tokenizer_report.json (run `cptcorpus tokenizer-report`)")
    names = list(rep["tokenizers"])
    groups = [("all", rep["overall"]), *rep["by_language"].items(),
              *((f"bucket {k}", g) for k, g in (rep.get("by_quality_bucket") or {}).items())]
    rows = [[label, g["docs"], g["words"], *(f"{t['tokens_per_word']:.3f} / {t['tokens_per_100_chars']:.1f} / "
                                             f"{t['share_words_3plus_pieces']:.1%}"
                                             for t in (g["tokenizers"][n] for n in names))]
            for label, g in groups]
    corpus = rep["corpus"]
    totals = [[n, corpus["tokenizers"][n]["estimated_tokens"]] for n in names]
    worst = [[n, ", ".join(f"{w['word']} ({w['pieces']})" for w in
                           rep["overall"]["tokenizers"][n]["most_fragmented_frequent_words"][:10])] for n in names]
    return (f"<p>{rep['sample']['docs']:,} sampled documents; per tokenizer: tokens per word / tokens per 100 "
            f"characters / share of words in &ge; 3 pieces.</p>"
            + _table(["group", "docs", "words", *names], rows)
            + f"<p>whole corpus ({corpus['rows']:,} documents), {html.escape(corpus['method'])}:</p>"
            + _table(["tokenizer", "estimated tokens"], totals)
            + _table(["tokenizer", "most fragmented frequent words (pieces)"], worst))


SECTIONS: list[tuple[str, Callable[[RunData, int], str]]] = [
    ("Funnel per stage", section_funnel),
    ("Rejections per rule", section_rejections),
    ("Language distribution", section_languages),
    ("Score histograms", section_scores),
    ("Duplicate-cluster sizes", section_duplicates),
    ("Shard token balance", section_balance),
    ("Skipped files and records", section_failures),
    ("Mixtures", section_mixtures),
    ("Tokenizer fit", section_tokenizers),
]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.meta{color:#666}section{margin:2em 0;border-top:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}.na{color:#888;font-style:italic}
.warn{color:#a33}"""


def write_report(run_dir: str, top_n: int = 20) -> str:
    """Render ``run_dir/report/index.html``; returns its path. Missing parts become notes, not errors."""
    import matplotlib

    matplotlib.use("Agg")
    if not io.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    run = RunData(run_dir)
    parts = []
    for title, fn in SECTIONS:
        try:
            body = fn(run, top_n)
        except LookupError as err:
            body = f'<p class="na">not available: {html.escape(str(err))}</p>'
        except Exception as err:  # one broken input must not cost the whole report
            log.warning("report: section %r failed: %s", title, err)
            body = f'<p class="na">could not be drawn: {html.escape(type(err).__name__)}: {html.escape(str(err))}</p>'
        parts.append(f"<section><h2>{html.escape(title)}</h2>{body}</section>")
    name = (run.manifest or {}).get("name") or os.path.basename(os.path.abspath(run_dir))
    totals = (run.dataset or {}).get("totals")
    meta = (f"{totals['rows']:,} documents, {totals['tokens']:,} tokens in {totals['shards']} shards"
            if totals else "no manifest yet")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>cptcorpus report: {html.escape(name)}</title>"
            f"<style>{_CSS}</style></head><body><h1>cptcorpus run report: {html.escape(name)}</h1>"
            f"<p class=meta>{html.escape(os.path.abspath(run_dir))} · {meta} · generated "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}</p>{''.join(parts)}</body></html>")
    out = os.path.join(run_dir, "report", REPORT_NAME)
    io.write_text_atomic(out, page)
    return out
