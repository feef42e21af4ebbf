"""First-party Streamlit components: HTML, CSS and JS kept as files here, read at import (no build step, no CDN)."""
