"""avdisentangle: disentangled audio-visual emotion recognition with multitask Lightning models."""

__version__ = "0.1.0"
