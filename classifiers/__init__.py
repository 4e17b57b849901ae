"""Models: language ID, fastText classifiers, training and LLM annotation."""
