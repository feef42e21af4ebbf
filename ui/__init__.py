"""The app's glue: everything besides `views/` that imports Streamlit.

- `registry`: the live runs of this server by id, their viewers, and the main (ours) and ABP sessions.
- `models`: pretrained models and detectors (cached), test images, the model picker.
- `projection`: the plane latents with d > 2 are drawn on (PCA at once, UMAP in a worker process).
- `widgets`: small widgets and per-browser-session caches.
- `warmup`: the server's one-time warm-up, torch-free.
- `pictures/`: pure numpy/matplotlib to PNG (no ``st.*``), for what the server still draws.

Importing this package (or `ui.warmup`) does not import torch.
"""
