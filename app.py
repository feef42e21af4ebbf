"""The app: ``streamlit run app.py``. Navigation, page config and the warm-up gate only; each view is a file
in `views/` (docs/decisions.md: why `views/`, not `pages/`), its glue in `ui/`.

Home (`views/home.py`) draws without torch; every other view waits, visibly, for the server's one-time
warm-up (`ui/warmup.py`), then draws while training gives it a core (`lvm.live.turns`).
"""
import os

import streamlit as st

from ui import projector, warmup

os.environ.setdefault("LVM_PRETRAINED_DIR", str(warmup.pretrained_dir()))  # lvm.pretrained assumes no layout

# No page icons: Streamlit fetches Material Symbols from an external font host, and the app must work offline.
nav = st.navigation([st.Page("views/home.py", title="Home", default=True),
                     st.Page("views/train.py", title="Train"),
                     st.Page("views/latent_ot.py", title="Latent & OT"),
                     st.Page("views/reconstruct.py", title="Reconstruct & generate"),
                     st.Page("views/anomaly.py", title="Anomaly")])
st.set_page_config(page_title="lvm: short-run MCMC + OT", layout="wide")
projector.toggle()  # large type, thick lines, high contrast: one toggle in every page's sidebar
if nav.title != "Home":
    warmup.wait(nav.title)  # every other view imports torch: until the warm-up is done, it says so at once
    from lvm.live.turns import process_turns

    with process_turns().yielding():  # training gives this page a core while it is drawn (never waits for one)
        nav.run()
else:
    nav.run()
