"""Top-1/top-5 on real images: data layouts, recipe preprocessing, a tensor cache, scoring.

The parent side (layouts, preprocessing, cache) never imports torch; the evaluation itself runs in
each cell's process through the runtime contract (`harness.cell.worker`, mode "accuracy").
"""
