"""Disentanglement evaluation: frozen-embedding probes, metrics, reports and plots."""
