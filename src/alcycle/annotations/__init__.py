"""Annotation exports (alcycle CSV, Label Studio, CVAT) read as one stream of :class:`Annotation`."""

from alcycle.annotations.formats import FORMATS, detect, read_annotations
from alcycle.annotations.records import Annotation, AnnotationError, annotation_error

__all__ = ["FORMATS", "Annotation", "AnnotationError", "annotation_error", "detect", "read_annotations"]
