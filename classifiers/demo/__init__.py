"""Demo classifiers (edu, stem, toxic) and the seed sets they are trained from.

Kept apart from the real model code: these exist only so an offline demo run (``demo:<name>``
model paths in a config) produces real score columns; they are not corpus-quality classifiers.
"""
