"""Train the block model by distillation from trafilatura ``favor_precision`` (``cptcorpus train-extractor``).

Every HTML page of the input WARCs is extracted by trafilatura (the teacher, with the extract stage's
own settings); a block is labelled "keep" when most of its word 3-grams (short blocks: the block as a
whole) occur in the teacher's text. Pages are split into training and held-out sets by site (a hash
of the domain; a site with many pages is split by page), so agreement is reported on pages the model
never saw. Stage two is trained on stage one's out-of-fold scores, as it will see them at inference.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filters.stopwords import STOP_WORDS
from pipelines.config import ExtractConfig
from pipelines.fast_extract import FastExtractor
from pipelines.fast_extract.blocks import Blocks, page_blocks
from pipelines.fast_extract.chars import NO_SPACE_RANGES, char_table
from pipelines.fast_extract.features import CLASS_COLUMNS, block_features, neighbour_context
from pipelines.fast_extract.model import BlockModel, Mlp

# Tokens for labels and agreement: runs of word characters, and single characters of scripts
# written without spaces (so zh/ja/th are compared character by character).
_NO_SPACE = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in NO_SPACE_RANGES)
_TOKEN = re.compile(f"[{_NO_SPACE}]|[^\\W{_NO_SPACE}]+")
STOP_LANGS = tuple(sorted(STOP_WORDS))  # default: stop words of every language we have
BIG_SITE_PAGES = 20  # sites with more pages than this are split by page, not as a whole
CLASS_DROPOUT = 0.3  # share of training pages whose class/id features are zeroed


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def agreement(predicted: str, reference: str) -> tuple[float, float, float]:
    """Token-level (precision, recall, F1) of ``predicted`` against ``reference`` (bags of tokens).

    Two empty texts agree fully; one empty text against a non-empty one scores 0.
    """
    p, r = Counter(tokens(predicted)), Counter(tokens(reference))
    if not p and not r:
        return 1.0, 1.0, 1.0
    common = sum((p & r).values())
    prec = common / sum(p.values()) if p else 0.0
    rec = common / sum(r.values()) if r else 0.0
    return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)


SHORT_BLOCK_SKIP = 3  # tokens of the teacher's text a short block may be found past the last match


def distill_labels(blocks: Blocks, reference: str) -> np.ndarray:
    """1 for blocks whose text the teacher kept, matched in document order (the teacher keeps it).

    A block matches when its tokens occur in the teacher's text after the previous match; a block of
    three tokens or more also matches when half or more of its word 3-grams occur anywhere (the
    teacher may reflow a block). A short block ("more", "Home", a date) must occur right where the
    teacher's text has got to (at most SHORT_BLOCK_SKIP tokens further): the same word elsewhere in
    the article says nothing about the menu item.
    """
    ref_tokens = tokens(reference)
    grams = set(zip(ref_tokens, ref_tokens[1:], ref_tokens[2:], strict=False))
    joined = " " + " ".join(ref_tokens) + " "
    at = 0  # where the teacher's text has got to
    labels = np.zeros(len(blocks.texts), np.float32)
    for i, text in enumerate(blocks.texts):
        toks = tokens(text)
        if not toks:
            continue
        key = " " + " ".join(toks) + " "
        found = joined.find(key, at)
        if len(toks) < 3:
            if found >= 0 and joined.count(" ", at, found) <= SHORT_BLOCK_SKIP:
                labels[i] = 1
                at = found + len(key) - 1
            continue
        trigrams = list(zip(toks, toks[1:], toks[2:], strict=False))
        if found >= 0 or sum(g in grams for g in trigrams) >= 0.5 * len(trigrams):
            labels[i] = 1
            if found >= 0:
                at = found + len(key) - 1
            else:  # reflowed: move on to where its last matching 3-gram is
                last = next(g for g in reversed(trigrams) if g in grams)
                pos = joined.find(" " + " ".join(last) + " ", at)
                at = pos + 1 if pos >= 0 else at
    return labels


@dataclass
class Page:
    url: str
    site: str
    source: str
    html: str
    reference: str


def iter_html(paths: list[str]) -> Iterator[tuple[str, str, str]]:
    """(url, html, source file) of every 2xx HTML response, accepted and decoded as the extract stage does."""
    from pipelines.warc import SkippedRecord, WarcReadError, decode_html, html_decision, iter_responses

    cfg = ExtractConfig()
    for path in paths:
        try:
            for rec in iter_responses(path, cfg.max_record_bytes, cfg.max_decompressed_bytes):
                if isinstance(rec, SkippedRecord) or not rec.payload or rec.truncated:
                    continue
                if rec.status is None or not 200 <= rec.status < 300:
                    continue
                if html_decision(rec.content_type, rec.payload) is None:
                    yield rec.url or f"{path}@{rec.offset}", decode_html(rec.payload, rec.charset)[0], path
        except WarcReadError:
            continue  # a broken file gives what it gave; training needs pages, not every page


def teacher_pages(paths: list[str], max_pages: int | None = None) -> list[Page]:
    """Pages with the teacher's text (trafilatura favor_precision, the extract stage's settings)."""
    from pipelines.extract import RecordTimeout, domain_of, make_extractor, nesting_depth_over, time_limit

    cfg = ExtractConfig(extractor="trafilatura", favor_precision=True)
    teacher = make_extractor(cfg)
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # it logs every page it finds empty
    pages: list[Page] = []
    for url, html, source in iter_html(paths):
        if nesting_depth_over(html, cfg.max_html_depth):
            continue
        try:
            with time_limit(cfg.record_timeout_s):
                text = teacher(html) or ""
        except RecordTimeout:
            continue
        pages.append(Page(url, domain_of(url) or source, source, html, text))
        if max_pages and len(pages) >= max_pages:
            break
    return pages


def is_held_out(page: Page, site_pages: int, fraction: float, seed: int) -> bool:
    """Deterministic split by site; sites with many pages are split page by page."""
    key = page.url if site_pages > BIG_SITE_PAGES else page.site
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < fraction


def train_mlp(x: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int = 32, epochs: int = 40,
              seed: int = 0, l2: float = 1e-3, lr: float = 3e-3) -> Mlp:
    """Weighted logistic loss, Adam, mini-batches of 256: a small network trained in plain numpy."""
    rng = np.random.default_rng(seed)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    # 0/1 columns stay 0/1: standardising a rare flag (a class name seen on 0.1% of blocks) turns it
    # into a value of ~30 that swamps every other input on the pages where it appears
    binary = np.all((x == 0) | (x == 1), axis=0)
    mean[binary], scale[binary] = 0.0, 1.0
    xs = ((x - mean) / scale).astype(np.float32)
    params = [rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32),
              np.zeros(hidden, np.float32), rng.normal(0, np.sqrt(1 / hidden), hidden).astype(np.float32),
              np.zeros(1, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    wn = (w / w.mean()).astype(np.float32)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(xs))
        for start in range(0, len(order), 256):
            idx = order[start:start + 256]
            xb, yb, wb = xs[idx], y[idx], wn[idx]
            h = np.maximum(xb @ params[0] + params[1], 0)
            p = 1 / (1 + np.exp(-np.clip(h @ params[2] + params[3][0], -30, 30)))
            g = (p - yb) * wb / len(idx)
            dh = np.outer(g, params[2]) * (h > 0)
            grads = [xb.T @ dh + l2 * params[0], dh.sum(0), h.T @ g + l2 * params[2], np.array([g.sum()])]
            step += 1
            for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
                m[k] = 0.9 * m[k] + 0.1 * grad
                v[k] = 0.999 * v[k] + 0.001 * grad * grad
                param -= lr * (m[k] / (1 - 0.9**step)) / (np.sqrt(v[k] / (1 - 0.999**step)) + 1e-8)
    return Mlp(mean.astype(np.float32), scale.astype(np.float32), params[0], params[1], params[2],
               float(params[3][0]))


def _stack(items: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(items) if items else np.zeros(0)


def fit(pages: list[Page], langs: list[str], seed: int = 0, folds: int = 3) -> BlockModel:
    """Train both stages and the threshold on ``pages`` (labels from their teacher text)."""
    stop_words, table = char_table(langs)
    feats, labels, weights, blocks_of_page, references = [], [], [], [], []
    site_pages = Counter(p.site for p in pages)
    for page in pages:
        blocks = page_blocks(page.html, table)
        if not blocks.texts:
            continue
        blocks_of_page.append(blocks)
        references.append(page.reference)
        feats.append(block_features(blocks, stop_words))
        labels.append(distill_labels(blocks, page.reference))
        # longer blocks weigh more within a page; every page weighs the same, and a site's pages together
        # weigh sqrt(pages): a big site's template must not drown the many small sites of the real web
        w = np.sqrt(np.fromiter((len(tokens(t)) for t in blocks.texts), np.float32)) + 0.5
        weights.append(w / w.sum() / np.sqrt(site_pages[page.site]))
    # class/id dropout: on a share of the pages the model sees no class names at all, so that it also
    # learns the text's own evidence; sites name their classes in endless ways it never saw
    rng = np.random.default_rng(seed)
    for f in feats:
        if rng.random() < CLASS_DROPOUT:
            f[:, -CLASS_COLUMNS:] = 0
    x, y, w = np.vstack(feats), _stack(labels), _stack(weights)
    stage1 = train_mlp(x, y, w, seed=seed)
    # stage two learns from out-of-fold stage-one scores: the scores it will meet on unseen pages
    fold_of = np.arange(len(feats)) % folds
    oof: list[np.ndarray] = [np.zeros(0)] * len(feats)
    for f in range(folds):
        idx = np.flatnonzero(fold_of != f)
        mlp = train_mlp(np.vstack([feats[i] for i in idx]), _stack([labels[i] for i in idx]),
                        _stack([weights[i] for i in idx]), seed=seed + 1 + f)
        for i in np.flatnonzero(fold_of == f):
            oof[i] = mlp.predict(feats[i])
    x2 = np.vstack([np.hstack([f, neighbour_context(p, b)]) for f, p, b in zip(feats, oof, blocks_of_page, strict=True)])
    stage2 = train_mlp(x2, y, w, seed=seed + 100)
    model = BlockModel(stage1, stage2, 0.5, langs, {})
    model.threshold = _best_threshold(FastExtractor(model), blocks_of_page, references)
    return model


def _best_threshold(extractor: FastExtractor, blocks_of_page: list[Blocks], references: list[str]) -> float:
    """The keep threshold with the best mean page F1 against the teacher on the training pages.

    Pages without blocks are left out: they score the same at every threshold.
    """
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    scores = np.zeros(len(grid))
    for blocks, reference in zip(blocks_of_page, references, strict=True):
        prob = extractor.keep_probabilities(blocks)
        for k, t in enumerate(grid):
            text = "\n".join(b for b, p in zip(blocks.texts, prob, strict=True) if p >= t)
            scores[k] += agreement(text, reference)[2]
    return float(grid[int(scores.argmax())])


def evaluate(extract, pages: list[Page], group_of) -> dict:
    """Mean per-page token P/R/F1 of ``extract(html)`` against the teacher, overall and per group."""
    per_group: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    started = time.perf_counter()
    for page in pages:
        try:
            text = extract(page.html) or ""
        except Exception:  # a library failing on a page agrees with nothing
            text = ""
        score = agreement(text, page.reference)
        per_group["all"].append(score)
        for g in group_of(page):
            per_group[g].append(score)
    seconds = time.perf_counter() - started

    def summary(scores: list[tuple[float, float, float]]) -> dict:
        arr = np.asarray(scores)
        return {"pages": len(scores), "precision": round(float(arr[:, 0].mean()), 4),
                "recall": round(float(arr[:, 1].mean()), 4), "f1": round(float(arr[:, 2].mean()), 4)}

    out = {g: summary(s) for g, s in sorted(per_group.items())}
    out["all"]["pages_per_s"] = round(len(pages) / seconds, 1) if seconds else None
    return out


def train_extractor(inputs: list[str], output: str, langs: list[str], holdout: float = 0.25, seed: int = 0,
                    max_pages: int | None = None) -> dict:
    """Train on ``inputs`` (WARC paths), write the model to ``output`` and its report next to it."""
    from pipelines import io

    started = time.perf_counter()
    pages = teacher_pages(inputs, max_pages)
    sites = Counter(p.site for p in pages)
    held = [p for p in pages if is_held_out(p, sites[p.site], holdout, seed)]
    train = [p for p in pages if not is_held_out(p, sites[p.site], holdout, seed)]
    if not train or not held:
        raise ValueError(f"--input: {len(pages)} HTML pages found, too few to split into training and held-out "
                         "pages (need pages from several sites)")
    model = fit(train, langs, seed)
    model.meta = {
        "teacher": "trafilatura favor_precision (extract stage settings)",
        "inputs": [Path(p).name for p in inputs], "pages": len(pages), "train_pages": len(train),
        "held_out_pages": len(held), "sites": len(sites), "seed": seed,
        "trained_seconds": round(time.perf_counter() - started, 1),
    }
    report = {"model": Path(output).name, **model.meta, "threshold": model.threshold,
              "stopword_langs": langs,
              "agreement_held_out": evaluate(FastExtractor(model), held, lambda p: [f"site:{p.site}"]),
              "agreement_train": evaluate(FastExtractor(model), train, lambda p: [])}
    model.save(output)
    io.write_json_atomic(report_path(output), report)
    return report


def report_path(model_path: str) -> str:
    return str(Path(model_path).with_suffix("")) + ".report.json"
