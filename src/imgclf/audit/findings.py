"""What the audit finds in the predictions and embeddings of every image:

- label issues: cleanlab's confident learning on the out-of-sample probabilities;
- exact duplicates: the same pixels (their hash);
- near-duplicates: pairs much closer in embedding space than images of their class usually
  are to their nearest neighbour (cleanlab Datalab's rule, closer than 0.13 times the median
  distance, with the median taken per class);
- leakage: a validation or test image that duplicates a training image;
- outliers: images far from their nearest neighbours (Datalab's rule on the mean distance
  to the k nearest: above the third quartile plus 1.7 interquartile ranges).

The nearest neighbours are found here, in one pass over the images with torch, rather than
by Datalab, which would bring in Hugging Face `datasets` for a table of labels."""

from dataclasses import dataclass

import numpy as np
import torch
from cleanlab.filter import find_label_issues

from imgclf.audit.out_of_sample import AuditedImages

LABEL_ISSUE = "label_issue"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
LEAKAGE = "leakage"
OUTLIER = "outlier"
FINDING_TYPES = [LABEL_ISSUE, LEAKAGE, EXACT_DUPLICATE, NEAR_DUPLICATE, OUTLIER]
# Rows of the similarity matrix computed at once: 2,048 x 60,000 float32 is 0.5 GB.
SIMILARITY_ROWS = 2048


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one image (an index into AuditedImages). `score`: how sure, the
    higher the surer (1 - the given label's probability; a pair's cosine similarity; the
    mean distance to the nearest neighbours)."""

    image: int
    type: str
    score: float
    suggested: int | None = None  # label issues: the class the model gives it
    partner: int | None = None  # duplicates and leakage: the image it duplicates


@dataclass(frozen=True)
class Neighbours:
    distances: np.ndarray  # float32 (N, k): cosine distances to the k nearest, nearest first
    indices: np.ndarray  # int (N, k)


def nearest_neighbours(embeddings: np.ndarray, count: int) -> Neighbours:
    """Each image's `count` nearest other images by cosine distance (unit-length embeddings):
    exact, in blocks of rows of the similarity matrix."""
    vectors = torch.from_numpy(embeddings)
    count = min(count, len(vectors) - 1)
    distances, indices = [], []
    for start in range(0, len(vectors), SIMILARITY_ROWS):
        block = vectors[start : start + SIMILARITY_ROWS] @ vectors.T
        rows = torch.arange(len(block))
        block[rows, start + rows] = -2.0  # not its own neighbour
        similarity, nearest = block.topk(count, dim=1)
        distances.append((1 - similarity).clamp(min=0))
        indices.append(nearest)
    return Neighbours(torch.cat(distances).numpy(), torch.cat(indices).numpy())


def label_issues(images: AuditedImages) -> list[Finding]:
    """cleanlab's confident learning (`find_label_issues`, pruned by noise rate) over the
    out-of-sample images, most certain first (the given label's probability, lowest first)."""
    candidates = np.flatnonzero(images.out_of_sample)
    if len(candidates) == 0:
        return []
    labels = images.labels[candidates]
    probabilities = images.probabilities[candidates]
    ranked = find_label_issues(
        labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    return [
        Finding(
            image=int(candidates[i]),
            type=LABEL_ISSUE,
            score=float(1 - probabilities[i, labels[i]]),
            suggested=int(probabilities[i].argmax()),
        )
        for i in ranked
    ]


def pair_finding(images: AuditedImages, a: int, b: int, kind: str, similarity: float) -> Finding:
    """A duplicate pair as one finding: leakage on the validation or test image when the
    other is a training image, otherwise a duplicate on the later image of the two."""
    if (images.splits[a] == "train") != (images.splits[b] == "train"):
        held_out, training = (b, a) if images.splits[a] == "train" else (a, b)
        return Finding(held_out, LEAKAGE, similarity, partner=training)
    return Finding(max(a, b), kind, similarity, partner=min(a, b))


def exact_duplicates(images: AuditedImages) -> list[Finding]:
    """Images whose pixels equal an earlier image's, each paired with the first of them."""
    first_of_hash: dict[str, int] = {}
    findings = []
    for index, content in enumerate(images.hashes.tolist()):
        first = first_of_hash.setdefault(content, index)
        if first != index:
            findings.append(pair_finding(images, first, index, EXACT_DUPLICATE, 1.0))
    return findings


def near_duplicates(images: AuditedImages, neighbours: Neighbours, radius: float) -> list[Finding]:
    """Pairs closer than `radius` times the median distance from an image of the class to its
    nearest neighbour, each pair once; exact duplicates are left to `exact_duplicates`. The
    median is the class's, not all images' (as Datalab's is): the images of a uniform class
    (MNIST's ones) lie closer together than the rest, and would otherwise all pair up."""
    nearest = neighbours.distances[:, 0]
    class_median = np.array(
        [np.median(nearest[images.labels == label]) if (images.labels == label).any() else 0.0
         for label in range(len(images.class_names))]
    )  # fmt: skip
    threshold = radius * np.maximum(class_median[images.labels], 1e-12)
    close_rows, close_columns = np.nonzero(neighbours.distances < threshold[:, None])
    findings, seen = [], set()
    for row, column in zip(close_rows.tolist(), close_columns.tolist(), strict=True):
        partner = int(neighbours.indices[row, column])
        pair = (min(row, partner), max(row, partner))
        if pair in seen or images.hashes[row] == images.hashes[partner]:
            continue
        seen.add(pair)
        similarity = 1 - float(neighbours.distances[row, column])
        findings.append(pair_finding(images, *pair, NEAR_DUPLICATE, similarity))
    return findings


def outliers(neighbours: Neighbours, fence: float) -> list[Finding]:
    """Images whose mean distance to their nearest neighbours lies beyond the third quartile
    by more than `fence` interquartile ranges."""
    mean_distance = neighbours.distances.mean(axis=1)
    first, third = np.percentile(mean_distance, [25, 75])
    flagged = np.flatnonzero(mean_distance > third + fence * (third - first))
    return [Finding(int(i), OUTLIER, float(mean_distance[i])) for i in flagged]


def all_findings(
    images: AuditedImages,
    neighbours: Neighbours,
    near_duplicate_radius: float,
    outlier_fence: float,
) -> list[Finding]:
    """Every finding, by type (FINDING_TYPES' order), the surest first within each."""
    findings = [
        *label_issues(images),
        *exact_duplicates(images),
        *near_duplicates(images, neighbours, near_duplicate_radius),
        *outliers(neighbours, outlier_fence),
    ]
    return sorted(findings, key=lambda f: (FINDING_TYPES.index(f.type), -f.score))
