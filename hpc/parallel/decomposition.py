"""Pure work decomposition for the distributed kernels (no MPI, no I/O: unit-testable).

Pooling of one large plane is split by *output* rows: each rank computes whole output rows,
so no partial results ever need combining, and the input rows it needs (its halo) follow
from the pooling geometry. Batches are split over samples (N) or planes (N*C) and fall back
to rows when there are fewer planes than ranks.

A rank cannot always reproduce its output rows with one call of the symmetric-padding
kernel API on exactly its halo rows: implicit padding exists only at the image border, and
the avg divisor (``count_include_pad``, ``ceil_mode`` overhang) depends on where the border
is. ``local_plan`` picks, for each block, a local call that gives bit-identical rows: the
halo plus possibly a few *lead* rows in front (whose outputs are discarded), with row
padding ``0`` (interior block) or the global padding (a block touching a border).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from hpc.kernels.geometry import PoolGeometry

Bounds = list[tuple[int, int]]


class DecompositionError(ValueError):
    """The work cannot be split as asked (e.g. more ranks than output rows)."""


def even_split(n: int, parts: int) -> Bounds:
    """``parts`` contiguous half-open ranges covering ``range(n)``; sizes differ by at most 1
    (the first ``n % parts`` ranges get the extra item)."""
    if parts <= 0:
        raise DecompositionError(f"parts must be positive, got {parts}")
    if n < 0:
        raise DecompositionError(f"n must be non-negative, got {n}")
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def weighted_split(n: int, weights: Sequence[float], min_items: int = 1) -> Bounds:
    """Contiguous ranges with sizes proportional to ``weights`` (largest-remainder rounding),
    every range getting at least ``min_items`` (so a slow rank still takes part; pass 0 to
    allow empty ranges). Used with per-rank throughputs from a calibration run."""
    parts = len(weights)
    if parts == 0:
        raise DecompositionError("weights must not be empty")
    if any(not (w >= 0) for w in weights) or sum(weights) <= 0:
        raise DecompositionError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    if n < min_items * parts:
        raise DecompositionError(f"cannot give {parts} ranks at least {min_items} of {n} items each")
    free = n - min_items * parts
    total = float(sum(weights))
    exact = [free * w / total for w in weights]
    sizes = [int(e) for e in exact]
    order = sorted(range(parts), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: free - sum(sizes)]:
        sizes[i] += 1
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size + min_items))
        start += size + min_items
    return bounds


def split(n: int, parts: int, weights: Sequence[float] | None = None, what: str = "rows") -> Bounds:
    """Even split, or weighted when ``weights`` is given; every part gets at least one item.

    Raises ``DecompositionError`` naming ``what`` when there are fewer items than parts.
    """
    if n < parts:
        raise DecompositionError(f"cannot split {n} {what} over {parts} ranks: more ranks than {what} "
                                 f"(use at most {n} ranks or a larger input)")
    if weights is None:
        return even_split(n, parts)
    if len(weights) != parts:
        raise DecompositionError(f"got {len(weights)} weights for {parts} ranks")
    return weighted_split(n, weights)


def halo_rows(geom: PoolGeometry, bounds: Bounds) -> Bounds:
    """Input rows each output-row block reads (its halo), clipped to the image."""
    return [geom.input_rows_for(a, b) for a, b in bounds]


@dataclass(frozen=True)
class LocalPlan:
    """How one rank computes output rows ``[out_start, out_stop)`` from its input rows.

    The rank holds input rows ``[in_start, in_stop)`` (exactly the halo) placed after
    ``lead`` filler rows (any values; they only feed discarded outputs). It calls the
    pooling kernel on those ``lead + in_stop - in_start`` rows with row padding ``pad_h``
    (column padding, kernel, stride, ceil_mode as globally) and keeps output rows
    ``[skip, skip + out_stop - out_start)`` of the local result.
    """

    out_start: int
    out_stop: int
    in_start: int
    in_stop: int
    lead: int
    pad_h: int
    skip: int

    @property
    def local_rows(self) -> int:
        return self.lead + self.in_stop - self.in_start

    @property
    def out_rows(self) -> int:
        return self.out_stop - self.out_start


def local_plan(geom: PoolGeometry, out_start: int, out_stop: int) -> LocalPlan:
    """The local kernel call that reproduces global output rows ``[out_start, out_stop)``
    bit for bit (same windows, same padding semantics, same avg divisors)."""
    if not 0 <= out_start < out_stop <= geom.out_h:
        raise DecompositionError(f"output rows [{out_start}, {out_stop}) not inside [0, {geom.out_h})")
    k, s, p, h = geom.kernel[0], geom.stride[0], geom.padding[0], geom.in_h
    in_start, in_stop = geom.input_rows_for(out_start, out_stop)
    first = out_start * s - p                    # first row of the first window
    end = (out_stop - 1) * s - p + k             # one past the last row of the last window
    touches_top, touches_bottom = first < 0, end > h
    if not touches_top and not touches_bottom:
        # interior: the windows tile the halo exactly, no padding anywhere
        return LocalPlan(out_start, out_stop, in_start, in_stop, lead=0, pad_h=0, skip=0)
    if touches_top:
        # the local image is the top of the global one (rows 0..in_stop): same windows, and
        # the same divisors because no kept window reaches the local bottom border unless
        # the block also reaches the global one (then in_stop == H).
        return LocalPlan(out_start, out_stop, in_start, in_stop, lead=0, pad_h=p, skip=out_start)
    # bottom block not touching the top: start the local image at a multiple of the stride
    # (row m*s), so that with padding p local output j is global output m + j, and the local
    # bottom border (with its padding and ceil-mode overhang) is the global one.
    m = first // s
    lead = first - m * s
    return LocalPlan(out_start, out_stop, in_start, in_stop, lead=lead, pad_h=p, skip=out_start - m)


@dataclass(frozen=True)
class BatchSplit:
    """How an (N, C, H, W) batch is shared: ``axis`` is ``"n"`` (whole samples), ``"nc"``
    (whole planes of the (N*C, H, W) view) or ``"rows"`` (output rows of every plane);
    ``bounds`` are per-rank ranges along that axis (output rows for ``"rows"``)."""

    axis: str
    bounds: Bounds


def batch_split(n: int, c: int, out_h: int, ranks: int,
                weights: Sequence[float] | None = None) -> BatchSplit:
    """Split over N when N >= ranks, else over N*C planes, else over output rows."""
    if n >= ranks:
        return BatchSplit("n", split(n, ranks, weights, "samples"))
    if n * c >= ranks:
        return BatchSplit("nc", split(n * c, ranks, weights, "planes"))
    return BatchSplit("rows", split(out_h, ranks, weights, "output rows"))


def counts_displs(bounds: Bounds, unit: int = 1) -> tuple[list[int], list[int]]:
    """Scatterv/Gatherv counts and displacements for ranges of items of ``unit`` elements
    each (``unit=1``: counts in items; ``unit=W``: rows of W elements in elements)."""
    counts = [(b - a) * unit for a, b in bounds]
    displs = [a * unit for a, _ in bounds]
    return counts, displs


def ranges_overlap(bounds: Bounds) -> bool:
    """True when some input ranges share rows (k > s halos): such blocks cannot go through
    one Scatterv, whose standard forbids reading a root location twice."""
    ordered = sorted(b for b in bounds if b[1] > b[0])
    return any(prev[1] > cur[0] for prev, cur in zip(ordered, ordered[1:]))


def process_grid(ranks: int) -> tuple[int, int]:
    """The most nearly square ``(rows, cols)`` grid with ``rows * cols == ranks`` and
    ``rows <= cols`` (SUMMA's 2-D process grid; a prime count gives ``1 x ranks``)."""
    if ranks <= 0:
        raise DecompositionError(f"ranks must be positive, got {ranks}")
    rows = int(ranks ** 0.5)
    while ranks % rows:
        rows -= 1
    return rows, ranks // rows


def grid_coords(rank: int, grid: tuple[int, int]) -> tuple[int, int]:
    """Row-major position of ``rank`` in the process grid."""
    return divmod(rank, grid[1])


def summa_panels(k: int, a_col_bounds: Bounds, b_row_bounds: Bounds) -> list[tuple[int, int, int, int]]:
    """SUMMA's inner-dimension panels ``(k0, k1, a_owner_col, b_owner_row)``: the common
    refinement of A's column split (over grid columns) and B's row split (over grid rows),
    so each panel lives on one grid column of A and one grid row of B."""
    cuts = sorted({0, k, *(a for a, _ in a_col_bounds), *(a for a, _ in b_row_bounds)})
    panels = []
    for k0, k1 in zip(cuts, cuts[1:]):
        if k1 <= k0:
            continue
        owner_a = next(j for j, (a, b) in enumerate(a_col_bounds) if a <= k0 < b)
        owner_b = next(i for i, (a, b) in enumerate(b_row_bounds) if a <= k0 < b)
        panels.append((k0, k1, owner_a, owner_b))
    return panels
