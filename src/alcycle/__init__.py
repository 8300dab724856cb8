"""alcycle: active-learning cycles for image classification as a DVC + MLflow workflow."""

__version__ = "0.1.0"
