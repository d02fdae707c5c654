"""Moved to ``edgeship.compression.cache``; this name stays only until ``edgeship.candidate``'s
builder (owned by another branch) imports the new one."""

from edgeship.compression.cache import CandidateCache, data_digest, default_cache_dir

__all__ = ["CandidateCache", "data_digest", "default_cache_dir"]
