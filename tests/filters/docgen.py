"""Deterministic generator of varied web-like documents, for parity tests and benchmarks.

Documents mix sentences of a good text with the things quality filters look for: bullet lists,
navigation menus, repeated lines and paragraphs, word salad, hashtags, ellipses, cookie banners,
"javascript" lines, lorem ipsum, curly brackets, citation marks, very short or very long pages.
Feature strengths are drawn at random, so many documents land near a threshold -- which is what a
parity test needs.

Loaded by file path from the tests (``importlib``), so it works under any pytest import mode.
"""

from __future__ import annotations

import random
import re

_MENU = ["Home", "About", "Contact", "Blog", "Login", "Shop", "FAQ", "News", "Help", "Cart", "Sign up"]
_JUNK_LINES = [
    "This website uses cookies to improve your experience.",
    "Please enable JavaScript to view the comments.",
    "By continuing you agree to our privacy policy and terms of use.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "function init() { return window.location; }",
    "Share this: Facebook | Twitter | Email",
    "Copyright 2024. All rights reserved.",
    "Read more...",
    "Click here to subscribe to our newsletter!",
    "Posted by admin on 12/03/2021 at 10:45",
]
_EXTRAS = [
    "(see https://example.org/a/b?c=d for details)",
    "e-mail: someone@example.net.",
    "It's well-known, isn't it?",
    "Mr. Smith paid $20 for 3 items (about 10%).",
    "The 2020-2021 season... was odd.",
    "See [1] and [citation needed].",
    "#news #today #breaking",
    '"Quoted," she said; "really!"',
    "U.S. e.g. i.e. vs. etc.",
    "ok:) :-( <3",
]


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?。])\s+", text.replace("\n", " "))
    return [p.strip() for p in parts if len(p.split()) >= 3]


def make_docs(source_text: str, n: int, seed: int = 0) -> list[str]:
    """`n` documents built from the sentences of `source_text` (deterministic for a seed).

    Sentences are varied (about a quarter of their words swapped for other words of the text) so
    that repetition only comes from the explicit repetition features.
    """
    rng = random.Random(seed)
    source = _sentences(source_text)
    words = source_text.split()
    vocab = [w.strip('.,;:!?"()') for w in words if w.strip('.,;:!?"()')]

    def vary(sentence: str) -> str:
        ws = sentence.split()
        for i in range(len(ws) - 1):
            if rng.random() < 0.25:
                ws[i] = rng.choice(vocab)
        return " ".join(ws)

    def sentence() -> str:
        return vary(rng.choice(source))

    docs = []
    for _ in range(n):
        blocks: list[str] = []
        for _ in range(rng.randint(1, 7)):
            k = rng.randint(1, 5)
            para = " ".join(sentence() for _ in range(k))
            r = rng.random()
            if r < 0.1:  # word salad
                ws = para.split()
                rng.shuffle(ws)
                para = " ".join(ws)
            elif r < 0.18:  # no sentence punctuation
                para = re.sub(r"[.!?]", "", para)
            elif r < 0.25:
                para = para + " " + rng.choice(_EXTRAS)
            blocks.append(para)
        if rng.random() < 0.3:
            bullet = rng.choice(["- ", "• ", "  - ", "* "])
            blocks.append(
                "\n".join(
                    bullet + " ".join(rng.sample(words, rng.randint(1, 6))) for _ in range(rng.randint(2, 25))
                )
            )
        if rng.random() < 0.3:
            blocks.insert(
                rng.randint(0, len(blocks)), "\n".join(rng.sample(_MENU, rng.randint(2, len(_MENU))))
            )
        if rng.random() < 0.35:
            for _ in range(rng.randint(1, 4)):
                blocks.insert(rng.randint(0, len(blocks)), rng.choice(_JUNK_LINES))
        if rng.random() < 0.2:  # repeated block
            rep = rng.choice(blocks)
            for _ in range(rng.randint(1, 6)):
                blocks.insert(rng.randint(0, len(blocks)), rep)
        if rng.random() < 0.15:  # lines ending with an ellipsis
            blocks.append(
                "\n".join(
                    " ".join(rng.sample(words, 4)) + rng.choice(["...", "…"])
                    for _ in range(rng.randint(1, 8))
                )
            )
        if rng.random() < 0.1:  # keyword spam
            blocks.append(" ".join(rng.choice(words[:30]) for _ in range(rng.randint(20, 200))))
        if rng.random() < 0.05:  # a giant "word"
            blocks.append("x" * rng.randint(900, 1100) + " tail of the line.")
        if rng.random() < 0.08:  # hashtags
            blocks.append(" ".join("#" + rng.choice(words).strip(".,") for _ in range(rng.randint(3, 30))))
        sep = rng.choice(["\n\n", "\n", "\n\n", "\n \n", "\r\n"])
        doc = sep.join(blocks)
        if rng.random() < 0.1:  # short page
            doc = " ".join(doc.split()[: rng.randint(1, 60)])
        if rng.random() < 0.05:
            doc = "\n" + doc + "\n\n"
        docs.append(doc)
    return docs
