"""cptcorpus orchestration: CLI, config, schema, I/O, the Ray runner and one module per stage."""

__version__ = "0.1.0"
