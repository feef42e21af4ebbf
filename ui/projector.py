"""Projector mode, one toggle in the sidebar of every page: large type, thick lines and points, high contrast.
Torch-free (app.py draws it before any view imports torch)."""
from __future__ import annotations

import streamlit as st

# Global CSS (isolate_styles=False), on while <html> has the class "lvm-projector" (PROJECTOR_JS sets it).
PROJECTOR_CSS = """
html.lvm-projector,
  html.lvm-projector body,
  html.lvm-projector [data-testid="stApp"] { font-size: 20px; }
html.lvm-projector [data-testid="stApp"] { background: #ffffff; color: #000000; }
html.lvm-projector [data-testid="stMarkdownContainer"] p,
  html.lvm-projector [data-testid="stMarkdownContainer"] li,
  html.lvm-projector label,
  html.lvm-projector [data-testid="stCaptionContainer"] { font-size: 1.25rem !important; color: #000000 !important; font-weight: 500; }
html.lvm-projector h1 { font-size: 3.2rem !important; }
html.lvm-projector h2, html.lvm-projector h3 { font-size: 2.2rem !important; }
html.lvm-projector button p { font-size: 1.15rem !important; font-weight: 700; }
html.lvm-projector [data-testid="stBaseButton-primary"] { background: #0033cc !important; border-color: #0033cc !important; }
html.lvm-projector [data-testid="stBaseButton-secondary"] { border: 3px solid #000000 !important; }
html.lvm-projector [data-testid="stSlider"] [role="slider"] { width: 1.6rem; height: 1.6rem; }
html.lvm-projector [data-testid="stImage"] img,
  html.lvm-projector [data-testid="stFullScreenFrame"] img { filter: url(#lvm-thick) contrast(1.2); }
"""
PROJECTOR_JS = """export default function ({ data }) { document.documentElement.classList.toggle("lvm-projector", !!data); }"""
# The coloured points and lines of the server's pictures one pixel thicker on every side (an erosion of the
# bright background), laid over the picture only where a pixel is coloured (|R - B| large), so that grey and black
# text and axes stay sharp.
PROJECTOR_SVG = """<svg width="0" height="0" style="position:absolute"><filter id="lvm-thick" color-interpolation-filters="sRGB">
<feMorphology in="SourceGraphic" operator="erode" radius="1" result="thick"/>
<feColorMatrix in="thick" type="matrix" values="0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4 0 -4 0 0" result="rb"/>
<feColorMatrix in="thick" type="matrix" values="0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 -4 0 4 0 0" result="br"/>
<feComposite in="rb" in2="br" operator="arithmetic" k2="1" k3="1" result="mask"/>
<feComposite in="thick" in2="mask" operator="in" result="colour"/>
<feMerge><feMergeNode in="SourceGraphic"/><feMergeNode in="colour"/></feMerge></filter></svg>"""


def toggle() -> bool:
    """The sidebar's "Projector mode" toggle (every page) and, when on, its look: large type, high contrast, and
    the pictures' points and lines thicker; whether it is on."""
    on = st.sidebar.toggle("Projector mode", key="projector",
                           help="large type, thick lines and points, high contrast: for a lecture hall")
    with st.sidebar:  # mounted on and off alike: adding or removing it would remount the page's other components
        _projector_component()(key="projector_look", data=on)  # (the explorer's zoom and pinned point would go)
    return on


@st.cache_resource(show_spinner=False)
def _projector_component():
    return st.components.v2.component("lvm_projector", html=PROJECTOR_SVG, css=PROJECTOR_CSS, js=PROJECTOR_JS,
                                      isolate_styles=False)


def is_on() -> bool:
    """Whether this browser session is in projector mode (for pictures drawn in the browser: thicker lines)."""
    return bool(st.session_state.get("projector", False))
