"""Audio-visual data layer: corpus readers, the synthetic corpus, features, cache and DataModule."""
