"""Benchmarks: flashgen side by side with every peer available in the same process."""
