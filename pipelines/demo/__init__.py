"""Demo data, kept apart from the pipeline itself: the bundled sample WARC generator.

Nothing in the core stages imports this package; the ``cptcorpus sample`` command, the tests and
the benchmarks use it to get small, deterministic Common Crawl-like input without a download.
"""
