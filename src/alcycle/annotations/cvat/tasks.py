"""The query batch as CVAT takes it: the images' paths, one a line, to create a task from.

A pure function of the query table; ``alcycle.stages.select`` writes its output.
"""

from __future__ import annotations

import pandas as pd


def cvat_paths(queries: pd.DataFrame) -> str:
    """The queried images' paths (relative to the project root), one a line, best first."""
    return "".join(f"{path}\n" for path in queries["path"])
