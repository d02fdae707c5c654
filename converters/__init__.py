"""Compression steps (prune, distill, quantize, export) and their evaluation helpers."""
