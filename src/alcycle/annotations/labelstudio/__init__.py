"""Label Studio, both directions: :mod:`.tasks` writes the query batch as tasks to import
(with the labeling config they fit); :mod:`.export` reads the project's exports back as
:class:`~alcycle.annotations.records.Annotation`.

The data keys below tie the two sides: a task alcycle wrote comes back carrying them.
"""

ID_KEY = "alcycle_id"  # the task data key that carries alcycle's id
# The task data key of the image, as in Label Studio's image-classification template; also
# the name of the config's <Image> tag, which reads it as "$image".
IMAGE_KEY = "image"
