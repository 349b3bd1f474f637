"""Grouping face embeddings into people with average-linkage hierarchical clustering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import ClusterNode, linkage, to_tree


def cluster_embeddings(
    embeddings: np.ndarray, max_distance: float, frames: Sequence[int] | None = None
) -> list[list[int]]:
    """Group the rows of ``embeddings`` and return the groups as lists of row indices.

    Two groups merge while the mean Euclidean distance between their members is at most
    ``max_distance``. When ``frames`` gives each row's frame index, no group contains two
    faces of one frame, because one person appears at most once in a frame. Such a group
    is split where the linkage tree joined its parts. The groups are ordered by size,
    largest first, then by first index.
    """
    count = len(embeddings)
    if count == 0:
        return []
    if count == 1:
        return [[0]]
    tree = linkage(np.asarray(embeddings, dtype=np.float64), method="average", metric="euclidean")

    groups: list[list[int]] = []
    pending: list[ClusterNode] = [to_tree(tree)]
    while pending:
        node = pending.pop()
        members = node.pre_order()
        if node.is_leaf() or (node.dist <= max_distance and not _has_frame_conflict(members, frames)):
            groups.append(sorted(members))
        else:
            pending.extend((node.get_left(), node.get_right()))
    return sorted(groups, key=lambda members: (-len(members), members[0]))


def _has_frame_conflict(members: list[int], frames: Sequence[int] | None) -> bool:
    if frames is None:
        return False
    seen = [frames[index] for index in members]
    return len(seen) != len(set(seen))


def centroid(embeddings: np.ndarray) -> np.ndarray:
    return np.asarray(embeddings, dtype=np.float64).mean(axis=0)
