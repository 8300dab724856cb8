"""CVAT, both directions: :mod:`.tasks` writes the query batch as the image list a task is
created from; :mod:`.export` reads a task's exports back as
:class:`~alcycle.annotations.records.Annotation`. The two meet on the image's path: CVAT
names each image by the file it was given.
"""
