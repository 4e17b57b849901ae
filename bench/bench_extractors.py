"""Fast extractor vs trafilatura vs resiliparse: agreement with trafilatura favor_precision, and speed.

    python bench/bench_extractors.py [--work bench/work/extractors] [--model MODEL] [--train]

1. Corpus (built once under ``--work``): the real archives in ../shared/data/warc, the bundled sample
   written with three seeds, and a WARC of HTML documentation found on this machine (Rust's book and
   API docs, Node.js and npm docs, ...: real pages with sidebars, menus and footers).
2. ``--train``: retrain the shipped model on the corpus (``train_extractor``: the held-out split is by
   site, so held-out pages are never trained on) and write it with its report.
3. Agreement on the held-out pages, per page and averaged: token P/R/F1 of the fast extractor,
   resiliparse (main_content) and trafilatura ``fast=True`` against trafilatura ``favor_precision``;
   per language (the teacher text's language by our langid) and per site type.
4. Speed, in one process, interleaved per page: pages/s of each extractor on the same held-out pages
   and on the benchmark input's distinct pages (``bench/make_input.py``).

Results: bench/extractors_results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_input import SHARED  # noqa: E402
from pipelines.config import ExtractConfig  # noqa: E402
from pipelines.demo.sample import write_sample  # noqa: E402
from pipelines.extract import make_extractor  # noqa: E402
from pipelines.fast_extract import train as ft  # noqa: E402
from pipelines.fast_extract.model import DEFAULT_MODEL  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "extractors_results.json"
DOC_ROOTS = {  # site name -> folder of HTML on this machine, and how many pages to take from it
    "rust-std.docs.local": ("~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/std", 120),
    "rust-book.docs.local": ("~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/book", 60),
    "rust-by-example.docs.local": (
        "~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/rust-by-example", 60),
    "cargo.docs.local": ("~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/share/doc/rust/html/cargo", 40),
    "nodejs.docs.local": ("/usr/share/doc/nodejs/api", 40),
    "npm.docs.local": ("/usr/lib/node_modules/npm/docs", 40),
    "valgrind.docs.local": ("/usr/share/doc/valgrind/html", 30),
    "libxslt.docs.local": ("/usr/share/doc/libxslt1-dev/html", 30),
}
MAX_DOC_BYTES = 400_000


def docs_warc(out: Path) -> int:
    """Pack a deterministic spread of local HTML documentation into one WARC of 200 responses."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    n = 0
    for site, (root, take) in DOC_ROOTS.items():
        folder = Path(os.path.expanduser(root))
        files = sorted(p for p in folder.rglob("*.htm*") if p.stat().st_size <= MAX_DOC_BYTES) \
            if folder.is_dir() else []
        for path in files[:: max(1, len(files) // take)][:take]:
            payload = path.read_bytes()
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            url = f"https://{site}/{path.relative_to(folder)}"
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(payload),
                                                          http_headers=http))
            n += 1
    out.write_bytes(buf.getvalue())
    return n


def build_corpus(work: Path) -> list[str]:
    """The training/evaluation WARCs (built once): shared archives, the sample (3 seeds), local docs."""
    work.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for p in sorted(SHARED.glob("*.warc.gz"))] if SHARED.is_dir() else []
    for seed in range(3):
        folder = work / f"sample-seed{seed}"
        if not folder.is_dir():
            write_sample(folder, n_files=2, seed=seed)
        paths += [str(p) for p in sorted(folder.glob("*.warc.gz"))]
    docs = work / "docs.warc.gz"
    if not docs.exists():
        docs_warc(docs)
    return paths + [str(docs)]


def site_type(page: ft.Page) -> str:
    """A coarse site type from where the page comes from (what the corpus lets us tell apart)."""
    if page.site.endswith(".docs.local"):
        return "type:documentation"
    if "sample-seed" in page.source:
        return "type:article (synthetic sample)"
    if page.site == "www.archive.org":
        return "type:archive.org (index and item pages, 2008)"
    return "type:real web (mixed: home pages, blogs, shops, spam)"


def language_of(identifier):
    def group(page: ft.Page) -> list[str]:
        if not page.reference.strip():
            return [site_type(page), "lang:(teacher empty)"]
        lang = identifier.predict([page.reference]).lang[0]
        return [site_type(page), f"lang:{lang}"]
    return group


def extractors(model_path: str) -> dict:
    return {
        "fast": make_extractor(ExtractConfig(extractor="fast", fast_model=model_path)),
        "resiliparse": make_extractor(ExtractConfig(extractor="resiliparse")),
        "trafilatura_fast": make_extractor(ExtractConfig(extractor="trafilatura", fast=True)),
        "trafilatura_precision": make_extractor(ExtractConfig(extractor="trafilatura", favor_precision=True)),
    }


def speed(fns: dict, htmls: list[str], repeats: int = 2) -> dict:
    """Pages/s of each extractor on ``htmls``, interleaved page by page so noise falls on all alike."""
    seconds = Counter()
    for _ in range(repeats):
        for html in htmls:
            for name, fn in fns.items():
                t = time.perf_counter()
                with contextlib.suppress(Exception):  # a failing page still costs its time
                    fn(html)
                seconds[name] += time.perf_counter() - t
    out = {name: round(repeats * len(htmls) / s, 1) for name, s in seconds.items()}
    out["fast_over_trafilatura_precision"] = round(out["fast"] / out["trafilatura_precision"], 2)
    return out


def bench_input_pages(work: Path, limit: int) -> list[str]:
    """Distinct pages in the benchmark input's format (``bench/make_input.py``, 1,000 pages, built once).

    Their originals were training pages: they time the extractors, no agreement is read from them.
    """
    from bench.make_input import build

    folder = work / "bench-input"
    build(folder, 1000, 2, mode="distinct")
    htmls = [html for _, html, _ in ft.iter_html([str(folder / "bench-0000.warc.gz")])]
    return htmls[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work" / "extractors")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--train", action="store_true", help="retrain --model on the corpus first")
    parser.add_argument("--bench-pages", type=int, default=400, help="benchmark-input pages timed")
    args = parser.parse_args()
    from classifiers.langid import LanguageIdentifier

    paths = build_corpus(args.work)
    if args.train:
        report = ft.train_extractor(paths, args.model, sorted(ft.STOP_LANGS))
        print(json.dumps(report["agreement_held_out"]["all"]), file=sys.stderr)
    meta = json.loads(Path(args.model).read_text())["meta"]
    pages = ft.teacher_pages(paths)
    sites = Counter(p.site for p in pages)
    held = [p for p in pages if ft.is_held_out(p, sites[p.site], 0.25, meta["seed"])]
    fns = extractors(args.model)
    group = language_of(LanguageIdentifier())
    agreement = {name: ft.evaluate(fn, held, group) for name, fn in fns.items() if name != "trafilatura_precision"}
    results = {
        "command": "python bench/bench_extractors.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "corpus": {"warcs": [Path(p).name for p in paths], "pages": len(pages), "held_out_pages": len(held),
                   "model": Path(args.model).name, "model_train_pages": meta["train_pages"]},
        "agreement_with_trafilatura_favor_precision_held_out": agreement,
        "speed_pages_per_s_one_core_held_out": speed(fns, [p.html for p in held]),
        "speed_pages_per_s_one_core_bench_input": speed(fns, bench_input_pages(args.work, args.bench_pages)),
    }
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: results[k] for k in list(results)[3:]}, indent=2))


if __name__ == "__main__":
    main()
