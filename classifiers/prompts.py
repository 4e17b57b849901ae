"""Prompts for LLM annotation of documents on a 0–5 scale, one per property.

Why additive scales: a judge that adds one point per satisfied criterion gives more consistent
scores than one asked for a holistic number (the approach FineWeb-Edu made popular and
ClassiCC-PT reused for education, STEM and toxicity). The wording here is our own.

Every prompt

* says the document may be in any language and must be judged in its own language, because the
  corpora we build are not English (the first target is Portuguese);
* ends with a strict answer format: the last line must be ``Score: N`` with N an integer 0–5.
  :func:`classifiers.annotate.parse_score` accepts nothing else, so a reply in another format is
  counted as malformed instead of being guessed at.

A custom property uses a user-written template containing the placeholder ``{text}`` (and
optionally ``{property}``); :func:`render_prompt` substitutes by plain replacement, so other
braces in a template need no escaping.
"""

from __future__ import annotations

import hashlib

TEXT_PLACEHOLDER = "{text}"

ANSWER_FORMAT = (
    "First explain your reasoning briefly (at most 100 words). Then write the final line in "
    "exactly this format, with nothing after it:\n"
    "Score: N\n"
    "where N is a single integer from 0 to 5."
)

_LANGUAGE_NOTE = (
    "The document may be written in any language (Portuguese, English, Spanish or another). "
    "Judge it in its own language; do not lower the score because it is not in English, and "
    "write your reasoning in English."
)

EDU_PROMPT = f"""You are rating web pages for how useful they would be as study material for
learners from primary school up to the first years of university.

{_LANGUAGE_NOTE}

Start at 0 and add points for each of the following that holds:
- Add 1 point if the page contains some information that could help someone learn a fact,
  idea or skill, even if it is mixed with advertising, navigation text or unrelated chatter.
- Add a 2nd point if a clear part of the page explains a topic that schools or universities
  teach, although the explanation may be shallow, disorganised or partly off-topic.
- Add a 3rd point if the page as a whole is suitable for learning: it explains concepts in a
  coherent way that a student could follow, like a plain textbook passage, a tutorial or a
  well-written encyclopedia entry, even if it leaves gaps.
- Add a 4th point if the explanation is clear, well organised and focused, builds from simple
  to harder ideas, and contains little that would distract a student (few ads, little
  off-topic text).
- Add a 5th point if the page is excellent teaching material: accurate, thorough for its
  level, with examples or exercises that deepen understanding, and no filler.

Pages that are mostly advertising, shopping, gossip, personal chat, spam or adult content
should get 0 or 1 point, however long they are.

Document:
<document>
{{text}}
</document>

{ANSWER_FORMAT}
"""

STEM_PROMPT = f"""You are rating web pages for how much science, technology, engineering or
mathematics (STEM) content they contain and how good that content is.

{_LANGUAGE_NOTE}

Start at 0 and add points for each of the following that holds:
- Add 1 point if the page mentions a STEM subject at all (for example a scientific fact, a
  technical product specification, a number with a unit, a piece of code), even in passing.
- Add a 2nd point if a noticeable part of the page is about a STEM topic, although it stays at
  the level of news, opinion or a superficial description.
- Add a 3rd point if the page explains how or why something works in a STEM field: a
  mechanism, a method, a derivation, an algorithm or an experiment, in a way a reader can
  follow.
- Add a 4th point if the explanation is precise and correct, uses the field's terms properly,
  and includes supporting detail such as formulas, data, code, diagrams described in words or
  worked steps.
- Add a 5th point if the page is a rigorous, in-depth STEM text, at the level of a good
  textbook chapter, lecture notes, technical documentation or a research overview.

Pages about the humanities, arts, sports, entertainment, religion, politics or commerce score
0 or 1 unless they really explain STEM content.

Document:
<document>
{{text}}
</document>

{ANSWER_FORMAT}
"""

TOXIC_PROMPT = f"""You are rating web pages for toxic content: insults, harassment, hateful
or demeaning language about people or groups, threats, and gratuitously vulgar language.

{_LANGUAGE_NOTE}

Start at 0 and add points for each of the following that holds:
- Add 1 point if the page contains any rude, vulgar or disrespectful wording, even a single
  mild insult or swear word.
- Add a 2nd point if the page insults, mocks or belittles a person or a group, or uses slurs,
  in more than a passing remark.
- Add a 3rd point if hostile or demeaning language is a main feature of the page, for example
  a harassing message, an abusive rant or a comment thread dominated by insults.
- Add a 4th point if the page attacks people for who they are (origin, ethnicity, religion,
  gender, sexuality, disability and the like), or encourages others to harass someone.
- Add a 5th point if the page contains threats of violence, calls for harm, or extreme hateful
  content.

Quoting or discussing toxic language in a neutral, critical or educational way (news reports,
moderation guidelines, research) adds at most 1 point. Disagreement, criticism and negative
reviews expressed politely are not toxic and score 0.

Document:
<document>
{{text}}
</document>

{ANSWER_FORMAT}
"""

PROMPTS: dict[str, str] = {"edu": EDU_PROMPT, "stem": STEM_PROMPT, "toxic": TOXIC_PROMPT}


def get_prompt_template(property_name: str, template: str | None = None) -> str:
    """The template for a property: the user's ``template`` if given, else a built-in one."""
    if template is not None:
        if TEXT_PLACEHOLDER not in template:
            raise ValueError("a custom prompt template must contain the placeholder {text}")
        return template
    try:
        return PROMPTS[property_name]
    except KeyError:
        raise ValueError(
            f"no built-in prompt for property {property_name!r} (built-in: {sorted(PROMPTS)}); "
            "pass prompt_template= with a {text} placeholder"
        ) from None


def render_prompt(template: str, text: str, property_name: str = "") -> str:
    """Fill a template by plain replacement (no str.format, so literal braces are safe)."""
    return template.replace("{property}", property_name).replace(TEXT_PLACEHOLDER, text)


def prompt_hash(template: str) -> str:
    """Short stable hash of a template: part of the annotation cache key, so editing a prompt
    invalidates old answers instead of silently mixing scores from two prompts."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]
