"""The app's glue: everything besides `views/` that imports Streamlit.

- `registry`: the live runs of this server by id, who presents and who views each, the cap on runs, and the main
  (ours) and ABP sessions.
- `controls`: the presenter's panel on the Train view (and shortcuts), a viewer's line, the cap's page.
- `projector`: projector mode (torch-free).
- `models`: pretrained models and detectors (cached), test images, the model picker.
- `projection`: the plane latents with d > 2 are drawn on (PCA at once, UMAP in a worker process).
- `widgets`: small widgets and per-browser-session caches.
- `warmup`: the server's one-time warm-up, torch-free.
- `pictures/`: pure numpy/matplotlib to PNG (no ``st.*``), for what the server still draws.

Importing this package (or `ui.warmup`) does not import torch.
"""
