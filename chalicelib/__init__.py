"""leanlake: shrink the storage footprint of ML data lakes on Amazon S3 (bytes, dollars, kg CO2e)."""

__version__ = "0.1.0"
