"""Fast extractor vs trafilatura vs resiliparse: agreement with trafilatura favor_precision, and speed.

    python bench/bench_extractors.py [--work bench/work/extractors] [--model MODEL] [--train]

1. Corpus (built once under ``--work``): the real archives in ../shared/data/warc, the bundled sample
   written with three seeds, a WARC of HTML documentation found on this machine (Rust's book and
   API docs, Node.js and npm docs, ...: real pages with sidebars, menus and footers), and a WARC of
   the ~110 real web pages (news, blogs, shops, forums, home pages of as many sites; de, en, fr, zh)
   that trafilatura 1.0.0's source distribution carries as test data, fetched with ``pip download``
   from the package registry (skipped when it cannot be reached).
2. ``--train``: retrain the shipped model on the corpus (``train_extractor``: the held-out split is by
   site, so held-out pages are never trained on) and write it with its report.
3. Agreement on the held-out pages, per page and averaged: token P/R/F1 of the fast extractor,
   resiliparse (main_content) and trafilatura ``fast=True`` against trafilatura ``favor_precision``;
   per language (the teacher text's language by our langid), per site type, and by whether the
   teacher's text came from its main extractor or was changed by its fallbacks (``teacher_main_path``).
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
import re
import sys
import time
from collections import Counter
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread, as Ray gives a task of one CPU

import numpy as np  # noqa: E402

from bench.make_input import SHARED  # noqa: E402
from pipelines.config import ExtractConfig  # noqa: E402
from pipelines.demo.sample import write_sample  # noqa: E402
from pipelines.extract import make_extractor  # noqa: E402
from pipelines.fast_extract import train as ft  # noqa: E402
from pipelines.fast_extract.blocks import page_blocks  # noqa: E402
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


WEB_PAGES_SDIST = "trafilatura==1.0.0"  # the last release whose sdist ships tests/cache/*.html


def web_pages_warc(work: Path, out: Path) -> int:
    """Pack the real web pages of trafilatura 1.0.0's sdist into one WARC (each page is its own site).

    The file name (``sueddeutsche.de.flixtrain.html``) becomes the host, so a page's site and its
    held-out split are its own; pages named ``exotic_*`` are synthetic markup tests and are left out.
    """
    import subprocess
    import tarfile

    sdist_dir = work / "sdist"
    sdists = sorted(sdist_dir.glob("trafilatura-1.0.0.tar.gz"))
    if not sdists:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                               WEB_PAGES_SDIST, "-d", str(sdist_dir)], capture_output=True, timeout=300)
        sdists = sorted(sdist_dir.glob("trafilatura-1.0.0.tar.gz"))
        if done.returncode or not sdists:
            print(f"web pages: pip download {WEB_PAGES_SDIST} failed, left out", file=sys.stderr)
            return 0
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    n = 0
    with tarfile.open(sdists[0]) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = Path(member.name).name
            if "/tests/cache/" not in member.name or not name.endswith(".html") or name.startswith("exotic"):
                continue
            payload = tar.extractfile(member).read()
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"https://{name[:-5]}/", "response",
                                                          payload=io.BytesIO(payload), http_headers=http))
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
    web = work / "web-pages.warc.gz"
    if not web.exists():
        web_pages_warc(work, web)
    return paths + [str(docs)] + ([str(web)] if web.exists() else [])


_FORUM = re.compile(r"forum|thread|topic|board|stackoverflow|questions|community|discuss", re.I)
_SHOP = re.compile(r"add to (cart|basket|bag)|warenkorb|in den korb|ajouter au panier|carrinho|añadir al carrito|"
                   r"aggiungi al carrello|カートに入れる|加入购物车", re.I)


def site_type(page: ft.Page) -> str:
    """The page's kind, by a rule anyone can check: documentation (the local docs), forum (the URL
    says so), shop (a buy button in the markup), index (half or more of its text is link text),
    else article. A heuristic, not a label: it sorts pages, it does not grade extractors."""
    if page.site.endswith(".docs.local"):
        return "type:documentation"
    if _FORUM.search(page.url):
        return "type:forum"
    if _SHOP.search(page.html):
        return "type:shop"
    blocks = page_blocks(page.html)
    chars = sum(map(len, blocks.texts))
    if chars and blocks.column("link_chars").sum() >= 0.5 * chars:
        return "type:index"
    return "type:article"


def source_of(page: ft.Page) -> str:
    if page.site.endswith(".docs.local"):
        return "source:local documentation"
    if "sample-seed" in page.source:
        return "source:bundled sample (synthetic articles)"
    if page.source.endswith("web-pages.warc.gz"):
        return "source:trafilatura 1.0.0 test pages (real web)"
    return "source:shared archives (real web, 2008-2024)"


def teacher_main_path(pages: list[ft.Page], trafilatura_fast) -> set[str]:
    """URLs of the pages whose teacher text trafilatura ``fast=True`` gives too (token F1 >= 0.999).

    ``fast=True`` (with ``favor_precision``, as the extract stage runs it) skips the fallbacks the
    teacher runs after its main extractor: readability and jusText, whose text it compares with the
    main extractor's and may take instead. Where the two agree, the teacher's text came from its
    main extractor, which reads the page's elements as a block model does; elsewhere a fallback
    changed it. The split says in which of the two each extractor's disagreement lies.
    """
    main = set()
    for page in pages:
        try:
            text = trafilatura_fast(page.html) or ""
        except Exception:
            text = ""
        if ft.agreement(text, page.reference)[2] >= 0.999:
            main.add(page.url)
    return main


def language_of(identifier, main_path: set[str]):
    def group(page: ft.Page) -> list[str]:
        path = "teacher:main extractor" if page.url in main_path else "teacher:fallbacks changed the text"
        if not page.reference.strip():
            return [site_type(page), source_of(page), path, "lang:(teacher empty)"]
        lang = identifier.predict([page.reference]).lang[0]
        return [site_type(page), source_of(page), path, f"lang:{lang}"]
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


def phases(htmls: list[str], model_path: str, repeats: int = 2) -> dict:
    """Milliseconds a page in each phase of the fast extractor, and of the Python walk and numpy
    features that the C ones replaced."""
    from pipelines.fast_extract import FastExtractor, load_model
    from pipelines.fast_extract.blocks import ROW_FIELDS, Blocks, _walk, element_bits, parse, walk_reference
    from pipelines.fast_extract.features import block_features, block_features_reference

    fx = FastExtractor(load_model(model_path))
    spent = Counter()
    pages = 0
    for _ in range(repeats):
        for html in htmls:
            t0 = time.perf_counter()
            root = parse(html)
            body = root.find("body") if root is not None else None
            t1 = time.perf_counter()
            if body is None or _walk is None:
                continue
            texts, rows = _walk.walk(body, fx.table)
            blocks = Blocks(texts, np.frombuffer(rows, np.int64).reshape(-1, len(ROW_FIELDS)), element_bits(body))
            t2 = time.perf_counter()
            walk_reference(body, fx.table)
            t3 = time.perf_counter()
            if texts:
                block_features(blocks, fx.stop_words)
            t4 = time.perf_counter()
            if texts:
                block_features_reference(blocks, fx.stop_words)
            t5 = time.perf_counter()
            prob = fx.keep_probabilities(blocks) if texts else np.zeros(0)  # features again, then both MLPs
            t6 = time.perf_counter()
            "\n".join(t for t, p in zip(texts, prob, strict=True) if p >= fx.model.threshold)
            del root, body, blocks
            t7 = time.perf_counter()
            spent.update({"parse": t1 - t0, "c_walk": t2 - t1, "python_walk (replaced)": t3 - t2,
                          "c_features": t4 - t3, "numpy_features (replaced)": t5 - t4,
                          "mlps_and_context": max(t6 - t5 - (t4 - t3), 0.0), "join_and_free_tree": t7 - t6})
            pages += 1
    return {k: round(1000 * v / max(pages, 1), 3) for k, v in spent.items()}


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
    group = language_of(LanguageIdentifier(), teacher_main_path(held, fns["trafilatura_fast"]))
    agreement = {name: ft.evaluate(fn, held, group) for name, fn in fns.items() if name != "trafilatura_precision"}
    results = {
        "command": "python bench/bench_extractors.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "corpus": {"warcs": [Path(p).name for p in paths], "pages": len(pages), "held_out_pages": len(held),
                   "model": Path(args.model).name, "model_train_pages": meta["train_pages"]},
        "agreement_with_trafilatura_favor_precision_held_out": agreement,
        "speed_pages_per_s_one_core_held_out": speed(fns, [p.html for p in held]),
        "speed_pages_per_s_one_core_bench_input": speed(fns, bench_input_pages(args.work, args.bench_pages)),
        "fast_ms_per_page_by_phase_bench_input": phases(bench_input_pages(args.work, args.bench_pages), args.model),
    }
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: results[k] for k in list(results)[3:]}, indent=2))


if __name__ == "__main__":
    main()
